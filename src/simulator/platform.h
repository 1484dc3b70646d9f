// A simulated TDX platform: the Intel PKI stand-in (root CA, PCK Platform CA, PCK certificate with
// SGX extensions, TCB Signing certificate), signed collateral in Intel's formats (TCB Info v3, TD_QE
// identity, CRLs), the quoting enclave's attestation key and the platform's report MAC key.
//
// Its evidence is byte-for-byte what hardware produces, signed by a root the verifier trusts only
// when told to (--root). The TCB scenario decides which TCB level the platform's SVNs match, so
// tests get UpToDate, OutOfDate and Revoked platforms from the same code path.
#pragma once

#include <optional>
#include <string>

#include "common/openssl.h"
#include "evidence/pck_cert.h"
#include "evidence/quote.h"
#include "evidence/td_types.h"
#include "verify/collateral.h"

namespace tdxvirt::simulator {

enum class TcbScenario { kUpToDate, kOutOfDate, kRevoked };
Result<TcbScenario> ParseTcbScenario(std::string_view name);  // "uptodate", "outofdate", "revoked"
std::string_view TcbScenarioName(TcbScenario s);

// Common names: each contains the fragment the verifier requires of Intel's ("SGX PCK Certificate",
// "SGX PCK Platform CA", "SGX TCB Signing") while saying plainly that it is simulated.
inline constexpr char kSimRootCn[] = "tdxvirt Simulated SGX Root CA";
inline constexpr char kSimPckCaCn[] = "tdxvirt Simulated SGX PCK Platform CA";
inline constexpr char kSimPckCn[] = "tdxvirt Simulated SGX PCK Certificate";
inline constexpr char kSimTcbSigningCn[] = "tdxvirt Simulated SGX TCB Signing";
inline constexpr char kSimPckProcessorCaCn[] = "tdxvirt Simulated SGX PCK Processor CA";

// What a forged or misissued evidence and collateral set would carry, one refusal of the verifier
// each: the verifier's tests use them to prove every check (docs/verification.md). All off by
// default; `tdxvirt sim init` never sets them.
struct PlatformFaults {
  ByteArray<16> qe_vendor_id = evidence::kIntelQeVendorId;  // the QE vendor ID quotes carry
  std::string pck_common_name = kSimPckCn;                  // subject CN of the PCK leaf
  std::string pck_ca_common_name = kSimPckCaCn;             // subject CN of the PCK CA
  std::optional<ByteArray<2>> tcb_info_pce_id;  // TCB Info's pceId; default: the platform's
  bool tcb_signing_revoked = false;  // the root CA CRL lists the TCB Signing certificate
  bool pck_ca_revoked = false;       // the root CA CRL lists the PCK Platform CA
  bool pck_crl_signed_by_root = false;  // the PCK CRL names the PCK CA as issuer, the root signs it
  std::string pck_crl_issuer_cn;  // non-empty: the PCK CA signs a PCK CRL naming this issuer CN
  bool pck_crl_from_processor_ca = false;  // PCK CRL and its issuer chain from a PCK Processor CA
};

struct PlatformConfig {
  ByteArray<6> fmspc = {0x00, 0xa0, 0x6f, 0x00, 0x00, 0x00};
  ByteArray<2> pce_id{};
  std::array<uint8_t, 16> cpu_svn_components = {3, 3, 2, 2, 4, 1, 0, 5};
  uint16_t pce_svn = 11;
  evidence::TeeTcbSvn tee_tcb_svn = {6, 1, 3};   // module minor SVN 6, major version 1, microcode 3
  evidence::TeeTcbSvn tee_tcb_svn2 = {6, 1, 3};  // TD 1.5 reports
  uint16_t qe_isv_svn = 4;
  TcbScenario scenario = TcbScenario::kUpToDate;
  int64_t issued_at = 0;           // collateral issueDate / CRL thisUpdate (default: creation time)
  int64_t collateral_days = 30;    // nextUpdate = issued_at + this
  bool pck_revoked = false;        // list the PCK certificate on the PCK CRL
  PlatformFaults faults;           // Save/Load keep qe_vendor_id; the rest is in certs and collateral
};

// The QE's measurement in the simulated TD_QE identity.
ByteArray<32> SimQeMrSigner();
// MRSEAM of the simulated TDX module.
evidence::Sha384Digest SimMrSeam();

class SimPlatform {
 public:
  // New keys, certificates and collateral for `config`.
  static Result<SimPlatform> Create(const PlatformConfig& config);
  // Writes the platform to `dir` (created 0700 if missing): keys 0600, certificates, collateral
  // bundle (collateral.json), the root (root_ca.pem) and platform.json. The directory is replaced
  // as a whole (staged beside it, then swapped in), so an interrupted Save leaves the old platform
  // or the new one; an existing `dir` holding other files is refused rather than lost.
  Status Save(const std::string& dir) const;
  static Result<SimPlatform> Load(const std::string& dir);

  const PlatformConfig& config() const { return config_; }
  const verify::Collateral& collateral() const { return collateral_; }
  std::string root_pem() const;
  std::string pck_chain_pem() const;  // leaf, CA, root: what the QE puts in quotes
  EVP_PKEY* pck_key() const { return pck_key_.get(); }
  EVP_PKEY* attestation_key() const { return attestation_key_.get(); }
  const ByteArray<32>& report_mac_key() const { return report_mac_key_; }
  const ByteArray<16>& qe_id() const { return qe_id_; }
  // A signature by the TCB Signing key over `body`, as a signer that issues an edited or
  // malformed TCB Info or QE Identity would make it.
  Result<ByteArray<64>> SignAsTcbSigner(std::string_view body) const;
  // The PCK CA certificate issued again by the root (same name and key, a new serial), as Intel
  // would after revoking the old one; PEM.
  Result<std::string> ReissuePckCaPem() const;

 private:
  Status BuildCollateral();
  Status WriteFiles(const std::string& dir) const;

  PlatformConfig config_;
  ossl::PkeyPtr root_key_, pck_ca_key_, pck_key_, tcb_signing_key_, attestation_key_;
  ossl::X509Ptr root_, pck_ca_, pck_, tcb_signing_;
  ossl::PkeyPtr processor_ca_key_;  // faults.pck_crl_from_processor_ca only
  ossl::X509Ptr processor_ca_;
  ByteArray<32> report_mac_key_{};
  ByteArray<16> qe_id_{};
  verify::Collateral collateral_;
};

}  // namespace tdxvirt::simulator
