// In-TD quote providers: how a workload inside a trust domain turns 64 bytes of REPORTDATA into a
// signed TD quote. One interface, four ways, tried in this order when the caller does not choose:
//
//   configfs   Linux configfs-tsm (>= 6.7): /sys/kernel/config/tsm/report/<entry>/{inblob,outblob}
//   tdx-guest  TDREPORT from /dev/tdx_guest (TDX_CMD_GET_REPORT0), quoted by a QGS over vsock
//   qgs        TDREPORT from the simulator, quoted by a QGS at a given address
//   sim        the simulator in process (SimTd report, SimQuotingEnclave quote)
//
// Intel's guest library falls back the same way (configfs first, then vsock); the simulator comes
// last so that a real TD never quietly gets simulated evidence.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"
#include "evidence/td_types.h"

namespace tdxvirt::guest {

class ConfigfsFs;
class TdxGuestDevice;

class QuoteProvider {
 public:
  virtual ~QuoteProvider();
  // The provider kind's name: "configfs", "tdx-guest", "qgs" or "sim".
  virtual std::string_view name() const = 0;
  // A TD quote whose REPORTDATA is `report_data` (checked before it is returned). One call at a
  // time per provider object.
  virtual Result<Bytes> GetQuote(const evidence::ReportData& report_data) = 0;
};

enum class ProviderKind { kAuto, kConfigfs, kTdxGuest, kQgs, kSim };
// "auto", "configfs", "tdx-guest", "qgs", "sim".
Result<ProviderKind> ParseProviderKind(std::string_view name);
std::string_view ProviderKindName(ProviderKind kind);

// Where the guest interfaces live, relative to ProviderOptions::root_dir.
inline constexpr char kConfigfsReportDir[] = "/sys/kernel/config/tsm/report";
inline constexpr char kTdxGuestDevicePath[] = "/dev/tdx_guest";
// Intel's DCAP guest library's shared entry, and the variable that overrides its full path.
inline constexpr char kIntelConfigfsEntry[] = "com.intel.dcap";
inline constexpr char kIntelConfigfsPathEnv[] = "DCAP_TDX_QUOTE_CONFIGFS_PATH";
// The QGS a TD reaches by default: the host (vsock CID 2), Intel's port.
inline constexpr char kDefaultGuestQgsAddress[] = "vsock:2:4050";

struct ProviderOptions {
  ProviderKind kind = ProviderKind::kAuto;
  // Prefix of every guest path (the configfs report directory, /dev/tdx_guest): "/" on a TD, a
  // prepared tree in tests.
  std::string root_dir = "/";

  // configfs: the entry to use under the report directory, or an absolute path to an entry
  // directory (what DCAP_TDX_QUOTE_CONFIGFS_PATH holds; still under root_dir). Empty: a private
  // entry per request ("tdxvirt-<pid>-<n>"), falling back to Intel's shared one when the directory
  // is not writable by us.
  std::string configfs_entry;
  // Attempts when another writer advanced the entry's generation under us.
  int configfs_attempts = 3;
  // -EBUSY (a previous quote still in flight; the kernel waits up to 30 s for one): retries, with
  // the backoff doubling from `busy_backoff` up to `max_busy_backoff`.
  int busy_retries = 12;
  std::chrono::milliseconds busy_backoff{100};
  std::chrono::milliseconds max_busy_backoff{5000};

  // tdx-guest / qgs: the QGS (any form ParseQgsAddress takes). tdx-guest defaults to vsock:2:4050.
  std::string qgs_address;
  // The whole QGS exchange (QEMU's TRANSACTION_TIMEOUT is 30 s).
  std::chrono::milliseconds qgs_timeout{30000};

  // sim / qgs: the simulator directory (`tdxvirt sim init`) and an optional TD config JSON.
  std::string sim_dir;
  std::string td_config_path;
  int quote_version = 4;  // sim: 4 or 5 (a TDX 1.5 TD always gets 5)

  // Test seams; null means real syscalls under root_dir.
  std::shared_ptr<ConfigfsFs> configfs_fs;
  std::shared_ptr<TdxGuestDevice> tdx_guest_device;
};

// Builds the provider `options.kind` names, or for kAuto the first available in the order above.
// `why`, when given, receives one sentence saying which provider was chosen and because of what
// (or, on failure, the error says what was looked for and how to fix it).
Result<std::unique_ptr<QuoteProvider>> SelectQuoteProvider(const ProviderOptions& options,
                                                           std::string* why = nullptr);

// Fails unless `quote` parses as a TD quote carrying `report_data`: the last guard against a quote
// that answers somebody else's request. `who` prefixes the message.
Status CheckQuoteReportData(ByteSpan quote, const evidence::ReportData& report_data,
                            std::string_view who);

// `root_dir` + `path` ("/" + "/dev/x" is "/dev/x").
std::string UnderRoot(const std::string& root_dir, std::string_view path);

}  // namespace tdxvirt::guest
