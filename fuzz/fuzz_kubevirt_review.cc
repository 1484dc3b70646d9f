// Outside bytes as a manifest or AdmissionReview (YAML or JSON): pruning with the release's schema
// and review in every mode, render, and the hook's VMI path. Must never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string>

#include "kubevirt/admission.h"
#include "kubevirt/domain.h"
#include "kubevirt/hook.h"

using namespace tdxvirt::kubevirt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  ClusterSettings s;
  s.feature_gate = true;
  // Every release's rules and schema, and the unknown release (auto), across the prefixes.
  static const char* const kReleases[] = {"1.6", "1.7", "1.8", "1.9", "auto"};
  s.kubevirt_version = kReleases[size % 5];
  for (ReviewKind k : {ReviewKind::kValidate, ReviewKind::kMutate, ReviewKind::kBoth}) {
    auto r = Review(text, s, k);
    // Output as the CLI and the webhook write it: dump() throws on strings that are not UTF-8.
    if (r.ok()) (void)r->response.dump();
    if (r.ok() && k == ReviewKind::kBoth && r->allowed && r->is_tdx) {
      auto d = RenderDomain(r->mutated, s);
      (void)d;
    }
  }
  auto settings = ParseClusterSettings(text);
  (void)settings;
  auto hook = OnDefineDomain(text, "<domain type='kvm'><name>x</name></domain>", s);
  (void)hook;
  return 0;
}
