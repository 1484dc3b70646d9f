// The in-TD attestation client, modelled on Intel's trustauthority-cli / go-connector: the same
// config keys, endpoints (v2), headers and request bodies, so it works against this service and
// against Intel Trust Authority.
//
// Token collection (CollectToken): nonce -> REPORTDATA = SHA-512(val || iat || runtime_data), with
// the DER public key as runtime_data -> quote from a QuoteProvider -> POST attest -> token.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/result.h"
#include "guest/quote_provider.h"
#include "service/appraisal.h"
#include "service/token_chain.h"

namespace tdxvirt::service {

// One HTTP(S) request the way every tdxvirt client sends it (cpp-httplib underneath): connect,
// read and write timeouts; TLS verified against ca_file or the system CAs; and an answer bounded
// while it arrives (at most `limit` bytes, complete within `timeout`), so a hostile server can hold
// neither memory nor the caller.
struct HttpExchange {
  std::string origin, path, method, body;  // origin: scheme://host[:port]
  std::vector<std::pair<std::string, std::string>> headers;
  size_t limit = 0;
  std::chrono::seconds timeout{30};
  std::string ca_file;
};
struct HttpAnswer {
  int status = 0;
  std::string body, request_id, trace_id, retry_after;
};
// Why no answer came: it matters for retries (only kOther may heal in seconds) and for hints.
enum class HttpFailure { kNone, kConnect, kTls, kLimit, kOther };
Result<HttpAnswer> SendBounded(const HttpExchange& exchange, HttpFailure* failure = nullptr);

// An http(s) base URL split into origin and path prefix (no trailing '/'); plain http only with
// allow_http. `field` names the URL in errors ("--kbs", "trustauthority_url").
struct HttpOrigin {
  std::string origin, prefix;
};
Result<HttpOrigin> SplitHttpUrl(const std::string& url, const std::string& field, bool allow_http);

// Retries as Intel's Go connector (go-retryablehttp with its policy): 500, 503 and 504 answers and
// transport failures other than "cannot connect" are tried again, 1 + max_retries attempts in all,
// waiting wait_min * 2^n (capped at wait_max) between them: 2 s, then 4 s. A 503 whose Retry-After
// is whole seconds waits that long instead (capped at the client timeout, so a hostile answer cannot
// park the client). The same request (body, nonce, request-id) is sent again.
struct RetryPolicy {
  int max_retries = 2;
  std::chrono::milliseconds wait_min{2000}, wait_max{10000};
  // How to wait; tests record the waits instead of sleeping. Default: sleep.
  std::function<void(std::chrono::milliseconds)> sleep;
};

struct ClientConfig {
  std::string trustauthority_url;      // JWKS at {url}/certs (verify)
  std::string trustauthority_api_url;  // appraisal API (token, evidence)
  std::string trustauthority_api_key;  // x-api-key (a secret: never logged)
  std::string cloud_provider;          // accepted for compatibility; only "" is supported
  // Not config keys (Intel's file has none of these): the CLI's --ca-file, --allow-http, --timeout.
  std::string ca_file;                 // PEM bundle to trust instead of the system CAs
  bool allow_http = false;             // plain http URLs (loopback tests); Intel requires https
  std::chrono::seconds timeout{30};
  RetryPolicy retry;
};
// Intel's config file (tdx-cli cmd/config.go): cloud_provider, trustauthority_url,
// trustauthority_api_url, trustauthority_api_key, tpm{ak_handle, ek_handle, owner_auth,
// pcr_selections, ak_certificate}, nvgpu{nras_apikey}. As Go's decoder: keys match without regard
// to case, null leaves a field empty, unknown keys (also inside tpm/nvgpu) are refused. tpm and
// nvgpu are checked and ignored (only TDX evidence is collected); a non-empty cloud_provider is
// refused (Azure is not supported).
Result<ClientConfig> ParseClientConfig(std::string_view json_text);

// A random (version 4) UUID, as tdx-cli's request-id default.
std::string RandomUuid();
// Intel's request-id rule (^[a-zA-Z0-9_ /.-]{1,128}$), with tdx-cli's message.
Status CheckRequestId(std::string_view id);

// The ids of the service's answer, printed by the CLI as tdx-cli does ("Trace Id: ...").
struct ResponseIds {
  bool answered = false;  // an HTTP answer arrived (ids may still be empty)
  std::string trace_id, request_id;
};

struct TokenRequestOptions {
  Bytes runtime_data;                  // bound into REPORTDATA (e.g. DER public key)
  Bytes user_data;                     // sent, not bound (Intel: Azure user data)
  std::vector<std::string> policy_ids;
  bool policy_must_match = false;
  std::string token_signing_alg;       // "" (service default PS384), "PS384", "RS256"
  bool no_verifier_nonce = false;
  std::string request_id;              // attest request-id header ("" = none)
  Bytes event_log;                     // the TD's CCEL event log (--ccel), sent as tdx.event_log
};

// `--ccel`, as Intel's go-tdx GetCcel (ccel.go): the CCEL ACPI table and its log area, from
// /sys/firmware/acpi/tables/CCEL and .../data/CCEL. Checked as Intel checks them (a 56-byte table
// with signature CCEL and its own length, CC type 2 = TDX, subtype 0, data at least LAML long) and
// then cut where the log ends, so the fill is not sent. Intel's cut keeps the first 4 fill bytes
// (it stops after reading the 0xFFFFFFFF end marker as an MR index); ours ends at the last event,
// as Google's agent sends it. Unlike Intel's walker (which refuses MR index 4), RTMR3 events are
// accepted, as this service accepts them.
inline constexpr char kAcpiTablesDir[] = "/sys/firmware/acpi/tables";
Result<Bytes> EventLogForEvidence(ByteSpan table, ByteSpan data);
// Reads DIR/CCEL and DIR/data/CCEL (bounded) and returns EventLogForEvidence of them.
Result<Bytes> ReadCcelEventLog(const std::string& acpi_tables_dir = kAcpiTablesDir);

class TrustAuthorityClient {
 public:
  static Result<TrustAuthorityClient> Create(ClientConfig config);

  struct Response {
    int status = 0;
    std::string body;
    std::string request_id, trace_id;
    std::string gave_up;  // " (gave up after 3 attempts)" when retries ran out, else ""
  };
  // GET {api_url}/appraisal/v2/nonce (body limit 4 KiB, as Intel's client).
  Result<VerifierNonce> GetNonce(const std::string& request_id = "") const;
  // POST {api_url}/appraisal/v2/attest with `evidence` (limit 64 KiB); returns the token. `ids`
  // gets the trace-id and request-id of the (last) answer, also when it is an error.
  Result<std::string> Attest(const nlohmann::json& evidence, const std::string& request_id = "",
                             ResponseIds* ids = nullptr) const;
  // GET {url}/certs (limit 64 KiB).
  Result<std::string> GetCerts() const;
  // The v1 API as Intel's KBS calls it (go-connector v1.1.0): GET {api_url}/appraisal/v1/nonce and
  // POST {api_url}/appraisal/v1/attest with the flat body {quote, verifier_nonce, runtime_data,
  // policy_ids, event_log}. The answer is returned whatever its status, so that a broker can tell
  // the service's refusal of the evidence (4xx) from its failure (5xx; transport errors are the
  // Result's error).
  Result<Response> GetNonceV1(const std::string& request_id = "") const;
  Result<Response> AttestV1(const nlohmann::json& body, const std::string& request_id = "") const;

  const ClientConfig& config() const { return config_; }

 private:
  explicit TrustAuthorityClient(ClientConfig c) : config_(std::move(c)) {}
  Result<Response> Do(const std::string& base, const std::string& method, const std::string& path,
                      const std::string& body, size_t limit, const std::string& request_id,
                      bool api_key) const;
  ClientConfig config_;
};

// The "message" of the service's {"code","message"} error body, else its first 200 bytes.
std::string ServiceErrorMessage(const std::string& body);

// The composite /appraisal/v2/attest body Intel's CLI `evidence` prints.
nlohmann::json BuildEvidence(ByteSpan quote, const VerifierNonce* nonce,
                             const TokenRequestOptions& options);

// nonce (unless no_verifier_nonce) -> REPORTDATA -> quote -> evidence. As Intel's evidence
// builder, the nonce request carries its own fresh request-id, not options.request_id.
Result<nlohmann::json> CollectEvidence(const TrustAuthorityClient& client, guest::QuoteProvider& provider,
                                       const TokenRequestOptions& options);
// CollectEvidence -> attest -> the token (`ids` as in Attest).
Result<std::string> CollectToken(const TrustAuthorityClient& client, guest::QuoteProvider& provider,
                                 const TokenRequestOptions& options, ResponseIds* ids = nullptr);

// CRLs over HTTP(S) for the token-signing chain check, with the client's retries, a size limit and
// a deadline per fetch. With a cache directory, a CRL is kept as <dir>/<hex SHA-256 of the URL>.der
// and reused while its nextUpdate is after `now`; only bytes that parse as a DER CRL are cached,
// and a cached copy is checked like a fetched one (a bad one is refused naming the file).
struct CrlFetchOptions {
  std::string cache_dir;         // "" = no cache
  int64_t now = 0;               // for reusing cached CRLs
  size_t max_size = 1 << 20;
  std::chrono::seconds deadline{30};
  std::string ca_file;           // for https CDPs; default the system CAs
  RetryPolicy retry;
};
class HttpCrlFetcher : public CrlFetcher {
 public:
  explicit HttpCrlFetcher(CrlFetchOptions options) : options_(std::move(options)) {}
  Result<FetchedCrl> Fetch(const std::string& url) override;

 private:
  CrlFetchOptions options_;
};
// The default cache directory: $XDG_CACHE_HOME/tdxvirt/crl, else $HOME/.cache/tdxvirt/crl, else "".
std::string DefaultCrlCacheDir();

// `attest create-key-pair` / `attest decrypt`, in the forms Intel's go-tdx uses: an RSA key whose
// private half is PKCS#1 (Intel labels that PEM "PRIVATE KEY"; we write the standard "RSA PRIVATE
// KEY" label, which Intel's decrypt reads as well since it ignores the label), and RSA-OAEP with
// SHA-256 (MGF1 SHA-256, empty label).
Result<std::string> PrivateKeyPemPkcs1(std::string_view any_private_key_pem);
// The first PEM block of any label holding a PKCS#1 or PKCS#8 RSA private key (Intel's form, ours,
// openssl's), or the same as DER.
Result<ossl::PkeyPtr> ParseRsaPrivateKey(ByteSpan pem_or_der);
Result<Bytes> DecryptRsaOaepSha256(EVP_PKEY* key, ByteSpan ciphertext);
// Go's fmt.Println of a []byte without the newline: "[1 2 3]" (tdx-cli decrypt's output).
std::string GoByteList(ByteSpan bytes);

}  // namespace tdxvirt::service
