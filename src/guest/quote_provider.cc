#include "guest/quote_provider.h"

#include <sys/stat.h>

#include "common/hex.h"
#include "evidence/quote.h"
#include "guest/configfs_tsm.h"
#include "guest/qgs_provider.h"
#include "guest/sim_provider.h"
#include "guest/tdx_guest_device.h"

namespace tdxvirt::guest {

QuoteProvider::~QuoteProvider() = default;

namespace {

constexpr std::pair<ProviderKind, std::string_view> kKindNames[] = {
    {ProviderKind::kAuto, "auto"},
    {ProviderKind::kConfigfs, "configfs"},
    {ProviderKind::kTdxGuest, "tdx-guest"},
    {ProviderKind::kQgs, "qgs"},
    {ProviderKind::kSim, "sim"},
};

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

using ProviderPtr = std::unique_ptr<QuoteProvider>;

ProviderPtr MakeConfigfs(const ProviderOptions& o) {
  auto fs = o.configfs_fs ? o.configfs_fs : SystemConfigfsFs(o.root_dir);
  return std::make_unique<ConfigfsQuoteProvider>(
      fs, ConfigfsOptions{.entry = o.configfs_entry,
                          .attempts = o.configfs_attempts,
                          .busy_retries = o.busy_retries,
                          .busy_backoff = o.busy_backoff,
                          .max_busy_backoff = o.max_busy_backoff});
}

Result<qgs::QgsAddress> QgsAddressOf(const ProviderOptions& o) {
  std::string text = o.qgs_address.empty() ? kDefaultGuestQgsAddress : o.qgs_address;
  auto address = qgs::ParseQgsAddress(text);
  if (!address.ok()) return Error{"QGS address \"" + text + "\": " + address.error()};
  return address;
}

Result<ProviderPtr> MakeQgs(std::string name, std::shared_ptr<TdxGuestDevice> device,
                            const ProviderOptions& o) {
  auto address = QgsAddressOf(o);
  if (!address.ok()) return Error{address.error()};
  ProviderPtr p = std::make_unique<QgsQuoteProvider>(std::move(name), std::move(device), *address,
                                                     qgs::ClientOptions{.timeout = o.qgs_timeout});
  return p;
}

std::shared_ptr<TdxGuestDevice> DeviceOf(const ProviderOptions& o) {
  return o.tdx_guest_device ? o.tdx_guest_device : LinuxTdxGuestDevice(o.root_dir);
}

Result<std::unique_ptr<SimTdxGuestDevice>> SimTdOf(const ProviderOptions& o) {
  if (o.sim_dir.empty())
    return Error{
        "the simulator needs its directory: create one with `tdxvirt sim init --dir DIR` and "
        "pass it (--sim-dir DIR)"};
  return LoadSimTd(o.sim_dir, o.td_config_path);
}

Result<ProviderPtr> MakeSim(const ProviderOptions& o) {
  auto td = SimTdOf(o);
  if (!td.ok()) return Error{td.error()};
  ProviderPtr p = std::make_unique<SimQuoteProvider>(std::move(*td), o.quote_version);
  return p;
}

Result<ProviderPtr> MakeQgsWithSim(const ProviderOptions& o) {
  auto td = SimTdOf(o);
  if (!td.ok()) return Error{td.error()};
  return MakeQgs("qgs", std::shared_ptr<TdxGuestDevice>(std::move(*td)), o);
}

std::string AddressText(const ProviderOptions& o) {
  return o.qgs_address.empty() ? std::string(kDefaultGuestQgsAddress) + " (the default)"
                               : o.qgs_address;
}

}  // namespace

Result<ProviderKind> ParseProviderKind(std::string_view name) {
  for (const auto& [kind, text] : kKindNames)
    if (name == text) return kind;
  return Error{"unknown quote provider \"" + std::string(name) +
               "\": expected auto, configfs, tdx-guest, qgs or sim"};
}

std::string_view ProviderKindName(ProviderKind kind) {
  for (const auto& [k, text] : kKindNames)
    if (k == kind) return text;
  return "?";
}

std::string UnderRoot(const std::string& root_dir, std::string_view path) {
  std::string root = root_dir;
  while (!root.empty() && root.back() == '/') root.pop_back();
  return root + std::string(path);
}

Status CheckQuoteReportData(ByteSpan quote, const evidence::ReportData& report_data,
                            std::string_view who) {
  auto parsed = evidence::ParseQuote(quote);
  if (!parsed.ok())
    return Error{std::string(who) + ": the reply is not a TD quote: " + parsed.error()};
  if (parsed->body.report_data != report_data)
    return Error{std::string(who) + ": the quote's REPORTDATA is " +
                 ToHex(parsed->body.report_data) + ", not the " + ToHex(report_data) +
                 " asked for (it answers another request)"};
  return OkStatus();
}

Result<std::unique_ptr<QuoteProvider>> SelectQuoteProvider(const ProviderOptions& o,
                                                           std::string* why) {
  std::string ignored;
  std::string& reason = why ? *why : ignored;
  if (o.quote_version != 4 && o.quote_version != 5)
    return Error{"quote version " + std::to_string(o.quote_version) + ": expected 4 or 5"};
  const std::string report_dir = UnderRoot(o.root_dir, kConfigfsReportDir);
  const std::string device = UnderRoot(o.root_dir, kTdxGuestDevicePath);

  switch (o.kind) {
    case ProviderKind::kConfigfs:
      reason = "configfs: asked for; configfs-tsm under " + report_dir;
      return MakeConfigfs(o);
    case ProviderKind::kTdxGuest:
      reason = "tdx-guest: asked for; TDREPORT from " + device + ", quoted by the QGS at " +
               AddressText(o);
      return MakeQgs("tdx-guest", DeviceOf(o), o);
    case ProviderKind::kQgs:
      if (o.qgs_address.empty())
        return Error{
            "the qgs provider needs a QGS address (--qgs unix:PATH, vsock:CID:PORT or HOST:PORT)"};
      if (!o.sim_dir.empty()) {
        reason = "qgs: asked for; TDREPORT from the simulator in " + o.sim_dir +
                 ", quoted by the QGS at " + o.qgs_address;
        return MakeQgsWithSim(o);
      }
      reason = "qgs: asked for; TDREPORT from " + device +
               " (no simulator directory given), quoted by the QGS at " + o.qgs_address;
      return MakeQgs("qgs", DeviceOf(o), o);
    case ProviderKind::kSim:
      reason = "sim: asked for; the simulator in " + o.sim_dir;
      return MakeSim(o);
    case ProviderKind::kAuto:
      break;
  }

  // configfs-tsm first, as Intel's library and the kernel documentation prefer it.
  bool absolute_entry = !o.configfs_entry.empty() && o.configfs_entry.front() == '/';
  if (IsDirectory(report_dir) ||
      (absolute_entry && IsDirectory(UnderRoot(o.root_dir, o.configfs_entry)))) {
    reason = "configfs: " +
             (IsDirectory(report_dir) ? report_dir : UnderRoot(o.root_dir, o.configfs_entry)) +
             " exists (configfs-tsm)";
    return MakeConfigfs(o);
  }
  if (Exists(device)) {
    reason = "tdx-guest: " + report_dir + " is missing but " + device +
             " exists; quoting through the QGS at " + AddressText(o);
    return MakeQgs("tdx-guest", DeviceOf(o), o);
  }
  if (!o.sim_dir.empty() && !o.qgs_address.empty()) {
    reason = "qgs: no TDX guest interface (" + report_dir + ", " + device +
             "); simulated TDREPORT from " + o.sim_dir + " quoted by the QGS at " + o.qgs_address;
    return MakeQgsWithSim(o);
  }
  if (!o.sim_dir.empty()) {
    reason = "sim: no TDX guest interface (" + report_dir + ", " + device + "); the simulator in " +
             o.sim_dir;
    return MakeSim(o);
  }
  return Error{
      "no quote provider available: " + report_dir + " (configfs-tsm, Linux >= 6.7) and " + device +
      " (TDX guest driver) are both missing, and no simulator directory was given" +
      (o.qgs_address.empty() ? "" : " (a QGS address alone is not enough: it needs a TDREPORT)") +
      ". Run inside a TDX trust domain, or use the simulator: `tdxvirt sim init --dir DIR`, then "
      "--sim-dir DIR (add --qgs ADDR to quote through a QGS)"};
}

}  // namespace tdxvirt::guest
