#include "service/client.h"

#include <httplib.h>

#include "common/hex.h"

namespace tdxvirt::service {

namespace {

struct SplitUrl {
  std::string origin;  // scheme://host[:port]
  std::string prefix;  // path prefix without trailing '/'
};

Result<SplitUrl> Split(const std::string& url, const std::string& field, bool allow_http) {
  bool https = url.rfind("https://", 0) == 0;
  bool http = url.rfind("http://", 0) == 0;
  if (!https && !(http && allow_http))
    return Error{field + ": \"" + url + "\" must be an https:// URL" +
                 (http ? " (plain http only with --allow-http, for loopback tests)" : "")};
  size_t host_start = url.find("://") + 3;
  size_t slash = url.find('/', host_start);
  SplitUrl s;
  s.origin = url.substr(0, slash);
  if (s.origin.size() == host_start) return Error{field + ": no host in \"" + url + "\""};
  if (slash != std::string::npos) s.prefix = url.substr(slash);
  while (!s.prefix.empty() && s.prefix.back() == '/') s.prefix.pop_back();
  return s;
}

std::string ErrorMessage(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    return j["message"].get<std::string>();
  return body.substr(0, 200);
}

}  // namespace

Result<ClientConfig> ParseClientConfig(std::string_view json_text) {
  auto j = nlohmann::json::parse(json_text, nullptr, false);
  if (!j.is_object()) return Error{"config: not a JSON object"};
  ClientConfig c;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const auto& v = it.value();
    auto str = [&](std::string& out) -> Status {
      if (!v.is_string()) return Error{"config: " + k + ": expected a string"};
      out = v.get<std::string>();
      return OkStatus();
    };
    Status s = OkStatus();
    if (k == "trustauthority_url") s = str(c.trustauthority_url);
    else if (k == "trustauthority_api_url") s = str(c.trustauthority_api_url);
    else if (k == "trustauthority_api_key") s = str(c.trustauthority_api_key);
    else if (k == "cloud_provider") s = str(c.cloud_provider);
    else if (k == "tpm" || k == "nvgpu")
      return Error{"config: " + k + ": only TDX evidence is supported; remove it"};
    else
      return Error{"config: unknown key \"" + k +
                   "\" (known: trustauthority_url, trustauthority_api_url, trustauthority_api_key, "
                   "cloud_provider)"};
    if (!s.ok()) return Error{s.error()};
  }
  if (!c.cloud_provider.empty())
    return Error{"config: cloud_provider \"" + c.cloud_provider +
                 "\" is not supported (Azure vTPM-based TDs are not); remove it"};
  return c;
}

Result<TrustAuthorityClient> TrustAuthorityClient::Create(ClientConfig config) {
  if (!config.trustauthority_api_url.empty()) {
    auto u = Split(config.trustauthority_api_url, "trustauthority_api_url", config.allow_http);
    if (!u.ok()) return Error{u.error()};
  }
  if (!config.trustauthority_url.empty()) {
    auto u = Split(config.trustauthority_url, "trustauthority_url", config.allow_http);
    if (!u.ok()) return Error{u.error()};
  }
  if (config.timeout.count() <= 0) return Error{"timeout must be positive"};
  return TrustAuthorityClient(std::move(config));
}

Result<TrustAuthorityClient::Response> TrustAuthorityClient::Do(
    const std::string& base, const std::string& method, const std::string& path,
    const std::string& body, size_t limit, const std::string& request_id, bool api_key) const {
  auto u = Split(base, method == "GET" && !api_key ? "trustauthority_url" : "trustauthority_api_url",
                 config_.allow_http);
  if (!u.ok()) return Error{u.error()};
  httplib::Client cli(u->origin);
  if (!cli.is_valid()) return Error{"cannot make an HTTP client for " + u->origin};
  cli.set_tcp_nodelay(true);
  cli.set_connection_timeout(config_.timeout.count(), 0);
  cli.set_read_timeout(config_.timeout.count(), 0);
  cli.set_write_timeout(config_.timeout.count(), 0);
  if (u->origin.rfind("https://", 0) == 0) {
    cli.enable_server_certificate_verification(true);
    if (!config_.ca_file.empty()) cli.set_ca_cert_path(config_.ca_file.c_str());
  }
  httplib::Request req;
  req.method = method;
  req.path = u->prefix + path;
  req.headers.emplace("Accept", "application/json");
  if (api_key) req.headers.emplace("x-api-key", config_.trustauthority_api_key);
  if (!request_id.empty()) req.headers.emplace("request-id", request_id);
  if (method == "POST") {
    req.headers.emplace("Content-Type", "application/json");
    req.body = body;
  }
  std::string received;
  bool too_large = false;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (received.size() + n > limit) {
      too_large = true;
      return false;
    }
    received.append(data, n);
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  bool ok = cli.send(req, res, err);
  if (too_large)
    return Error{u->origin + req.path + ": response larger than " + std::to_string(limit) + " bytes"};
  if (!ok) return Error{u->origin + req.path + ": " + httplib::to_string(err)};
  Response r;
  r.status = res.status;
  r.body = std::move(received);
  r.request_id = res.get_header_value("request-id");
  r.trace_id = res.get_header_value("trace-id");
  return r;
}

Result<VerifierNonce> TrustAuthorityClient::GetNonce(const std::string& request_id) const {
  if (config_.trustauthority_api_url.empty()) return Error{"config: trustauthority_api_url is required"};
  auto r = Do(config_.trustauthority_api_url, "GET", "/appraisal/v2/nonce", "", 4096, request_id, true);
  if (!r.ok()) return Error{"nonce: " + r.error()};
  if (r->status != 200)
    return Error{"nonce: HTTP " + std::to_string(r->status) + ": " + ErrorMessage(r->body)};
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return NonceFromJson(j, "nonce response");
}

Result<std::string> TrustAuthorityClient::Attest(const nlohmann::json& evidence,
                                                 const std::string& request_id) const {
  if (config_.trustauthority_api_url.empty()) return Error{"config: trustauthority_api_url is required"};
  auto r = Do(config_.trustauthority_api_url, "POST", "/appraisal/v2/attest", evidence.dump(),
              64 << 10, request_id, true);
  if (!r.ok()) return Error{"attest: " + r.error()};
  if (r->status != 200)
    return Error{"attest: HTTP " + std::to_string(r->status) + ": " + ErrorMessage(r->body)};
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("token") || !j["token"].is_string() || j.size() != 1)
    return Error{"attest: response is not {\"token\": \"...\"}"};
  return j["token"].get<std::string>();
}

Result<std::string> TrustAuthorityClient::GetCerts() const {
  if (config_.trustauthority_url.empty()) return Error{"config: trustauthority_url is required"};
  auto r = Do(config_.trustauthority_url, "GET", "/certs", "", 64 << 10, "", false);
  if (!r.ok()) return Error{"certs: " + r.error()};
  if (r->status != 200) return Error{"certs: HTTP " + std::to_string(r->status)};
  return r->body;
}

nlohmann::json BuildEvidence(ByteSpan quote, const VerifierNonce* nonce,
                             const TokenRequestOptions& o) {
  nlohmann::json tdx;
  tdx["quote"] = Base64Encode(quote);
  if (!o.runtime_data.empty()) tdx["runtime_data"] = Base64Encode(o.runtime_data);
  if (!o.user_data.empty()) tdx["user_data"] = Base64Encode(o.user_data);
  if (nonce) tdx["verifier_nonce"] = NonceToJson(*nonce);
  nlohmann::json j = {{"tdx", tdx}};
  if (!o.policy_ids.empty()) j["policy_ids"] = o.policy_ids;
  if (o.policy_must_match) j["policy_must_match"] = true;
  if (!o.token_signing_alg.empty()) j["token_signing_alg"] = o.token_signing_alg;
  return j;
}

Result<nlohmann::json> CollectEvidence(const TrustAuthorityClient& client, guest::QuoteProvider& provider,
                                       const TokenRequestOptions& o) {
  std::optional<VerifierNonce> nonce;
  if (!o.no_verifier_nonce) {
    auto n = client.GetNonce(o.request_id);
    if (!n.ok()) return Error{n.error()};
    nonce = std::move(*n);
  }
  evidence::ReportData rd = BindReportData(nonce ? &*nonce : nullptr, o.runtime_data);
  auto quote = provider.GetQuote(rd);
  if (!quote.ok()) return Error{std::string(provider.name()) + " provider: " + quote.error()};
  return BuildEvidence(*quote, nonce ? &*nonce : nullptr, o);
}

Result<std::string> CollectToken(const TrustAuthorityClient& client, guest::QuoteProvider& provider,
                                 const TokenRequestOptions& o) {
  if (!o.token_signing_alg.empty()) {
    auto alg = ParseJwsAlg(o.token_signing_alg);
    if (!alg.ok()) return Error{alg.error()};
  }
  auto evidence = CollectEvidence(client, provider, o);
  if (!evidence.ok()) return Error{evidence.error()};
  return client.Attest(*evidence, o.request_id);
}

}  // namespace tdxvirt::service
