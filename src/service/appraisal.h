// The appraisal behind Intel Trust Authority's /appraisal/v{1,2}/{nonce,attest}: verifier nonces,
// attest request parsing, the REPORTDATA binding, quote verification, policies and token claims.
// Pure over bytes and structs except for the collateral source; the HTTP edge is server.h.
//
// Order of checks in Attest (cheap and request-local first, so garbage never costs a verification):
//   body shape -> token_signing_alg -> policy ids known -> quote parses -> nonce (MAC, age, then
//   reserved in the replay store: a forged or expired nonce never costs a store entry) ->
//   REPORTDATA == SHA-512(nonce.val || nonce.iat || runtime_data) -> DCAP verification against
//   cached collateral -> event_log (parsed, decoded, replayed against the verified RTMRs;
//   measured_boot.h) -> policies -> signed token. A 5xx on the way releases the reservation.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/result.h"
#include "evidence/quote.h"
#include "replay/replay_store.h"
#include "service/jose.h"
#include "service/measured_boot.h"
#include "service/policy.h"
#include "verify/pcs_client.h"
#include "verify/verifier.h"

namespace tdxvirt::service {

// {val, iat, signature} as Intel's VerifierNonce (bytes; base64 in JSON).
struct VerifierNonce {
  Bytes val;        // 32 random bytes
  Bytes iat;        // the issue time, RFC 3339 text ("2026-11-28T08:00:00Z")
  Bytes signature;  // HMAC-SHA-384(nonce key, val || iat)
};
nlohmann::json NonceToJson(const VerifierNonce& n);
Result<VerifierNonce> NonceFromJson(const nlohmann::json& j, std::string_view field);

// REPORTDATA the Intel client binds: SHA-512(val || iat || runtime_data); without a nonce,
// SHA-512(runtime_data); with neither, zeros.
evidence::ReportData BindReportData(const VerifierNonce* nonce, ByteSpan runtime_data);

// Collateral ready for verification, with the hashes the token's tdx_collateral claim reports.
struct AppraisalCollateral {
  std::shared_ptr<const verify::PreparedCollateral> prepared;
  nlohmann::json hashes;  // CollateralHashes(); quotehash is added per quote
};

// tdx_collateral as Intel writes it: SHA-256, 64 lower-case hex, of
//   tcbinfocerthash, qeidcerthash  the issuer chain PEM text (TCB Signing cert + root), as PCS
//                                  sends it URL-decoded;
//   tcbinfocrlhash, qeidcrlhash    the Root CA CRL as lower-case hex text (PCS/PCCS's form);
//   tcbinfohash, qeidhash          the signed tcbInfo / enclaveIdentity text.
// The first two rules reproduce the ITA pilot token's values from the PCS collateral current then
// (testdata/quotes/tdx-v4-spr-e4-pcs-2023: its chain and root CRL); the tcbinfo/qeid inputs are
// our choice (no matching artefact exists), and quotehash is SHA-256 of the quote as received.
nlohmann::json CollateralHashes(const verify::Collateral& c);

// Where prepared collateral for a quote comes from.
class CollateralSource {
 public:
  virtual ~CollateralSource() = default;
  virtual Result<AppraisalCollateral> For(const evidence::Quote& quote, int64_t now) = 0;
  // Not OK when what this source holds would fail every verification at `now` (a wrong trust
  // anchor, broken or expired collateral): readiness reports it instead of answering 403s.
  virtual Status Usable(int64_t now, bool check_crl) const = 0;
};
// One collateral bundle or directory, prepared once (offline mode).
Result<std::unique_ptr<CollateralSource>> NewFileCollateralSource(const std::string& path,
                                                                  const verify::TrustedRoot& root);
// Intel PCS or a PCCS by the quote's FMSPC and PCK CA type, prepared per entry and kept until the
// earliest nextUpdate.
Result<std::unique_ptr<CollateralSource>> NewPcsCollateralSource(verify::PcsClientOptions options,
                                                                 const verify::TrustedRoot& root);

struct AppraisalOptions {
  std::string issuer = "tdxvirt Attestation Service";
  std::string jku;                     // "https://host/certs", put in token headers when set
  int64_t token_lifetime_seconds = 300;
  int64_t nonce_lifetime_seconds = 120;
  int64_t clock_skew_seconds = 60;     // a nonce may be this far in the future
  bool require_nonce = false;          // true: refuse requests without verifier_nonce
  bool check_crl = true;
  std::string instance_id;             // verifier_instance_ids; default a random UUID
  size_t max_replay_entries = 1 << 20; // used nonces remembered (until they expire), in memory
  // Where used nonces are remembered; null: in this process (max_replay_entries). Shared (Redis)
  // when replicas share the nonce key or a restart must not forget (replay/replay_store.h).
  std::shared_ptr<replay::ReplayStore> replay_store;
};

// An appraisal outcome: either a token or an HTTP status with a message naming the field.
struct AttestOutcome {
  int status = 200;
  std::string message;           // error text for status != 200
  std::string outcome;           // metrics label: "ok", "bad_request", "nonce", "reportdata",
                                 // "quote", "policy", "collateral", "replay_store", "internal"
  std::string token;
  double verify_seconds = 0;     // time spent in DCAP verification
  nlohmann::json claims;
};

class Appraiser {
 public:
  // All references must outlive the appraiser.
  Appraiser(const SigningKey& key, const verify::QuoteVerifier& verifier, CollateralSource& collateral,
            PolicyStore* policies, AppraisalOptions options);

  VerifierNonce IssueNonce(int64_t now) const;
  // Checks MAC and age (not replay).
  Status CheckNonce(const VerifierNonce& n, int64_t now) const;

  // `api_version` 1 (flat claims) or 2 (claims nested under "tdx").
  // A nonce is used up by a token, or by a refusal a retry cannot change (4xx). After a 5xx
  // (collateral or replay store unavailable, signing failed) it is released again, so that
  // Intel's clients, which resend the identical body on 500/503/504 (docs/service.md "Retries"),
  // succeed on the retry. Concurrent requests with one nonce still get one token: the nonce is
  // reserved before the work and released only after the failure.
  AttestOutcome Attest(std::string_view body, int api_version, int64_t now);

  const AppraisalOptions& options() const { return options_; }
  // For metrics (errors()) and readiness.
  replay::ReplayStore& replay_store() { return *options_.replay_store; }

 private:
  // Attest, with `reserved` set to the nonce value it marked used in the replay store.
  AttestOutcome AttestOnce(std::string_view body, int api_version, int64_t now, Bytes& reserved);

  const SigningKey& key_;
  const verify::QuoteVerifier& verifier_;
  CollateralSource& collateral_;
  PolicyStore* policies_;
  AppraisalOptions options_;
};

// The parsed attest request (flat or nested "tdx" form).
struct AttestRequest {
  Bytes quote;
  Bytes runtime_data;
  Bytes user_data;
  Bytes event_log;  // the TD's CCEL data; empty when not sent
  std::string evidence_prefix;  // "tdx." in the nested form: how errors name evidence fields
  std::optional<VerifierNonce> verifier_nonce;
  std::vector<std::string> policy_ids;  // lower-case UUIDs
  bool policy_must_match = false;
  JwsAlg alg = JwsAlg::kPS384;
};
inline constexpr size_t kMaxQuoteSize = 64 << 10;
// pycli's POLICY_IDS_MAX_LEN (ita-ecosystem.md §4).
inline constexpr size_t kMaxPolicyIds = 10;
// Every optional field may be JSON null, meaning absent; policy_ids must be UUIDs (either case,
// kept in lower case), at most kMaxPolicyIds. Base64 fields take the standard or the URL-safe
// alphabet (the C client sends the latter), padded.
Result<AttestRequest> ParseAttestRequest(std::string_view body);
Result<Bytes> DecodeEitherBase64(std::string_view text, const std::string& field);

}  // namespace tdxvirt::service
