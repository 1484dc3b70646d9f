#include "verify/pcs_client.h"

#include <fcntl.h>
#include <httplib.h>
#include <openssl/x509.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/hex.h"
#include "common/openssl.h"
#include "verify/tcb_info.h"  // ParseRfc3339, FormatRfc3339 only

namespace tdxvirt::verify {

namespace {

// Transport errors that retrying cannot fix.
constexpr char kTooLarge[] = "response body exceeds the limit of ";
constexpr char kNotTrusted[] = "the server's TLS certificate is not trusted";

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// An absolute URL split where httplib wants it: "scheme://authority" for the client, the rest as
// the request target. Not a general URL parser: PCS URLs have no user info or fragments.
struct UrlParts {
  std::string scheme;  // lower case
  std::string origin;  // scheme://authority
  std::string host;    // without port or IPv6 brackets
  std::string target;  // path and query, at least "/"
};

Result<UrlParts> SplitUrl(std::string_view url) {
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return Error{"URL " + std::string(url) + " has no scheme"};
  UrlParts p;
  p.scheme = ToLower(url.substr(0, sep));
  if (p.scheme != "http" && p.scheme != "https")
    return Error{"URL " + std::string(url) + ": only http and https are supported"};
  std::string_view rest = url.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (authority.empty() || authority.find('@') != std::string_view::npos ||
      authority.find_first_of(" \t\r\n") != std::string_view::npos)
    return Error{"URL " + std::string(url) + " has no valid host"};
  if (end != std::string_view::npos && rest[end] == '#')
    return Error{"URL " + std::string(url) + ": fragments are not supported"};
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return Error{"URL " + std::string(url) + ": bad IPv6 host"};
    p.host = std::string(authority.substr(1, close - 1));
  } else {
    p.host = std::string(authority.substr(0, authority.find(':')));
  }
  p.origin = p.scheme + "://" + std::string(authority);
  p.target = end == std::string_view::npos ? "/" : std::string(rest.substr(end));
  if (p.target.front() == '?') p.target.insert(0, "/");
  return p;
}

// Percent-encodes a query value; PCS parameters are hex, so this is only a guard.
std::string EncodeQueryValue(std::string_view v) {
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(char(c));
    } else {
      out += '%' + ToHex(ByteSpan(&c, 1));
    }
  }
  return out;
}

std::string Describe(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
      return "cannot connect";
    case httplib::Error::ConnectionTimeout:
      return "connection timed out";
    case httplib::Error::Read:
      return "reading the response failed or timed out";
    case httplib::Error::Write:
      return "sending the request failed";
    case httplib::Error::SSLConnection:
      return "TLS handshake failed";
    case httplib::Error::SSLLoadingCerts:
      return "cannot load the trusted CA certificates";
    case httplib::Error::SSLServerVerification:
      return std::string(kNotTrusted) +
             " (or does not name the host); give its CA with the CA file option";
    default:
      return "HTTP client error " + httplib::to_string(e);
  }
}

class HttplibTransport : public HttpTransport {
 public:
  explicit HttplibTransport(HttpOptions options) : options_(std::move(options)) {}

  Result<HttpResponse> Get(const std::string& url, const HttpHeaders& headers) override {
    auto parts = SplitUrl(url);
    if (!parts.ok()) return Error{parts.error()};
    httplib::Client client(parts->origin);
    if (!client.is_valid()) return Error{"GET " + url + ": cannot create an HTTP client"};
    auto secs = [](std::chrono::milliseconds ms) { return time_t(ms.count() / 1000); };
    auto usecs = [](std::chrono::milliseconds ms) { return time_t(ms.count() % 1000 * 1000); };
    client.set_connection_timeout(secs(options_.connect_timeout), usecs(options_.connect_timeout));
    client.set_read_timeout(secs(options_.read_timeout), usecs(options_.read_timeout));
    client.set_write_timeout(secs(options_.read_timeout), usecs(options_.read_timeout));
    if (parts->scheme == "https") {
      if (!options_.ca_file.empty()) {
        // httplib reports a missing file only as a TLS failure; say what is wrong instead.
        if (access(options_.ca_file.c_str(), R_OK) != 0)
          return Error{"cannot read CA file " + options_.ca_file + ": " + std::strerror(errno)};
        client.set_ca_cert_path(options_.ca_file);
      }
      if (!options_.extra_ca_pem.empty()) {
        auto store = ExtraCaStore();
        if (!store.ok()) return Error{store.error()};
        client.set_ca_cert_store(*store);  // the client's SSL_CTX takes ownership
      }
      client.enable_server_certificate_verification(true);
    }

    httplib::Headers request_headers;
    for (const auto& [k, v] : headers) request_headers.emplace(k, v);
    const size_t limit = options_.max_response_size;
    bool too_large = false;
    std::string body;
    auto on_response = [&](const httplib::Response& res) {
      // Refuse early when the server announces an oversized body.
      std::string length = res.get_header_value("Content-Length");
      if (!length.empty()) {
        errno = 0;
        char* end = nullptr;
        unsigned long long n = std::strtoull(length.c_str(), &end, 10);
        if (errno == 0 && end && *end == '\0' && n > limit) {
          too_large = true;
          return false;
        }
      }
      return true;
    };
    auto on_content = [&](const char* data, size_t n) {
      if (body.size() + n > limit) {
        too_large = true;
        return false;
      }
      body.append(data, n);
      return true;
    };
    httplib::Result res = client.Get(parts->target, request_headers, on_response, on_content);
    if (too_large) return Error{"GET " + url + ": " + kTooLarge + std::to_string(limit) + " bytes"};
    if (!res) return Error{"GET " + url + ": " + Describe(res.error())};
    HttpResponse out;
    out.status = res->status;
    for (const auto& [k, v] : res->headers) out.headers.emplace_back(k, v);
    out.body = std::move(body);
    return out;
  }

 private:
  Result<X509_STORE*> ExtraCaStore() const {
    auto certs = ossl::ParsePemChain(options_.extra_ca_pem);
    if (!certs.ok()) return Error{"extra trusted CA: " + certs.error()};
    X509_STORE* store = X509_STORE_new();
    if (!store) return Error{"X509_STORE_new: " + ossl::LastError()};
    for (const auto& cert : *certs) {
      if (X509_STORE_add_cert(store, cert.get()) != 1) {
        X509_STORE_free(store);
        return Error{"extra trusted CA: " + ossl::LastError()};
      }
    }
    return store;
  }

  HttpOptions options_;
};

// Retry-After as delta-seconds; the HTTP-date form is not used by PCS and is ignored.
std::optional<int64_t> RetryAfterSeconds(const HttpResponse& r) {
  auto v = r.Header("Retry-After");
  if (!v || v->empty() || v->size() > 9 ||
      !std::all_of(v->begin(), v->end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(*v);
}

// One issuer-chain header (the first of `names` present), URL-decoded and checked to be PEM.
Result<std::string> IssuerChainHeader(const HttpResponse& r,
                                      std::initializer_list<const char*> names,
                                      const std::string& url) {
  for (const char* name : names) {
    auto v = r.Header(name);
    if (!v) continue;
    auto pem = UrlDecode(*v);
    if (!pem.ok()) return Error{"GET " + url + ": header " + name + ": " + pem.error()};
    auto certs = ossl::ParsePemChain(*pem);
    if (!certs.ok()) return Error{"GET " + url + ": header " + name + ": " + certs.error()};
    return pem;
  }
  return Error{"GET " + url + ": the response has no " + *names.begin() + " header"};
}

Result<int64_t> JsonNextUpdate(std::string_view text, std::string_view what) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Error{std::string(what) + " is not a JSON object"};
  auto it = j.find("nextUpdate");
  if (it == j.end() || !it->is_string())
    return Error{std::string(what) + " has no nextUpdate string"};
  auto t = ParseRfc3339(it->get<std::string>());
  if (!t.ok()) return Error{std::string(what) + ".nextUpdate: " + t.error()};
  return t;
}

Result<int64_t> CrlNextUpdate(const Bytes& der, std::string_view what) {
  auto crl = ossl::ParseDerCrl(der);
  if (!crl.ok()) return Error{std::string(what) + ": " + crl.error()};
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl->get());
  if (!next) return int64_t{INT64_MIN};
  auto t = ossl::TimeToUnix(next);
  if (!t.ok()) return Error{std::string(what) + ".nextUpdate: " + t.error()};
  return t;
}

// The shape checks every entry passes before it is cached or served from the cache, so a
// misplaced or corrupted entry is never returned for the wrong platform. Returns nextUpdate.
Result<int64_t> CheckShape(const Collateral& c, std::string_view fmspc) {
  auto j = nlohmann::json::parse(c.tcb_info, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error{"tcbInfo is not a JSON object"};
  auto f = j.find("fmspc");
  if (f == j.end() || !f->is_string() || !EqualsIgnoreCase(f->get<std::string>(), fmspc))
    return Error{"tcbInfo is for FMSPC " +
                 (f != j.end() && f->is_string() ? f->get<std::string>() : "?") + ", not " +
                 std::string(fmspc)};
  for (auto [pem, name] : {std::pair{&c.tcb_info_issuer_chain, "tcb_info_issuer_chain"},
                           std::pair{&c.qe_identity_issuer_chain, "qe_identity_issuer_chain"},
                           std::pair{&c.pck_crl_issuer_chain, "pck_crl_issuer_chain"}}) {
    auto certs = ossl::ParsePemChain(*pem);
    if (!certs.ok()) return Error{std::string(name) + ": " + certs.error()};
  }
  return CollateralNextUpdate(c);
}

// A CRL without nextUpdate makes collateral due at INT64_MIN, which is no date.
std::string TimeText(int64_t t) {
  return t == INT64_MIN ? "once fetched (a CRL has no nextUpdate)" : FormatRfc3339(t);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Writes the entry beside its final place and swaps it in whole.
Status WriteCacheEntry(const Collateral& c, const std::string& cache_dir, const std::string& key) {
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (ec) return Error{"cannot create cache directory " + cache_dir + ": " + ec.message()};
  std::string tmp = cache_dir + "/." + key + ".XXXXXX";
  if (!mkdtemp(tmp.data()))
    return Error{"cannot create a directory in " + cache_dir + ": " + std::strerror(errno)};
  chmod(tmp.c_str(), 0755);  // collateral is public; mkdtemp makes 0700
  auto fail = [&](const std::string& message) -> Status {
    std::filesystem::remove_all(tmp, ec);
    return Error{message};
  };
  Status written = WriteCollateralDirectory(c, tmp);
  if (!written.ok()) return fail(written.error());

  const std::string entry = cache_dir + "/" + key;
  if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, entry.c_str(), RENAME_EXCHANGE) == 0) {
    std::filesystem::remove_all(tmp, ec);  // now holds the previous entry
    return OkStatus();
  }
  if (errno == ENOENT) {
    if (rename(tmp.c_str(), entry.c_str()) == 0) return OkStatus();
    // Another writer installed the entry first: swap with theirs after all.
    if ((errno == ENOTEMPTY || errno == EEXIST) &&
        renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, entry.c_str(), RENAME_EXCHANGE) == 0) {
      std::filesystem::remove_all(tmp, ec);
      return OkStatus();
    }
  }
  if (errno == EINVAL || errno == ENOSYS) {
    // A file system without RENAME_EXCHANGE: move the old entry aside first (readers may briefly
    // see no entry, which is a cache miss, never a mixed entry).
    std::string old = cache_dir + "/." + key + ".old.XXXXXX";
    if (mkdtemp(old.data()) && rename(entry.c_str(), old.c_str()) == 0 &&
        rename(tmp.c_str(), entry.c_str()) == 0) {
      std::filesystem::remove_all(old, ec);
      return OkStatus();
    }
  }
  return fail("cannot install cache entry " + entry + ": " + std::strerror(errno));
}

}  // namespace

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (EqualsIgnoreCase(k, name)) return v;
  return std::nullopt;
}

std::unique_ptr<HttpTransport> NewHttpTransport(const HttpOptions& options) {
  return std::make_unique<HttplibTransport>(options);
}

std::string_view ToString(CollateralSource source) {
  switch (source) {
    case CollateralSource::kNetwork:
      return "network";
    case CollateralSource::kCache:
      return "cache";
    case CollateralSource::kStaleCache:
      return "stale-cache";
  }
  return "?";
}

Result<std::string> NormalizePcsBaseUrl(std::string_view url) {
  auto parts = SplitUrl(url);
  if (!parts.ok()) return Error{"PCS/PCCS base URL: " + parts.error()};
  if (parts->target.find('?') != std::string::npos)
    return Error{"PCS/PCCS base URL " + std::string(url) + " must not have a query"};
  std::string path = parts->target;
  while (!path.empty() && path.back() == '/') path.pop_back();
  for (std::string_view suffix : {"/sgx/certification/v4", "/tdx/certification/v4"}) {
    if (path.size() >= suffix.size() &&
        EqualsIgnoreCase(std::string_view(path).substr(path.size() - suffix.size()), suffix)) {
      path.resize(path.size() - suffix.size());
      break;
    }
  }
  return parts->origin + path;
}

Result<int64_t> CollateralNextUpdate(const Collateral& c) {
  int64_t earliest = INT64_MAX;
  for (auto r :
       {JsonNextUpdate(c.tcb_info, "tcbInfo"), JsonNextUpdate(c.qe_identity, "enclaveIdentity"),
        CrlNextUpdate(c.pck_crl, "pck_crl"), CrlNextUpdate(c.root_ca_crl, "root_ca_crl")}) {
    if (!r.ok()) return r;
    earliest = std::min(earliest, *r);
  }
  return earliest;
}

std::string CacheKey(std::string_view fmspc, std::string_view ca_type) {
  return ToLower(fmspc) + "-" + ToLower(ca_type);
}

std::string PcsStatusMeaning(int status, std::string_view what) {
  switch (status) {
    case 400:
      return "invalid request parameters";
    case 401:
      return "missing or invalid API key (Ocp-Apim-Subscription-Key)";
    case 404:
      if (what == "tcb") return "no TCB info for this FMSPC";
      if (what == "qe") return "no TD QE identity";
      if (what == "pckcrl") return "no PCK CRL for this CA type";
      if (what == "rootcacrl") return "no root CA CRL here";
      if (what == "pckcert") return "no PCK certificate for this platform";
      return "not found";
    case 410:
      return "the requested TCB evaluation data number is no longer available";
    case 429:
      return "too many requests";
    case 500:
      return "internal server error";
    case 502:
      return "bad gateway";
    case 503:
      return "service temporarily unavailable";
    case 504:
      return "gateway timeout";
    default:
      return status >= 500 ? "server error" : "unexpected status";
  }
}

Result<PcsClient> PcsClient::Create(PcsClientOptions options,
                                    std::shared_ptr<HttpTransport> transport) {
  std::string base;
  if (!options.base_url.empty() || !options.offline) {
    if (options.base_url.empty()) return Error{"no PCS/PCCS base URL (or use offline mode)"};
    auto normalized = NormalizePcsBaseUrl(options.base_url);
    if (!normalized.ok()) return Error{normalized.error()};
    base = std::move(*normalized);
  }
  if (options.offline && options.cache_dir.empty())
    return Error{"offline mode needs a cache directory"};
  if (options.retry.max_attempts < 1) options.retry.max_attempts = 1;
  if (!transport) transport = NewHttpTransport(options.http);
  return PcsClient(std::move(options), std::move(base), std::move(transport));
}

int64_t PcsClient::Now() const {
  if (options_.now) return *options_.now;
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<HttpResponse> PcsClient::GetWithRetry(const std::string& url, const HttpHeaders& headers,
                                             std::string_view what) {
  const RetryOptions& retry = options_.retry;
  std::chrono::milliseconds backoff = retry.initial_backoff;
  std::string last_error;
  for (int attempt = 1;; ++attempt) {
    auto r = transport_->Get(url, headers);
    std::chrono::milliseconds wait = backoff;
    if (r.ok()) {
      if (r->status == 200) return r;
      last_error = "GET " + url + ": HTTP " + std::to_string(r->status) + " (" +
                   PcsStatusMeaning(r->status, what) + ")";
      if (auto id = r->Header("Request-ID")) last_error += "; Request-ID " + *id;
      bool retryable = r->status == 429 || r->status >= 500;
      if (!retryable) return Error{last_error};
      if (auto after = RetryAfterSeconds(*r)) {
        last_error += "; Retry-After " + std::to_string(*after) + " s";
        if (*after > retry.max_retry_after.count())
          return Error{last_error + " is longer than the retry limit of " +
                       std::to_string(retry.max_retry_after.count()) + " s; try again later"};
        wait = std::chrono::seconds(*after);
      }
    } else {
      last_error = r.error();
      if (last_error.find(kTooLarge) != std::string::npos ||
          last_error.find(kNotTrusted) != std::string::npos)
        return Error{last_error};
    }
    if (attempt >= retry.max_attempts) {
      if (attempt > 1) last_error += " (gave up after " + std::to_string(attempt) + " attempts)";
      return Error{last_error};
    }
    std::this_thread::sleep_for(wait);
    backoff = std::min(backoff * 2, retry.max_backoff);
  }
}

Result<Bytes> PcsClient::FetchRootCaCrl() {
  const std::string url = base_url_ + "/sgx/certification/v4/rootcacrl";
  std::string first_error;
  auto r = GetWithRetry(url, {}, "rootcacrl");
  if (r.ok()) {
    auto der = CrlBytes(AsBytes(r->body));  // PCCS serves hex text, a CRL DP serves DER
    if (der.ok()) return der;
    first_error = "GET " + url + ": " + der.error();
  } else {
    first_error = r.error();
  }
  std::string fallback = options_.root_ca_crl_fallback_url;
  if (fallback.empty()) {
    auto parts = SplitUrl(base_url_);
    if (parts.ok() && EqualsIgnoreCase(parts->host, kIntelPcsHost)) fallback = kIntelRootCaCrlUrl;
  }
  if (fallback.empty()) return Error{first_error};
  auto f = GetWithRetry(fallback, {}, "rootcacrl");
  if (!f.ok()) return Error{first_error + "; fallback: " + f.error()};
  auto der = CrlBytes(AsBytes(f->body));
  if (!der.ok()) return Error{first_error + "; fallback: GET " + fallback + ": " + der.error()};
  return der;
}

Result<Collateral> PcsClient::FetchFromNetwork(const std::string& fmspc,
                                               const std::string& ca_type) {
  Collateral c;
  auto signed_json = [&](const std::string& url, std::string_view what, const char* key,
                         std::initializer_list<const char*> chain_headers, std::string& body,
                         ByteArray<64>& signature, std::string& chain) -> Status {
    auto r = GetWithRetry(url, {}, what);
    if (!r.ok()) return Error{r.error()};
    auto doc = ParsePcsSignedJson(r->body, key);
    if (!doc.ok()) return Error{"GET " + url + ": " + doc.error()};
    auto pem = IssuerChainHeader(*r, chain_headers, url);
    if (!pem.ok()) return Error{pem.error()};
    body = std::move(doc->body);
    signature = doc->signature;
    chain = std::move(*pem);
    return OkStatus();
  };
  Status s = signed_json(base_url_ + "/tdx/certification/v4/tcb?fmspc=" + fmspc, "tcb", "tcbInfo",
                         {"TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"}, c.tcb_info,
                         c.tcb_info_signature, c.tcb_info_issuer_chain);
  if (!s.ok()) return Error{s.error()};
  s = signed_json(base_url_ + "/tdx/certification/v4/qe/identity", "qe", "enclaveIdentity",
                  {"SGX-Enclave-Identity-Issuer-Chain"}, c.qe_identity, c.qe_identity_signature,
                  c.qe_identity_issuer_chain);
  if (!s.ok()) return Error{s.error()};

  const std::string crl_url =
      base_url_ + "/sgx/certification/v4/pckcrl?ca=" + ca_type + "&encoding=der";
  auto crl = GetWithRetry(crl_url, {}, "pckcrl");
  if (!crl.ok()) return Error{crl.error()};
  auto crl_der = CrlBytes(AsBytes(crl->body));
  if (!crl_der.ok()) return Error{"GET " + crl_url + ": " + crl_der.error()};
  c.pck_crl = std::move(*crl_der);
  auto crl_chain = IssuerChainHeader(*crl, {"SGX-PCK-CRL-Issuer-Chain"}, crl_url);
  if (!crl_chain.ok()) return Error{crl_chain.error()};
  c.pck_crl_issuer_chain = std::move(*crl_chain);

  auto root = FetchRootCaCrl();
  if (!root.ok()) return Error{root.error()};
  c.root_ca_crl = std::move(*root);
  return c;
}

Result<FetchedCollateral> PcsClient::Fetch(std::string_view fmspc_in, std::string_view ca_in) {
  auto fmspc_bytes = FromHexFixed<6>(fmspc_in, "FMSPC");
  if (!fmspc_bytes.ok() || fmspc_in.size() != 12)
    return Error{"FMSPC must be 12 hex digits, got \"" + std::string(fmspc_in) + "\""};
  const std::string fmspc = ToHex(*fmspc_bytes);
  const std::string ca_type = ToLower(ca_in);
  if (ca_type != "platform" && ca_type != "processor")
    return Error{"PCK CA type must be platform or processor, got \"" + std::string(ca_in) + "\""};
  const std::string what = "collateral for FMSPC " + fmspc + " (" + ca_type + " CA)";
  const int64_t now = Now();

  FetchedCollateral out;
  const std::string key = CacheKey(fmspc, ca_type);
  std::optional<FetchedCollateral> expired;
  std::string cache_problem = "no entry";
  if (!options_.cache_dir.empty()) {
    out.cache_entry = options_.cache_dir + "/" + key;
    if (IsDirectory(out.cache_entry)) {
      auto cached = LoadCollateralDirectory(out.cache_entry);
      auto next = cached.ok() ? CheckShape(*cached, fmspc) : Result<int64_t>(Error{cached.error()});
      if (!next.ok()) {
        cache_problem = "unusable entry: " + next.error();
      } else {
        out.collateral = std::move(*cached);
        out.next_update = *next;
        if (now < *next) {
          out.source = CollateralSource::kCache;
          return out;
        }
        cache_problem = "expired at " + TimeText(*next) + " (now " + TimeText(now) + ")";
        out.source = CollateralSource::kStaleCache;
        expired = std::move(out);
        out = FetchedCollateral{};
        out.cache_entry = options_.cache_dir + "/" + key;
      }
    }
  }

  if (options_.offline) {
    if (expired && options_.allow_stale) return std::move(*expired);
    return Error{"offline: no usable cached " + what + " in " + options_.cache_dir + " (" +
                 cache_problem + ")" +
                 (expired ? "; fetch online, or allow stale collateral" : "; fetch online first")};
  }

  auto fetched = FetchFromNetwork(fmspc, ca_type);
  if (!fetched.ok()) return Error{"fetching " + what + ": " + fetched.error()};
  auto next = CheckShape(*fetched, fmspc);
  if (!next.ok()) return Error{"fetching " + what + " from " + base_url_ + ": " + next.error()};
  out.collateral = std::move(*fetched);
  out.next_update = *next;
  out.source = CollateralSource::kNetwork;
  if (!options_.cache_dir.empty()) {
    Status written = WriteCacheEntry(out.collateral, options_.cache_dir, key);
    if (!written.ok()) out.cache_error = written.error();
  }
  return out;
}

Result<PckCertResponse> PcsClient::FetchPckCert(
    const std::vector<std::pair<std::string, std::string>>& query) {
  if (options_.offline) return Error{"offline: PCK certificates are not cached"};
  std::string url = base_url_ + "/sgx/certification/v4/pckcert";
  char sep = '?';
  for (const auto& [k, v] : query) {
    url += sep + EncodeQueryValue(k) + "=" + EncodeQueryValue(v);
    sep = '&';
  }
  HttpHeaders headers;
  if (!options_.api_key.empty())
    headers.emplace_back("Ocp-Apim-Subscription-Key", options_.api_key);
  auto r = GetWithRetry(url, headers, "pckcert");
  if (!r.ok()) return Error{r.error()};
  PckCertResponse out;
  auto leaf = ossl::ParsePemChain(r->body);
  if (!leaf.ok()) return Error{"GET " + url + ": body: " + leaf.error()};
  out.pck_cert_pem = r->body;
  auto chain = IssuerChainHeader(*r, {"SGX-PCK-Certificate-Issuer-Chain"}, url);
  if (!chain.ok()) return Error{chain.error()};
  out.issuer_chain = std::move(*chain);
  out.tcbm = r->Header("SGX-TCBm").value_or("");
  out.fmspc = r->Header("SGX-FMSPC").value_or("");
  out.ca_type = r->Header("SGX-PCK-Certificate-CA-Type").value_or("");
  return out;
}

}  // namespace tdxvirt::verify
