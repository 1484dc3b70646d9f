// TDREPORT -> QGS -> quote: the provider against the real QGS server (src/qgs) with the simulator
// backend, on UNIX and TCP loopback sockets; and the /dev/tdx_guest device seam.
#include <unistd.h>

#include <filesystem>

#include "common/hex.h"
#include "guest/qgs_provider.h"
#include "guest/quote_provider.h"
#include "guest/tdx_guest_device.h"
#include "guest_test_util.h"
#include "qgs/server.h"
#include "simulator/sim_backend.h"

namespace tdxvirt::guest {
namespace {

using namespace std::chrono_literals;
using testing::ExpectVerifiedQuote;
using testing::FakeTdxGuestDevice;
using testing::LoadPlatform;
using testing::Nonce;
using testing::SimDir;


std::shared_ptr<TdxGuestDevice> SimDevice() {
  return std::make_shared<SimTdxGuestDevice>(LoadPlatform(), simulator::DefaultTdConfig());
}

class QgsProvider : public ::testing::Test {
 protected:
  void SetUp() override {
    qgs::ServerOptions o;
    o.request_timeout = 5000ms;
    o.log = [](const std::string&) {};
    server_ = std::make_unique<qgs::QgsServer>(backend_, o);
    Status s =
        server_->Start({{.kind = qgs::QgsAddress::Kind::kUnix, .path = tmp_.File("qgs.sock")},
                        {.kind = qgs::QgsAddress::Kind::kTcp, .host = "127.0.0.1", .port = 0}});
    ASSERT_TRUE(s.ok()) << s.error();
  }
  std::string UnixAddress() const { return "unix:" + tmp_.File("qgs.sock"); }
  std::string TcpAddress() const { return qgs::ToString(server_->addresses().at(1)); }

  tdxvirt::testing::TempDir tmp_;
  simulator::SimQuoteBackend backend_{LoadPlatform()};
  std::unique_ptr<qgs::QgsServer> server_;
};

TEST_F(QgsProvider, UnixAndTcpQuotesVerify) {
  for (const qgs::QgsAddress& address : server_->addresses()) {
    QgsQuoteProvider provider("qgs", SimDevice(), address, {.timeout = 5000ms});
    auto quote = provider.GetQuote(Nonce(0x31));
    ASSERT_TRUE(quote.ok()) << qgs::ToString(address) << ": " << quote.error();
    ExpectVerifiedQuote(*quote, Nonce(0x31));
  }
  // A connection counts once its thread has finished, which may be after the client has the reply:
  // Stop() joins them all, so the count is final.
  server_->Stop();
  EXPECT_EQ(server_->connections_served(), 2u);
}

TEST_F(QgsProvider, SelectedWithTheSimulatorAsReportSource) {
  tdxvirt::testing::TempDir root;  // no guest interfaces
  ProviderOptions o;
  o.root_dir = root.path();
  o.sim_dir = SimDir();
  o.qgs_address = UnixAddress();
  o.qgs_timeout = 5000ms;
  auto provider = SelectQuoteProvider(o);
  ASSERT_TRUE(provider.ok()) << provider.error();
  EXPECT_EQ((*provider)->name(), "qgs");
  auto quote = (*provider)->GetQuote(Nonce(0x32));
  ASSERT_TRUE(quote.ok()) << quote.error();
  ExpectVerifiedQuote(*quote, Nonce(0x32));
}

TEST_F(QgsProvider, TdxGuestDeviceThroughTheQgs) {
  tdxvirt::testing::TempDir root;
  std::filesystem::create_directories(root.path() + "/dev");
  tdxvirt::testing::WriteFile(root.path() + kTdxGuestDevicePath, "");
  auto device = std::make_shared<FakeTdxGuestDevice>();
  ProviderOptions o;
  o.root_dir = root.path();
  o.qgs_address = TcpAddress();
  o.qgs_timeout = 5000ms;
  o.tdx_guest_device = device;
  std::string why;
  auto provider = SelectQuoteProvider(o, &why);
  ASSERT_TRUE(provider.ok()) << provider.error();
  EXPECT_EQ((*provider)->name(), "tdx-guest") << why;
  auto quote = (*provider)->GetQuote(Nonce(0x33));
  ASSERT_TRUE(quote.ok()) << quote.error();
  ExpectVerifiedQuote(*quote, Nonce(0x33));
  EXPECT_EQ(device->calls, 1);

  device->fail = true;
  quote = (*provider)->GetQuote(Nonce(0x33));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), "fake /dev/tdx_guest: TDX_CMD_GET_REPORT0 failed: Input/output error");
}

TEST_F(QgsProvider, ReportFromAnotherPlatformIsRefused) {
  simulator::PlatformConfig c;
  c.issued_at = testing::kIssued;
  auto other = simulator::SimPlatform::Create(c);
  ASSERT_TRUE(other.ok()) << other.error();
  auto device =
      std::make_shared<SimTdxGuestDevice>(std::move(*other), simulator::DefaultTdConfig());
  QgsQuoteProvider provider("qgs", device, server_->addresses().at(0), {.timeout = 5000ms});
  auto quote = provider.GetQuote(Nonce(0x34));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), "QGS at " + qgs::ToString(server_->addresses().at(0)) +
                               ": GET_QUOTE: the QGS answered with error UNEXPECTED (0x12001)");
}

// Answers every request with the same quote, made for other REPORTDATA.
class StaleBackend : public qgs::QuoteBackend {
 public:
  explicit StaleBackend(Bytes quote) : quote_(std::move(quote)) {}
  Result<Bytes> GetQuote(ByteSpan, ByteSpan) override { return quote_; }
  Result<verify::Collateral> GetCollateral(ByteSpan, std::string_view) override {
    return Error{"no"};
  }
  Result<qgs::PlatformInfo> GetPlatformInfo() override { return Error{"no"}; }

 private:
  Bytes quote_;
};

TEST(QgsProviderGuard, QuoteForOtherReportDataIsRejected) {
  auto stale = SimDevice()->GetReport(Nonce(0xee));
  ASSERT_TRUE(stale.ok());
  simulator::SimQuoteBackend sim(LoadPlatform());
  auto stale_quote = sim.GetQuote(*stale, {});
  ASSERT_TRUE(stale_quote.ok()) << stale_quote.error();
  StaleBackend backend(*stale_quote);
  tdxvirt::testing::TempDir tmp;
  qgs::QgsServer server(backend, {.log = [](const std::string&) {}});
  ASSERT_TRUE(server.Start({{.kind = qgs::QgsAddress::Kind::kUnix, .path = tmp.File("s")}}).ok());
  QgsQuoteProvider provider("qgs", SimDevice(), server.addresses().at(0), {.timeout = 5000ms});
  auto quote = provider.GetQuote(Nonce(0x35));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), "QGS at unix:" + tmp.File("s") + ": the quote's REPORTDATA is " + ToHex(Nonce(0xee)) +
                               ", not the " + ToHex(Nonce(0x35)) + " asked for (it answers another request)");
}

TEST(QgsProviderFailures, NoServerAndSilentServerAreBounded) {
  tdxvirt::testing::TempDir tmp;
  const qgs::QgsAddress nowhere{.kind = qgs::QgsAddress::Kind::kUnix,
                                .path = tmp.File("nothing.sock")};
  QgsQuoteProvider absent("qgs", SimDevice(), nowhere, {.timeout = 200ms});
  auto quote = absent.GetQuote(Nonce(1));
  ASSERT_FALSE(quote.ok());
  const std::string at = "unix:" + tmp.File("nothing.sock");
  EXPECT_EQ(quote.error(), "QGS at " + at + ": connect " + at + ": No such file or directory");

  // Listening but never accepting: the connection sits in the backlog and no reply comes.
  qgs::QgsAddress silent{.kind = qgs::QgsAddress::Kind::kUnix, .path = tmp.File("silent.sock")};
  qgs::QgsAddress bound;
  auto listener = qgs::Listen(silent, {}, &bound);
  ASSERT_TRUE(listener.ok()) << listener.error();
  QgsQuoteProvider provider("qgs", SimDevice(), bound, {.timeout = 200ms});
  auto start = std::chrono::steady_clock::now();
  quote = provider.GetQuote(Nonce(1));
  ASSERT_FALSE(quote.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(quote.error(), "QGS at " + qgs::ToString(bound) + ": reading the reply's length prefix: timed out after 0 bytes");
}

TEST(GuestDevice, RealIoctlOnAPlainFileSaysItIsNotTheDriver) {
  tdxvirt::testing::TempDir root;
  auto device = LinuxTdxGuestDevice(root.path());
  EXPECT_EQ(device->Describe(), root.path() + "/dev/tdx_guest");
  auto report = device->GetReport(Nonce(1));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error(), "cannot open " + root.path() + "/dev/tdx_guest: No such file or directory");

  std::filesystem::create_directories(root.path() + "/dev");
  tdxvirt::testing::WriteFile(root.path() + "/dev/tdx_guest", "");
  report = device->GetReport(Nonce(1));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error(), root.path() +
                                "/dev/tdx_guest: TDX_CMD_GET_REPORT0 failed: Inappropriate ioctl for device (not the "
                                "TDX guest driver's device)");
  EXPECT_EQ(kTdxCmdGetReport0, 0xC4405401ul);
}

TEST(GuestDevice, RealDeviceWhenRunInsideATd) {
  if (access(kTdxGuestDevicePath, R_OK | W_OK) != 0)
    GTEST_SKIP() << "not inside a TDX guest (as root)";
  auto report = LinuxTdxGuestDevice("/")->GetReport(Nonce(0x40));
  ASSERT_TRUE(report.ok()) << report.error();
  auto parsed = evidence::ParseTdReport(*report);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed->mac_struct.report_data, Nonce(0x40));
}

}  // namespace
}  // namespace tdxvirt::guest
