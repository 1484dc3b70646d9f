// The in-TD attestation client, modelled on Intel's trustauthority-cli / go-connector: the same
// config keys, endpoints (v2), headers and request bodies, so it works against this service and
// against Intel Trust Authority.
//
// Token collection (CollectToken): nonce -> REPORTDATA = SHA-512(val || iat || runtime_data), with
// the DER public key as runtime_data -> quote from a QuoteProvider -> POST attest -> token.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/result.h"
#include "guest/quote_provider.h"
#include "service/appraisal.h"

namespace tdxvirt::service {

struct ClientConfig {
  std::string trustauthority_url;      // JWKS at {url}/certs (verify)
  std::string trustauthority_api_url;  // appraisal API (token, evidence)
  std::string trustauthority_api_key;  // x-api-key (a secret: never logged)
  std::string cloud_provider;          // accepted for compatibility; only "" is supported
  std::string ca_file;                 // PEM bundle to trust instead of the system CAs
  bool allow_http = false;             // plain http URLs (loopback tests); Intel requires https
  std::chrono::seconds timeout{30};
};
// Intel's config file (JSON, unknown keys refused as Intel's CLI does; tpm/nvgpu refused).
Result<ClientConfig> ParseClientConfig(std::string_view json_text);

struct TokenRequestOptions {
  Bytes runtime_data;                  // bound into REPORTDATA (e.g. DER public key)
  Bytes user_data;                     // sent, not bound (Intel: Azure user data)
  std::vector<std::string> policy_ids;
  bool policy_must_match = false;
  std::string token_signing_alg;       // "" (service default PS384), "PS384", "RS256"
  bool no_verifier_nonce = false;
  std::string request_id;
};

class TrustAuthorityClient {
 public:
  static Result<TrustAuthorityClient> Create(ClientConfig config);

  struct Response {
    int status = 0;
    std::string body;
    std::string request_id, trace_id;
  };
  // GET {api_url}/appraisal/v2/nonce (body limit 4 KiB, as Intel's client).
  Result<VerifierNonce> GetNonce(const std::string& request_id = "") const;
  // POST {api_url}/appraisal/v2/attest with `evidence` (limit 64 KiB); returns the token.
  Result<std::string> Attest(const nlohmann::json& evidence, const std::string& request_id = "") const;
  // GET {url}/certs (limit 64 KiB).
  Result<std::string> GetCerts() const;

  const ClientConfig& config() const { return config_; }

 private:
  explicit TrustAuthorityClient(ClientConfig c) : config_(std::move(c)) {}
  Result<Response> Do(const std::string& base, const std::string& method, const std::string& path,
                      const std::string& body, size_t limit, const std::string& request_id,
                      bool api_key) const;
  ClientConfig config_;
};

// The composite /appraisal/v2/attest body Intel's CLI `evidence` prints.
nlohmann::json BuildEvidence(ByteSpan quote, const VerifierNonce* nonce,
                             const TokenRequestOptions& options);

// nonce (unless no_verifier_nonce) -> REPORTDATA -> quote -> evidence. `nonce_out` gets the nonce.
Result<nlohmann::json> CollectEvidence(const TrustAuthorityClient& client, guest::QuoteProvider& provider,
                                       const TokenRequestOptions& options);
// CollectEvidence -> attest -> the token.
Result<std::string> CollectToken(const TrustAuthorityClient& client, guest::QuoteProvider& provider,
                                 const TokenRequestOptions& options);

}  // namespace tdxvirt::service
