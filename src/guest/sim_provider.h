// The simulator in process: a simulated TD's TDREPORT quoted by the simulated quoting enclave,
// with no socket in between. Evidence verifies only under the simulator's root (--root).
#pragma once

#include <memory>

#include "guest/quote_provider.h"
#include "guest/tdx_guest_device.h"
#include "simulator/quoting_enclave.h"

namespace tdxvirt::guest {

class SimQuoteProvider : public QuoteProvider {
 public:
  // `quote_version` 4 or 5; a TDX 1.5 TD is always quoted as v5 (a v4 quote has no TD 1.5 body).
  SimQuoteProvider(std::unique_ptr<SimTdxGuestDevice> td, int quote_version = 4);

  std::string_view name() const override { return "sim"; }
  Result<Bytes> GetQuote(const evidence::ReportData& report_data) override;

 private:
  std::unique_ptr<SimTdxGuestDevice> td_;
  simulator::SimQuotingEnclave qe_;  // refers to td_'s platform
  int quote_version_;
};

// The simulated TD of `sim_dir` (tdxvirt sim init) configured by `td_config_path` ("" = default).
Result<std::unique_ptr<SimTdxGuestDevice>> LoadSimTd(const std::string& sim_dir,
                                                     const std::string& td_config_path);

}  // namespace tdxvirt::guest
