// The attestation service's parsers of outside bytes: attest request bodies (flat and nested),
// verifier nonces, policy files (JSON and YAML), client config files, and tokens with their JWKS.
// Any input must parse or fail cleanly.
#include <string_view>

#include "service/appraisal.h"
#include "service/client.h"
#include "service/jose.h"
#include "service/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tdxvirt::service;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)ParseAttestRequest(text);
  (void)ParsePolicy(text, "fuzz");
  (void)ParseClientConfig(text);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_discarded()) (void)NonceFromJson(j, "nonce");
  (void)tdxvirt::Base64Decode(text, "b64");
  (void)tdxvirt::Base64UrlDecode(text, "b64url");
  // A token checked against a JWKS that is the input itself (a key set with n/e or x5c).
  VerifyTokenOptions o;
  (void)VerifyToken(text, text, o);
  (void)VerifyToken("eyJhbGciOiJQUzM4NCIsImtpZCI6ImsifQ.e30.AAAA", text, o);
  return 0;
}
