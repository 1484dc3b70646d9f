// The attestation service's parsers of outside bytes: attest request bodies (flat and nested),
// verifier nonces, policy files (JSON and YAML), client config files, and tokens with their JWKS;
// and the measured-boot path: the input as an event log (appraised, its claim dumped as the token
// would be) and every policy that parses evaluated against a known log, so the measured-boot keys
// (kernel_digest, cmdline, rtmr_verdicts, ...) reach their evaluation. Any input must parse or fail
// cleanly.
#include <string_view>

#include "common/openssl.h"
#include "eventlog/builder.h"
#include "service/appraisal.h"
#include "service/client.h"
#include "service/jose.h"
#include "service/measured_boot.h"
#include "service/policy.h"

namespace {

using namespace tdxvirt;

// A direct boot log (Secure Boot on, cmdline, initrd) appraised against a quote whose RTMR2 and
// RTMR3 differ from it, so every verdict and every pin's path is reachable.
const service::MeasuredBoot& KnownLog() {
  static const service::MeasuredBoot mb = [] {
    eventlog::EventLogBuilder b;
    Bytes sb = {0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c,
                10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    for (char c : std::string("SecureBoot")) sb.insert(sb.end(), {uint8_t(c), 0});
    sb.push_back(1);
    b.AddHashed(1, eventlog::kEvEfiVariableDriverConfig, sb);
    b.AddHashed(1, eventlog::kEvSeparator, Bytes{0, 0, 0, 0});
    b.AddHashed(2, eventlog::kEvEfiAction, AsBytes("Calling EFI Application from Boot Option"));
    b.AddTag(3, eventlog::kTagLoadOptions, *eventlog::DirectBootLoadOptions("console=hvc0", true));
    b.AddTag(3, eventlog::kTagInitrd, AsBytes(std::string_view("Linux initrd\0", 13)),
             ossl::Sha384(AsBytes("initrd")));
    eventlog::Rtmrs quote = b.rtmrs();
    quote[2][0] ^= 1;
    quote[3][0] = 1;
    return *service::AppraiseEventLog(b.Finish(0), quote);
  }();
  return mb;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tdxvirt::service;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)ParseAttestRequest(text);
  auto policy = ParsePolicy(text, "fuzz");
  if (policy.ok()) {
    tdxvirt::evidence::TdQuoteBody body{};
    (void)EvaluatePolicy(*policy, body, "UpToDate", nullptr);
    (void)EvaluatePolicy(*policy, body, "UpToDate", &KnownLog());
    (void)PolicyToJson(*policy).dump();
  }
  auto mb = AppraiseEventLog(tdxvirt::ByteSpan(data, size), {});
  if (mb.ok()) (void)MeasuredBootClaim(*mb).dump();
  else (void)nlohmann::json(mb.error()).dump();
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
