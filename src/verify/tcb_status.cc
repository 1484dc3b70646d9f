#include "verify/tcb_status.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "common/hex.h"

namespace tdxvirt::verify {

namespace {

using evidence::BodyType;


std::string ModuleId(uint8_t major_version) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "TDX_%02X", major_version);
  return buf;
}

// QVL upper-cases the identity's id and compares it with "TDX_%02X".
const TdxModuleIdentity* FindModuleIdentity(const TcbInfo& info, uint8_t major_version) {
  std::string want = ModuleId(major_version);
  for (const auto& m : info.tdx_module_identities) {
    std::string id = m.id;
    std::transform(id.begin(), id.end(), id.begin(),
                   [](unsigned char c) { return char(std::toupper(c)); });
    if (id == want) return &m;
  }
  return nullptr;
}

std::string IdentityIds(const TcbInfo& info) {
  std::string out;
  for (const auto& m : info.tdx_module_identities) out += (out.empty() ? "" : ", ") + m.id;
  return out.empty() ? "none" : out;
}

bool SgxTcbMet(const TcbInput& in, const TcbLevel& level) {
  for (size_t i = 0; i < 16; ++i)
    if (in.pck_components[i] < level.sgx_components[i]) return false;
  return in.pck_pce_svn >= level.pce_svn;
}

// QVL's isTdxTcbHigherOrEqual: with a module major version in TEE_TCB_SVN[1], indexes 0 and 1
// describe the module and are judged by its identity, not by the platform level.
bool TdxTcbMet(const evidence::TeeTcbSvn& svn, const TcbLevel& level) {
  for (size_t i = svn[1] > 0 ? 2 : 0; i < 16; ++i)
    if (svn[i] < level.tdx_components[i]) return false;
  return true;
}

// Why the PCK misses `level` ("sgxtcbcomponents[7] >= 5 (PCK has 3)").
std::string SgxShortfall(const TcbInput& in, const TcbLevel& level) {
  for (size_t i = 0; i < 16; ++i)
    if (in.pck_components[i] < level.sgx_components[i])
      return "sgxtcbcomponents[" + std::to_string(i) +
             "] >= " + std::to_string(level.sgx_components[i]) + " (PCK has " +
             std::to_string(in.pck_components[i]) + ")";
  return "pcesvn >= " + std::to_string(level.pce_svn) + " (PCK has " +
         std::to_string(in.pck_pce_svn) + ")";
}

std::string TdxShortfall(const evidence::TeeTcbSvn& svn, const TcbLevel& level) {
  for (size_t i = svn[1] > 0 ? 2 : 0; i < 16; ++i)
    if (svn[i] < level.tdx_components[i])
      return "tdxtcbcomponents[" + std::to_string(i) +
             "] >= " + std::to_string(level.tdx_components[i]) + " (TEE_TCB_SVN has " +
             std::to_string(svn[i]) + ")";
  return "nothing";
}

// QVL's convergeTcbStatusWithTdxModuleStatus / convergeTcbStatusWithQeTcbStatus share this rule
// for an out-of-date or revoked component.
TcbStatus Converge(TcbStatus level, TcbStatus other) {
  if (other == TcbStatus::kOutOfDate) {
    if (level == TcbStatus::kUpToDate || level == TcbStatus::kSWHardeningNeeded)
      return TcbStatus::kOutOfDate;
    if (level == TcbStatus::kConfigurationNeeded ||
        level == TcbStatus::kConfigurationAndSWHardeningNeeded)
      return TcbStatus::kOutOfDateConfigurationNeeded;
  }
  if (other == TcbStatus::kRevoked) return TcbStatus::kRevoked;
  if (other == TcbStatus::kTcbNotSupported) return TcbStatus::kTcbNotSupported;
  return level;
}

// QVL's EnclaveReportVerifier reports a QE level as OK, Revoked or (anything else) OutOfDate.
TcbStatus QeVerdict(TcbStatus qe_level_status) {
  switch (qe_level_status) {
    case TcbStatus::kUpToDate:
    case TcbStatus::kRevoked:
    case TcbStatus::kTcbNotSupported:
      return qe_level_status;
    default:
      return TcbStatus::kOutOfDate;
  }
}

bool NeedsConfiguration(TcbStatus s) {
  return s == TcbStatus::kConfigurationNeeded || s == TcbStatus::kOutOfDateConfigurationNeeded ||
         s == TcbStatus::kConfigurationAndSWHardeningNeeded ||
         s == TcbStatus::kTdRelaunchAdvisedConfigurationNeeded;
}

// QVL's checkForRelaunch: a TD 1.5 TD whose platform is out of date only because of its TDX module
// may already run on an updated module (TEE_TCB_SVN2, after a TD-preserving update): relaunching
// the TD would bring it up to date.
TcbStatus CheckForRelaunch(const evidence::TeeTcbSvn& svn2, const TcbInfo& info,
                           TcbStatus sgx_status, TcbStatus tdx_status,
                           std::optional<TcbStatus> module_status, TcbStatus qe_verdict,
                           std::string& detail) {
  if (qe_verdict == TcbStatus::kOutOfDate || qe_verdict == TcbStatus::kRevoked ||
      qe_verdict == TcbStatus::kTcbNotSupported)
    return tdx_status;
  if (sgx_status != TcbStatus::kUpToDate && sgx_status != TcbStatus::kSWHardeningNeeded &&
      sgx_status != TcbStatus::kConfigurationNeeded &&
      sgx_status != TcbStatus::kConfigurationAndSWHardeningNeeded)
    return tdx_status;
  if (tdx_status != TcbStatus::kOutOfDate && tdx_status != TcbStatus::kOutOfDateConfigurationNeeded)
    return tdx_status;
  if (module_status != TcbStatus::kOutOfDate) return tdx_status;
  if (info.tcb_levels.empty()) return TcbStatus::kTcbNotSupported;  // the parser forbids this

  const TcbLevel& latest = info.tcb_levels.front();
  uint8_t needed_module_svn = latest.tdx_components[0];
  if (svn2[1] != 0) {
    const TdxModuleIdentity* m2 = FindModuleIdentity(info, svn2[1]);
    if (!m2) {
      detail += "; relaunch check: no module identity " + ModuleId(svn2[1]) +
                " for TEE_TCB_SVN2[1] (has " + IdentityIds(info) + ")";
      return TcbStatus::kTdxModuleMismatch;
    }
    if (m2->tcb_levels.empty()) return TcbStatus::kTcbNotSupported;  // the parser forbids this
    needed_module_svn = m2->tcb_levels.front().isv_svn;
  }
  if (svn2[0] >= needed_module_svn && svn2[2] >= latest.tdx_components[2]) {
    detail += "; TEE_TCB_SVN2 " + ToHex(svn2) + " meets the latest level: relaunch advised";
    return NeedsConfiguration(sgx_status) || NeedsConfiguration(tdx_status)
               ? TcbStatus::kTdRelaunchAdvisedConfigurationNeeded
               : TcbStatus::kTdRelaunchAdvised;
  }
  return tdx_status;
}

void AddAdvisories(std::vector<std::string>& out, const std::vector<std::string>& ids) {
  out.insert(out.end(), ids.begin(), ids.end());
}

}  // namespace

Status MatchQeIdentity(const EnclaveIdentity& identity,
                       const evidence::EnclaveReportBody& qe_report) {
  uint32_t misc = qe_report.misc_select & identity.miscselect_mask;
  if (misc != identity.miscselect)
    return Error{"QE identity mismatch: QE report misc_select " + HexU32(qe_report.misc_select) +
                 " & miscselectMask " + HexU32(identity.miscselect_mask) + " = " + HexU32(misc) +
                 ", but the TD QE identity requires miscselect " + HexU32(identity.miscselect)};
  ByteArray<16> attributes;
  for (size_t i = 0; i < attributes.size(); ++i)
    attributes[i] = qe_report.attributes[i] & identity.attributes_mask[i];
  if (attributes != identity.attributes)
    return Error{"QE identity mismatch: QE report attributes " + ToHex(qe_report.attributes) +
                 " & attributesMask " + ToHex(identity.attributes_mask) + " = " +
                 ToHex(attributes) + ", but the TD QE identity requires attributes " +
                 ToHex(identity.attributes)};
  if (qe_report.mr_signer != identity.mrsigner)
    return Error{"QE identity mismatch: QE report mr_signer " + ToHex(qe_report.mr_signer) +
                 " differs from the TD QE identity mrsigner " + ToHex(identity.mrsigner)};
  if (qe_report.isv_prod_id != identity.isv_prod_id)
    return Error{
        "QE identity mismatch: QE report isv_prod_id " + std::to_string(qe_report.isv_prod_id) +
        " differs from the TD QE identity isvprodid " + std::to_string(identity.isv_prod_id)};
  return OkStatus();
}

QeTcb QeTcbStatus(const EnclaveIdentity& identity, uint16_t qe_isv_svn) {
  for (const auto& level : identity.tcb_levels)
    if (level.isv_svn <= qe_isv_svn) return {level.status, level};
  return {};
}

Status MatchTdxModule(const TcbInfo& tcb_info, const evidence::TdQuoteBody& body) {
  uint8_t major = body.tee_tcb_svn[1];
  const TdxModuleIdentity* expected = &tcb_info.tdx_module;
  std::string source = "tcbInfo.tdxModule";
  if (major > 0) {
    if (tcb_info.tdx_module_identities.empty())
      return Error{"TCB info mismatch: the quote's TDX module major version TEE_TCB_SVN[1] is " +
                   std::to_string(major) +
                   " but the TCB Info has no tdxModuleIdentities; fetch a current TDX TCB Info"};
    expected = FindModuleIdentity(tcb_info, major);
    if (!expected)
      return Error{"TDX module mismatch: no tdxModuleIdentities entry " + ModuleId(major) +
                   " for TEE_TCB_SVN[1] = " + std::to_string(major) + " (the TCB Info has " +
                   IdentityIds(tcb_info) + ")"};
    source = "tcbInfo.tdxModuleIdentities " + expected->id;
  }
  if (body.mr_signer_seam != expected->mrsigner)
    return Error{"TDX module mismatch: mr_signer_seam " + ToHex(body.mr_signer_seam) +
                 " differs from " + source + " mrsigner " + ToHex(expected->mrsigner)};
  if (!IsAllZero(body.seam_attributes) || body.seam_attributes != expected->attributes)
    return Error{"TDX module mismatch: seam_attributes " + ToHex(body.seam_attributes) +
                 " must be all zero and equal " + source + " attributes " +
                 ToHex(expected->attributes) + " (Intel's QVL applies no mask here)"};
  return OkStatus();
}

TcbResult EvaluateTcb(const TcbInfo& tcb_info, const EnclaveIdentity& qe_identity,
                      const TcbInput& input) {
  TcbResult r;
  auto finish = [&r](TcbStatus status) {
    r.status = status;
    std::sort(r.advisory_ids.begin(), r.advisory_ids.end());
    r.advisory_ids.erase(std::unique(r.advisory_ids.begin(), r.advisory_ids.end()),
                         r.advisory_ids.end());
    return r;
  };
  if (!input.body) {
    r.detail = "no TD quote body given";
    return finish(TcbStatus::kTcbNotSupported);
  }
  const evidence::TeeTcbSvn& svn = input.body->tee_tcb_svn;

  // The QE's level is independent of the platform's; QVL computes it first (4.1.2.4.15).
  QeTcb qe = QeTcbStatus(qe_identity, input.qe_isv_svn);
  r.qe_status = qe.status;
  std::string qe_detail = qe.level ? "QE level isvsvn " + std::to_string(qe.level->isv_svn) + " (" +
                                         std::string(TcbStatusName(qe.status)) + ")"
                                   : "QE ISVSVN " + std::to_string(input.qe_isv_svn) +
                                         " is below every QE identity level";
  if (qe.level) AddAdvisories(r.advisory_ids, qe.level->advisory_ids);

  // 1. SGX and TDX levels.
  const TcbLevel* sgx_level = nullptr;
  const TcbLevel* tdx_level = nullptr;
  const TcbLevel* last_sgx_match = nullptr;
  size_t sgx_index = 0, tdx_index = 0, sgx_matches = 0;
  for (size_t i = 0; i < tcb_info.tcb_levels.size() && !tdx_level; ++i) {
    const TcbLevel& level = tcb_info.tcb_levels[i];
    if (!SgxTcbMet(input, level)) continue;
    ++sgx_matches;
    last_sgx_match = &level;
    if (!sgx_level) {
      sgx_level = &level;
      sgx_index = i;
    }
    if (TdxTcbMet(svn, level)) {
      tdx_level = &level;
      tdx_index = i;
    }
  }
  if (!sgx_level) {
    r.detail = "no TCB level matches the PCK's SGX TCB (components " + ToHex(input.pck_components) +
               ", pcesvn " + std::to_string(input.pck_pce_svn) + ")";
    if (!tcb_info.tcb_levels.empty())
      r.detail += ": the lowest level needs " + SgxShortfall(input, tcb_info.tcb_levels.back());
    r.detail += "; " + qe_detail;
    return finish(TcbStatus::kTcbNotSupported);
  }
  if (!tdx_level) {
    r.detail = "no TCB level matches TEE_TCB_SVN " + ToHex(svn) + " (compared from index " +
               std::string(svn[1] > 0 ? "2" : "0") + ") among the " + std::to_string(sgx_matches) +
               " level(s) the PCK's SGX TCB meets";
    r.detail += ": the lowest of them needs " + TdxShortfall(svn, *last_sgx_match);
    r.detail += "; " + qe_detail;
    return finish(TcbStatus::kTcbNotSupported);
  }
  r.platform_status = tdx_level->status;
  r.tcb_date = tdx_level->tcb_date;
  AddAdvisories(r.advisory_ids, tdx_level->advisory_ids);
  r.detail = "TDX TCB level " + std::to_string(tdx_index) + " (tcbDate " + tdx_level->tcb_date +
             ", " + std::string(TcbStatusName(tdx_level->status)) + ")";
  if (sgx_index != tdx_index)
    r.detail += ", SGX TCB level " + std::to_string(sgx_index) + " (" +
                std::string(TcbStatusName(sgx_level->status)) + ")";

  // 2. TDX module.
  if (!(input.quote_version > 3 && svn[1] == 0)) {
    const TdxModuleIdentity* module = FindModuleIdentity(tcb_info, svn[1]);
    if (!module) {
      r.module_status = TcbStatus::kTdxModuleMismatch;
      r.detail += "; no TDX module identity " + ModuleId(svn[1]) + " for TEE_TCB_SVN[1] (has " +
                  IdentityIds(tcb_info) + "); " + qe_detail;
      return finish(TcbStatus::kTdxModuleMismatch);
    }
    auto level = std::find_if(module->tcb_levels.begin(), module->tcb_levels.end(),
                              [&](const ModuleTcbLevel& l) { return svn[0] >= l.isv_svn; });
    if (level == module->tcb_levels.end()) {
      r.module_status = TcbStatus::kTcbNotSupported;
      r.detail += "; module " + module->id + ": TEE_TCB_SVN[0] = " + std::to_string(svn[0]) +
                  " is below every module level; " + qe_detail;
      return finish(TcbStatus::kTcbNotSupported);
    }
    r.module_status = level->status;
    AddAdvisories(r.advisory_ids, level->advisory_ids);
    r.detail += "; module " + module->id + " level isvsvn " + std::to_string(level->isv_svn) +
                " (" + std::string(TcbStatusName(level->status)) + ")";
  }

  // 3. Level with module.
  TcbStatus tdx_status =
      r.module_status ? Converge(tdx_level->status, *r.module_status) : tdx_level->status;
  if (tdx_status == TcbStatus::kRevoked) {
    r.detail += "; " + qe_detail;
    return finish(TcbStatus::kRevoked);
  }

  // 4. TD 1.5 relaunch.
  TcbStatus qe_verdict = QeVerdict(qe.status);
  if (input.body->type == BodyType::kTd15)
    tdx_status = CheckForRelaunch(input.body->tee_tcb_svn2, tcb_info, sgx_level->status, tdx_status,
                                  r.module_status, qe_verdict, r.detail);

  // 5. With the QE.
  r.detail += "; " + qe_detail;
  return finish(Converge(tdx_status, qe_verdict));
}

}  // namespace tdxvirt::verify
