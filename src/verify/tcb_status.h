// The TCB checks of DCAP quote verification, as Intel's current QVL does them (QVL step numbers in
// brackets): QE identity match [4.1.2.4.15], TDX module identity [4.1.2.4.11] and TCB status
// [4.1.2.4.17: TcbLevelCheck, TdxModuleCheck, TDRelaunchCheck]. Pure functions over parsed
// structs: the caller has already verified signatures, chains, FMSPC/PCE-ID and validity windows.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "evidence/quote.h"
#include "verify/tcb_info.h"

namespace tdxvirt::verify {

// mrsigner, isvprodid, (misc_select & miscselectMask) == miscselect and
// (attributes & attributesMask) == attributes bytewise. Checked in QVL's order (miscselect,
// attributes, mrsigner, isvprodid); the error names the field and both values. A mismatch is
// QVL's STATUS_QE_IDENTITY_MISMATCH: the quote is rejected, no TCB status applies.
Status MatchQeIdentity(const EnclaveIdentity& identity,
                       const evidence::EnclaveReportBody& qe_report);

// The QE's TCB: the first level (in identity order) whose isvsvn <= the QE's ISVSVN.
struct QeTcb {
  TcbStatus status = TcbStatus::kTcbNotSupported;  // the level's status; kTcbNotSupported if none
  std::optional<QeTcbLevel> level;                 // the matched level (date, advisories)
};
QeTcb QeTcbStatus(const EnclaveIdentity& identity, uint16_t qe_isv_svn);

// MRSIGNERSEAM and SEAMATTRIBUTES against "tdxModule", or, when TEE_TCB_SVN[1] (the module's major
// version) is > 0, against the "tdxModuleIdentities" entry "TDX_%02X" of it (id compared
// case-insensitively). SEAMATTRIBUTES follows current QVL (QuoteVerifier.cpp @0e3dfb18): every
// byte must be zero AND equal the expected attributes; attributesMask is not applied (older QVL
// and go-tdx-guest mask first). Assumes a v4/v5 quote, the only TD quotes evidence::ParseQuote
// accepts. Errors: QVL's STATUS_TDX_MODULE_MISMATCH, or STATUS_TCB_INFO_MISMATCH when a TCB Info
// without module identities meets a quote with TEE_TCB_SVN[1] > 0.
Status MatchTdxModule(const TcbInfo& tcb_info, const evidence::TdQuoteBody& body);

struct TcbInput {
  std::array<uint8_t, 16> pck_components{};  // PCK leaf SGX TCB component SVNs
  uint16_t pck_pce_svn = 0;
  const evidence::TdQuoteBody* body = nullptr;  // TEE_TCB_SVN(2), body type
  uint16_t qe_isv_svn = 0;                      // the QE report's ISVSVN
  int quote_version = 4;
};

struct TcbResult {
  TcbStatus status = TcbStatus::kTcbNotSupported;           // the verdict
  TcbStatus platform_status = TcbStatus::kTcbNotSupported;  // matched TDX TCB level's status
  std::optional<TcbStatus> module_status;  // none when TEE_TCB_SVN[1] == 0 (no module levels apply)
  TcbStatus qe_status = TcbStatus::kTcbNotSupported;  // matched QE level's status, as written
  std::string tcb_date;  // tcbDate of the matched TDX level (ITA's attester_tcb_date); "" if none
  std::vector<std::string> advisory_ids;  // TDX level + module level + QE level: sorted, unique
  std::string detail;  // which levels matched (numbered as in TcbInfo::tcb_levels), or why none did
};

// Current QVL's checkTcbLevel for a TD quote (reference doc section 2.6):
//  1. Walk tcbInfo levels (descending): the first whose SGX components and PCESVN the PCK meets is
//     the SGX level; keep walking those until one whose TDX components TEE_TCB_SVN meets (indexes
//     0 and 1 skipped when TEE_TCB_SVN[1] > 0: they are the module's SVN and major version, judged
//     by the module identity instead). Neither found -> kTcbNotSupported.
//  2. Module: quote v4+ with TEE_TCB_SVN[1] == 0 -> no module status. Else identity "TDX_%02X"
//     (missing -> kTdxModuleMismatch) and its first level with isvsvn <= TEE_TCB_SVN[0] (none ->
//     kTcbNotSupported). Both failures end evaluation with that status.
//  3. Converge level with module: module OutOfDate turns UpToDate/SWHardeningNeeded into
//     OutOfDate and the two Configuration* into OutOfDateConfigurationNeeded; module Revoked ->
//     Revoked. Revoked ends evaluation.
//  4. TD 1.5 body: checkForRelaunch with TEE_TCB_SVN2 may turn an OutOfDate* caused by an
//     out-of-date module into TDRelaunchAdvised[ConfigurationNeeded].
//  5. Converge with the QE: like step 3, QVL treating every QE status other than UpToDate and
//     Revoked as OutOfDate; no QE level -> kTcbNotSupported.
// QVL would report STATUS_TCB_UNRECOGNIZED_STATUS when step 4 itself yields a module mismatch (its
// final switch lacks that case); we report kTdxModuleMismatch.
TcbResult EvaluateTcb(const TcbInfo& tcb_info, const EnclaveIdentity& qe_identity,
                      const TcbInput& input);

}  // namespace tdxvirt::verify
