#include "service/server.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cmath>
#include <ctime>
#include <map>
#include <regex>

#include "common/file.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/openssl.h"

namespace tdxvirt::service {

namespace {

using Clock = std::chrono::steady_clock;

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Intel's client checks request ids against this; anything else is not echoed.
bool ValidRequestId(const std::string& id) {
  static const std::regex kId("^[a-zA-Z0-9_ /.-]{1,128}$");
  return std::regex_match(id, kId);
}

std::string RandomHex(size_t n) {
  Bytes b(n);
  RAND_bytes(b.data(), int(n));
  return ToHex(b);
}

void JsonError(http::Response& res, int status, const std::string& message) {
  res.Set(status, Dump({{"code", status}, {"message", message}}), "application/json");
}

}  // namespace

// Counters by label set, and a histogram of DCAP verification time.
struct AttestationServer::Metrics {
  std::mutex mu;
  std::map<std::pair<std::string, std::string>, uint64_t> requests;  // (endpoint, outcome)
  std::map<int, uint64_t> responses;                                 // HTTP status
  static constexpr double kBuckets[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
  uint64_t verify_buckets[std::size(kBuckets)] = {};
  uint64_t verify_count = 0;
  double verify_sum = 0;
  uint64_t policy_reload_errors = 0;
  uint64_t policy_reloads = 0;
  uint64_t rate_limited = 0;

  void Request(const std::string& endpoint, const std::string& outcome) {
    std::lock_guard l(mu);
    ++requests[{endpoint, outcome}];
  }
  void Response(int status) {
    std::lock_guard l(mu);
    ++responses[status];
  }
  void Verify(double seconds) {
    std::lock_guard l(mu);
    for (size_t i = 0; i < std::size(kBuckets); ++i)
      if (seconds <= kBuckets[i]) ++verify_buckets[i];
    ++verify_count;
    verify_sum += seconds;
  }
};

// --token-pki DIR (with --public-url) or the bring-your-own --signing-key/--signing-chain.
Status AttestationServer::LoadTokenSigning(ServerOptions& o, AttestationServer& s) {
  if (!o.public_url.empty()) {
    auto url = tokenpki::NormalizePublicUrl(o.public_url);
    if (!url.ok()) return Error{url.error()};
    o.public_url = *url;
    if (o.appraisal.jku.empty()) o.appraisal.jku = o.public_url + "/certs";
    if (o.appraisal.jku != o.public_url + "/certs")
      return Error{"--jku: " + o.appraisal.jku + " is not " + o.public_url +
                   "/certs, where this service serves its JWKS; drop --jku"};
  }
  if (o.token_pki_dir.empty()) {
    if (o.signing_key_path.empty() || o.signing_chain_path.empty())
      return Error{"--token-pki is required (create it with `tdxvirt token-pki init --dir DIR "
                   "--public-url URL`), or give your own --signing-key and --signing-chain"};
    auto key = SigningKey::Load(o.signing_key_path, o.signing_chain_path);
    if (!key.ok()) return Error{key.error()};
    s.key_ = std::make_unique<SigningKey>(std::move(*key));
    return OkStatus();
  }
  if (!o.signing_key_path.empty() || !o.signing_chain_path.empty())
    return Error{"give either --token-pki or --signing-key/--signing-chain, not both"};
  if (o.public_url.empty())
    return Error{"--public-url is required with --token-pki: the https:// base URL clients use for "
                 "this service (its certificates' CRL distribution points are under it)"};
  int64_t now = o.clock();
  auto pki = tokenpki::LoadDirectory(o.token_pki_dir, o.public_url, now);
  if (!pki.ok()) return Error{"--token-pki: " + pki.error()};
  auto key = SigningKey::FromTokenPki(*pki);
  if (!key.ok()) return Error{"--token-pki: " + key.error()};
  s.key_ = std::make_unique<SigningKey>(std::move(*key));
  auto crls = tokenpki::CrlPublisher::Create(std::move(*pki),
                                             o.token_pki_dir + "/" + tokenpki::kRevocationsFile, now);
  if (!crls.ok()) return Error{"--token-pki: " + crls.error()};
  s.crls_ = std::move(*crls);
  return OkStatus();
}

Result<std::unique_ptr<AttestationServer>> AttestationServer::Create(ServerOptions o) {
  std::unique_ptr<AttestationServer> s(new AttestationServer());
  if (!o.log) o.log = LogToStderr;
  if (!o.clock) o.clock = [] { return int64_t(std::time(nullptr)); };
  if (!o.plain_http && (o.tls_cert_path.empty() || o.tls_key_path.empty()))
    return Error{"--tls-cert and --tls-key are required (or --plain-http, for loopback tests only)"};
  if (Status st = LoadTokenSigning(o, *s); !st.ok()) return Error{st.error()};

  Result<verify::TrustedRoot> root = Error{""};
  if (o.root_pem_path.empty()) {
    root = verify::TrustedRoot::IntelSgxRootCa();
  } else {
    auto pem = ReadFile(o.root_pem_path, 1 << 20);
    if (!pem.ok()) return Error{"--root: " + pem.error()};
    root = verify::TrustedRoot::FromPem(AsString(*pem));
  }
  if (!root.ok()) return Error{"--root: " + root.error()};
  s->verifier_ = std::make_unique<verify::QuoteVerifier>(*root);

  if (!o.collateral_path.empty()) {
    auto c = NewFileCollateralSource(o.collateral_path, *root);
    if (!c.ok()) return Error{c.error()};
    s->collateral_ = std::move(*c);
  } else if (!o.pcs.base_url.empty() || o.pcs.offline) {
    auto c = NewPcsCollateralSource(o.pcs, *root);
    if (!c.ok()) return Error{c.error()};
    s->collateral_ = std::move(*c);
  } else {
    return Error{"no collateral source: give --collateral FILE|DIR (offline) or --pcs URL"};
  }

  if (!o.policy_dir.empty()) {
    s->policies_ = std::make_unique<PolicyStore>(o.policy_dir);
    if (Status st = s->policies_->Reload(); !st.ok()) return Error{"--policy-dir: " + st.error()};
  }
  if (o.max_body_size < 1024) return Error{"--max-body-size: at least 1024 bytes"};
  s->metrics_ = std::make_unique<Metrics>();
  s->limiter_ = std::make_unique<RateLimiter>(o.rate_limit);
  s->appraiser_ = std::make_unique<Appraiser>(*s->key_, *s->verifier_, *s->collateral_,
                                              s->policies_.get(), o.appraisal);
  s->options_ = std::move(o);
  return s;
}

AttestationServer::~AttestationServer() { Stop(); }

std::string AttestationServer::base_url() const {
  return std::string(options_.plain_http ? "http" : "https") + "://" + options_.host + ":" +
         std::to_string(port_);
}

void AttestationServer::LogEvent(const std::string& level, const std::string& event,
                                 const std::string& detail) {
  options_.log(LogLine(level, "attestation", event, detail));
}

Result<int> AttestationServer::Start() {
  http::ServerOptions ho;
  ho.host = options_.host;
  ho.port = options_.port;
  if (!options_.plain_http) {
    ho.tls_cert_path = options_.tls_cert_path;
    ho.tls_key_path = options_.tls_key_path;
  }
  ho.limits = options_.limits;
  ho.on_response = [this](const http::Event& e) { OnResponse(e); };
  auto server = http::Server::Create(std::move(ho), Routes());
  if (!server.ok()) return Error{server.error()};
  http_ = std::move(*server);
  auto port = http_->Start();
  if (!port.ok()) return Error{port.error()};
  port_ = *port;
  if (policies_ || crls_) reload_thread_ = std::thread([this] { ReloadLoop(); });
  serving_ = true;
  auto set = policies_ ? policies_->Get() : nullptr;
  LogEvent("info", "listening",
           base_url() + " kid=" + key_->kid() + " policies=" + std::to_string(set ? set->size() : 0));
  if (options_.api_keys.empty())
    LogEvent("warn", "no_api_keys",
             "nonce and attest accept requests without x-api-key; give --api-key-file unless a "
             "gateway in front authenticates callers");
  if (!crls_)
    LogEvent("warn", "no_token_pki",
             "tokens are signed with --signing-key/--signing-chain: Intel's Go, Python and C "
             "clients refuse them unless that chain has CRL distribution points serving CRLs; use "
             "--token-pki DIR --public-url URL (tdxvirt token-pki init)");
  else
    WarnRevokedSigner();
  if (std::string why; !ready(&why)) LogEvent("error", "not_ready", why);
  return port_;
}

void AttestationServer::Stop() {
  {
    std::lock_guard l(stop_mu_);
    if (stopping_.exchange(true)) return;
    serving_ = false;
  }
  stop_cv_.notify_all();
  if (reload_thread_.joinable()) reload_thread_.join();
  if (http_) {
    http_->Stop();
    http_.reset();
    LogEvent("info", "stopped", "");
  }
}

bool AttestationServer::ready(std::string* why) const {
  auto say = [why](std::string s) {
    if (why) *why = std::move(s);
    return false;
  };
  if (!serving_.load()) return say(stopping_ ? "stopping" : "not started");
  Status s = collateral_->Usable(options_.clock(), options_.appraisal.check_crl);
  if (!s.ok()) return say("every attest would fail: " + s.error());
  return true;
}

void AttestationServer::WarnRevokedSigner() {
  const auto& pki = crls_->pki();
  std::string leaf = tokenpki::SerialHex(pki.leaf.get()), ca = tokenpki::SerialHex(pki.signing_ca.get());
  for (const auto& r : crls_->revocations())
    if ((r.issuer == tokenpki::Issuer::kSigningCa && r.serial == leaf) ||
        (r.issuer == tokenpki::Issuer::kRootCa && r.serial == ca))
      LogEvent("warn", "token_signer_revoked",
               "revocations.json lists " + std::string(r.serial == leaf ? "the token-signing certificate" : "the Signing CA") +
                   " " + r.serial + ": verifiers refuse the tokens this service signs; rotate (tdxvirt token-pki rotate) and restart");
}

void AttestationServer::ReloadLoop() {
  std::unique_lock l(stop_mu_);
  std::string last_error, last_crl_error;
  while (!stop_cv_.wait_for(l, options_.policy_reload_interval, [this] { return stopping_.load(); })) {
    l.unlock();
    if (crls_) {
      // revocations.json changed (a Secret update), or the CRLs are half way to nextUpdate.
      bool changed = false;
      Status st = crls_->Reload(options_.clock(), &changed);
      if (!st.ok() && st.error() != last_crl_error)
        LogEvent("error", "revocations_reload_error", st.error() + " (keeping the previous CRLs)");
      last_crl_error = st.ok() ? "" : st.error();
      if (changed) {
        LogEvent("info", "crls_resigned", std::to_string(crls_->revocations().size()) + " revocations");
        WarnRevokedSigner();
      }
    }
    if (!policies_) {
      l.lock();
      continue;
    }
    bool changed = false;
    Status st = policies_->Reload(&changed);
    if (!st.ok()) {
      std::lock_guard m(metrics_->mu);
      ++metrics_->policy_reload_errors;
    }
    if (!st.ok() && st.error() != last_error)
      LogEvent("error", "policy_reload_error", st.error() + " (keeping the previous policies)");
    if (changed) {
      {
        std::lock_guard m(metrics_->mu);
        ++metrics_->policy_reloads;
      }
      LogEvent("info", "policies_reloaded", std::to_string(policies_->Get()->size()) + " policies");
    }
    last_error = st.ok() ? "" : st.error();
    l.lock();
  }
}

std::string AttestationServer::MetricsText() const {
  std::string out;
  std::lock_guard l(metrics_->mu);
  out += "# HELP tdxvirt_attestation_requests_total Requests by endpoint and outcome.\n"
         "# TYPE tdxvirt_attestation_requests_total counter\n";
  for (const auto& [k, v] : metrics_->requests)
    out += "tdxvirt_attestation_requests_total{endpoint=\"" + k.first + "\",outcome=\"" + k.second +
           "\"} " + std::to_string(v) + "\n";
  out += "# HELP tdxvirt_attestation_responses_total HTTP responses by status code.\n"
         "# TYPE tdxvirt_attestation_responses_total counter\n";
  for (const auto& [k, v] : metrics_->responses)
    out += "tdxvirt_attestation_responses_total{code=\"" + std::to_string(k) + "\"} " +
           std::to_string(v) + "\n";
  out += "# HELP tdxvirt_attestation_verify_seconds DCAP quote verification latency.\n"
         "# TYPE tdxvirt_attestation_verify_seconds histogram\n";
  char buf[64];
  for (size_t i = 0; i < std::size(Metrics::kBuckets); ++i) {
    std::snprintf(buf, sizeof buf, "%g", Metrics::kBuckets[i]);
    out += std::string("tdxvirt_attestation_verify_seconds_bucket{le=\"") + buf + "\"} " +
           std::to_string(metrics_->verify_buckets[i]) + "\n";
  }
  out += "tdxvirt_attestation_verify_seconds_bucket{le=\"+Inf\"} " +
         std::to_string(metrics_->verify_count) + "\n";
  std::snprintf(buf, sizeof buf, "%.6f", metrics_->verify_sum);
  out += std::string("tdxvirt_attestation_verify_seconds_sum ") + buf + "\n";
  out += "tdxvirt_attestation_verify_seconds_count " + std::to_string(metrics_->verify_count) + "\n";
  out += "# HELP tdxvirt_attestation_policies Policies loaded.\n"
         "# TYPE tdxvirt_attestation_policies gauge\n"
         "tdxvirt_attestation_policies " +
         std::to_string(policies_ ? policies_->Get()->size() : 0) + "\n";
  out += "# HELP tdxvirt_attestation_policy_reload_errors_total Failed policy reloads.\n"
         "# TYPE tdxvirt_attestation_policy_reload_errors_total counter\n"
         "tdxvirt_attestation_policy_reload_errors_total " +
         std::to_string(metrics_->policy_reload_errors) + "\n";
  out += "# HELP tdxvirt_attestation_rate_limited_total Requests refused with 429 by --rate-limit.\n"
         "# TYPE tdxvirt_attestation_rate_limited_total counter\n"
         "tdxvirt_attestation_rate_limited_total " +
         std::to_string(metrics_->rate_limited) + "\n";
  out += "# HELP tdxvirt_attestation_replay_store_errors_total Nonce replay checks the store could "
         "not answer (attest answered 503), and nonce releases after a 5xx it could not make.\n"
         "# TYPE tdxvirt_attestation_replay_store_errors_total counter\n"
         "tdxvirt_attestation_replay_store_errors_total " +
         std::to_string(appraiser_->replay_store().errors()) + "\n";
  if (http_) out += http::StatsText(http_->stats(), "tdxvirt_attestation");
  std::string why;
  out += "# HELP tdxvirt_attestation_ready 1 when /readyz answers 200.\n"
         "# TYPE tdxvirt_attestation_ready gauge\n"
         "tdxvirt_attestation_ready " + std::string(ready(&why) ? "1" : "0") + "\n";
  return out;
}

void AttestationServer::OnResponse(const http::Event& e) {
  metrics_->Response(e.status);
  auto j = LogRecord(e.status < 400 ? "info" : e.status < 500 ? "warn" : "error", "attestation", "request");
  http::AddLogFields(e, j);
  options_.log(LogLine(j));
}

std::vector<http::Route> AttestationServer::Routes() {
  using Req = http::Request;
  using Res = http::Response;
  // Before any body byte is read: request-id, trace-id and the API key.
  auto admit = [this](std::string endpoint, bool needs_key) {
    return [this, endpoint, needs_key](const Req& req, Res& res) {
      std::string request_id = req.header("request-id");
      bool id_ok = request_id.empty() || ValidRequestId(request_id);
      std::string outcome;
      if (!id_ok) {
        JsonError(res, 400, "request-id: use 1..128 of A-Z a-z 0-9 _ space / . -");
        outcome = "bad_request";
      } else if (needs_key && !options_.api_keys.empty()) {
        std::string given = req.header("x-api-key");
        auto given_hash = ossl::Sha256(AsBytes(given));
        bool ok = false;
        for (const auto& k : options_.api_keys) {
          auto h = ossl::Sha256(AsBytes(k));
          ok |= CRYPTO_memcmp(h.data(), given_hash.data(), h.size()) == 0;
        }
        if (!ok) {
          JsonError(res, 401, given.empty() ? "x-api-key: missing; send the attestation API key"
                                            : "x-api-key: not a valid API key for this service");
          outcome = "unauthorized";
        }
      }
      // After the key check, so only accepted keys (or, without --api-key-file, a bounded set of
      // digests) get buckets; keyed by the key's digest, which is never logged.
      if (outcome.empty() && needs_key) {
        if (int64_t wait = limiter_->Take(req.header("x-api-key"), options_.clock()); wait > 0) {
          JsonError(res, 429,
                    "x-api-key: more than " + std::to_string(options_.rate_limit.requests) + " requests in " +
                        std::to_string(options_.rate_limit.seconds) + " s with this API key; retry after " +
                        std::to_string(wait) + " s");
          res.headers.emplace_back("Retry-After", std::to_string(wait));
          outcome = "rate_limited";
          std::lock_guard l(metrics_->mu);
          ++metrics_->rate_limited;
        }
      }
      if (outcome.empty()) return true;
      if (!request_id.empty() && id_ok) {
        res.headers.emplace_back("request-id", request_id);
        res.log["request_id"] = request_id;
      }
      std::string trace_id = RandomHex(16);
      res.headers.emplace_back("trace-id", trace_id);
      res.log["trace_id"] = trace_id;
      metrics_->Request(endpoint, outcome);
      res.log["outcome"] = outcome;
      res.log["detail"] = nlohmann::json::parse(res.body)["message"];
      return false;
    };
  };
  // The handler proper; the headers and log fields admit() set are carried over.
  auto handle = [this](std::string endpoint, std::function<std::string(const Req&, Res&)> handler) {
    return [this, endpoint, handler](const Req& req, Res& res) {
      std::string request_id = req.header("request-id");
      if (!request_id.empty()) {
        res.headers.emplace_back("request-id", request_id);
        res.log["request_id"] = request_id;
      }
      std::string trace_id = RandomHex(16);
      res.headers.emplace_back("trace-id", trace_id);
      res.log["trace_id"] = trace_id;
      std::string outcome = handler(req, res);
      metrics_->Request(endpoint, outcome);
      res.log["outcome"] = outcome;
      if (res.status >= 400) {
        auto body = nlohmann::json::parse(res.body, nullptr, false);
        if (body.is_object() && body.contains("message")) res.log["detail"] = body["message"];
      }
    };
  };

  auto nonce = [this](const Req&, Res& res) {
    res.Set(200, Dump(NonceToJson(appraiser_->IssueNonce(options_.clock()))), "application/json");
    return std::string("ok");
  };
  auto attest = [this](int version) {
    return [this, version](const Req& req, Res& res) {
      std::string ct = req.header("Content-Type");
      if (!ct.empty() && ct.find("application/json") == std::string::npos) {
        JsonError(res, 415, "Content-Type: send application/json");
        return std::string("bad_request");
      }
      AttestOutcome o = appraiser_->Attest(req.body, version, options_.clock());
      if (o.verify_seconds > 0) metrics_->Verify(o.verify_seconds);
      if (o.status != 200) {
        JsonError(res, o.status, o.message);
      } else {
        res.Set(200, Dump({{"token", o.token}}), "application/json");
      }
      return o.outcome;
    };
  };
  std::vector<http::Route> routes;
  auto add = [&](std::string method, std::string path, std::string endpoint, bool needs_key,
                 std::function<std::string(const Req&, Res&)> h, size_t max_body) {
    http::Route r;
    r.method = std::move(method);
    r.path = std::move(path);
    r.handler = handle(endpoint, std::move(h));
    r.admit = admit(endpoint, needs_key);
    r.max_body = max_body;
    routes.push_back(std::move(r));
  };
  add("GET", "/appraisal/v1/nonce", "nonce", true, nonce, 0);
  add("GET", "/appraisal/v2/nonce", "nonce", true, nonce, 0);
  add("POST", "/appraisal/v1/attest", "attest", true, attest(1), options_.max_body_size);
  add("POST", "/appraisal/v2/attest", "attest", true, attest(2), options_.max_body_size);
  add("GET", "/certs", "certs", false,
      [this](const Req&, Res& res) {
        res.Set(200, Dump(key_->jwks()), "application/json");
        return std::string("ok");
      },
      0);
  // The token PKI's public half: what Intel's clients fetch to verify a token (no API key).
  if (crls_) {
    auto crl = [this](bool root) {
      return [this, root](const Req&, Res& res) {
        Bytes der = root ? crls_->RootCrl(options_.clock()) : crls_->LeafCrl(options_.clock());
        res.Set(200, std::string(AsString(der)), "application/pkix-crl");
        return std::string("ok");
      };
    };
    add("GET", tokenpki::kLeafCrlPath, "crl", false, crl(false), 0);
    add("GET", tokenpki::kRootCrlPath, "crl", false, crl(true), 0);
  }
  if (!options_.public_url.empty())
    add("GET", "/.well-known/openid-configuration", "openid", false,
        [this](const Req&, Res& res) {
          const std::string& u = options_.public_url;
          res.Set(200,
                  Dump({{"issuer", u},
                        {"jwks_uri", u + "/certs"},
                        {"id_token_signing_alg_values_supported", {"PS384", "RS256"}}}),
                  "application/json");
          return std::string("ok");
        },
        0);
  auto probe = [&](std::string path, http::Handler h) {
    http::Route r;
    r.method = "GET";
    r.path = std::move(path);
    r.handler = std::move(h);
    r.inline_io = true;  // answered even while every worker verifies quotes
    routes.push_back(std::move(r));
  };
  probe("/healthz", [](const Req&, Res& res) { res.Set(200, "ok\n", "text/plain"); });
  probe("/readyz", [this](const Req&, Res& res) {
    std::string why;
    bool r = ready(&why);
    res.Set(r ? 200 : 503, r ? "ready\n" : "not ready: " + why + "\n", "text/plain");
  });
  probe("/metrics", [this](const Req&, Res& res) {
    res.Set(200, MetricsText(), "text/plain; version=0.0.4");
  });
  return routes;
}

}  // namespace tdxvirt::service
