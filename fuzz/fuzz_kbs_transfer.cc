// The key broker's inputs from the network and from the store: the transfer request (headers
// chosen by the first byte), key transfer policies, token claims (v1 and v2), and the raw-byte
// parsers of the TD's public key and of a wrapped key (kbs/transfer.h, policy.h, wrap.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kbs/policy.h"
#include "kbs/transfer.h"
#include "kbs/wrap.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tdxvirt::kbs;
  tdxvirt::ByteSpan in(data, size);
  if (size == 0) return 0;
  static const TransferHeaders kHeaders[] = {
      {"application/json", "application/json", ""},   {"application/json", "application/json", "TDX"},
      {"application/json", "application/json", "SGX"}, {"application/json", "text/plain", ""},
      {"*/*", "application/json", "TDX"},              {"application/json", "", "tdx"}};
  const auto& h = kHeaders[data[0] % (sizeof kHeaders / sizeof kHeaders[0])];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)ParseTransferRequest(h, text);
  (void)IsUuidV4(text);

  auto policy = ParseKeyTransferPolicy(text);
  if (policy.ok()) {
    auto again = ParseKeyTransferPolicy(KeyTransferPolicyToJson(*policy).dump());
    if (!again.ok()) __builtin_trap();  // the stored form must always parse back
  }
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    auto claims = ClaimsFromToken(j);
    if (claims.ok()) {
      KeyTransferPolicy p = policy.ok() ? *policy : KeyTransferPolicy{};
      (void)EvaluatePolicy(p, *claims);
    }
  }

  (void)ParseHeldPublicKey(in);
  static const uint8_t kSwk[32] = {};
  (void)OpenWrappedKey(in, tdxvirt::ByteSpan(kSwk, sizeof kSwk));
  return 0;
}
