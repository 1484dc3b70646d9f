#include "kbs/server.h"

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include <atomic>
#include <ctime>
#include <map>
#include <mutex>
#include <regex>

#include "common/base64.h"
#include "common/file.h"
#include "common/log.h"
#include "common/time.h"
#include "kbs/admin.h"
#include "kbs/policy.h"
#include "kbs/store.h"
#include "kbs/transfer.h"
#include "kbs/wrap.h"
#include "replay/replay_store.h"
#include "service/jose.h"
#include "service/token_chain.h"

namespace tdxvirt::kbs {

namespace {

constexpr char kPrefix[] = "/kbs/v1";
constexpr char kKeyNotFound[] = "Key with specified id does not exist";
constexpr char kPolicyNotFound[] = "Key transfer policy with specified id does not exist";
constexpr char kAuthFailed[] = "Failed to authenticate attestation-token";
// Intel's texts (service/key_transfer.go), kept word for word: clients and runbooks match them.
constexpr char kTypeMismatch[] =
    "attestation-type in request header does not match with attestation-type in key-transfer policy";
constexpr char kTokenTypeMismatch[] =
    "attestation-token is not valid for attestation-type in key-transfer policy";
constexpr size_t kAdminBody = 64 << 10;
constexpr int64_t kJwksRefetchSeconds = 10;  // an unknown kid refetches at most this often
constexpr size_t kCrlCacheEntries = 16;

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void JsonError(http::Response& res, int status, const std::string& message) {
  res.Set(status, Dump({{"error", message}}), "application/json");
}

bool ValidRequestId(const std::string& id) {
  static const std::regex kId("^[a-zA-Z0-9_ /.-]{1,128}$");
  return std::regex_match(id, kId);
}

// CRLs are fetched once per distribution point and reused until their nextUpdate, so a transfer
// costs no CRL round trip in the common case; the checks (token_chain.h) run on every use.
class CachingCrlFetcher : public service::CrlFetcher {
 public:
  CachingCrlFetcher(service::CrlFetchOptions options) : options_(std::move(options)) {}
  Result<service::FetchedCrl> FetchAt(const std::string& url, int64_t now) {
    {
      std::lock_guard l(mu_);
      auto it = cache_.find(url);
      if (it != cache_.end() && it->second.next_update > now) return it->second.crl;
    }
    service::CrlFetchOptions o = options_;
    o.now = now;
    service::HttpCrlFetcher http(o);
    auto r = http.Fetch(url);
    if (!r.ok()) return r;
    int64_t next = 0;
    if (auto crl = ossl::ParseDerCrl(r->der); crl.ok()) {
      if (const ASN1_TIME* t = X509_CRL_get0_nextUpdate(crl->get()))
        if (auto u = ossl::TimeToUnix(t); u.ok()) next = *u;
    }
    ossl::LastError();
    if (next > now) {
      std::lock_guard l(mu_);
      if (cache_.size() >= kCrlCacheEntries) cache_.clear();
      cache_[url] = {*r, next};
    }
    return r;
  }
  // Bound to one verification time (CheckTokenSigningJwk calls Fetch(url)).
  struct At : service::CrlFetcher {
    CachingCrlFetcher& f;
    int64_t now;
    At(CachingCrlFetcher& fetcher, int64_t t) : f(fetcher), now(t) {}
    Result<service::FetchedCrl> Fetch(const std::string& url) override { return f.FetchAt(url, now); }
  };
  Result<service::FetchedCrl> Fetch(const std::string& url) override { return FetchAt(url, 0); }

 private:
  struct Entry {
    service::FetchedCrl crl;
    int64_t next_update = 0;
  };
  service::CrlFetchOptions options_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;
};

const char* ModeName(TransferKind k) {
  switch (k) {
    case TransferKind::kNonce: return "nonce";
    case TransferKind::kEvidence: return "background";
    case TransferKind::kPassport: return "passport";
  }
  return "nonce";
}

// "/kbs/v1/keys/{id}" + suffix -> id ("" when the path has another shape).
std::string IdFromPath(const std::string& path, const std::string& collection, const std::string& suffix) {
  std::string head = std::string(kPrefix) + "/" + collection + "/";
  if (path.size() <= head.size() + suffix.size() || path.compare(0, head.size(), head) != 0) return "";
  if (path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0) return "";
  std::string id = path.substr(head.size(), path.size() - head.size() - suffix.size());
  return id.find('/') == std::string::npos ? id : "";
}

}  // namespace

struct KbsServer::Impl {
  KbsOptions o;
  std::unique_ptr<KeyStore> store;
  std::unique_ptr<AdminAuth> admin;  // null: no admin API
  std::unique_ptr<service::TrustAuthorityClient> ta;
  std::string root_pem;
  std::unique_ptr<replay::ReplayStore> replay;
  std::unique_ptr<CachingCrlFetcher> crls;
  std::unique_ptr<http::Server> http;
  std::atomic<bool> serving{false}, stopping{false};
  std::mutex stop_mu;
  std::string base;  // public_url or the bound URL

  // The attestation service's JWKS.
  mutable std::mutex jwks_mu;
  std::string jwks;          // "" until fetched
  int64_t jwks_fetched = 0;  // clock() of the last successful fetch
  int64_t jwks_attempt = 0;  // clock() of the last attempt
  std::string jwks_error;

  // Metrics.
  mutable std::mutex m_mu;
  std::map<std::pair<std::string, std::string>, uint64_t> transfers;  // (mode, decision)
  std::map<int, uint64_t> responses;

  int64_t Now() const { return o.clock(); }
  void Log(const std::string& level, const std::string& event, const std::string& detail) {
    o.log(LogLine(level, "kbs", event, detail));
  }

  // The JWKS: cached jwks_cache seconds; `force` refetches (an unknown kid), at most every 10 s.
  Result<std::string> Jwks(bool force) {
    std::lock_guard l(jwks_mu);
    int64_t now = Now();
    bool fresh = !jwks.empty() && now - jwks_fetched < o.jwks_cache.count();
    if (fresh && !(force && now - jwks_attempt >= kJwksRefetchSeconds)) return jwks;
    jwks_attempt = now;
    auto certs = ta->GetCerts();
    if (!certs.ok()) {
      jwks_error = certs.error();
      if (!jwks.empty()) return jwks;  // keep serving with the last good set
      return Error{certs.error()};
    }
    jwks = std::move(*certs);
    jwks_fetched = now;
    jwks_error.clear();
    return jwks;
  }

  Result<service::VerifiedToken> Verify(const std::string& token) {
    int64_t now = Now();
    service::VerifyTokenOptions vo;
    vo.issuer = o.token_issuer;
    vo.now = now;
    vo.leeway_seconds = o.leeway_seconds;
    service::ChainCheckOptions chain;
    chain.now = now;
    chain.trusted_root_pem = root_pem;
    chain.check_crls = o.check_crls;
    CachingCrlFetcher::At fetcher(*crls, now);
    vo.jwk_key = [&](const nlohmann::json& jwk) { return service::CheckTokenSigningJwk(jwk, chain, fetcher); };
    auto jwks_text = Jwks(false);
    if (!jwks_text.ok()) return Error{"the attestation service's JWKS is unavailable: " + jwks_text.error()};
    auto r = service::VerifyToken(token, *jwks_text, vo);
    if (!r.ok() && r.error().find("is not in the JWKS") != std::string::npos) {
      auto again = Jwks(true);  // a key rotated since the last fetch
      if (again.ok() && *again != *jwks_text) r = service::VerifyToken(token, *again, vo);
    }
    return r;
  }

  bool Ready(std::string* why, bool may_fetch) {
    auto say = [why](std::string s) {
      if (why) *why = std::move(s);
      return false;
    };
    if (!serving.load()) return say(stopping ? "stopping" : "not started");
    std::vector<KeyTransferPolicy> policies;
    if (StoreStatus s = store->ListPolicies(policies); !s.ok())
      return say("key store " + store->Describe() + " unreadable: " + s.message);
    bool have;
    std::string err;
    {
      std::lock_guard l(jwks_mu);
      have = !jwks.empty();
      err = jwks_error;
    }
    if (!have && may_fetch) {
      auto j = Jwks(false);
      have = j.ok();
      if (!have) err = j.error();
    }
    if (!have) return say("the attestation service's JWKS (" + o.trust_authority.trustauthority_url +
                          "/certs) was never fetched: " + (err.empty() ? "not tried yet" : err));
    return true;
  }

  std::vector<http::Route> Routes();
  void Transfer(const http::Request& req, http::Response& res);
};

namespace {

struct Audit {
  std::string key_id, mode = "nonce", decision = "refused", jti, mrtd, policy_id, request_id;
  std::vector<std::string> reasons;
  int status = 0;
};

}  // namespace

void KbsServer::Impl::Transfer(const http::Request& req, http::Response& res) {
  Audit a;
  std::string rid = req.header("request-id");
  a.request_id = !rid.empty() && ValidRequestId(rid) ? rid : service::RandomUuid();
  res.headers.emplace_back("request-id", a.request_id);
  std::string attestation_type = req.header("Attestation-Type");
  a.mode = !attestation_type.empty() ? "background" : req.body.empty() ? "nonce" : "passport";

  auto refuse = [&](int status, const std::string& message, std::vector<std::string> reasons = {}) {
    JsonError(res, status, message);
    a.status = status;
    a.reasons = reasons.empty() ? std::vector<std::string>{message} : std::move(reasons);
  };
  auto finish = [&] {
    if (a.status == 0) a.status = res.status;
    nlohmann::ordered_json j = LogRecord(a.decision == "refused" ? "warn" : "info", "kbs", "key_transfer");
    j["key_id"] = a.key_id;
    j["mode"] = a.mode;
    j["decision"] = a.decision;
    j["status"] = a.status;
    j["reasons"] = a.reasons;
    j["jti"] = a.jti;
    j["mrtd"] = a.mrtd;
    j["policy_id"] = a.policy_id;
    j["request_id"] = a.request_id;
    o.log(LogLine(j));
    res.log["key_id"] = a.key_id;
    res.log["decision"] = a.decision;
    {
      std::lock_guard l(m_mu);
      ++transfers[{a.mode, a.decision}];
    }
  };

  std::string id = IdFromPath(req.path, "keys", "/transfer");
  a.key_id = id.size() <= 64 ? id : id.substr(0, 64);
  if (!IsUuidV4(id)) return refuse(404, kKeyNotFound), finish();

  TransferParse parsed = ParseTransferRequest(
      {req.header("Accept"), req.header("Content-Type"), attestation_type}, req.body);
  if (parsed.status != 0) return refuse(parsed.status, parsed.error), finish();
  TransferRequest& tr = parsed.request;
  a.mode = ModeName(tr.kind);

  KeyRecord key;
  if (StoreStatus s = store->GetKey(id, key); !s.ok()) {
    if (s.error == StoreError::kNotFound) return refuse(404, kKeyNotFound), finish();
    Log("error", "store_error", s.message);
    return refuse(500, "Failed to retrieve key"), finish();
  }
  // The secret is wiped whatever happens below.
  struct Wipe {
    Bytes& b;
    ~Wipe() { OPENSSL_cleanse(b.data(), b.size()); }
  } wipe{key.key_data};
  a.policy_id = key.transfer_policy_id;
  KeyTransferPolicy policy;
  if (StoreStatus s = store->GetPolicy(key.transfer_policy_id, policy); !s.ok()) {
    Log("error", "store_error", s.message);
    return refuse(500, "Failed to retrieve key transfer policy for the key"), finish();
  }

  std::string token;
  if (tr.kind == TransferKind::kNonce) {
    auto r = ta->GetNonceV1(id);
    if (!r.ok() || r->status != 200) {
      Log("error", "trust_authority_error",
          "nonce: " + (r.ok() ? "HTTP " + std::to_string(r->status) + ": " + service::ServiceErrorMessage(r->body)
                              : r.error()));
      return refuse(502, "Error retrieving nonce from Trust Authority service"), finish();
    }
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    auto n = service::NonceFromJson(j, "nonce response");
    if (!n.ok()) {
      Log("error", "trust_authority_error", n.error());
      return refuse(502, "Error retrieving nonce from Trust Authority service"), finish();
    }
    res.Set(200, Dump(service::NonceToJson(*n)), "application/json");
    res.headers.emplace_back("Attestation-Type", policy.attestation_type);
    a.decision = "nonce";
    return finish();
  }
  if (tr.kind == TransferKind::kEvidence) {
    if (!tr.nonce) return refuse(400, "nonce: required with Attestation-Type; get one with a bodiless POST"), finish();
    if (tr.attestation_type != policy.attestation_type) return refuse(401, kTypeMismatch), finish();
    nlohmann::json body = {{"quote", Base64Encode(tr.quote)},
                           {"verifier_nonce", service::NonceToJson(*tr.nonce)},
                           {"runtime_data", Base64Encode(tr.user_data)}};
    if (!policy.policy_ids.empty()) body["policy_ids"] = policy.policy_ids;
    if (!tr.event_log.empty()) body["event_log"] = Base64Encode(tr.event_log);
    auto r = ta->AttestV1(body, id);
    if (!r.ok() || r->status >= 500) {
      Log("error", "trust_authority_error",
          "attest: " + (r.ok() ? "HTTP " + std::to_string(r->status) + ": " + service::ServiceErrorMessage(r->body)
                               : r.error()));
      return refuse(502, "Error retrieving token from Trust Authority service"), finish();
    }
    if (r->status != 200)
      return refuse(401, "Error retrieving token from Trust Authority service: " +
                             service::ServiceErrorMessage(r->body)),
             finish();
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j.contains("token") || !j["token"].is_string()) {
      Log("error", "trust_authority_error", "attest: the answer is not {\"token\": \"...\"}");
      return refuse(502, "Error retrieving token from Trust Authority service"), finish();
    }
    token = j["token"].get<std::string>();
  } else {
    token = std::move(tr.attestation_token);
  }

  auto verified = Verify(token);
  if (!verified.ok()) return refuse(401, std::string(kAuthFailed) + ": " + verified.error()), finish();
  auto claims = ClaimsFromToken(verified->claims);
  if (!claims.ok()) return refuse(401, std::string(kAuthFailed) + ": " + claims.error()), finish();
  a.jti = claims->jti;
  a.mrtd = claims->tdx_mrtd;
  if (claims->attester_type != policy.attestation_type) return refuse(401, kTokenTypeMismatch), finish();

  PolicyDecision decision = EvaluatePolicy(policy, *claims);
  if (!decision.allowed) {
    std::string joined;
    for (const auto& r : decision.reasons) joined += (joined.empty() ? "" : "; ") + r;
    return refuse(403, "Token claims validation against key-transfer-policy failed: " + joined, decision.reasons),
           finish();
  }
  auto held = Base64Decode(claims->attester_held_data, "attester_held_data");
  if (!held.ok()) return refuse(400, held.error()), finish();
  auto td_key = ParseHeldPublicKey(*held);
  if (!td_key.ok()) return refuse(400, td_key.error()), finish();

  if (tr.kind == TransferKind::kPassport) {
    // Spent on release: a copied token cannot fetch the key a second time.
    if (claims->jti.empty())
      return refuse(401, std::string(kAuthFailed) + ": token has no jti, so its single use cannot be enforced"),
             finish();
    int64_t now = Now();
    auto mark = replay->Mark(AsBytes(claims->jti), claims->iat, claims->exp + o.leeway_seconds, now);
    if (mark.verdict == replay::Verdict::kReplayed)
      return refuse(401, std::string(kAuthFailed) + ": token already used (jti " + claims->jti +
                             "); get a fresh token"),
             finish();
    if (mark.verdict != replay::Verdict::kFresh) {
      Log("error", "replay_store_unavailable", replay->Describe() + ": " + mark.detail);
      return refuse(503, "token replay store unavailable; retry later"), finish();
    }
  }

  auto wrapped = WrapSecret(key.key_data, td_key->key.get());
  if (!wrapped.ok()) {
    Log("error", "wrap_error", wrapped.error());
    return refuse(500, "Failed to wrap key"), finish();
  }
  res.Set(200,
          Dump({{"wrapped_key", Base64Encode(wrapped->wrapped_key)},
                {"wrapped_swk", Base64Encode(wrapped->wrapped_swk)}}),
          "application/json");
  a.decision = "released";
  a.status = 200;
  finish();
}

std::vector<http::Route> KbsServer::Impl::Routes() {
  using Req = http::Request;
  using Res = http::Response;
  std::vector<http::Route> routes;
  const std::string p = kPrefix;

  // The transfer: POST /kbs/v1/keys/{id}/transfer, no credential (the attestation is the credential).
  {
    http::Route r;
    r.method = "POST";
    r.path = p + "/keys/";
    r.prefix = true;
    r.max_body = o.max_body_size;
    r.admit = [](const Req& req, Res& res) {
      if (IdFromPath(req.path, "keys", "/transfer").empty()) {
        JsonError(res, 404, "no such endpoint: POST " + req.path);
        return false;
      }
      return true;
    };
    r.handler = [this](const Req& req, Res& res) { Transfer(req, res); };
    routes.push_back(std::move(r));
  }

  if (admin) {
    // Every admin route: the bearer token before any body byte is read.
    auto authorized = [this](const Req& req, Res& res) {
      if (admin->Check(req.header("Authorization"), Now())) return true;
      JsonError(res, 401,
                "Authorization: send \"Bearer <token>\" with a token from POST /kbs/v1/token (tokens expire after " +
                    std::to_string(admin->token_validity_seconds()) + " s)");
      res.log["outcome"] = "unauthorized";
      return false;
    };
    auto add = [&](std::string method, std::string path, bool prefix, size_t max_body,
                   std::function<void(const Req&, Res&)> h) {
      http::Route r;
      r.method = std::move(method);
      r.path = std::move(path);
      r.prefix = prefix;
      r.max_body = max_body;
      r.admit = authorized;
      r.handler = std::move(h);
      routes.push_back(std::move(r));
    };
    auto json_headers = [](const Req& req, Res& res, bool body) {
      if (body && req.header("Content-Type") != "application/json") {
        JsonError(res, 415, "Invalid Content-type header");
        return false;
      }
      if (req.header("Accept") != "application/json") {
        JsonError(res, 415, "Invalid Accept header");
        return false;
      }
      return true;
    };
    auto writable = [this](Res& res) {
      if (store->writable()) return true;
      JsonError(res, 409, "the key store is read-only (" + store->Describe() +
                              "): edit the Secret it is mounted from");
      return false;
    };
    auto store_error = [this](Res& res, const StoreStatus& s, const std::string& not_found) {
      switch (s.error) {
        case StoreError::kNotFound: return JsonError(res, 404, not_found);
        case StoreError::kConflict: return JsonError(res, 409, s.message);
        case StoreError::kReadOnly: return JsonError(res, 409, s.message);
        case StoreError::kInvalid: return JsonError(res, 400, s.message);
        default:
          Log("error", "store_error", s.message);
          return JsonError(res, 500, "key store error; see the broker's log");
      }
    };

    // POST /kbs/v1/token: Intel's jwt_token.go (Accept application/jwt, the token as the body).
    {
      http::Route r;
      r.method = "POST";
      r.path = p + "/token";
      r.max_body = 4096;
      r.handler = [this](const Req& req, Res& res) {
        if (req.header("Content-Type") != "application/json") return JsonError(res, 415, "Invalid Content-type header");
        if (req.header("Accept") != "application/jwt") return JsonError(res, 415, "Invalid Accept header");
        if (req.body.empty()) return JsonError(res, 400, "Request body was not provided");
        auto j = nlohmann::json::parse(req.body, nullptr, false);
        std::string user, pass;
        bool ok = j.is_object();
        for (auto it = ok ? j.begin() : j.end(); ok && it != j.end(); ++it) {
          if (it.key() == "username" && it.value().is_string()) user = it.value().get<std::string>();
          else if (it.key() == "password" && it.value().is_string()) pass = it.value().get<std::string>();
          else ok = false;
        }
        if (!ok) return JsonError(res, 400, "Failed to JSON-decode request body");
        if (user.empty() || pass.empty())
          return JsonError(res, 400, "Username and password of a valid user must be provided to get the token");
        auto t = admin->IssueToken(user, pass, Now());
        OPENSSL_cleanse(pass.data(), pass.size());
        if (!t.ok()) {
          res.log["outcome"] = "bad_credentials";
          return JsonError(res, 401, "Invalid username or password");
        }
        res.Set(200, *t, "text/plain; charset=utf-8");
        res.headers.emplace_back("Strict-Transport-Security", "max-age=63072000; includeSubDomains");
      };
      routes.push_back(std::move(r));
    }

    // Keys.
    add("POST", p + "/keys", false, kAdminBody, [=, this](const Req& req, Res& res) {
      if (!json_headers(req, res, true) || !writable(res)) return;
      auto k = NewKeyFromRequest(req.body, Now());
      if (!k.ok()) return JsonError(res, 400, k.error());
      struct Wipe {
        Bytes& b;
        ~Wipe() { OPENSSL_cleanse(b.data(), b.size()); }
      } wipe{k->key_data};
      KeyTransferPolicy pol;
      if (StoreStatus s = store->GetPolicy(k->transfer_policy_id, pol); !s.ok()) {
        if (s.error == StoreError::kNotFound) return JsonError(res, 400, kPolicyNotFound);
        return store_error(res, s, kPolicyNotFound);
      }
      if (StoreStatus s = store->PutKey(*k); !s.ok()) return store_error(res, s, kKeyNotFound);
      res.Set(201, Dump(KeyToJson(*k, base)), "application/json");
      res.log["key_id"] = k->id;
    });
    add("GET", p + "/keys", false, 0, [=, this](const Req& req, Res& res) {
      if (!json_headers(req, res, false)) return;
      std::vector<KeyRecord> keys;
      if (StoreStatus s = store->ListKeys(keys); !s.ok()) return store_error(res, s, kKeyNotFound);
      nlohmann::json out = nlohmann::json::array();
      for (auto& k : keys) {
        out.push_back(KeyToJson(k, base));
        OPENSSL_cleanse(k.key_data.data(), k.key_data.size());
      }
      res.Set(200, Dump(out), "application/json");
    });
    add("GET", p + "/keys/", true, 0, [=, this](const Req& req, Res& res) {
      std::string id = IdFromPath(req.path, "keys", "");
      if (!IsUuidV4(id)) return JsonError(res, 404, kKeyNotFound);
      if (!json_headers(req, res, false)) return;
      KeyRecord k;
      StoreStatus s = store->GetKey(id, k);
      OPENSSL_cleanse(k.key_data.data(), k.key_data.size());
      if (!s.ok()) return store_error(res, s, kKeyNotFound);
      res.Set(200, Dump(KeyToJson(k, base)), "application/json");
    });
    add("DELETE", p + "/keys/", true, 0, [=, this](const Req& req, Res& res) {
      std::string id = IdFromPath(req.path, "keys", "");
      if (!IsUuidV4(id)) return JsonError(res, 404, kKeyNotFound);
      if (!writable(res)) return;
      if (StoreStatus s = store->DeleteKey(id); !s.ok()) return store_error(res, s, kKeyNotFound);
      res.Set(204, "", "application/json");
      res.log["key_id"] = id;
    });

    // Key transfer policies.
    add("POST", p + "/key-transfer-policies", false, kAdminBody, [=, this](const Req& req, Res& res) {
      if (!json_headers(req, res, true) || !writable(res)) return;
      auto pol = ParseKeyTransferPolicy(req.body);
      if (!pol.ok()) return JsonError(res, 400, pol.error());
      // As Intel's service: the broker names and dates a new policy, whatever the body says.
      pol->id = service::RandomUuid();
      pol->created_at = FormatRfc3339(Now());
      if (StoreStatus s = store->PutPolicy(*pol); !s.ok()) return store_error(res, s, kPolicyNotFound);
      res.Set(201, Dump(KeyTransferPolicyToJson(*pol)), "application/json");
      res.log["policy_id"] = pol->id;
    });
    add("GET", p + "/key-transfer-policies", false, 0, [=, this](const Req& req, Res& res) {
      if (!json_headers(req, res, false)) return;
      std::vector<KeyTransferPolicy> list;
      if (StoreStatus s = store->ListPolicies(list); !s.ok()) return store_error(res, s, kPolicyNotFound);
      nlohmann::json out = nlohmann::json::array();
      for (const auto& x : list) out.push_back(KeyTransferPolicyToJson(x));
      res.Set(200, Dump(out), "application/json");
    });
    add("GET", p + "/key-transfer-policies/", true, 0, [=, this](const Req& req, Res& res) {
      std::string id = IdFromPath(req.path, "key-transfer-policies", "");
      if (!IsUuidV4(id)) return JsonError(res, 404, kPolicyNotFound);
      if (!json_headers(req, res, false)) return;
      KeyTransferPolicy pol;
      if (StoreStatus s = store->GetPolicy(id, pol); !s.ok()) return store_error(res, s, kPolicyNotFound);
      res.Set(200, Dump(KeyTransferPolicyToJson(pol)), "application/json");
    });
    add("DELETE", p + "/key-transfer-policies/", true, 0, [=, this](const Req& req, Res& res) {
      std::string id = IdFromPath(req.path, "key-transfer-policies", "");
      if (!IsUuidV4(id)) return JsonError(res, 404, kPolicyNotFound);
      if (!writable(res)) return;
      StoreStatus s = store->DeletePolicy(id);
      if (s.error == StoreError::kConflict) {
        // Intel answers 400 with this text; a conflict with the stored keys is a 409.
        Log("info", "policy_in_use", s.message);
        return JsonError(res, 409, "Key transfer policy is associated with keys");
      }
      if (!s.ok()) return store_error(res, s, kPolicyNotFound);
      res.Set(204, "", "application/json");
      res.log["policy_id"] = id;
    });
  }

  auto probe = [&](std::string path, http::Handler h, bool inline_io) {
    http::Route r;
    r.method = "GET";
    r.path = std::move(path);
    r.handler = std::move(h);
    r.inline_io = inline_io;
    routes.push_back(std::move(r));
  };
  probe("/healthz", [](const Req&, Res& res) { res.Set(200, "ok\n", "text/plain"); }, true);
  // On a worker: it may fetch the JWKS once, which must not hold the I/O thread.
  probe("/readyz", [this](const Req&, Res& res) {
    std::string why;
    bool r = Ready(&why, true);
    res.Set(r ? 200 : 503, r ? "ready\n" : "not ready: " + why + "\n", "text/plain");
  }, false);
  return routes;
}

Result<std::unique_ptr<KbsServer>> KbsServer::Create(KbsOptions options) {
  if (options.store_dir.empty())
    return Error{"--store is required: the key store directory (a Secret mount, or a writable directory)"};
  auto store = OpenDirectoryKeyStore(options.store_dir, options.store_read_only);
  if (!store.ok()) return Error{"--store: " + store.error()};
  return Create(std::move(options), std::move(*store));
}

Result<std::unique_ptr<KbsServer>> KbsServer::Create(KbsOptions o, std::unique_ptr<KeyStore> store) {
  auto impl = std::make_unique<Impl>();
  if (!o.log) o.log = LogToStderr;
  if (!o.clock) o.clock = [] { return int64_t(std::time(nullptr)); };
  if (!store) return Error{"no key store"};
  if (!o.plain_http && (o.tls_cert_path.empty() || o.tls_key_path.empty()))
    return Error{"--tls-cert and --tls-key are required (or --plain-http, for loopback tests only)"};
  if (o.trust_authority.trustauthority_url.empty())
    return Error{"--trustauthority-url is required: the attestation service whose {url}/certs signs the tokens"};
  if (o.trust_authority.trustauthority_api_url.empty())
    o.trust_authority.trustauthority_api_url = o.trust_authority.trustauthority_url;
  auto ta = service::TrustAuthorityClient::Create(o.trust_authority);
  if (!ta.ok()) return Error{ta.error()};
  impl->ta = std::make_unique<service::TrustAuthorityClient>(std::move(*ta));
  if (!o.token_root_pem_path.empty()) {
    auto pem = ReadFile(o.token_root_pem_path, 1 << 20);
    if (!pem.ok()) return Error{"--token-root: " + pem.error()};
    impl->root_pem = std::string(AsString(*pem));
  }
  if (!o.admin_credentials_path.empty()) {
    auto c = LoadAdminCredentials(o.admin_credentials_path);
    if (!c.ok()) return Error{"--admin-credentials: " + c.error()};
    impl->admin = std::make_unique<AdminAuth>(std::move(*c));
  }
  if (o.jwks_cache.count() < 0) return Error{"--jwks-cache: seconds, at least 0"};
  if (o.leeway_seconds < 0 || o.leeway_seconds > 3600) return Error{"--leeway: 0..3600 seconds"};
  if (o.max_body_size < 1024) return Error{"--max-body-size: at least 1024 bytes"};
  auto replay = replay::OpenReplayStore(o.replay_store_url, 1 << 20);
  if (!replay.ok()) return Error{"--replay-store: " + replay.error()};
  impl->replay = std::move(*replay);
  service::CrlFetchOptions fo;
  fo.cache_dir = o.crl_cache_dir;
  fo.ca_file = o.trust_authority.ca_file;
  fo.deadline = o.trust_authority.timeout;
  fo.retry = o.trust_authority.retry;
  impl->crls = std::make_unique<CachingCrlFetcher>(fo);
  impl->store = std::move(store);
  impl->o = std::move(o);
  return std::unique_ptr<KbsServer>(new KbsServer(std::move(impl)));
}

KbsServer::KbsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KbsServer::~KbsServer() { Stop(); }

Result<int> KbsServer::Start() {
  Impl& s = *impl_;
  http::ServerOptions ho;
  ho.host = s.o.host;
  ho.port = s.o.port;
  if (!s.o.plain_http) {
    ho.tls_cert_path = s.o.tls_cert_path;
    ho.tls_key_path = s.o.tls_key_path;
  }
  ho.limits = s.o.limits;
  ho.error_body = [](http::Response& res, int status, const std::string& message) {
    JsonError(res, status, message);
  };
  ho.on_response = [&s](const http::Event& e) {
    {
      std::lock_guard l(s.m_mu);
      ++s.responses[e.status];
    }
    auto j = LogRecord(e.status < 400 ? "info" : e.status < 500 ? "warn" : "error", "kbs", "request");
    http::AddLogFields(e, j);
    s.o.log(LogLine(j));
  };
  auto routes = s.Routes();
  {
    http::Route r;
    r.method = "GET";
    r.path = "/metrics";
    r.inline_io = true;
    r.handler = [this](const http::Request&, http::Response& res) {
      res.Set(200, MetricsText(), "text/plain; version=0.0.4");
    };
    routes.push_back(std::move(r));
  }
  auto server = http::Server::Create(std::move(ho), std::move(routes));
  if (!server.ok()) return Error{server.error()};
  s.http = std::move(*server);
  auto port = s.http->Start();
  if (!port.ok()) return Error{port.error()};
  s.base = s.o.public_url.empty() ? base_url() : s.o.public_url;
  while (!s.base.empty() && s.base.back() == '/') s.base.pop_back();
  s.serving = true;
  s.Log("info", "listening",
        base_url() + " store=" + s.store->Describe() + " trustauthority_url=" +
            s.o.trust_authority.trustauthority_url + (s.admin ? "" : " admin API off (no --admin-credentials)"));
  if (s.o.plain_http) s.Log("warn", "plain_http", "serving plain HTTP: for loopback tests only");
  if (!s.o.check_crls) s.Log("warn", "no_crl", "token-signing certificates are not checked against CRLs");
  return *port;
}

void KbsServer::Stop() {
  Impl& s = *impl_;
  {
    std::lock_guard l(s.stop_mu);
    if (s.stopping.exchange(true)) return;
    s.serving = false;
  }
  if (s.http) {
    s.http->Stop();
    s.http.reset();
    s.Log("info", "stopped", "");
  }
}

int KbsServer::port() const { return impl_->http ? impl_->http->port() : 0; }

std::string KbsServer::base_url() const {
  return std::string(impl_->o.plain_http ? "http" : "https") + "://" + impl_->o.host + ":" + std::to_string(port());
}

bool KbsServer::ready(std::string* why) const { return impl_->Ready(why, true); }

std::string KbsServer::MetricsText() const {
  Impl& s = *impl_;
  std::string out;
  {
    std::lock_guard l(s.m_mu);
    out += "# HELP tdxvirt_kbs_transfers_total Key transfer requests by mode and decision.\n"
           "# TYPE tdxvirt_kbs_transfers_total counter\n";
    for (const auto& [k, v] : s.transfers)
      out += "tdxvirt_kbs_transfers_total{mode=\"" + k.first + "\",decision=\"" + k.second + "\"} " +
             std::to_string(v) + "\n";
    out += "# HELP tdxvirt_kbs_responses_total HTTP responses by status code.\n"
           "# TYPE tdxvirt_kbs_responses_total counter\n";
    for (const auto& [k, v] : s.responses)
      out += "tdxvirt_kbs_responses_total{code=\"" + std::to_string(k) + "\"} " + std::to_string(v) + "\n";
  }
  out += "# HELP tdxvirt_kbs_replay_store_errors_total Passport token checks the replay store could not answer.\n"
         "# TYPE tdxvirt_kbs_replay_store_errors_total counter\n"
         "tdxvirt_kbs_replay_store_errors_total " + std::to_string(s.replay->errors()) + "\n";
  if (s.http) out += http::StatsText(s.http->stats(), "tdxvirt_kbs");
  // Without fetching: /metrics is answered on the I/O thread.
  bool r = s.Ready(nullptr, false);
  out += "# HELP tdxvirt_kbs_ready 1 when the broker serves, its store is readable and it has the JWKS.\n"
         "# TYPE tdxvirt_kbs_ready gauge\n"
         "tdxvirt_kbs_ready " + std::string(r ? "1" : "0") + "\n";
  return out;
}

}  // namespace tdxvirt::kbs
