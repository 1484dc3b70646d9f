// Admission for VirtualMachine and VirtualMachineInstance objects that ask for TDX: validation
// (each denial names the field and the fix) and mutation (a JSON Patch), as pure functions over
// the object, and the AdmissionReview v1 envelope around them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kubevirt/document.h"
#include "kubevirt/settings.h"
#include "kubevirt/tdx_spec.h"

namespace tdxvirt::kubevirt {

enum class ReviewKind { kValidate, kMutate, kBoth };
Result<ReviewKind> ParseReviewKind(std::string_view text);  // validate | mutate | both

struct ReviewResult {
  bool allowed = true;
  bool is_tdx = false;                // the object asks for TDX
  std::vector<std::string> denials;   // "FIELD: what is wrong; how to fix it"
  std::vector<std::string> warnings;
  Json patch = Json::array();         // RFC 6902 JSON Patch (mutate, both)
  Json mutated;                       // the object after the patch
  Json response;                      // the AdmissionReview v1 response
  TdxSettings tdx;                    // the effective settings (when is_tdx)
  bool sidecar = false;               // the hook sidecar is (to be) attached
  std::string kubevirt_version;       // the release acted for ("1.9"); "" when unknown
  std::vector<std::string> pruned;    // keys the release's CRD schema removes (Review only)
};

// Whether a TD needs the hook sidecar on release `kv`: always up to 1.8 (upstream writes no QGS
// element); from 1.9 only for MR values, a non-default policy or a VM's own QGS socket.
bool SidecarNeeded(const TdxSettings& t, const kube::KubevirtVersion& kv, const ClusterSettings& cs);

// Validates and/or mutates one VirtualMachine or VirtualMachineInstance object, as the release
// EffectiveKubevirtVersion(settings) needs. Other kinds are allowed unchanged with a warning; so
// is a VMI UPDATE (its spec is immutable). In kBoth the object is mutated first and the result
// validated, as the API server orders webhooks. `object` is what the API server passes, i.e.
// already pruned (Review prunes a file first).
ReviewResult ReviewObject(const Json& object, const ClusterSettings& settings, ReviewKind kind,
                          const std::string& uid = "", const std::string& operation = "CREATE");

// ReviewObject after pruning `object` as release EffectiveKubevirtVersion(settings)'s API server
// would (prune.h), so an offline answer is the live one; each pruned key is also a warning.
Result<ReviewResult> PruneAndReview(const Json& object, const ClusterSettings& settings,
                                    ReviewKind kind, const std::string& uid = "",
                                    const std::string& operation = "CREATE");

// `text` is a manifest (YAML/JSON) or an AdmissionReview v1 request, reviewed with PruneAndReview. Errors only for input that
// does not parse; a denial is a result.
Result<ReviewResult> Review(std::string_view text, const ClusterSettings& settings, ReviewKind kind);

}  // namespace tdxvirt::kubevirt
