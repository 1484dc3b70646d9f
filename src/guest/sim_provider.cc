#include "guest/sim_provider.h"

namespace tdxvirt::guest {

SimQuoteProvider::SimQuoteProvider(std::unique_ptr<SimTdxGuestDevice> td, int quote_version)
    : td_(std::move(td)), qe_(td_->platform()), quote_version_(quote_version) {}

Result<Bytes> SimQuoteProvider::GetQuote(const evidence::ReportData& report_data) {
  auto report = td_->GetReport(report_data);
  if (!report.ok()) return Error{report.error()};
  int version = td_->config().td15 ? 5 : quote_version_;
  auto quote = qe_.Quote(*report, version);
  if (!quote.ok()) return Error{"simulator: " + quote.error()};
  if (Status s = CheckQuoteReportData(*quote, report_data, "simulator"); !s.ok())
    return Error{s.error()};
  return quote;
}

Result<std::unique_ptr<SimTdxGuestDevice>> LoadSimTd(const std::string& sim_dir,
                                                     const std::string& td_config_path) {
  auto platform = simulator::SimPlatform::Load(sim_dir);
  if (!platform.ok()) return Error{platform.error()};
  auto config = simulator::LoadTdConfigFile(td_config_path);
  if (!config.ok()) return Error{config.error()};
  return std::make_unique<SimTdxGuestDevice>(std::move(*platform), std::move(*config));
}

}  // namespace tdxvirt::guest
