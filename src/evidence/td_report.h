// TDREPORT_STRUCT: the 1024-byte report TDG.MR.REPORT returns inside a TD (what /dev/tdx_guest
// TDX_CMD_GET_REPORT0 hands out and what the QE turns into a quote). Layout: REPORTMACSTRUCT (256),
// TEE_TCB_INFO (239), reserved (17), TDINFO (512). Little-endian throughout.
#pragma once

#include "common/result.h"
#include "evidence/td_types.h"

namespace tdxvirt::evidence {

inline constexpr size_t kTdReportSize = 1024;
inline constexpr uint8_t kReportTypeTdx = 0x81;

struct ReportMacStruct {
  ByteArray<4> report_type{};  // type (0x81 = TDX), subtype, version (0 TDX 1.0, 1 TDX 1.5), reserved
  ByteArray<12> reserved1{};
  ByteArray<16> cpu_svn{};
  Sha384Digest tee_tcb_info_hash{};  // SHA-384 of TEE_TCB_INFO
  Sha384Digest tee_info_hash{};      // SHA-384 of TDINFO
  ReportData report_data{};
  ByteArray<32> reserved2{};
  ByteArray<32> mac{};
  bool operator==(const ReportMacStruct&) const = default;
};

struct TeeTcbInfo {
  ByteArray<8> valid{};
  TeeTcbSvn tee_tcb_svn{};
  Sha384Digest mr_seam{};
  Sha384Digest mr_signer_seam{};
  ByteArray<8> attributes{};  // SEAM attributes
  // TDX 1.5 puts TEE_TCB_SVN2 in the first 16 of these bytes; TDX 1.0 reserves all 111.
  ByteArray<111> reserved{};
  bool operator==(const TeeTcbInfo&) const = default;
};

struct TdInfo {
  TdMeasurements td;
  // TDX 1.5 puts SERVTD_HASH in the first 48 of these bytes; TDX 1.0 reserves all 112.
  ByteArray<112> reserved{};
  bool operator==(const TdInfo&) const = default;
};

struct TdReport {
  ReportMacStruct mac_struct;
  TeeTcbInfo tee_tcb_info;
  ByteArray<17> reserved{};
  TdInfo td_info;

  bool is_td15() const { return mac_struct.report_type[2] >= 1; }
  TeeTcbSvn tee_tcb_svn2() const;
  Sha384Digest servtd_hash() const;
  bool operator==(const TdReport&) const = default;
};

// Parses exactly 1024 bytes. Rejects a report type other than TDX (0x81).
Result<TdReport> ParseTdReport(ByteSpan data);
ByteArray<kTdReportSize> SerializeTdReport(const TdReport& report);

// The serialized TEE_TCB_INFO and TDINFO, whose SHA-384 digests REPORTMACSTRUCT carries.
Bytes SerializeTeeTcbInfo(const TeeTcbInfo& info);
Bytes SerializeTdInfo(const TdInfo& info);

}  // namespace tdxvirt::evidence
