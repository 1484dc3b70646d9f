#include "service/client.h"

#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <regex>
#include <thread>

#include "common/file.h"
#include "common/hex.h"
#include "eventlog/abi.h"

namespace tdxvirt::service {

Result<HttpOrigin> SplitHttpUrl(const std::string& url, const std::string& field, bool allow_http) {
  bool https = url.rfind("https://", 0) == 0;
  bool http = url.rfind("http://", 0) == 0;
  if (!https && !(http && allow_http))
    return Error{field + ": \"" + url + "\" must be an https:// URL" +
                 (http ? " (plain http only with --allow-http, for loopback tests)" : "")};
  size_t host_start = url.find("://") + 3;
  size_t slash = url.find('/', host_start);
  HttpOrigin s;
  s.origin = url.substr(0, slash);
  if (s.origin.size() == host_start) return Error{field + ": no host in \"" + url + "\""};
  if (slash != std::string::npos) s.prefix = url.substr(slash);
  while (!s.prefix.empty() && s.prefix.back() == '/') s.prefix.pop_back();
  return s;
}

Result<HttpAnswer> SendBounded(const HttpExchange& x, HttpFailure* failure) {
  HttpFailure ignored;
  HttpFailure& f = failure ? *failure : ignored;
  f = HttpFailure::kNone;
  httplib::Client cli(x.origin);
  if (!cli.is_valid()) {
    f = HttpFailure::kConnect;
    return Error{"cannot make an HTTP client for " + x.origin};
  }
  cli.set_tcp_nodelay(true);
  cli.set_connection_timeout(x.timeout.count(), 0);
  cli.set_read_timeout(x.timeout.count(), 0);
  cli.set_write_timeout(x.timeout.count(), 0);
  if (x.origin.rfind("https://", 0) == 0) {
    cli.enable_server_certificate_verification(true);
    if (!x.ca_file.empty()) cli.set_ca_cert_path(x.ca_file.c_str());
  }
  httplib::Request req;
  req.method = x.method;
  req.path = x.path;
  for (const auto& [k, v] : x.headers) req.headers.emplace(k, v);
  req.body = x.body;
  std::string received;
  bool too_large = false, too_slow = false;
  // The read timeout bounds each wait; this bounds the whole answer (a trickling server).
  auto deadline = std::chrono::steady_clock::now() + x.timeout;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (received.size() + n > x.limit) {
      too_large = true;
      return false;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      too_slow = true;
      return false;
    }
    received.append(data, n);
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  bool ok = cli.send(req, res, err);
  if (too_large || too_slow) {
    f = HttpFailure::kLimit;
    return Error{x.origin + x.path + (too_large ? ": response larger than " + std::to_string(x.limit) + " bytes"
                                                : ": no complete answer within " +
                                                      std::to_string(x.timeout.count()) + " s")};
  }
  if (!ok) {
    f = err == httplib::Error::Connection ? HttpFailure::kConnect
        : err == httplib::Error::SSLServerVerification || err == httplib::Error::SSLLoadingCerts ||
                err == httplib::Error::SSLConnection
            ? HttpFailure::kTls
            : HttpFailure::kOther;
    return Error{x.origin + x.path + ": " + httplib::to_string(err)};
  }
  HttpAnswer a;
  a.status = res.status;
  a.body = std::move(received);
  a.request_id = res.get_header_value("request-id");
  a.trace_id = res.get_header_value("trace-id");
  a.retry_after = res.get_header_value("Retry-After");
  return a;
}

namespace {

struct SplitUrl {
  std::string origin;  // scheme://host[:port]
  std::string prefix;  // path prefix without trailing '/'
};

Result<SplitUrl> Split(const std::string& url, const std::string& field, bool allow_http) {
  auto o = SplitHttpUrl(url, field, allow_http);
  if (!o.ok()) return Error{o.error()};
  return SplitUrl{o->origin, o->prefix};
}

using Exchange = HttpExchange;
struct Answer {
  int status = 0;
  std::string body, request_id, trace_id;
  int attempts = 0;
};

bool RetryableStatus(int status) { return status == 500 || status == 503 || status == 504; }

// One HTTP exchange. `retryable` says whether a failure may be tried again.
Result<Answer> SendOnce(const Exchange& x, bool* retryable, std::string* retry_after) {
  HttpFailure failure = HttpFailure::kNone;
  auto r = SendBounded(x, &failure);
  // Not reaching the server at all, a TLS failure, or an answer over its limits will not heal in
  // seconds.
  *retryable = !r.ok() && failure == HttpFailure::kOther;
  if (!r.ok()) return Error{r.error()};
  Answer a;
  a.status = r->status;
  a.body = std::move(r->body);
  a.request_id = std::move(r->request_id);
  a.trace_id = std::move(r->trace_id);
  *retryable = RetryableStatus(a.status);
  if (a.status == 503) *retry_after = r->retry_after;
  return a;
}

Result<Answer> SendWithRetries(const Exchange& x, const RetryPolicy& p, Answer* last_answer = nullptr) {
  int attempts = 1 + std::max(0, p.max_retries);
  for (int n = 0;; ++n) {
    bool retryable = false;
    std::string retry_after;
    auto r = SendOnce(x, &retryable, &retry_after);
    if (r.ok()) {
      r->attempts = n + 1;
      if (last_answer) *last_answer = *r;
    }
    if (!retryable) return r;
    if (n + 1 >= attempts) {
      if (!r.ok()) return Error{r.error() + " (gave up after " + std::to_string(attempts) + " attempts)"};
      return r;
    }
    auto wait = p.wait_min * (int64_t(1) << std::min(n, 20));
    if (wait > p.wait_max) wait = p.wait_max;
    if (!retry_after.empty() && retry_after.size() <= 9 &&
        std::all_of(retry_after.begin(), retry_after.end(), [](char c) { return c >= '0' && c <= '9'; }))
      wait = std::min<std::chrono::milliseconds>(std::chrono::seconds(std::stoll(retry_after)), x.timeout);
    if (p.sleep) p.sleep(wait);
    else std::this_thread::sleep_for(wait);
  }
}

std::string GaveUp(const Answer& a) {
  return a.attempts > 1 && RetryableStatus(a.status) ? " (gave up after " + std::to_string(a.attempts) + " attempts)"
                                                     : "";
}

std::string ErrorMessage(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    return j["message"].get<std::string>();
  return body.substr(0, 200);
}

}  // namespace

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One object of Intel's config: each key (any case, as Go's encoding/json) must be in `known`;
// its value is passed to `set` with the canonical name.
Status ForEachKnownKey(const nlohmann::json& j, const std::string& where,
                       const std::vector<std::string>& known,
                       const std::function<Status(const std::string&, const nlohmann::json&)>& set) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string canonical;
    for (const auto& k : known)
      if (Lower(it.key()) == k) canonical = k;
    if (canonical.empty()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return Error{where + "unknown key \"" + it.key() + "\" (known: " + list + ")"};
    }
    if (Status st = set(canonical, it.value()); !st.ok()) return st;
  }
  return OkStatus();
}

Status StringOrNull(const nlohmann::json& v, const std::string& where, std::string* out) {
  if (v.is_null()) return OkStatus();
  if (!v.is_string()) return Error{where + ": expected a string"};
  if (out) *out = v.get<std::string>();
  return OkStatus();
}

}  // namespace

Result<ClientConfig> ParseClientConfig(std::string_view json_text) {
  auto j = nlohmann::json::parse(json_text, nullptr, false);
  if (!j.is_object()) return Error{"config: not a JSON object"};
  ClientConfig c;
  Status s = ForEachKnownKey(
      j, "config: ",
      {"cloud_provider", "trustauthority_url", "trustauthority_api_url", "trustauthority_api_key", "tpm",
       "nvgpu"},
      [&](const std::string& k, const nlohmann::json& v) -> Status {
        std::string where = "config: " + k;
        if (k == "cloud_provider") return StringOrNull(v, where, &c.cloud_provider);
        if (k == "trustauthority_url") return StringOrNull(v, where, &c.trustauthority_url);
        if (k == "trustauthority_api_url") return StringOrNull(v, where, &c.trustauthority_api_url);
        if (k == "trustauthority_api_key") return StringOrNull(v, where, &c.trustauthority_api_key);
        // tpm and nvgpu: checked as Intel's CLI checks them, then unused (TDX evidence only).
        if (v.is_null()) return OkStatus();
        if (!v.is_object()) return Error{where + ": expected an object"};
        std::vector<std::string> sub = k == "tpm" ? std::vector<std::string>{"ak_handle", "ek_handle", "owner_auth",
                                                                             "pcr_selections", "ak_certificate"}
                                                  : std::vector<std::string>{"nras_apikey"};
        return ForEachKnownKey(v, where + ": ", sub, [&](const std::string& sk, const nlohmann::json& sv) {
          return StringOrNull(sv, where + "." + sk, nullptr);
        });
      });
  if (!s.ok()) return Error{s.error()};
  if (!c.cloud_provider.empty())
    return Error{"config: cloud_provider \"" + c.cloud_provider +
                 "\" is not supported (Azure vTPM-based TDs are not); remove it"};
  return c;
}

std::string RandomUuid() {
  unsigned char b[16];
  RAND_bytes(b, sizeof b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  std::string h = ToHex(ByteSpan(b, sizeof b));
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
         h.substr(20);
}

Status CheckRequestId(std::string_view id) {
  static const std::regex kRequestId("^[a-zA-Z0-9_ /.-]{1,128}$");
  if (!std::regex_match(id.begin(), id.end(), kRequestId))
    return Error{"Request ID should be atmost 128 characters long and should contain only alphanumeric "
                 "characters, _, space, -, ., / or \\"};
  return OkStatus();
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
  Exchange x;
  x.origin = u->origin;
  x.path = u->prefix + path;
  x.method = method;
  x.limit = limit;
  x.timeout = config_.timeout;
  x.ca_file = config_.ca_file;
  x.headers.emplace_back("Accept", "application/json");
  if (api_key) x.headers.emplace_back("x-api-key", config_.trustauthority_api_key);
  if (!request_id.empty()) x.headers.emplace_back("request-id", request_id);
  if (method == "POST") {
    x.headers.emplace_back("Content-Type", "application/json");
    x.body = body;
  }
  auto a = SendWithRetries(x, config_.retry);
  if (!a.ok()) return Error{a.error()};
  Response r;
  r.status = a->status;
  r.body = std::move(a->body);
  r.request_id = std::move(a->request_id);
  r.trace_id = std::move(a->trace_id);
  r.gave_up = GaveUp(*a);
  return r;
}

Result<VerifierNonce> TrustAuthorityClient::GetNonce(const std::string& request_id) const {
  if (config_.trustauthority_api_url.empty()) return Error{"config: trustauthority_api_url is required"};
  auto r = Do(config_.trustauthority_api_url, "GET", "/appraisal/v2/nonce", "", 4096, request_id, true);
  if (!r.ok()) return Error{"nonce: " + r.error()};
  if (r->status != 200)
    return Error{"nonce: HTTP " + std::to_string(r->status) + ": " + ErrorMessage(r->body) + r->gave_up};
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return NonceFromJson(j, "nonce response");
}

Result<std::string> TrustAuthorityClient::Attest(const nlohmann::json& evidence,
                                                 const std::string& request_id, ResponseIds* ids) const {
  if (config_.trustauthority_api_url.empty()) return Error{"config: trustauthority_api_url is required"};
  auto r = Do(config_.trustauthority_api_url, "POST", "/appraisal/v2/attest", evidence.dump(),
              64 << 10, request_id, true);
  if (!r.ok()) return Error{"attest: " + r.error()};
  if (ids) *ids = {true, r->trace_id, r->request_id};
  if (r->status != 200)
    return Error{"attest: HTTP " + std::to_string(r->status) + ": " + ErrorMessage(r->body) + r->gave_up};
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("token") || !j["token"].is_string() || j.size() != 1)
    return Error{"attest: response is not {\"token\": \"...\"}"};
  return j["token"].get<std::string>();
}

Result<std::string> TrustAuthorityClient::GetCerts() const {
  if (config_.trustauthority_url.empty()) return Error{"config: trustauthority_url is required"};
  auto r = Do(config_.trustauthority_url, "GET", "/certs", "", 64 << 10, "", false);
  if (!r.ok()) return Error{"certs: " + r.error()};
  if (r->status != 200) return Error{"certs: HTTP " + std::to_string(r->status) + r->gave_up};
  return r->body;
}

Result<TrustAuthorityClient::Response> TrustAuthorityClient::GetNonceV1(const std::string& request_id) const {
  if (config_.trustauthority_api_url.empty()) return Error{"config: trustauthority_api_url is required"};
  auto r = Do(config_.trustauthority_api_url, "GET", "/appraisal/v1/nonce", "", 4096, request_id, true);
  if (!r.ok()) return Error{"nonce: " + r.error()};
  return r;
}

Result<TrustAuthorityClient::Response> TrustAuthorityClient::AttestV1(const nlohmann::json& body,
                                                                      const std::string& request_id) const {
  if (config_.trustauthority_api_url.empty()) return Error{"config: trustauthority_api_url is required"};
  auto r = Do(config_.trustauthority_api_url, "POST", "/appraisal/v1/attest", body.dump(), 64 << 10,
              request_id, true);
  if (!r.ok()) return Error{"attest: " + r.error()};
  return r;
}

std::string ServiceErrorMessage(const std::string& body) { return ErrorMessage(body); }

nlohmann::json BuildEvidence(ByteSpan quote, const VerifierNonce* nonce,
                             const TokenRequestOptions& o) {
  nlohmann::json tdx;
  tdx["quote"] = Base64Encode(quote);
  if (!o.runtime_data.empty()) tdx["runtime_data"] = Base64Encode(o.runtime_data);
  if (!o.user_data.empty()) tdx["user_data"] = Base64Encode(o.user_data);
  if (nonce) tdx["verifier_nonce"] = NonceToJson(*nonce);
  if (!o.event_log.empty()) tdx["event_log"] = Base64Encode(o.event_log);  // as go-tdx's composite
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
    auto n = client.GetNonce(RandomUuid());
    if (!n.ok()) return Error{n.error()};
    nonce = std::move(*n);
  }
  evidence::ReportData rd = BindReportData(nonce ? &*nonce : nullptr, o.runtime_data);
  auto quote = provider.GetQuote(rd);
  if (!quote.ok()) return Error{std::string(provider.name()) + " provider: " + quote.error()};
  return BuildEvidence(*quote, nonce ? &*nonce : nullptr, o);
}

Result<std::string> CollectToken(const TrustAuthorityClient& client, guest::QuoteProvider& provider,
                                 const TokenRequestOptions& o, ResponseIds* ids) {
  if (!o.token_signing_alg.empty()) {
    auto alg = ParseJwsAlg(o.token_signing_alg);
    if (!alg.ok()) return Error{alg.error()};
  }
  auto evidence = CollectEvidence(client, provider, o);
  if (!evidence.ok()) return Error{evidence.error()};
  return client.Attest(*evidence, o.request_id, ids);
}

Result<Bytes> EventLogForEvidence(ByteSpan table, ByteSpan data) {
  // Intel's checks and their order (go-tdx validateCcelData), with messages that say more.
  if (table.size() < eventlog::kCcelTableSize)
    return Error{"CCEL table: " + std::to_string(table.size()) + " bytes; an ACPI CCEL table has " +
                 std::to_string(eventlog::kCcelTableSize)};
  auto le = [&](size_t off, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | table[off + size_t(i)];
    return v;
  };
  if (AsString(table.first(4)) != "CCEL") return Error{"CCEL table: signature is not \"CCEL\""};
  if (le(4, 4) != table.size())
    return Error{"CCEL table: header length " + std::to_string(le(4, 4)) + " but the file has " +
                 std::to_string(table.size()) + " bytes"};
  if (table[36] != eventlog::kCcTypeTdx)
    return Error{"CCEL table: CC type " + std::to_string(table[36]) +
                 (table[36] == eventlog::kCcTypeSev ? " (AMD SEV)" : "") +
                 ", not 2 (Intel TDX): this log does not describe a TD's RTMRs"};
  if (table[37] != 0) return Error{"CCEL table: CC subtype " + std::to_string(table[37]) + ", not 0"};
  uint64_t laml = le(40, 8);
  if (data.size() < laml)
    return Error{"CCEL data: " + std::to_string(data.size()) + " bytes, less than the table's log area minimum "
                 "length (LAML) " + std::to_string(laml)};
  // The events themselves (Intel walks them to find the end): parsed, so a malformed log is
  // refused here rather than by the service.
  auto log = eventlog::ParseEventLog(data, {.laml = std::nullopt});
  if (!log.ok()) return Error{"CCEL data: " + log.error()};
  return Bytes(data.begin(), data.begin() + ptrdiff_t(log->log_bytes));
}

Result<Bytes> ReadCcelEventLog(const std::string& dir) {
  std::string table_path = dir + "/CCEL", data_path = dir + "/data/CCEL";
  auto table = ReadRegularFile(table_path, 4096);
  if (!table.ok())
    return Error{"the CCEL ACPI table is not readable (" + table.error() +
                 "): a TD's kernel exposes it at " + std::string(kAcpiTablesDir) + "/CCEL (root only)"};
  auto data = ReadRegularFile(data_path, eventlog::kMaxEventLogBytes);
  if (!data.ok())
    return Error{"the CCEL log area is not readable (" + data.error() + "): a TD's kernel exposes it at " +
                 std::string(kAcpiTablesDir) + "/data/CCEL (root only)"};
  auto log = EventLogForEvidence(*table, *data);
  if (!log.ok()) return Error{table_path + ", " + data_path + ": " + log.error()};
  return log;
}

std::string DefaultCrlCacheDir() {
  if (const char* x = secure_getenv("XDG_CACHE_HOME"); x && *x == '/') return std::string(x) + "/tdxvirt/crl";
  if (const char* h = secure_getenv("HOME"); h && *h == '/') return std::string(h) + "/.cache/tdxvirt/crl";
  return "";
}

namespace {

// mkdir -p with 0700 for the directories it creates.
Status MakeDirs(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i < dir.size() && dir[i] != '/') continue;
    std::string part = dir.substr(0, i);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
      return Error{"cannot create " + part + ": " + std::strerror(errno)};
  }
  return OkStatus();
}

// A CRL whose nextUpdate is after `now`.
bool FreshCrl(ByteSpan der, int64_t now) {
  auto crl = ossl::ParseDerCrl(der);
  if (!crl.ok()) return false;
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl->get());
  auto t = next ? ossl::TimeToUnix(next) : Result<int64_t>(Error{""});
  return t.ok() && *t > now;
}

}  // namespace

Result<FetchedCrl> HttpCrlFetcher::Fetch(const std::string& url) {
  std::string cache_file;
  if (!options_.cache_dir.empty()) {
    cache_file = options_.cache_dir + "/" + ToHex(ossl::Sha256(AsBytes(url))) + ".der";
    auto cached = ReadRegularFile(cache_file, options_.max_size, /*follow_symlinks=*/false);
    if (cached.ok() && FreshCrl(*cached, options_.now))
      return FetchedCrl{std::move(*cached), "cache file " + cache_file + " (from " + url + ")"};
  }
  bool https = url.rfind("https://", 0) == 0;
  if (!https && url.rfind("http://", 0) != 0) return Error{"not an http:// or https:// URL"};
  size_t host_start = url.find("://") + 3;
  size_t slash = url.find('/', host_start);
  Exchange x;
  x.origin = url.substr(0, slash);
  x.path = slash == std::string::npos ? "/" : url.substr(slash);
  if (x.origin.size() == host_start) return Error{"no host in the URL"};
  x.method = "GET";
  x.limit = options_.max_size;
  x.timeout = options_.deadline;
  x.ca_file = options_.ca_file;
  auto a = SendWithRetries(x, options_.retry);
  if (!a.ok()) return Error{a.error()};
  if (a->status != 200) return Error{"HTTP " + std::to_string(a->status) + GaveUp(*a)};
  Bytes der(a->body.begin(), a->body.end());
  if (!cache_file.empty() && FreshCrl(der, options_.now)) {
    // Best effort: a cache that cannot be written costs a fetch next time, not this verification.
    if (MakeDirs(options_.cache_dir).ok()) (void)WriteFileAtomic(cache_file, der, 0644);
  }
  return FetchedCrl{std::move(der), url};
}

Result<std::string> PrivateKeyPemPkcs1(std::string_view pem) {
  auto key = ParseRsaPrivateKey(AsBytes(pem));
  if (!key.ok()) return Error{key.error()};
  int n = i2d_PrivateKey(key->get(), nullptr);  // RSA: the type-specific form, PKCS#1
  if (n <= 0) return Error{"cannot encode the private key: " + ossl::LastError()};
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  i2d_PrivateKey(key->get(), &p);
  std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), BIO_free);
  bool ok = b && PEM_write_bio(b.get(), "RSA PRIVATE KEY", "", der.data(), long(der.size())) > 0;
  OPENSSL_cleanse(der.data(), der.size());
  if (!ok) return Error{"cannot encode the private key: " + ossl::LastError()};
  char* data = nullptr;
  long len = BIO_get_mem_data(b.get(), &data);
  std::string out(data, size_t(len));
  OPENSSL_cleanse(data, size_t(len));
  return out;
}

Result<ossl::PkeyPtr> ParseRsaPrivateKey(ByteSpan input) {
  Bytes der;
  std::string_view text = AsString(input);
  if (text.find("-----BEGIN ") != std::string_view::npos) {
    std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new_mem_buf(input.data(), int(input.size())), BIO_free);
    char *name = nullptr, *header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (!b || PEM_read_bio(b.get(), &name, &header, &data, &len) != 1) {
      ossl::LastError();
      return Error{"no PEM block found"};
    }
    der.assign(data, data + len);
    OPENSSL_cleanse(data, size_t(len));
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
  } else {
    der.assign(input.begin(), input.end());
  }
  const unsigned char* p = der.data();
  EVP_PKEY* k = d2i_AutoPrivateKey(nullptr, &p, long(der.size()));
  bool whole = p == der.data() + der.size();
  OPENSSL_cleanse(der.data(), der.size());
  ossl::LastError();
  ossl::PkeyPtr key(k);
  if (!key || !whole) return Error{"not a PKCS#1 or PKCS#8 private key"};
  if (!EVP_PKEY_is_a(key.get(), "RSA")) return Error{"not an RSA private key"};
  return key;
}

Result<Bytes> DecryptRsaOaepSha256(EVP_PKEY* key, ByteSpan ciphertext) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key, nullptr),
                                                                  EVP_PKEY_CTX_free);
  size_t len = 0;
  bool ok = ctx && EVP_PKEY_decrypt_init(ctx.get()) > 0 &&
            EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) > 0 &&
            EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) > 0 &&
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) > 0 &&
            EVP_PKEY_decrypt(ctx.get(), nullptr, &len, ciphertext.data(), ciphertext.size()) > 0;
  Bytes out(ok ? len : 0);
  ok = ok && EVP_PKEY_decrypt(ctx.get(), out.data(), &len, ciphertext.data(), ciphertext.size()) > 0;
  ossl::LastError();
  if (!ok) return Error{"RSA-OAEP (SHA-256) decryption failed: wrong key, or not a ciphertext for it"};
  out.resize(len);
  return out;
}

std::string GoByteList(ByteSpan bytes) {
  std::string s = "[";
  for (size_t i = 0; i < bytes.size(); ++i) s += (i ? " " : "") + std::to_string(unsigned(bytes[i]));
  return s + "]";
}

}  // namespace tdxvirt::service
