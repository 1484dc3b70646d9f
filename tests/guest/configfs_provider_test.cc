// configfs-tsm: the provider against an emulated kernel (races, EBUSY, entry lifetime), and its
// real syscalls against a frozen tree of plain files (paths, file handling, error messages).
#include <sys/stat.h>

#include <chrono>
#include <filesystem>

#include "common/file.h"
#include "common/hex.h"
#include "guest/configfs_tsm.h"
#include "guest_test_util.h"

namespace tdxvirt::guest {
namespace {

using namespace std::chrono_literals;
using testing::ExpectVerifiedQuote;
using testing::FakeTsmKernel;
using testing::Nonce;

constexpr char kDir[] = "/sys/kernel/config/tsm/report";

ConfigfsOptions FastOptions(std::string entry = "") {
  return {.entry = std::move(entry),
          .attempts = 3,
          .busy_retries = 3,
          .busy_backoff = 1ms,
          .max_busy_backoff = 4ms};
}


class ConfigfsProvider : public ::testing::Test {
 protected:
  std::shared_ptr<FakeTsmKernel> kernel_ = std::make_shared<FakeTsmKernel>();
};

TEST_F(ConfigfsProvider, QuoteVerifiesAndPrivateEntryIsRemoved) {
  ConfigfsQuoteProvider provider(kernel_, FastOptions());
  EXPECT_EQ(provider.name(), "configfs");
  auto quote = provider.GetQuote(Nonce(1));
  ASSERT_TRUE(quote.ok()) << quote.error();
  ExpectVerifiedQuote(*quote, Nonce(1));
  ASSERT_EQ(kernel_->made.size(), 1u);
  EXPECT_EQ(kernel_->made[0].rfind(std::string(kDir) + "/tdxvirt-", 0), 0u) << kernel_->made[0];
  EXPECT_EQ(kernel_->removed, kernel_->made);
  EXPECT_TRUE(kernel_->entries.empty());
  EXPECT_EQ(kernel_->inblob_writes, std::vector<size_t>{64});

  // A second request gets a new entry of its own.
  ASSERT_TRUE(provider.GetQuote(Nonce(2)).ok());
  ASSERT_EQ(kernel_->made.size(), 2u);
  EXPECT_NE(kernel_->made[0], kernel_->made[1]);
}

TEST_F(ConfigfsProvider, InblobIsAlwaysExactly64Bytes) {
  ConfigfsQuoteProvider provider(kernel_, FastOptions());
  evidence::ReportData zeros{};
  ASSERT_TRUE(provider.GetQuote(zeros).ok());
  ASSERT_TRUE(provider.GetQuote(Nonce(9)).ok());
  EXPECT_EQ(kernel_->inblob_writes, (std::vector<size_t>{64, 64}));
}

TEST_F(ConfigfsProvider, GenerationRaceIsRetried) {
  kernel_->races = 2;
  ConfigfsQuoteProvider provider(kernel_, FastOptions());
  auto quote = provider.GetQuote(Nonce(3));
  ASSERT_TRUE(quote.ok()) << quote.error();
  ExpectVerifiedQuote(*quote, Nonce(3));
  EXPECT_EQ(kernel_->inblob_writes.size(), 3u);
  EXPECT_TRUE(kernel_->entries.empty());
}

TEST_F(ConfigfsProvider, GenerationRaceEveryTimeFails) {
  kernel_->races = -1;
  ConfigfsQuoteProvider provider(kernel_, FastOptions());
  auto quote = provider.GetQuote(Nonce(3));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), "configfs-tsm " + kernel_->made.back() +
                               ": generation went from 4 to 6 around our request, expected 5: another process "
                               "wrote this entry; gave up after 3 attempts");
  EXPECT_EQ(kernel_->inblob_writes.size(), 3u);
  EXPECT_EQ(kernel_->removed, kernel_->made);  // removed after failure too
  EXPECT_TRUE(kernel_->entries.empty());
}

TEST_F(ConfigfsProvider, BusyIsRetriedWithBackoff) {
  kernel_->busy_reads = 2;
  kernel_->busy_writes = 1;
  ConfigfsQuoteProvider provider(kernel_, FastOptions());
  auto quote = provider.GetQuote(Nonce(4));
  ASSERT_TRUE(quote.ok()) << quote.error();
  ExpectVerifiedQuote(*quote, Nonce(4));
  EXPECT_EQ(kernel_->outblob_reads, 3);
}

TEST_F(ConfigfsProvider, BusyForeverFailsInBoundedTime) {
  kernel_->busy_reads = -1;
  ConfigfsQuoteProvider provider(kernel_, FastOptions());
  auto start = std::chrono::steady_clock::now();
  auto quote = provider.GetQuote(Nonce(4));
  ASSERT_FALSE(quote.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 200ms);
  EXPECT_EQ(quote.error(), "configfs-tsm " + kernel_->made.back() +
                               ": reading outblob: Device or resource busy (a previous quote request was still in "
                               "flight after 3 retries)");
  EXPECT_EQ(kernel_->outblob_reads, 4);  // first try + 3 retries
  EXPECT_TRUE(kernel_->entries.empty());

  kernel_->busy_reads = 0;
  kernel_->busy_writes = -1;
  quote = provider.GetQuote(Nonce(4));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), "configfs-tsm " + kernel_->made.back() +
                               ": writing 64 bytes to inblob: Device or resource busy (still busy after 3 retries)");
}

TEST_F(ConfigfsProvider, WrongProviderIsNotTdx) {
  kernel_->provider = "sev_guest\n";
  ConfigfsQuoteProvider provider(kernel_, FastOptions());
  auto quote = provider.GetQuote(Nonce(5));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), "configfs-tsm " + kernel_->made.back() +
                               ": provider is \"sev_guest\", not \"tdx_guest\": this is not a TDX guest (or its TSM "
                               "driver is not loaded)");
  EXPECT_TRUE(kernel_->inblob_writes.empty());
  EXPECT_TRUE(kernel_->entries.empty());
}

TEST_F(ConfigfsProvider, SharedEntryIsUsedAndKept) {
  const std::string shared = std::string(kDir) + "/com.intel.dcap";
  ASSERT_EQ(kernel_->MakeDir(shared), 0);
  kernel_->entries[shared].generation = 41;
  kernel_->made.clear();
  ConfigfsQuoteProvider provider(kernel_, FastOptions("com.intel.dcap"));
  auto quote = provider.GetQuote(Nonce(6));
  ASSERT_TRUE(quote.ok()) << quote.error();
  ExpectVerifiedQuote(*quote, Nonce(6));
  EXPECT_TRUE(kernel_->removed.empty());
  EXPECT_EQ(kernel_->entries.at(shared).generation, 42u);

  // The same entry given as an absolute path (what DCAP_TDX_QUOTE_CONFIGFS_PATH holds).
  ConfigfsQuoteProvider absolute(kernel_, FastOptions(shared));
  ASSERT_TRUE(absolute.GetQuote(Nonce(7)).ok());
  EXPECT_TRUE(kernel_->removed.empty());
}

TEST_F(ConfigfsProvider, NamedEntryWeCreateIsRemoved) {
  ConfigfsQuoteProvider provider(kernel_, FastOptions("mine"));
  ASSERT_TRUE(provider.GetQuote(Nonce(8)).ok());
  EXPECT_EQ(kernel_->made, std::vector<std::string>{std::string(kDir) + "/mine"});
  EXPECT_EQ(kernel_->removed, kernel_->made);
}

TEST_F(ConfigfsProvider, UnprivilegedFallsBackToIntelsSharedEntry) {
  const std::string shared = std::string(kDir) + "/com.intel.dcap";
  ASSERT_EQ(kernel_->MakeDir(shared), 0);
  kernel_->mkdir_error = EACCES;
  ConfigfsQuoteProvider provider(kernel_, FastOptions());
  ASSERT_TRUE(provider.GetQuote(Nonce(9)).ok());
  EXPECT_TRUE(kernel_->removed.empty());

  kernel_->entries.clear();
  const size_t tried_before = kernel_->tried.size();
  auto quote = provider.GetQuote(Nonce(9));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), "configfs-tsm: cannot create entry " + kernel_->tried.at(tried_before) +
                               ": Permission denied (creating an entry needs root; or pass an existing entry such "
                               "as com.intel.dcap)");
}

TEST_F(ConfigfsProvider, BadEntryName) {
  ConfigfsQuoteProvider provider(kernel_, FastOptions("a/b"));
  auto quote = provider.GetQuote(Nonce(1));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), "configfs-tsm: entry name \"a/b\" must be one directory name (or an absolute entry path)");
  EXPECT_TRUE(kernel_->made.empty());
}

// The real syscalls under a root directory whose "configfs" is plain files that never change.
class ConfigfsFrozenKernel : public ::testing::Test {
 protected:
  void SetUp() override { std::filesystem::create_directories(tmp_.path() + kDir); }
  std::string Path(const std::string& rel) const { return tmp_.path() + kDir + "/" + rel; }
  void MakeEntry(const std::string& name, const std::string& provider,
                 const std::string& generation) {
    std::filesystem::create_directories(Path(name));
    tdxvirt::testing::WriteFile(Path(name + "/provider"), provider);
    tdxvirt::testing::WriteFile(Path(name + "/generation"), generation);
    tdxvirt::testing::WriteFile(Path(name + "/inblob"), "");
    tdxvirt::testing::WriteFile(Path(name + "/outblob"), "not a quote");
  }
  ConfigfsQuoteProvider Provider(std::string entry = "") {
    return ConfigfsQuoteProvider(fs_, FastOptions(std::move(entry)));
  }
  // The real calls, with the entries the provider tried to create kept (their names hold a
  // process-wide sequence number, so the expected messages take them from here).
  struct RecordingFs : ConfigfsFs {
    explicit RecordingFs(std::shared_ptr<ConfigfsFs> real) : real(std::move(real)) {}
    int MakeDir(const std::string& path) override {
      tried.push_back(path);
      return real->MakeDir(path);
    }
    int RemoveDir(const std::string& path) override { return real->RemoveDir(path); }
    int Read(const std::string& path, size_t max_size, Bytes& out) override {
      return real->Read(path, max_size, out);
    }
    int Write(const std::string& path, ByteSpan data) override { return real->Write(path, data); }
    std::shared_ptr<ConfigfsFs> real;
    std::vector<std::string> tried;
  };
  tdxvirt::testing::TempDir tmp_;
  std::shared_ptr<RecordingFs> fs_ = std::make_shared<RecordingFs>(SystemConfigfsFs(tmp_.path()));
};

TEST_F(ConfigfsFrozenKernel, WritesInblobAndDetectsAGenerationThatDoesNotAdvance) {
  MakeEntry("com.intel.dcap", "tdx_guest\n", "5\n");
  auto quote = Provider("com.intel.dcap").GetQuote(Nonce(0x20));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(),
            "configfs-tsm /sys/kernel/config/tsm/report/com.intel.dcap: generation went from 5 to 5 around our "
            "request, expected 6: the kernel did not take our inblob; gave up after 3 attempts");
  auto inblob = ReadFile(Path("com.intel.dcap/inblob"));
  ASSERT_TRUE(inblob.ok());
  const evidence::ReportData nonce = Nonce(0x20);
  EXPECT_EQ(*inblob, Bytes(nonce.begin(), nonce.end()));
  EXPECT_TRUE(std::filesystem::is_directory(Path("com.intel.dcap")));  // not ours: kept
}

TEST_F(ConfigfsFrozenKernel, ProviderFileMustSayTdxGuest) {
  MakeEntry("e", "sev_guest\n", "0\n");
  auto quote = Provider("e").GetQuote(Nonce(1));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(),
            "configfs-tsm /sys/kernel/config/tsm/report/e: provider is \"sev_guest\", not \"tdx_guest\": this is not "
            "a TDX guest (or its TSM driver is not loaded)");
  auto inblob = ReadFile(Path("e/inblob"));
  EXPECT_TRUE(inblob.ok() && inblob->empty());  // nothing written to a non-TDX provider
}

TEST_F(ConfigfsFrozenKernel, GenerationMustBeANumber) {
  MakeEntry("e", "tdx_guest\n", "many\n");
  auto quote = Provider("e").GetQuote(Nonce(1));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), "configfs-tsm: /sys/kernel/config/tsm/report/e/generation is \"many\", not a number");
}

TEST_F(ConfigfsFrozenKernel, PlainDirectoryIsNoEntryAndIsRemoved) {
  // mkdir on a plain filesystem makes an empty directory: no provider file, so not configfs.
  auto quote = Provider().GetQuote(Nonce(1));
  ASSERT_FALSE(quote.ok());
  ASSERT_EQ(fs_->tried.size(), 1u);
  EXPECT_EQ(quote.error(), "configfs-tsm " + fs_->tried[0] +
                               ": reading provider: No such file or directory (not a configfs-tsm report entry)");
  EXPECT_TRUE(std::filesystem::is_empty(tmp_.path() + kDir));  // our entry was removed
}

TEST_F(ConfigfsFrozenKernel, MissingReportDirectory) {
  std::filesystem::remove_all(tmp_.path() + "/sys");
  auto quote = Provider().GetQuote(Nonce(1));
  ASSERT_FALSE(quote.ok());
  ASSERT_EQ(fs_->tried.size(), 1u);
  EXPECT_EQ(quote.error(), "configfs-tsm: cannot create entry " + fs_->tried[0] +
                               ": No such file or directory (configfs-tsm needs Linux >= 6.7 with configfs mounted "
                               "at /sys/kernel/config)");
}

TEST_F(ConfigfsFrozenKernel, OutblobIsReadWhole) {
  // The fs layer reads a multi-chunk file completely and bounds it.
  MakeEntry("e", "tdx_guest\n", "0\n");
  std::string big(20000, 'q');
  tdxvirt::testing::WriteFile(Path("e/outblob"), big);
  auto fs = SystemConfigfsFs(tmp_.path());
  Bytes out;
  EXPECT_EQ(fs->Read(std::string(kDir) + "/e/outblob", 1 << 20, out), 0);
  EXPECT_EQ(out.size(), big.size());
  EXPECT_EQ(fs->Read(std::string(kDir) + "/e/outblob", 10000, out), EFBIG);
  EXPECT_EQ(fs->Write(std::string(kDir) + "/e/absent", Bytes(64)), ENOENT);  // never creates files
  EXPECT_FALSE(std::filesystem::exists(Path("e/absent")));
}

}  // namespace
}  // namespace tdxvirt::guest
