// Where a TDREPORT comes from before a QGS turns it into a quote: the Linux TDX guest driver's
// /dev/tdx_guest (TDX_CMD_GET_REPORT0, i.e. TDG.MR.REPORT), or the simulator's TD.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "evidence/td_report.h"
#include "simulator/platform.h"
#include "simulator/td.h"

namespace tdxvirt::guest {

using TdReportBytes = ByteArray<evidence::kTdReportSize>;

class TdxGuestDevice {
 public:
  virtual ~TdxGuestDevice();
  // "/dev/tdx_guest", "simulator": for messages.
  virtual std::string Describe() const = 0;
  virtual Result<TdReportBytes> GetReport(const evidence::ReportData& report_data) = 0;
};

// include/uapi/linux/tdx-guest.h (Linux >= 6.2), declared here because distributions ship that
// header only with newer kernel headers.
struct TdxReportRequest {
  uint8_t reportdata[64];
  uint8_t tdreport[1024];
};
// _IOWR('T', 1, struct tdx_report_req).
inline constexpr unsigned long kTdxCmdGetReport0 = 0xC4405401ul;

// open(<root_dir>/dev/tdx_guest) and ioctl(TDX_CMD_GET_REPORT0) per report.
std::shared_ptr<TdxGuestDevice> LinuxTdxGuestDevice(std::string root_dir);

// A simulated TD's TDREPORT (SimTd::ReportBytes): MACed with the platform's key, so only that
// platform's quoting enclave (in process or behind a QGS) accepts it.
class SimTdxGuestDevice : public TdxGuestDevice {
 public:
  SimTdxGuestDevice(simulator::SimPlatform platform, simulator::TdConfig config);
  std::string Describe() const override { return "simulator"; }
  Result<TdReportBytes> GetReport(const evidence::ReportData& report_data) override;
  const simulator::SimPlatform& platform() const { return *platform_; }
  const simulator::TdConfig& config() const { return td_.config(); }

 private:
  std::unique_ptr<simulator::SimPlatform> platform_;  // stable address: td_ refers to it
  simulator::SimTd td_;
};

}  // namespace tdxvirt::guest
