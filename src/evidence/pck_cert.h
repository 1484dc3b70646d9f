// The PCK certificate's SGX extensions (OID 1.2.840.113741.1.13.1): the platform's FMSPC, PCE ID
// and TCB (16 CPUSVN components + PCESVN), which TCB status evaluation compares with TCB Info.
#pragma once

#include <openssl/x509.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "common/openssl.h"
#include "common/result.h"

namespace tdxvirt::evidence {

inline constexpr char kSgxExtensionsOid[] = "1.2.840.113741.1.13.1";

struct PckExtensions {
  ByteArray<16> ppid{};
  std::array<uint8_t, 16> cpu_svn_components{};  // TCB .2.1 - .2.16 (SGX TCB component SVNs)
  uint16_t pce_svn = 0;                          // TCB .2.17
  ByteArray<16> cpu_svn{};                       // TCB .2.18
  ByteArray<2> pce_id{};
  ByteArray<6> fmspc{};
  std::optional<int> sgx_type;  // 0 Standard, 1 Scalable, 2 Scalable with integrity
};

// Reads the SGX extensions with OpenSSL's ASN.1 decoder. Fails, naming the OID, when one of PPID,
// TCB (all 18 entries), PCE-ID or FMSPC is missing or has the wrong type or size.
Result<PckExtensions> ExtractPckExtensions(X509* cert);

// "platform" or "processor" from the issuing CA's common name ("Intel SGX PCK Platform CA"), as PCS
// expects in ?ca=; "" when neither.
std::string PckCaType(X509* pck_leaf);

struct CertificateSummary {
  std::string subject;
  std::string issuer;
  std::string serial;  // lower-case hex
  std::string not_before;
  std::string not_after;
};
CertificateSummary Summarize(X509* cert);

}  // namespace tdxvirt::evidence
