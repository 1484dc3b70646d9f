// `tdxvirt serve kbs`: a key broker whose key-transfer API is Intel Trust Authority KBS's
// (reference key-broker.md §1), over HTTPS (plain HTTP only when asked), on the hardened HTTP
// layer (http/server.h).
//
//   POST /kbs/v1/keys/{id}/transfer                 none     nonce | wrapped key   (TD)
//   POST /kbs/v1/token                              password bearer token          (admin)
//   POST/GET /kbs/v1/keys, GET/DELETE /kbs/v1/keys/{id}                bearer      (admin)
//   POST/GET /kbs/v1/key-transfer-policies, GET/DELETE .../{id}        bearer      (admin)
//   GET  /healthz, /readyz, /metrics                                               (operations)
//
// Transfer, as Intel's TransferKeyWithEvidence:
//   - background-check: a bodiless POST gets a Trust Authority nonce (header Attestation-Type);
//     the TD's second POST (Attestation-Type: TDX, quote, nonce, user_data) is sent to the
//     attestation service (ours or Intel's, v1 API as Intel's KBS) for a token;
//   - passport: the TD brings {"attestation_token"}; each token is accepted once (its jti is
//     remembered until it expires), so a copied token cannot be spent again.
// The token is verified as Intel's client verifies it: the JWKS from {trustauthority_url}/certs,
// the x5c chain (to a pinned root when given) and its CRLs; then the key's transfer policy
// (policy.h) decides, and the key is wrapped to the token's attester_held_data (wrap.h).
// Errors are Intel's {"error": "..."}; a policy mismatch is a 403 listing every failed check.
// One audit line per decision (key id, mode, decision, reasons, token jti, MRTD); never a key,
// SWK, token, nonce or password.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "http/server.h"
#include "service/client.h"

namespace tdxvirt::kbs {

class KeyStore;

struct KbsOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string tls_cert_path, tls_key_path;  // both empty requires plain_http
  bool plain_http = false;
  std::string public_url;  // the broker's external base URL (transfer_link); default base_url()

  std::string store_dir;               // key store directory (a Secret mount, or writable)
  bool store_read_only = false;
  std::string admin_credentials_path;  // "" = no admin API (404 on its routes)

  // The attestation service: trustauthority_url (JWKS at /certs), trustauthority_api_url
  // (nonce, attest), trustauthority_api_key, ca_file, allow_http, timeout, retry.
  service::ClientConfig trust_authority;
  std::string token_issuer;          // required "iss" when set
  std::string token_root_pem_path;   // pin the token-signing root; "" = the x5c Root CA
  bool check_crls = true;
  std::string crl_cache_dir;         // "" = no on-disk CRL cache
  std::chrono::seconds jwks_cache{300};
  int64_t leeway_seconds = 0;
  std::string replay_store_url;      // passport jti memory: "" = memory, "redis://..."

  size_t max_body_size = 1 << 20;
  http::Limits limits;
  std::function<void(const std::string&)> log;  // one JSON line; default stderr
  std::function<int64_t()> clock;               // Unix seconds; default system clock
};

class KbsServer {
 public:
  // Opens the store, loads credentials and the pinned root; fails naming the bad option.
  static Result<std::unique_ptr<KbsServer>> Create(KbsOptions options);
  // Tests and other stores: the server uses `store` instead of opening store_dir.
  static Result<std::unique_ptr<KbsServer>> Create(KbsOptions options, std::unique_ptr<KeyStore> store);
  ~KbsServer();
  Result<int> Start();
  void Stop();
  int port() const;
  std::string base_url() const;
  // Serving and the store readable; `why` gets the reason when not.
  bool ready(std::string* why = nullptr) const;
  std::string MetricsText() const;

  struct Impl;

 private:
  explicit KbsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tdxvirt::kbs
