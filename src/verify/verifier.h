// DCAP verification of TD quotes (v4, v5) against collateral, as Intel's Quote Verification
// Library does it: PCK chain to a trusted root, CRLs, TCB Info and QE Identity signed by the TCB
// Signing key, QE report signature and binding, quote signature, then the TCB status.
//
// Work that depends on neither the quote nor the time is done once: PreparedCollateral holds
// parsed, chain-verified and signature-checked collateral, and QuoteVerifier caches verified PCK
// chains by their bytes. Per quote there remain two ECDSA verifications (QE report, quote),
// hashing, and comparisons; every time window is checked against the caller's `now`.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "evidence/quote.h"
#include "verify/collateral.h"
#include "verify/tcb_info.h"
#include "verify/trusted_root.h"

namespace tdxvirt::verify {

struct Check {
  std::string name;  // stable identifier, e.g. "quote_signature"
  bool ok = false;
  std::string detail;  // what was checked, or why it failed and what to do
  bool operator==(const Check&) const = default;
};

struct VerificationResult {
  bool verified = false;
  std::optional<TcbStatus> tcb_status;
  std::string tcb_date;  // tcbDate of the matched TCB level
  std::vector<std::string> advisory_ids;
  std::optional<TcbStatus> qe_tcb_status;
  std::optional<TcbStatus> module_tcb_status;
  std::vector<Check> checks;
  std::string error;  // "<check>: <detail>" of the first failed check; "" when verified

  const Check* find(std::string_view name) const;
};

struct VerifyOptions {
  int64_t now = 0;         // Unix seconds: every validity window is judged at this time
  bool check_crl = true;   // false: skip CRL signatures, windows and revocation (--no-crl)
};

class PreparedCollateral {
 public:
  // Never fails: problems become failed checks that every verification with it reports.
  static std::shared_ptr<const PreparedCollateral> Prepare(const Collateral& collateral,
                                                           const TrustedRoot& root);

  struct Window {
    std::string check;  // the check this window belongs to
    std::string what;
    int64_t not_before = 0;
    int64_t not_after = 0;
    bool crl = false;  // skipped with --no-crl
  };
  struct StaticCheck {
    Check check;
    bool crl = false;  // skipped with --no-crl
  };

  const std::vector<StaticCheck>& checks() const { return checks_; }
  const std::vector<Window>& windows() const { return windows_; }
  const std::optional<TcbInfo>& tcb_info() const { return tcb_info_; }
  const std::optional<EnclaveIdentity>& qe_identity() const { return qe_identity_; }
  X509_CRL* pck_crl() const { return pck_crl_.get(); }
  X509_CRL* root_crl() const { return root_crl_.get(); }
  const std::string& root_fingerprint() const { return root_fingerprint_; }
  const std::string& pck_certificate_chain() const { return pck_certificate_chain_; }

 private:
  std::vector<StaticCheck> checks_;
  std::vector<Window> windows_;
  std::optional<TcbInfo> tcb_info_;
  std::optional<EnclaveIdentity> qe_identity_;
  ossl::X509CrlPtr pck_crl_;   // set only when its signature verified
  ossl::X509CrlPtr root_crl_;  // set only when its signature verified
  std::string root_fingerprint_;
  std::string pck_certificate_chain_;
};

// The first static check that failed, or a time window that does not hold `now`: what would fail
// every verification with this collateral, whatever the quote. OK otherwise.
Status CollateralUsable(const PreparedCollateral& collateral, int64_t now, bool check_crl);

class QuoteVerifier {
 public:
  explicit QuoteVerifier(TrustedRoot root) : root_(std::move(root)) {}

  // `raw` is the quote as received (the signed region is taken from it, not re-serialized).
  VerificationResult Verify(ByteSpan raw, const PreparedCollateral& collateral,
                            const VerifyOptions& options) const;

  const TrustedRoot& root() const { return root_; }

  struct PckChain;  // a verified (or rejected) PCK chain, cached by its PEM bytes

 private:
  std::shared_ptr<const PckChain> PckChainFor(std::string_view pem) const;

  TrustedRoot root_;
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, std::shared_ptr<const PckChain>> pck_cache_;
};

nlohmann::ordered_json VerificationResultToJson(const VerificationResult& result);

}  // namespace tdxvirt::verify
