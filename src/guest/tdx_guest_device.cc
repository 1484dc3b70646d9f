#include "guest/tdx_guest_device.h"

#include <fcntl.h>
#include <linux/ioctl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/file.h"
#include "guest/quote_provider.h"

namespace tdxvirt::guest {

static_assert(sizeof(TdxReportRequest) == 1088);
static_assert(_IOWR('T', 1, TdxReportRequest) == kTdxCmdGetReport0);

TdxGuestDevice::~TdxGuestDevice() = default;

namespace {

class LinuxDevice : public TdxGuestDevice {
 public:
  explicit LinuxDevice(std::string root_dir) : path_(UnderRoot(root_dir, kTdxGuestDevicePath)) {}

  std::string Describe() const override { return path_; }

  Result<TdReportBytes> GetReport(const evidence::ReportData& report_data) override {
    // Opened per report: the driver keeps no per-open state, and a long-lived agent then survives
    // the module being reloaded.
    int fd = open(path_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0)
      return Error{"cannot open " + path_ + ": " + std::strerror(errno) +
                   (errno == EACCES ? " (the TDX guest device is root's)" : "")};
    TdxReportRequest req{};
    std::memcpy(req.reportdata, report_data.data(), sizeof req.reportdata);
    int rc;
    do {
      rc = ioctl(fd, kTdxCmdGetReport0, &req);
    } while (rc < 0 && errno == EINTR);
    int error = errno;
    close(fd);
    if (rc < 0)
      return Error{path_ + ": TDX_CMD_GET_REPORT0 failed: " + std::strerror(error) +
                   (error == ENOTTY ? " (not the TDX guest driver's device)"
                    : error == EIO  ? " (TDG.MR.REPORT failed)"
                                    : "")};
    TdReportBytes report;
    std::memcpy(report.data(), req.tdreport, report.size());
    return report;
  }

 private:
  std::string path_;
};

}  // namespace

std::shared_ptr<TdxGuestDevice> LinuxTdxGuestDevice(std::string root_dir) {
  return std::make_shared<LinuxDevice>(std::move(root_dir));
}

SimTdxGuestDevice::SimTdxGuestDevice(simulator::SimPlatform platform, simulator::TdConfig config)
    : platform_(std::make_unique<simulator::SimPlatform>(std::move(platform))),
      td_(*platform_, std::move(config)) {}

Result<TdReportBytes> SimTdxGuestDevice::GetReport(const evidence::ReportData& report_data) {
  return td_.ReportBytes(report_data);
}

}  // namespace tdxvirt::guest
