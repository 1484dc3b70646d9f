// Quotes through Linux configfs-tsm (Documentation/ABI/testing/configfs-tsm): make an entry under
// /sys/kernel/config/tsm/report, check its provider is tdx_guest, write the 64-byte REPORTDATA to
// inblob, read the quote from outblob, and use the entry's generation counter to prove that the
// quote answers our inblob and not another writer's.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "guest/quote_provider.h"

namespace tdxvirt::guest {

// The few filesystem calls the provider makes. Each returns 0 or an errno value, because what to do
// next depends on which errno (EBUSY: retry; EEXIST: reuse the entry; anything else: fail).
// Paths are absolute, as on the TD ("/sys/kernel/config/tsm/report/x/inblob").
class ConfigfsFs {
 public:
  virtual ~ConfigfsFs();
  virtual int MakeDir(const std::string& path) = 0;
  virtual int RemoveDir(const std::string& path) = 0;
  // The whole file; EFBIG past `max_size` bytes.
  virtual int Read(const std::string& path, size_t max_size, Bytes& out) = 0;
  // One write of all of `data` to an existing file (configfs attributes are never created).
  virtual int Write(const std::string& path, ByteSpan data) = 0;
};

// Real syscalls, every path prefixed with `root_dir`.
std::shared_ptr<ConfigfsFs> SystemConfigfsFs(std::string root_dir);

struct ConfigfsOptions {
  // An entry name under kConfigfsReportDir, or an absolute entry path; empty: private per request.
  std::string entry;
  int attempts = 3;
  int busy_retries = 12;
  std::chrono::milliseconds busy_backoff{100};
  std::chrono::milliseconds max_busy_backoff{5000};
};

// Upper bound on an outblob (quotes are a few KiB; the kernel's buffer is 8 KiB in 6.7).
inline constexpr size_t kMaxOutblobSize = 1 << 20;

class ConfigfsQuoteProvider : public QuoteProvider {
 public:
  ConfigfsQuoteProvider(std::shared_ptr<ConfigfsFs> fs, ConfigfsOptions options);

  std::string_view name() const override { return "configfs"; }
  Result<Bytes> GetQuote(const evidence::ReportData& report_data) override;

 private:
  struct Entry {
    std::string path;
    bool created = false;  // ours to remove
  };
  Result<Entry> OpenEntry();
  Result<Bytes> QuoteOnce(const std::string& entry, const evidence::ReportData& report_data,
                          bool& raced);
  // Runs `op` until it returns something other than EBUSY or the retries run out.
  template <typename Op>
  int RetryBusy(Op op);
  Result<uint64_t> ReadGeneration(const std::string& entry);

  std::shared_ptr<ConfigfsFs> fs_;
  ConfigfsOptions options_;
  static std::atomic<uint64_t> sequence_;
};

}  // namespace tdxvirt::guest
