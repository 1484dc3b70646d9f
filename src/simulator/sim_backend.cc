#include "simulator/sim_backend.h"

#include "common/hex.h"
#include "evidence/td_report.h"

namespace tdxvirt::simulator {

SimQuoteBackend::SimQuoteBackend(SimPlatform platform, int quote_version)
    : platform_(std::move(platform)), qe_(platform_), quote_version_(quote_version) {}

Result<Bytes> SimQuoteBackend::GetQuote(ByteSpan td_report, ByteSpan id_list) {
  if (!id_list.empty())
    return Error{"the simulated QE has one attestation key; send an empty ID list"};
  // A TDX 1.5 report needs a v5 quote whatever the default.
  auto report = evidence::ParseTdReport(td_report);
  int version = report.ok() && report->is_td15() ? 5 : quote_version_;
  return qe_.Quote(td_report, version);
}

Result<verify::Collateral> SimQuoteBackend::GetCollateral(ByteSpan fmspc, std::string_view pck_ca) {
  const auto& own = platform_.config().fmspc;
  if (fmspc.size() != own.size() || !std::equal(fmspc.begin(), fmspc.end(), own.begin()))
    return Error{"no collateral for FMSPC " + ToHex(fmspc) + "; this platform is " + ToHex(own)};
  if (pck_ca != "platform")
    return Error{"no collateral for PCK CA \"" + std::string(pck_ca) + "\"; this platform's is \"platform\""};
  return platform_.collateral();
}

Result<qgs::PlatformInfo> SimQuoteBackend::GetPlatformInfo() {
  qgs::PlatformInfo info;
  const auto& c = platform_.config();
  info.tdqe_isvsvn = c.qe_isv_svn;
  info.pce_isvsvn = c.pce_svn;
  info.platform_id.assign(platform_.qe_id().begin(), platform_.qe_id().end());
  info.cpu_svn.assign(c.cpu_svn_components.begin(), c.cpu_svn_components.end());
  return info;
}

}  // namespace tdxvirt::simulator
