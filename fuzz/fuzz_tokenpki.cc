// revocations.json comes from a Secret that anyone allowed to edit it controls, and the server
// re-reads it every few seconds: any bytes must parse or fail cleanly, a parsed list must survive
// its own serialisation unchanged, and every parsed serial must be signable into a CRL.
#include <cstdlib>
#include <string_view>

#include "tokenpki/tokenpki.h"

namespace {

struct Ca {
  tdxvirt::tokenpki::Pki pki;
  Ca() {
    auto p = tdxvirt::tokenpki::CreatePki({.public_url = "http://127.0.0.1:1", .key_bits = 2048, .now = 1700000000});
    if (!p.ok()) std::abort();
    pki = std::move(*p);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tdxvirt::tokenpki;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)NormalizeSerial(text);
  (void)NormalizePublicUrl(text);
  auto revs = ParseRevocations(text);
  if (!revs.ok()) return 0;
  auto again = ParseRevocations(RevocationsToJson(*revs));
  if (!again.ok() || RevocationsToJson(*again) != RevocationsToJson(*revs)) std::abort();
  static Ca ca;
  for (auto which : {Issuer::kSigningCa, Issuer::kRootCa}) {
    auto crl = SignCrl(which == Issuer::kRootCa ? ca.pki.root_ca.get() : ca.pki.signing_ca.get(),
                       which == Issuer::kRootCa ? ca.pki.root_ca_key.get() : ca.pki.signing_ca_key.get(),
                       which, *revs, 1700000000, 1700000000);
    if (!crl.ok()) std::abort();
  }
  return 0;
}
