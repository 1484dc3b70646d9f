// The relying party's check of a token-signing key, as Intel's Go connector (VerifyToken) does it:
// the JWK's x5c chain is sorted into Root CA, Signing CA and leaf by common name; the chain must
// verify (signatures, validity dates, CA constraints) to the x5c Root CA, or to a pinned root; and
// the CRL at the first distribution point of the Signing CA (signed by the Root) and of the leaf
// (signed by the Signing CA) must be a fresh DER CRL that does not list it.
//
// Pure functions over bytes; the only I/O, fetching a CRL, is behind CrlFetcher (client.h has the
// HTTP one with an on-disk cache), so the checks are unit-tested and fuzzed without a network.
// Lives in src/service (not src/tokenpki) so it builds in the library the client already links.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/openssl.h"
#include "common/result.h"

namespace tdxvirt::service {

// Where a CRL came from: the bytes and a description for messages ("http://.../x.der", or "cache
// file ... (from http://...)") so a refusal says which copy was bad.
struct FetchedCrl {
  Bytes der;
  std::string source;
};
class CrlFetcher {
 public:
  virtual ~CrlFetcher() = default;
  virtual Result<FetchedCrl> Fetch(const std::string& url) = 0;
};

// The three roles. Go's rule: Root CA = a CA (valid basic constraints) whose CN contains "Root CA";
// Signing CA = CN contains "Signing CA"; anything else = leaf; x5c order does not matter. Unlike Go
// (last one wins) a second certificate of a role is refused: which one counts would be a guess.
struct TokenSigningChain {
  ossl::X509Ptr root, signing_ca, leaf;
};
Result<TokenSigningChain> ClassifyX5c(const std::vector<Bytes>& x5c_der);
// The x5c of a JWK: 1..10 standard base64 DER certificates (Go: at most 10).
Result<std::vector<Bytes>> JwkX5c(const nlohmann::json& jwk);

struct ChainCheckOptions {
  int64_t now = 0;               // verification time (validity dates, CRL nextUpdate)
  std::string trusted_root_pem;  // when set, the root to verify to instead of the x5c Root CA
  bool check_crls = true;        // false: chain only (a service whose certificates have no CDP)
};

// Verifies leaf <- Signing CA <- root at `now` and returns that root (the pinned one when given).
Result<ossl::X509Ptr> VerifyTokenSigningChain(const TokenSigningChain& chain,
                                              const ChainCheckOptions& options);

// The first URI of the certificate's CRL distribution points, http:// or https:// only.
Result<std::string> FirstCrlUri(X509* cert);

// `crl_der` must be one DER CRL issued (name and signature) by `issuer`, with a nextUpdate after
// `now`, not listing `subject`'s serial. Errors say what failed; the caller names the certificate.
Status CheckCrl(ByteSpan crl_der, X509* subject, X509* issuer, int64_t now);

// The whole check for the JWK with the token's kid; returns the leaf's public key (which must equal
// the JWK's n/e when those are given). Errors name the certificate and the step.
Result<ossl::PkeyPtr> CheckTokenSigningJwk(const nlohmann::json& jwk, const ChainCheckOptions& options,
                                           CrlFetcher& fetcher);

}  // namespace tdxvirt::service
