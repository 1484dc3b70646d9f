#include "guest/configfs_tsm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

namespace tdxvirt::guest {

ConfigfsFs::~ConfigfsFs() = default;

namespace {

class SystemFs : public ConfigfsFs {
 public:
  explicit SystemFs(std::string root_dir) : root_(std::move(root_dir)) {}

  int MakeDir(const std::string& path) override {
    // Group access as Intel's library gives its entry; nobody else needs it.
    return mkdir(UnderRoot(root_, path).c_str(), 0770) == 0 ? 0 : errno;
  }
  int RemoveDir(const std::string& path) override {
    return rmdir(UnderRoot(root_, path).c_str()) == 0 ? 0 : errno;
  }

  int Read(const std::string& path, size_t max_size, Bytes& out) override {
    out.clear();
    int fd = open(UnderRoot(root_, path).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int error = 0;
    uint8_t buf[8192];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error = errno;
        break;
      }
      if (n == 0) break;
      if (out.size() + size_t(n) > max_size) {
        error = EFBIG;
        break;
      }
      out.insert(out.end(), buf, buf + n);
    }
    close(fd);
    return error;
  }

  int Write(const std::string& path, ByteSpan data) override {
    int fd = open(UnderRoot(root_, path).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = write(fd, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int error = errno;
        close(fd);
        return error;
      }
      done += size_t(n);
    }
    // configfs hands binary attributes to the driver at close; report what close says.
    return close(fd) == 0 ? 0 : errno;
  }

 private:
  std::string root_;
};

std::string Errno(int e) { return std::strerror(e); }

// Kernel attribute text ("tdx_guest\n", "7\n") without its trailing newline.
std::string_view Trim(const Bytes& text) {
  std::string_view s = AsString(text);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

std::shared_ptr<ConfigfsFs> SystemConfigfsFs(std::string root_dir) {
  return std::make_shared<SystemFs>(std::move(root_dir));
}

std::atomic<uint64_t> ConfigfsQuoteProvider::sequence_{0};

ConfigfsQuoteProvider::ConfigfsQuoteProvider(std::shared_ptr<ConfigfsFs> fs,
                                             ConfigfsOptions options)
    : fs_(std::move(fs)), options_(std::move(options)) {
  options_.attempts = std::max(options_.attempts, 1);
  options_.busy_retries = std::max(options_.busy_retries, 0);
}

template <typename Op>
int ConfigfsQuoteProvider::RetryBusy(Op op) {
  auto delay = options_.busy_backoff;
  for (int retry = 0;; ++retry) {
    int e = op();
    if (e != EBUSY || retry >= options_.busy_retries) return e;
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, options_.max_busy_backoff);
  }
}

Result<ConfigfsQuoteProvider::Entry> ConfigfsQuoteProvider::OpenEntry() {
  const std::string dir = kConfigfsReportDir;
  std::string path;
  bool private_entry = options_.entry.empty();
  if (private_entry) {
    // A private entry has a generation only we advance, so a race needs a misbehaving writer.
    path = dir + "/tdxvirt-" + std::to_string(getpid()) + "-" + std::to_string(sequence_++);
  } else if (options_.entry.front() == '/') {
    path = options_.entry;
  } else {
    if (options_.entry.find('/') != std::string::npos || options_.entry == "." ||
        options_.entry == "..")
      return Error{"configfs-tsm: entry name \"" + options_.entry +
                   "\" must be one directory name (or an absolute entry path)"};
    path = dir + "/" + options_.entry;
  }
  int e = fs_->MakeDir(path);
  if (e == 0) return Entry{path, true};
  if (e == EEXIST) return Entry{path, false};  // someone else's (Intel's com.intel.dcap): keep it
  if (private_entry && (e == EACCES || e == EPERM || e == EROFS)) {
    // Unprivileged: Intel's library leaves a group-writable shared entry behind; use it if present.
    std::string shared = dir + "/" + kIntelConfigfsEntry;
    if (fs_->MakeDir(shared) == EEXIST) return Entry{shared, false};
  }
  std::string hint = e == ENOENT ? " (configfs-tsm needs Linux >= 6.7 with configfs mounted at "
                                   "/sys/kernel/config)"
                     : e == EACCES || e == EPERM
                         ? " (creating an entry needs root; or pass an existing entry such as " +
                               std::string(kIntelConfigfsEntry) + ")"
                         : "";
  return Error{"configfs-tsm: cannot create entry " + path + ": " + Errno(e) + hint};
}

Result<uint64_t> ConfigfsQuoteProvider::ReadGeneration(const std::string& entry) {
  Bytes text;
  if (int e = fs_->Read(entry + "/generation", 64, text); e != 0)
    return Error{"configfs-tsm: reading " + entry + "/generation: " + Errno(e)};
  std::string_view s = Trim(text);
  uint64_t g = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), g);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    return Error{"configfs-tsm: " + entry + "/generation is \"" + std::string(s) +
                 "\", not a number"};
  return g;
}

Result<Bytes> ConfigfsQuoteProvider::QuoteOnce(const std::string& entry,
                                               const evidence::ReportData& report_data,
                                               bool& raced) {
  raced = false;
  const std::string where = "configfs-tsm " + entry + ": ";
  Bytes provider;
  if (int e = fs_->Read(entry + "/provider", 64, provider); e != 0)
    return Error{where + "reading provider: " + Errno(e) +
                 (e == ENOENT ? " (not a configfs-tsm report entry)" : "")};
  if (Trim(provider) != "tdx_guest")
    return Error{
        where + "provider is \"" + std::string(Trim(provider)) +
        "\", not \"tdx_guest\": this is not a TDX guest (or its TSM driver is not loaded)"};

  auto g0 = ReadGeneration(entry);
  if (!g0.ok()) return Error{g0.error()};
  // TDX takes exactly 64 bytes of inblob (the driver returns EINVAL otherwise).
  int e = RetryBusy([&] { return fs_->Write(entry + "/inblob", report_data); });
  if (e != 0)
    return Error{where + "writing 64 bytes to inblob: " + Errno(e) +
                 (e == EBUSY
                      ? " (still busy after " + std::to_string(options_.busy_retries) + " retries)"
                      : "")};
  Bytes quote;
  e = RetryBusy([&] { return fs_->Read(entry + "/outblob", kMaxOutblobSize, quote); });
  if (e != 0)
    return Error{where + "reading outblob: " + Errno(e) +
                 (e == EBUSY ? " (a previous quote request was still in flight after " +
                                   std::to_string(options_.busy_retries) + " retries)"
                  : e == EINVAL ? " (the TDX driver refused the inblob)"
                  : e == EIO ? " (TDG.MR.REPORT or the host's GetQuote failed; is a QGS configured "
                               "for this TD?)"
                             : "")};
  auto g1 = ReadGeneration(entry);
  if (!g1.ok()) return Error{g1.error()};
  if (*g1 != *g0 + 1) {
    // Either another writer changed inblob between our write and read (g1 > g0 + 1), or our write
    // never reached the kernel (g1 == g0): in both cases outblob may not answer our REPORTDATA.
    raced = true;
    return Error{where + "generation went from " + std::to_string(*g0) + " to " +
                 std::to_string(*g1) + " around our request, expected " + std::to_string(*g0 + 1) +
                 (*g1 == *g0 ? ": the kernel did not take our inblob"
                             : ": another process wrote this entry")};
  }
  if (quote.empty()) return Error{where + "outblob is empty"};
  if (Status s = CheckQuoteReportData(quote, report_data, "configfs-tsm"); !s.ok())
    return Error{s.error()};
  return quote;
}

Result<Bytes> ConfigfsQuoteProvider::GetQuote(const evidence::ReportData& report_data) {
  auto entry = OpenEntry();
  if (!entry.ok()) return Error{entry.error()};
  Result<Bytes> result = Error{"configfs-tsm: no attempt made"};
  for (int attempt = 1; attempt <= options_.attempts; ++attempt) {
    bool raced = false;
    result = QuoteOnce(entry->path, report_data, raced);
    if (!raced) break;
    if (attempt == options_.attempts)
      result = Error{result.error() + "; gave up after " + std::to_string(attempt) + " attempts"};
  }
  if (entry->created) {
    // A leftover entry only costs a directory; it must not turn a good quote into a failure.
    int e = fs_->RemoveDir(entry->path);
    if (e != 0 && !result.ok())
      result =
          Error{result.error() + " (and removing " + entry->path + " failed: " + Errno(e) + ")"};
  }
  return result;
}

}  // namespace tdxvirt::guest
