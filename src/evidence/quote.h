// TD quotes, versions 4 and 5 (Intel DCAP sgx_quote_4.h / sgx_quote_5.h), with ECDSA-P256
// signature data and QE report certification data (type 6) nesting the PCK chain (type 5).
//
// Parsing follows the length fields and bounds every read. Bytes after the signature data are kept
// as `trailing` (real quotes are padded); everything else must fit exactly, so SerializeQuote
// reproduces the input byte for byte.
#pragma once

#include <string_view>

#include "common/result.h"
#include "evidence/td_types.h"

namespace tdxvirt::evidence {

inline constexpr uint16_t kAttKeyTypeEcdsaP256 = 2;
inline constexpr uint32_t kTeeTypeTdx = 0x81;
inline constexpr size_t kQuoteHeaderSize = 48;
inline constexpr size_t kTdQuoteBody10Size = 584;
inline constexpr size_t kTdQuoteBody15Size = 648;
inline constexpr size_t kEnclaveReportSize = 384;
inline constexpr uint16_t kCertDataPckCertChain = 5;
inline constexpr uint16_t kCertDataQeReport = 6;
// Intel's quoting enclave vendor ID 939A7233-F79C-4CA9-940A-0DB3957F0607.
inline constexpr ByteArray<16> kIntelQeVendorId = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                                   0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

// The v5 body descriptor's type; a v4 quote always carries a TD 1.0 body.
enum class BodyType : uint16_t { kSgxEnclave = 1, kTd10 = 2, kTd15 = 3 };

struct QuoteHeader {
  uint16_t version = 4;
  uint16_t att_key_type = kAttKeyTypeEcdsaP256;
  uint32_t tee_type = kTeeTypeTdx;
  ByteArray<4> reserved{};  // zero in every TDX quote seen; not QE/PCE SVNs for TDX
  ByteArray<16> qe_vendor_id = kIntelQeVendorId;
  ByteArray<20> user_data{};  // first 16 bytes: QE ID
  bool operator==(const QuoteHeader&) const = default;
};

// sgx_report2_body_t (TD 1.0) and sgx_report2_body_v1_5_t (TD 1.5).
struct TdQuoteBody {
  BodyType type = BodyType::kTd10;
  TeeTcbSvn tee_tcb_svn{};
  Sha384Digest mr_seam{};
  Sha384Digest mr_signer_seam{};
  ByteArray<8> seam_attributes{};
  TdMeasurements td;
  ReportData report_data{};
  TeeTcbSvn tee_tcb_svn2{};      // TD 1.5 only
  Sha384Digest mr_servicetd{};   // TD 1.5 only

  size_t size() const { return type == BodyType::kTd15 ? kTdQuoteBody15Size : kTdQuoteBody10Size; }
  bool operator==(const TdQuoteBody&) const = default;
};

// sgx_report_body_t: the quoting enclave's SGX report.
struct EnclaveReportBody {
  ByteArray<16> cpu_svn{};
  uint32_t misc_select = 0;
  ByteArray<12> reserved1{};
  ByteArray<16> isv_ext_prod_id{};
  ByteArray<16> attributes{};
  ByteArray<32> mr_enclave{};
  ByteArray<32> reserved2{};
  ByteArray<32> mr_signer{};
  ByteArray<32> reserved3{};
  ByteArray<64> config_id{};
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 0;
  uint16_t config_svn = 0;
  ByteArray<42> reserved4{};
  ByteArray<16> isv_family_id{};
  ByteArray<64> report_data{};
  bool operator==(const EnclaveReportBody&) const = default;
};

struct CertificationData {
  uint16_t type = kCertDataPckCertChain;
  Bytes data;
  bool operator==(const CertificationData&) const = default;
};

// Certification data type 6.
struct QeReportCertificationData {
  EnclaveReportBody qe_report;
  ByteArray<64> qe_report_signature{};  // r||s, by the PCK key over the 384-byte QE report
  Bytes qe_auth_data;
  CertificationData certification_data;  // type 5: the PCK chain, PEM
  bool operator==(const QeReportCertificationData&) const = default;
};

struct QuoteSignatureData {
  ByteArray<64> signature{};        // r||s, by the attestation key over the signed region
  ByteArray<64> attestation_key{};  // P-256 x||y
  QeReportCertificationData qe_certification;

  // signature_data_len: the serialized size of this structure.
  size_t size() const {
    return 64 + 64 + 2 + 4 + kEnclaveReportSize + 64 + 2 + qe_certification.qe_auth_data.size() +
           2 + 4 + qe_certification.certification_data.data.size();
  }
  bool operator==(const QuoteSignatureData&) const = default;
};

struct Quote {
  QuoteHeader header;
  TdQuoteBody body;
  QuoteSignatureData signature_data;
  Bytes trailing;  // after signature_data; ignored by verification

  // Bytes covered by the quote signature: header, (v5) body descriptor, body.
  size_t signed_size() const {
    return kQuoteHeaderSize + (header.version == 5 ? 6 : 0) + body.size();
  }
  bool operator==(const Quote&) const = default;
};

Result<Quote> ParseQuote(ByteSpan data);
Bytes SerializeQuote(const Quote& quote);
Bytes SerializeEnclaveReportBody(const EnclaveReportBody& report);
Result<EnclaveReportBody> ParseEnclaveReportBody(ByteSpan data);

// The PEM text of the PCK chain (leaf, intermediate CA, root) from the nested type-5 data.
Result<std::string_view> PckCertChainPem(const Quote& quote);

}  // namespace tdxvirt::evidence
