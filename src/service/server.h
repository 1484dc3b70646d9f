// `tdxvirt serve attestation`: the Trust Authority-compatible appraisal API over HTTPS (plain HTTP
// only when asked), in process so the quickstart and tests can run it on 127.0.0.1 port 0.
//
//   GET  /appraisal/v1/nonce, /appraisal/v2/nonce     x-api-key   {val, iat, signature}
//   POST /appraisal/v1/attest, /appraisal/v2/attest   x-api-key   {"token": JWT}
//   GET  /certs                                                   JWKS (kid, x5c)
//   GET  /crl/ats-ca-crl.der, /crl/root-ca-crl.der                CRLs (with --token-pki)
//   GET  /.well-known/openid-configuration                        issuer, jwks_uri (--public-url)
//   GET  /healthz, /readyz, /metrics                              operations
//
// A wrong method on a known path gets 405 with Allow; over --rate-limit, 429 with Retry-After.
//
// Every response echoes a valid `request-id` and carries a `trace-id`; errors are
// {"code": <status>, "message": "..."}. One JSON log line per request, never with keys, nonces,
// quotes or tokens.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "http/server.h"
#include "service/appraisal.h"
#include "service/rate_limit.h"
#include "tokenpki/tokenpki.h"

namespace tdxvirt::service {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port (see AttestationServer::port)
  // HTTPS server identity (PEM files). Both empty requires plain_http.
  std::string tls_cert_path, tls_key_path;
  bool plain_http = false;

  // Token signing: a token PKI directory (tokenpki/tokenpki.h; a Secret), whose CRLs this server
  // publishes at the CDPs under public_url; or, "bring your own", a key and its chain (no CRLs).
  std::string token_pki_dir;
  std::string public_url;  // the service's external base URL: jku, CDPs, OpenID issuer
  std::string signing_key_path, signing_chain_path;
  std::string policy_dir;                            // "" = no policies
  std::chrono::milliseconds policy_reload_interval{2000};

  // Collateral: offline files (a bundle or a directory of PCS responses), or a PCS/PCCS.
  std::string collateral_path;
  verify::PcsClientOptions pcs;   // used when collateral_path is empty and pcs.base_url is set
  // The DCAP trust anchor: "" = the built-in Intel SGX Root CA; a PEM path (the simulator's root)
  // only when told.
  std::string root_pem_path;

  // Accepted x-api-key values; empty = no key required.
  std::vector<std::string> api_keys;
  // Requests per API key (nonce and attest; 429 with Retry-After beyond); off by default.
  RateLimit rate_limit;
  AppraisalOptions appraisal;
  size_t max_body_size = 1 << 20;  // larger attest bodies get 413, before authentication too
  http::Limits limits;              // deadlines, caps, workers (http/server.h)

  std::function<void(const std::string&)> log;  // one JSON line; default stderr
  std::function<int64_t()> clock;               // Unix seconds; default system clock (test seam)
};

class AttestationServer {
 public:
  // Loads the signing key, trust anchor, collateral and policies; fails naming the bad option.
  static Result<std::unique_ptr<AttestationServer>> Create(ServerOptions options);
  ~AttestationServer();

  // Binds and starts serving on a thread; returns the bound port.
  Result<int> Start();
  // Stops accepting, finishes in-flight requests, joins. Idempotent.
  void Stop();
  int port() const { return port_; }
  // Serving, and neither the trust anchor nor the collateral makes every attest fail; `why` gets
  // the reason when not.
  bool ready(std::string* why = nullptr) const;
  std::string base_url() const;  // "https://127.0.0.1:PORT" or "http://..."
  const SigningKey& signing_key() const { return *key_; }
  tokenpki::CrlPublisher* crls() { return crls_.get(); }  // null without --token-pki
  Appraiser& appraiser() { return *appraiser_; }
  // The Prometheus exposition text (also served at /metrics).
  std::string MetricsText() const;

  struct Metrics;

 private:
  AttestationServer() = default;
  std::vector<http::Route> Routes();
  void OnResponse(const http::Event& e);
  void ReloadLoop();
  static Status LoadTokenSigning(ServerOptions& o, AttestationServer& s);
  void WarnRevokedSigner();
  void LogEvent(const std::string& level, const std::string& event, const std::string& detail);

  ServerOptions options_;
  std::unique_ptr<SigningKey> key_;
  std::unique_ptr<tokenpki::CrlPublisher> crls_;  // with token_pki_dir
  std::unique_ptr<verify::QuoteVerifier> verifier_;
  std::unique_ptr<CollateralSource> collateral_;
  std::unique_ptr<PolicyStore> policies_;
  std::unique_ptr<Appraiser> appraiser_;
  std::unique_ptr<http::Server> http_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<RateLimiter> limiter_;
  std::thread reload_thread_;
  std::atomic<bool> serving_{false}, stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  int port_ = 0;
};

}  // namespace tdxvirt::service
