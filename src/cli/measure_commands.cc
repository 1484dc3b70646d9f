// `tdxvirt measure`: reference values ahead of time for an OVMF/TDVF direct boot (docs/measure.md).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>

#include <openssl/evp.h>

#include "cli/commands.h"
#include "common/file.h"
#include "common/hex.h"
#include "measure/measure.h"

namespace tdxvirt::cli {

namespace {

constexpr size_t kMaxFirmwareBytes = 64 << 20;
constexpr size_t kMaxKernelBytes = 256 << 20;
constexpr uint64_t kMaxInitrdBytes = 0xffffffffull;  // QEMU's initrd_size is 32-bit in the header

// SHA-384 and size of a regular file, streamed (an initrd can be hundreds of MiB).
Result<measure::Inputs::Initrd> HashRegularFile(const std::string& flag, const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Error{flag + " " + path + ": " + std::strerror(errno)};
  struct Close {
    int fd;
    ~Close() { close(fd); }
  } guard{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return Error{flag + " " + path + ": not a regular file"};
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha384(), nullptr);
  std::vector<uint8_t> buf(1 << 20);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{flag + " " + path + ": " + std::strerror(errno)};
    if (n == 0) break;
    total += uint64_t(n);
    if (total > kMaxInitrdBytes)
      return Error{flag + " " + path + ": larger than 4 GiB, which QEMU cannot load"};
    EVP_DigestUpdate(ctx.get(), buf.data(), size_t(n));
  }
  measure::Inputs::Initrd out;
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), out.digest.data(), &len);
  out.size = total;
  return out;
}

// QEMU's -m syntax: a number with an optional K/M/G/T suffix (binary); a bare number is MiB.
Result<uint64_t> ParseMemory(const std::string& text) {
  size_t used = 0;
  uint64_t n = 0;
  try {
    if (text.empty() || text[0] == '-') throw std::invalid_argument("sign");
    n = std::stoull(text, &used);
  } catch (const std::exception&) {
    return Error{"--memory " + text + ": expected a size such as 2G, 4096M or 2048 (MiB)"};
  }
  std::string unit = text.substr(used);
  int shift;
  if (unit.empty() || unit == "M" || unit == "m") shift = 20;
  else if (unit == "G" || unit == "g") shift = 30;
  else if (unit == "K" || unit == "k") shift = 10;
  else if (unit == "T" || unit == "t") shift = 40;
  else return Error{"--memory " + text + ": unknown unit \"" + unit + "\" (use K, M, G or T)"};
  if (n == 0 || n > (uint64_t(1) << (62 - shift)))
    return Error{"--memory " + text + ": out of range"};
  return n << shift;
}

struct MeasureOptions {
  std::string firmware, kernel, initrd, cmdline, memory;
  bool has_cmdline = false;
  uint32_t cpus = 0;
  bool json = false;
};

int RunMeasure(const MeasureOptions& o) {
  measure::Inputs in;
  if (!o.firmware.empty()) {
    auto fw = ReadRegularFile(o.firmware, kMaxFirmwareBytes);
    if (!fw.ok()) return InputError("--firmware: " + fw.error());
    in.firmware = std::move(*fw);
  }
  if (!o.kernel.empty()) {
    auto k = ReadRegularFile(o.kernel, kMaxKernelBytes);
    if (!k.ok()) return InputError("--kernel: " + k.error());
    in.kernel = std::move(*k);
  }
  if (!o.initrd.empty()) {
    auto i = HashRegularFile("--initrd", o.initrd);
    if (!i.ok()) return InputError(i.error());
    in.initrd = *i;
  }
  if (o.has_cmdline) in.cmdline = o.cmdline;
  if (!o.memory.empty()) {
    auto m = ParseMemory(o.memory);
    if (!m.ok()) return InputError(m.error());
    in.memory_bytes = *m;
  }
  if (o.cpus) in.cpus = o.cpus;
  auto report = measure::Measure(in);
  if (!report.ok()) return InputError(report.error());
  auto j = measure::ReportJson(*report);
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (report->mrtd_single_pass) {
    std::cout << "mrtd (single pass): " << ToHex(*report->mrtd_single_pass) << "\n"
              << "mrtd (two pass):    " << ToHex(*report->mrtd_two_pass) << "\n";
  }
  for (const auto& e : report->events) {
    std::cout << "rtmr" << e.rtmr << " " << e.type << " " << e.what;
    if (e.text) std::cout << " \"" << *e.text << "\"";
    std::cout << ": " << ToHex(e.digest) << "\n";
  }
  if (report->rtmr1) std::cout << "rtmr1: " << ToHex(*report->rtmr1) << "\n";
  if (report->rtmr2) std::cout << "rtmr2: " << ToHex(*report->rtmr2) << "\n";
  for (const auto& l : report->limits) std::cout << "limit: " << l << "\n";
  return kExitOk;
}

}  // namespace

void AddMeasureCommands(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<MeasureOptions>();
  auto* cmd = app.add_subcommand(
      "measure", "Reference values ahead of time for a TDVF direct boot: MRTD (both page orders), "
                 "kernel/initrd/cmdline digests, RTMR1 and RTMR2");
  cmd->add_option("--firmware", o->firmware, "TDVF/OVMF image (QEMU -bios)");
  cmd->add_option("--kernel", o->kernel, "bzImage with the EFI stub (QEMU -kernel)");
  cmd->add_option("--initrd", o->initrd, "initrd (QEMU -initrd)");
  auto* cmdline =
      cmd->add_option("--cmdline", o->cmdline, "kernel command line (QEMU -append), UTF-8");
  cmd->add_option("--memory", o->memory,
                  "guest memory as QEMU -m (2G, 4096M; bare number = MiB); moves the initrd "
                  "address QEMU patches into the kernel");
  cmd->add_option("--cpus", o->cpus, "vCPUs (affects only RTMR0, which is not computed)")
      ->check(CLI::Range(1u, 4096u));
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->callback([o, cmdline, &exit_code] {
    o->has_cmdline = cmdline->count() > 0;
    exit_code = RunMeasure(*o);
  });
}

}  // namespace tdxvirt::cli
