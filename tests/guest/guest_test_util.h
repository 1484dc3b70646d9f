// Shared by the guest tests: one simulated platform per test binary (saved to a directory, as
// `tdxvirt sim init` would), verification under its root, and an emulated configfs-tsm kernel.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "evidence/quote.h"
#include "guest/configfs_tsm.h"
#include "guest/tdx_guest_device.h"
#include "simulator/platform.h"
#include "simulator/quoting_enclave.h"
#include "simulator/td.h"
#include "test_util.h"
#include "verify/trusted_root.h"
#include "verify/verifier.h"

namespace tdxvirt::guest::testing {

inline constexpr int64_t kIssued = 1767225600;  // 2026-01-01T00:00:00Z
inline constexpr int64_t kVerifyAt = kIssued + 3600;

// The platform's directory, created once per process and removed at exit.
inline const std::string& SimDir() {
  static tdxvirt::testing::TempDir dir;
  static const std::string path = [] {
    simulator::PlatformConfig c;
    c.issued_at = kIssued;
    auto p = simulator::SimPlatform::Create(c);
    if (!p.ok() || !p->Save(dir.File("sim")).ok())
      ADD_FAILURE() << "cannot create the simulator platform";
    return dir.File("sim");
  }();
  return path;
}

// A fresh copy of the platform (SimPlatform is move-only; each backend or TD owns one).
inline simulator::SimPlatform LoadPlatform() {
  auto p = simulator::SimPlatform::Load(SimDir());
  EXPECT_TRUE(p.ok()) << p.error();
  return std::move(*p);
}

inline evidence::ReportData Nonce(uint8_t seed) {
  evidence::ReportData d{};
  for (size_t i = 0; i < d.size(); ++i) d[i] = uint8_t(seed + i);
  return d;
}

// The quote verifies to the simulator's root and carries `report_data`.
inline void ExpectVerifiedQuote(const Bytes& quote, const evidence::ReportData& report_data) {
  static const simulator::SimPlatform platform = LoadPlatform();
  auto root = verify::TrustedRoot::FromPem(platform.root_pem());
  ASSERT_TRUE(root.ok()) << root.error();
  auto prepared = verify::PreparedCollateral::Prepare(platform.collateral(), *root);
  auto r = verify::QuoteVerifier(*root).Verify(quote, *prepared, {.now = kVerifyAt});
  EXPECT_TRUE(r.verified) << r.error;
  auto q = evidence::ParseQuote(quote);
  ASSERT_TRUE(q.ok()) << q.error();
  EXPECT_EQ(q->body.report_data, report_data);
}

// The TDX guest driver's configfs-tsm report directory as the kernel behaves: an entry made with
// mkdir gets provider/generation/inblob/outblob; writing inblob advances generation; reading
// outblob makes the quote (with the simulator). It can be told to be busy or raced.
class FakeTsmKernel : public ConfigfsFs {
 public:
  struct Entry {
    uint64_t generation = 0;
    Bytes inblob;
  };

  FakeTsmKernel()
      : platform_(LoadPlatform()), td_(platform_, simulator::DefaultTdConfig()), qe_(platform_) {}

  // Knobs.
  std::string provider = "tdx_guest\n";
  int busy_writes = 0;  // the next N inblob writes fail with EBUSY (-1: all)
  int busy_reads = 0;   // the next N outblob reads fail with EBUSY (-1: all)
  int races = 0;        // the next N outblob reads find another writer got in first (-1: all)
  int mkdir_error = 0;  // errno for mkdir of a new entry

  // What happened.
  std::map<std::string, Entry> entries;
  std::vector<std::string> tried;  // every MakeDir path, refused ones too
  std::vector<std::string> made, removed;
  std::vector<size_t> inblob_writes;  // sizes
  int outblob_reads = 0;

  static constexpr char kDir[] = "/sys/kernel/config/tsm/report";

  int MakeDir(const std::string& path) override {
    tried.push_back(path);
    if (Parent(path) != kDir) return ENOENT;
    if (entries.count(path)) return EEXIST;
    if (mkdir_error) return mkdir_error;
    entries[path] = Entry{};
    made.push_back(path);
    return 0;
  }
  int RemoveDir(const std::string& path) override {
    if (!entries.erase(path)) return ENOENT;
    removed.push_back(path);
    return 0;
  }
  int Read(const std::string& path, size_t max_size, Bytes& out) override {
    auto it = entries.find(Parent(path));
    if (it == entries.end()) return ENOENT;
    Entry& e = it->second;
    std::string attr = path.substr(path.rfind('/') + 1);
    if (attr == "provider") return Text(provider, max_size, out);
    if (attr == "generation") return Text(std::to_string(e.generation) + "\n", max_size, out);
    if (attr != "outblob") return attr == "inblob" ? EACCES : ENOENT;
    ++outblob_reads;
    if (Take(busy_reads)) return EBUSY;
    if (Take(races)) {
      // Another process wrote its own REPORTDATA between our write and this read.
      e.inblob.assign(64, 0xee);
      ++e.generation;
    }
    if (e.inblob.size() != 64) return EINVAL;  // tdx_report_new: inblob_len != TDX_REPORTDATA_LEN
    evidence::ReportData rd;
    std::copy(e.inblob.begin(), e.inblob.end(), rd.begin());
    auto quote = qe_.Quote(td_.ReportBytes(rd));
    if (!quote.ok()) return EIO;
    if (quote->size() > max_size) return EFBIG;
    out = *quote;
    return 0;
  }
  int Write(const std::string& path, ByteSpan data) override {
    auto it = entries.find(Parent(path));
    if (it == entries.end()) return ENOENT;
    if (path.substr(path.rfind('/') + 1) != "inblob") return EACCES;
    if (Take(busy_writes)) return EBUSY;
    if (data.size() > 64) return EFBIG;  // TSM_INBLOB_MAX
    inblob_writes.push_back(data.size());
    it->second.inblob.assign(data.begin(), data.end());
    ++it->second.generation;
    return 0;
  }

 private:
  static std::string Parent(const std::string& path) { return path.substr(0, path.rfind('/')); }
  static bool Take(int& n) {
    if (n == 0) return false;
    if (n > 0) --n;
    return true;
  }
  static int Text(const std::string& s, size_t max_size, Bytes& out) {
    if (s.size() > max_size) return EFBIG;
    out.assign(s.begin(), s.end());
    return 0;
  }

  simulator::SimPlatform platform_;
  simulator::SimTd td_;
  simulator::SimQuotingEnclave qe_;
};

// /dev/tdx_guest as the driver answers TDX_CMD_GET_REPORT0: a simulated TD's TDREPORT.
class FakeTdxGuestDevice : public TdxGuestDevice {
 public:
  FakeTdxGuestDevice() : td_(LoadPlatform(), simulator::DefaultTdConfig()) {}
  std::string Describe() const override { return "fake /dev/tdx_guest"; }
  Result<TdReportBytes> GetReport(const evidence::ReportData& report_data) override {
    ++calls;
    if (fail) return Error{"fake /dev/tdx_guest: TDX_CMD_GET_REPORT0 failed: Input/output error"};
    return td_.GetReport(report_data);
  }
  int calls = 0;
  bool fail = false;

 private:
  SimTdxGuestDevice td_;
};

}  // namespace tdxvirt::guest::testing
