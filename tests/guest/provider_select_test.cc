// Choosing a provider: the auto-detection order on prepared trees, and explicit choices.
#include <filesystem>

#include "guest/quote_provider.h"
#include "guest_test_util.h"

namespace tdxvirt::guest {
namespace {

using testing::SimDir;

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

class ProviderSelection : public ::testing::Test {
 protected:
  void AddConfigfs() { std::filesystem::create_directories(root_.path() + kConfigfsReportDir); }
  void AddDevice() {
    std::filesystem::create_directories(root_.path() + "/dev");
    tdxvirt::testing::WriteFile(root_.path() + kTdxGuestDevicePath, "");
  }
  ProviderOptions Options() {
    ProviderOptions o;
    o.root_dir = root_.path();
    return o;
  }
  // The chosen provider's name, and the reason in `why`.
  std::string Select(const ProviderOptions& o, std::string* why = nullptr) {
    auto p = SelectQuoteProvider(o, why);
    EXPECT_TRUE(p.ok()) << p.error();
    return p.ok() ? std::string((*p)->name()) : "";
  }
  tdxvirt::testing::TempDir root_;
};

TEST_F(ProviderSelection, ConfigfsComesFirst) {
  AddConfigfs();
  AddDevice();
  ProviderOptions o = Options();
  o.sim_dir = SimDir();
  o.qgs_address = "unix:/nowhere";
  std::string why;
  EXPECT_EQ(Select(o, &why), "configfs");
  EXPECT_TRUE(Contains(why, root_.path() + "/sys/kernel/config/tsm/report exists")) << why;
}

TEST_F(ProviderSelection, DeviceWithoutConfigfsQuotesThroughTheHostQgs) {
  AddDevice();
  ProviderOptions o = Options();
  o.sim_dir = SimDir();
  std::string why;
  EXPECT_EQ(Select(o, &why), "tdx-guest");
  EXPECT_TRUE(Contains(why, root_.path() + "/dev/tdx_guest exists")) << why;
  EXPECT_TRUE(Contains(why, "vsock:2:4050 (the default)")) << why;
  o.qgs_address = "vsock:2:4051";
  EXPECT_EQ(Select(o, &why), "tdx-guest");
  EXPECT_TRUE(Contains(why, "the QGS at vsock:2:4051")) << why;
}

TEST_F(ProviderSelection, NeitherMeansTheSimulator) {
  ProviderOptions o = Options();
  o.sim_dir = SimDir();
  std::string why;
  EXPECT_EQ(Select(o, &why), "sim");
  EXPECT_TRUE(Contains(why, "no TDX guest interface")) << why;
  o.qgs_address = "127.0.0.1:4050";
  EXPECT_EQ(Select(o, &why), "qgs");
  EXPECT_TRUE(Contains(why, "quoted by the QGS at 127.0.0.1:4050")) << why;
}

TEST_F(ProviderSelection, NothingIsAnErrorSayingWhatToDo) {
  auto p = SelectQuoteProvider(Options());
  ASSERT_FALSE(p.ok());
  const std::string missing = "no quote provider available: " + root_.path() +
                              "/sys/kernel/config/tsm/report (configfs-tsm, Linux >= 6.7) and " + root_.path() +
                              "/dev/tdx_guest (TDX guest driver) are both missing, and no simulator directory "
                              "was given";
  const std::string what_to_do =
      ". Run inside a TDX trust domain, or use the simulator: `tdxvirt sim init --dir DIR`, then --sim-dir DIR "
      "(add --qgs ADDR to quote through a QGS)";
  EXPECT_EQ(p.error(), missing + what_to_do);

  ProviderOptions o = Options();
  o.qgs_address = "unix:/run/qgs";
  p = SelectQuoteProvider(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error(), missing + " (a QGS address alone is not enough: it needs a TDREPORT)" + what_to_do);
}

TEST_F(ProviderSelection, AbsoluteConfigfsEntryCountsAsConfigfs) {
  std::filesystem::create_directories(root_.path() + "/mnt/tsm/com.intel.dcap");
  ProviderOptions o = Options();
  o.configfs_entry = "/mnt/tsm/com.intel.dcap";
  o.sim_dir = SimDir();
  EXPECT_EQ(Select(o), "configfs");
}

TEST_F(ProviderSelection, ExplicitChoices) {
  ProviderOptions o = Options();  // an empty tree: explicit choices do not look
  std::string why;
  o.kind = ProviderKind::kConfigfs;
  EXPECT_EQ(Select(o, &why), "configfs");
  EXPECT_TRUE(Contains(why, "asked for")) << why;
  o.kind = ProviderKind::kTdxGuest;
  EXPECT_EQ(Select(o), "tdx-guest");

  o.kind = ProviderKind::kQgs;
  auto p = SelectQuoteProvider(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error(), "the qgs provider needs a QGS address (--qgs unix:PATH, vsock:CID:PORT or HOST:PORT)");
  o.qgs_address = "not an address";
  o.sim_dir = SimDir();
  p = SelectQuoteProvider(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error(),
            "QGS address \"not an address\": address 'not an address': expected unix:PATH, vsock:CID:PORT or "
            "HOST:PORT");

  o = Options();
  o.kind = ProviderKind::kSim;
  p = SelectQuoteProvider(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error(),
            "the simulator needs its directory: create one with `tdxvirt sim init --dir DIR` and pass it (--sim-dir "
            "DIR)");
  o.sim_dir = root_.path();  // not a simulator directory
  p = SelectQuoteProvider(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error(), "not a simulator directory (run `tdxvirt sim init --dir " + root_.path() +
                           "`): cannot open " + root_.path() + "/platform.json: No such file or directory");
  o.sim_dir = SimDir();
  o.quote_version = 3;
  p = SelectQuoteProvider(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error(), "quote version 3: expected 4 or 5");
}

TEST(ProviderKindNames, RoundTrip) {
  for (auto kind : {ProviderKind::kAuto, ProviderKind::kConfigfs, ProviderKind::kTdxGuest,
                    ProviderKind::kQgs, ProviderKind::kSim}) {
    auto parsed = ParseProviderKind(ProviderKindName(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  auto bad = ParseProviderKind("tpm");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), "unknown quote provider \"tpm\": expected auto, configfs, tdx-guest, qgs or sim");
  EXPECT_EQ(UnderRoot("/", "/dev/tdx_guest"), "/dev/tdx_guest");
  EXPECT_EQ(UnderRoot("/tmp/r/", "/dev/tdx_guest"), "/tmp/r/dev/tdx_guest");
}

}  // namespace
}  // namespace tdxvirt::guest
