// Intel's TDX TCB Info (v3) and TD QE Identity (v2) JSON, parsed into plain structs.
//
// Input is the exact text of the signed object (the value of "tcbInfo" / "enclaveIdentity"), as
// Collateral keeps it; signatures are checked elsewhere. Every field is type-checked and an error
// names its JSON path and the fix, e.g.
//   "tcbInfo.tcbLevels[2].tcb.sgxtcbcomponents: expected 16 entries, got 15".
// Unknown members are ignored (Intel adds fields); duplicate keys are rejected, because a signed
// document whose meaning depends on which copy a parser keeps is ambiguous.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "common/time.h"

namespace tdxvirt::verify {

// The first seven are the values Intel's JSON carries. The other four are results Intel's QVL
// adds (STATUS_TCB_TD_RELAUNCH_ADVISED[_CONFIGURATION_NEEDED], STATUS_TCB_NOT_SUPPORTED,
// STATUS_TDX_MODULE_MISMATCH); they never appear in Intel's JSON, and we spell them in the same
// CamelCase ("TDRelaunchAdvised", "TDRelaunchAdvisedConfigurationNeeded", "TCBNotSupported",
// "TDXModuleMismatch") so a report can print any status uniformly.
enum class TcbStatus {
  kUpToDate,
  kSWHardeningNeeded,
  kConfigurationNeeded,
  kConfigurationAndSWHardeningNeeded,
  kOutOfDate,
  kOutOfDateConfigurationNeeded,
  kRevoked,
  kTdRelaunchAdvised,
  kTdRelaunchAdvisedConfigurationNeeded,
  kTcbNotSupported,
  kTdxModuleMismatch,
};

std::string_view TcbStatusName(TcbStatus status);
// Any of the eleven names above, exactly (case-sensitive, as Intel's QVL compares them). Which
// statuses a given JSON field may hold is checked by the parsers below.
Result<TcbStatus> ParseTcbStatus(std::string_view name);


// One tcbLevels entry. Only the component SVNs are kept (category/type are informational).
struct TcbLevel {
  std::array<uint8_t, 16> sgx_components{};
  uint16_t pce_svn = 0;
  std::array<uint8_t, 16> tdx_components{};
  std::string tcb_date;  // as written
  int64_t tcb_date_unix = 0;
  TcbStatus status = TcbStatus::kUpToDate;  // one of the seven JSON statuses
  std::vector<std::string> advisory_ids;    // absent in JSON -> empty
};

struct ModuleTcbLevel {
  uint8_t isv_svn = 0;
  std::string tcb_date;
  // UpToDate, OutOfDate or Revoked: the only module statuses QVL accepts
  // (VALID_MODULE_TCB_STATUSES); QVL fails with "unrecognized status" when it meets another, we
  // fail at parse time.
  TcbStatus status = TcbStatus::kUpToDate;
  std::vector<std::string> advisory_ids;
};

struct TdxModuleIdentity {
  std::string id;  // "TDX_01"; empty for TcbInfo::tdx_module
  ByteArray<48> mrsigner{};
  ByteArray<8> attributes{};
  ByteArray<8> attributes_mask{};
  // Sorted by descending isvsvn (QVL keeps a std::set ordered so); duplicate isvsvn is an error.
  std::vector<ModuleTcbLevel> tcb_levels;
};

struct TcbInfo {
  std::string id;  // "TDX"
  int version = 0;
  int64_t issue_date = 0;
  int64_t next_update = 0;
  ByteArray<6> fmspc{};
  ByteArray<2> pce_id{};
  int tcb_type = 0;
  int tcb_evaluation_data_number = 0;
  TdxModuleIdentity tdx_module;                          // "tdxModule": no id, no levels
  std::vector<TdxModuleIdentity> tdx_module_identities;  // optional in JSON: empty when absent
  // Sorted descending exactly as QVL's std::set<TcbLevel, std::greater<>>: by the 16 SGX component
  // SVNs compared lexicographically, then pcesvn, then the 16 TDX component SVNs lexicographically.
  // Levels equal in all three are rejected as duplicates (QVL: "Detected duplicated TCB levels").
  // Intel publishes levels in this order already, so for real data this is JSON order.
  std::vector<TcbLevel> tcb_levels;
};

// Requires id "TDX", version >= 3 (as QVL's and dcap-qvl's checks; v3 is the only one published),
// tcbType 0 (QVL supports no other), a "tdxModule" object and a non-empty "tcbLevels". fmspc and
// the other hex fields may be either case.
Result<TcbInfo> ParseTcbInfo(std::string_view json_text);

struct QeTcbLevel {
  uint16_t isv_svn = 0;
  std::string tcb_date;
  // UpToDate, ConfigurationNeeded, OutOfDate, OutOfDateConfigurationNeeded or Revoked: the
  // statuses QVL's enclave identity parser accepts.
  TcbStatus status = TcbStatus::kUpToDate;
  std::vector<std::string> advisory_ids;
};

struct EnclaveIdentity {
  std::string id;  // "TD_QE"
  int version = 0;
  int64_t issue_date = 0;
  int64_t next_update = 0;
  int tcb_evaluation_data_number = 0;
  // "miscselect" hex holds the 4 bytes in the QE report's byte order: QVL reads both the report
  // field and these bytes as little-endian u32 (its vectorToUint32 is swapBytes(big-endian)), so
  // "01000000" is bit 0. These values compare directly with EnclaveReportBody::misc_select.
  uint32_t miscselect = 0;
  uint32_t miscselect_mask = 0;
  ByteArray<16> attributes{};
  ByteArray<16> attributes_mask{};
  ByteArray<32> mrsigner{};
  uint16_t isv_prod_id = 0;
  // JSON order, as QVL's EnclaveIdentityV2 keeps them (Intel publishes descending isvsvn).
  std::vector<QeTcbLevel> tcb_levels;
};

// Requires id "TD_QE" and version 2 (QVL rejects v1 for TDX). Version 3 is accepted too, as
// dcap-qvl does, since it carries the same fields.
Result<EnclaveIdentity> ParseQeIdentity(std::string_view json_text);

}  // namespace tdxvirt::verify
