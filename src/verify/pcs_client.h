// DCAP collateral client: fetches TDX TCB Info, TD QE Identity, the PCK CRL and the root CA CRL
// from Intel PCS or a PCCS (same paths and headers), with an on-disk cache keyed by FMSPC and PCK
// CA type.
//
// Cache policy: an entry is reused while `now` < the earliest nextUpdate of its TCB Info, QE
// Identity and both CRLs; afterwards it is refetched (online) or refused (offline, unless
// allow_stale). Entries are directories of raw responses (WriteCollateralDirectory) replaced as a
// whole, so a reader never sees half of an old entry and half of a new one.
//
// Nothing here judges the collateral (signatures, chains, TCB status): that is the verifier's job.
// Fetched responses are only checked for shape (parseable JSON/CRL/PEM, the FMSPC asked for), so
// garbage is never cached.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "verify/collateral.h"

namespace tdxvirt::verify {

inline constexpr char kIntelPcsHost[] = "api.trustedservices.intel.com";
// The Intel SGX Root CA's CRL distribution point (PCS itself has no /rootcacrl; PCCS does).
inline constexpr char kIntelRootCaCrlUrl[] =
    "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;

  // First value of header `name` (case-insensitive), or nullopt.
  std::optional<std::string> Header(std::string_view name) const;
};

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds read_timeout{30000};
  // Bodies beyond this are refused (checked against Content-Length and while reading).
  size_t max_response_size = 4 << 20;
  // HTTPS trust: a PEM bundle file replacing the system CAs...
  std::string ca_file;
  // ...and/or PEM certificates to trust in addition (tests run a loopback HTTPS server).
  std::string extra_ca_pem;
};

// The seam between the PCS protocol and the network. A transport failure (connect, TLS, timeout,
// oversized body) is an Error; any HTTP status is a response.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual Result<HttpResponse> Get(const std::string& url, const HttpHeaders& headers) = 0;
};

// cpp-httplib over plain TCP or OpenSSL TLS (server certificate and host name verified).
std::unique_ptr<HttpTransport> NewHttpTransport(const HttpOptions& options);

struct RetryOptions {
  int max_attempts = 3;  // per request, including the first; retried on 5xx, 429, transport errors
  std::chrono::milliseconds initial_backoff{500};  // doubled after each attempt
  std::chrono::milliseconds max_backoff{4000};
  // A 429 is retried after its Retry-After (seconds) only when that is at most this long;
  // otherwise the fetch fails at once rather than hammer or stall.
  std::chrono::seconds max_retry_after{60};
};

struct PcsClientOptions {
  // "https://api.trustedservices.intel.com" or a PCCS such as "https://pccs:8081"; a trailing
  // "/sgx/certification/v4" or "/tdx/certification/v4" is stripped. Unused when offline.
  std::string base_url;
  // Ocp-Apim-Subscription-Key: Intel PCS requires it only for PCK certificates, so only
  // FetchPckCert sends it (it is a secret; collateral requests never carry it).
  std::string api_key;
  std::string cache_dir;  // "" = no cache
  bool offline = false;   // cache only; never touches the network
  // Offline only: return an expired cache entry (marked stale) instead of failing. Useful to
  // verify at a past time; the verifier still checks every validity window against its own `now`.
  // Online, an expired entry is always refetched and a failed fetch is an error.
  bool allow_stale = false;
  std::optional<int64_t> now;  // unix seconds for cache freshness; unset = the system clock
  // Where to get the root CA CRL when {base}/sgx/certification/v4/rootcacrl fails. "" = Intel's CRL
  // distribution point when the base is Intel PCS, no fallback for a PCCS.
  std::string root_ca_crl_fallback_url;
  HttpOptions http;
  RetryOptions retry;
};

enum class CollateralSource { kNetwork, kCache, kStaleCache };
std::string_view ToString(CollateralSource source);  // "network", "cache", "stale-cache"

struct FetchedCollateral {
  Collateral collateral;
  int64_t next_update = 0;  // earliest nextUpdate of the four items (unix seconds)
  CollateralSource source = CollateralSource::kNetwork;
  std::string cache_entry;  // the entry's directory; "" without a cache
  // Set when fetched collateral could not be written to the cache (the fetch itself succeeded).
  std::string cache_error;
};

// A PCK certificate and what PCS says about it in the response headers.
struct PckCertResponse {
  std::string pck_cert_pem;  // the body
  std::string issuer_chain;  // SGX-PCK-Certificate-Issuer-Chain, decoded
  std::string tcbm;          // SGX-TCBm
  std::string fmspc;         // SGX-FMSPC
  std::string ca_type;       // SGX-PCK-Certificate-CA-Type
};

// Holds no mutable state: Fetch may run on several threads, and several processes may share a
// cache directory.
class PcsClient {
 public:
  // Fails on a malformed base URL (or none when online). `transport` defaults to NewHttpTransport.
  static Result<PcsClient> Create(PcsClientOptions options,
                                  std::shared_ptr<HttpTransport> transport = nullptr);

  // Collateral for `fmspc` (12 hex digits, any case) and `ca_type` ("platform" or "processor").
  Result<FetchedCollateral> Fetch(std::string_view fmspc, std::string_view ca_type);

  // GET /sgx/certification/v4/pckcert with the API key. Query parameters as PCS/PCCS name them,
  // e.g. encrypted_ppid, cpusvn, pcesvn, pceid (and qeid for a PCCS), values as given (hex).
  Result<PckCertResponse> FetchPckCert(
      const std::vector<std::pair<std::string, std::string>>& query);

  const std::string& base_url() const { return base_url_; }  // normalized

 private:
  PcsClient(PcsClientOptions options, std::string base_url, std::shared_ptr<HttpTransport> t)
      : options_(std::move(options)), base_url_(std::move(base_url)), transport_(std::move(t)) {}

  int64_t Now() const;
  Result<HttpResponse> GetWithRetry(const std::string& url, const HttpHeaders& headers,
                                    std::string_view what);
  Result<Collateral> FetchFromNetwork(const std::string& fmspc, const std::string& ca_type);
  Result<Bytes> FetchRootCaCrl();

  PcsClientOptions options_;
  std::string base_url_;
  std::shared_ptr<HttpTransport> transport_;
};

// "https://host[:port]" with a trailing slash and a trailing "/sgx|tdx/certification/v4" removed.
// Only http and https are accepted; a path prefix is kept (PCCS behind a reverse proxy).
Result<std::string> NormalizePcsBaseUrl(std::string_view url);

// The earliest nextUpdate of TCB Info, QE Identity, PCK CRL and root CA CRL. A CRL without
// nextUpdate promises nothing, so it makes the collateral due at once (INT64_MIN).
Result<int64_t> CollateralNextUpdate(const Collateral& c);

// The cache entry name for a key: "<fmspc lower-case>-<ca type>".
std::string CacheKey(std::string_view fmspc, std::string_view ca_type);

// What PCS means by an HTTP status, for error messages ("no TCB info for this FMSPC").
std::string PcsStatusMeaning(int status, std::string_view what);

}  // namespace tdxvirt::verify
