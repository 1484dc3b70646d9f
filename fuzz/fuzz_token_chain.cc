// The relying party's token-signing chain and CRL checks (src/service/token_chain.h) over bytes.
// Input: one byte n (the x5c count, mod 11), then length-prefixed chunks (2 bytes big-endian):
// n certificates (DER), the Root CA's CRL, the Signing CA's CRL. Every input must be classified,
// verified or refused cleanly; CRLs come from memory, never the network.
#include <cstdint>
#include <vector>

#include "common/base64.h"
#include "service/token_chain.h"

namespace {

using namespace tdxvirt;
using namespace tdxvirt::service;

class MemoryCrls : public CrlFetcher {
 public:
  MemoryCrls(Bytes root_crl, Bytes ats_crl) : root_(std::move(root_crl)), ats_(std::move(ats_crl)) {}
  Result<FetchedCrl> Fetch(const std::string& url) override {
    // The Signing CA's CDP names the Root's CRL (first fetch), the leaf's the Signing CA's.
    return FetchedCrl{calls_++ == 0 ? root_ : ats_, url};
  }

 private:
  Bytes root_, ats_;
  int calls_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t count = data[0] % 11, pos = 1;
  std::vector<Bytes> chunks;
  while (chunks.size() < count + 2 && pos + 2 <= size) {
    size_t len = size_t(data[pos]) << 8 | data[pos + 1];
    pos += 2;
    if (len > size - pos) len = size - pos;
    chunks.emplace_back(data + pos, data + pos + len);
    pos += len;
  }
  while (chunks.size() < count + 2) chunks.emplace_back();
  std::vector<Bytes> x5c(chunks.begin(), chunks.begin() + long(count));
  const int64_t at = 1718079600;  // 2024-06-11T04:20:00Z, inside Intel's C fixtures' validity

  auto chain = ClassifyX5c(x5c);
  if (chain.ok()) {
    (void)FirstCrlUri(chain->leaf.get());
    (void)FirstCrlUri(chain->signing_ca.get());
    auto root = VerifyTokenSigningChain(*chain, {.now = at});
    (void)CheckCrl(chunks[count], chain->signing_ca.get(), chain->root.get(), at);
    (void)CheckCrl(chunks[count + 1], chain->leaf.get(), chain->signing_ca.get(), at);
  }
  nlohmann::json jwk = {{"kty", "RSA"}, {"x5c", nlohmann::json::array()}};
  for (const auto& c : x5c) jwk["x5c"].push_back(Base64Encode(c));
  MemoryCrls crls(chunks[count], chunks[count + 1]);
  (void)CheckTokenSigningJwk(jwk, {.now = at}, crls);
  return 0;
}
