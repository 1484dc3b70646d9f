// QgsClient against our server, and against a scripted server that replies with whatever a test
// wants (to check the client's QEMU-like reply checks); address parsing.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <thread>

#include "common/hex.h"
#include "fake_backend.h"
#include "qgs/client.h"
#include "qgs/server.h"
#include "wire.h"

namespace tdxvirt::qgs {
namespace {

using namespace std::chrono_literals;
using testing::FakeBackend;
using testing::FakeQuoteFor;
using testing::TestReport;

class QgsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_.collateral = testing::SampleCollateral();
    ServerOptions o;
    o.request_timeout = 2000ms;
    o.log = [](const std::string&) {};
    server_ = std::make_unique<QgsServer>(backend_, o);
    Status s = server_->Start({{.kind = QgsAddress::Kind::kUnix, .path = tmp_.File("qgs.sock")},
                               {.kind = QgsAddress::Kind::kTcp, .host = "localhost", .port = 0}});
    ASSERT_TRUE(s.ok()) << s.error();
  }
  QgsClient Unix() { return QgsClient(server_->addresses()[0], {.timeout = 2000ms}); }
  QgsClient Tcp() { return QgsClient(server_->addresses()[1], {.timeout = 2000ms}); }
  // How the client's errors name the QGS.
  std::string UnixAt() const { return "QGS at " + ToString(server_->addresses()[0]) + ": "; }
  std::string TcpAt() const { return "QGS at " + ToString(server_->addresses()[1]) + ": "; }

  tdxvirt::testing::TempDir tmp_;
  FakeBackend backend_;
  std::unique_ptr<QgsServer> server_;
};

TEST_F(QgsClientTest, GetQuoteOverUnixAndTcp) {
  for (QgsClient client : {Unix(), Tcp()}) {
    Bytes report = TestReport(5);
    auto quote = client.GetQuote(report);
    ASSERT_TRUE(quote.ok()) << quote.error();
    EXPECT_EQ(*quote, FakeQuoteFor(report));
  }
}

TEST_F(QgsClientTest, GetQuoteRaw) {
  Bytes report = TestReport(6);
  auto quote = Unix().GetQuoteRaw(report);
  ASSERT_TRUE(quote.ok()) << quote.error();
  EXPECT_EQ(*quote, FakeQuoteFor(report));
  Bytes bad = report;
  bad[0] = 0x80;  // not TDX: the server closes without a quote
  auto refused = Tcp().GetQuoteRaw(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error(), TcpAt() + "raw GET_QUOTE: the QGS closed without a quote (it refused the report)");
  auto short_report = Unix().GetQuoteRaw(Bytes(100, 0x81));
  ASSERT_FALSE(short_report.ok());
  EXPECT_EQ(short_report.error(), UnixAt() + "raw GET_QUOTE: raw mode takes a 1024-byte TDREPORT, not 100 bytes");
}

TEST_F(QgsClientTest, GetCollateralIsTheBackendsCollateral) {
  auto c = Unix().GetCollateral(testing::kSampleFmspc, "platform");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->tcb_info, backend_.collateral.tcb_info);
  EXPECT_EQ(c->tcb_info_signature, backend_.collateral.tcb_info_signature);
  EXPECT_EQ(c->qe_identity, backend_.collateral.qe_identity);
  EXPECT_EQ(c->pck_crl, backend_.collateral.pck_crl);
  EXPECT_EQ(c->root_ca_crl, backend_.collateral.root_ca_crl);
  EXPECT_EQ(c->tcb_info_issuer_chain, backend_.collateral.tcb_info_issuer_chain);
  auto unknown = Unix().GetCollateral(Bytes(6, 0), "platform");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error(), UnixAt() + "GET_COLLATERAL: the QGS answered with error UNEXPECTED (0x12001)");
}

TEST_F(QgsClientTest, GetPlatformInfo) {
  auto info = Tcp().GetPlatformInfo();
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->tdqe_isvsvn, 4);
  EXPECT_EQ(info->pce_isvsvn, 13);
  EXPECT_EQ(info->platform_id, Bytes(16, 0xab));
}

TEST_F(QgsClientTest, ErrorResponsesBecomeErrors) {
  backend_.fail = true;
  auto quote = Unix().GetQuote(TestReport());
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), UnixAt() + "GET_QUOTE: the QGS answered with error UNEXPECTED (0x12001)");
}

TEST(QgsClientConnect, NothingListening) {
  tdxvirt::testing::TempDir tmp;
  QgsClient client({.kind = QgsAddress::Kind::kUnix, .path = tmp.File("none.sock")},
                   {.timeout = 500ms});
  auto quote = client.GetQuote(TestReport());
  ASSERT_FALSE(quote.ok());
  const std::string at = "unix:" + tmp.File("none.sock");
  EXPECT_EQ(quote.error(), "QGS at " + at + ": connect " + at + ": No such file or directory");
}

// One connection, answered with `reply` (or left hanging), on a UNIX socket.
class ScriptedQgs {
 public:
  ScriptedQgs(const std::string& path, Bytes reply, bool hang = false) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    thread_ = std::thread([this, reply = std::move(reply), hang] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      wire::SetTimeouts(c, 3000);
      uint8_t prefix[4];
      if (recv(c, prefix, 4, MSG_WAITALL) == 4) {
        uint32_t n = uint32_t(prefix[0]) << 24 | uint32_t(prefix[1]) << 16 |
                     uint32_t(prefix[2]) << 8 | prefix[3];
        request_.assign(prefix, prefix + 4);
        Bytes body(n);
        if (n < (1u << 20) && recv(c, body.data(), n, MSG_WAITALL) == ssize_t(n))
          request_.insert(request_.end(), body.begin(), body.end());
      }
      if (hang) {
        uint8_t b;
        (void)recv(c, &b, 1, 0);  // until the client gives up and closes
      } else {
        (void)send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
      close(c);
    });
  }
  ~ScriptedQgs() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  QgsAddress address() const { return {.kind = QgsAddress::Kind::kUnix, .path = path_}; }
  Bytes request() {
    thread_.join();
    thread_ = std::thread([] {});
    return request_;
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
  Bytes request_;
};

Bytes QuoteResp(uint16_t major, uint16_t minor, uint32_t type, uint32_t id_size,
                uint32_t quote_size, size_t actual_quote) {
  Bytes m = wire::Header(type, uint32_t(24 + id_size + actual_quote), major, minor);
  wire::Le32(m, id_size);
  wire::Le32(m, quote_size);
  m.resize(24 + id_size + actual_quote, 0x5a);
  return wire::Framed(m);
}

TEST(QgsClientChecks, SendsQemusFramingAndAcceptsAGoodReply) {
  tdxvirt::testing::TempDir tmp;
  ScriptedQgs qgs(tmp.File("s.sock"), QuoteResp(1, 1, 1, 0, 100, 100));
  Bytes report = TestReport();
  auto quote = QgsClient(qgs.address(), {.timeout = 2000ms}).GetQuote(report);
  ASSERT_TRUE(quote.ok()) << quote.error();
  EXPECT_EQ(*quote, Bytes(100, 0x5a));
  Bytes expected = *FromHex("00000418 01000100 00000000 18040000 00000000 00040000 00000000");
  expected.insert(expected.end(), report.begin(), report.end());
  EXPECT_EQ(qgs.request(), expected);
}

TEST(QgsClientChecks, RejectsWhatQemuRejects) {
  struct Case {
    const char* name;
    Bytes reply;
    std::string says;
  };
  Bytes error_reply = wire::Header(1, 24, 1, 1, kErrorUnexpected);
  error_reply.resize(24, 0);
  Bytes huge = {0x01, 0x00, 0x00, 0x10};  // 16 MiB + 16: over the client's limit
  huge.resize(40, 0);
  const std::vector<Case> cases = {
      {"version 1.0", QuoteResp(1, 0, 1, 0, 100, 100), "GET_QUOTE: reply has version 1.0, expected 1.1"},
      {"version 2.1", QuoteResp(2, 1, 1, 0, 100, 100), "GET_QUOTE: reply has version 2.1, expected 1.1"},
      {"wrong type", QuoteResp(1, 1, 3, 0, 100, 100), "GET_QUOTE: reply is GET_COLLATERAL_RESP, expected GET_QUOTE_RESP"},
      {"error code", wire::Framed(error_reply), "GET_QUOTE: the QGS answered with error UNEXPECTED (0x12001)"},
      {"selected id", QuoteResp(1, 1, 1, 4, 100, 100), 
       "GET_QUOTE: the reply selects an attestation key ID that was not asked for"},
      {"quote_size mismatch", QuoteResp(1, 1, 1, 0, 99, 100), 
       "GET_QUOTE: GET_QUOTE_RESP: fixed part 24 + selected_id_size 0 (offset 16) + quote_size 99 (offset 20) = "
       "123 bytes, but size at offset 8 is 124"},
      {"empty quote", QuoteResp(1, 1, 1, 0, 0, 0), "GET_QUOTE: GET_QUOTE_RESP: success with quote_size 0 (offset 20)"},
      {"prefix over the limit", huge, "reply length prefix 16777232 is outside 16..16777216"},
      {"closed without a reply", {}, "reading the reply's length prefix: connection closed after 0 bytes"},
  };
  for (const Case& c : cases) {
    tdxvirt::testing::TempDir tmp;
    ScriptedQgs qgs(tmp.File("s.sock"), c.reply);
    auto quote = QgsClient(qgs.address(), {.timeout = 2000ms}).GetQuote(TestReport());
    ASSERT_FALSE(quote.ok()) << c.name;
    EXPECT_EQ(quote.error(), "QGS at unix:" + tmp.File("s.sock") + ": " + c.says) << c.name;
  }
}

TEST(QgsClientChecks, TimesOut) {
  tdxvirt::testing::TempDir tmp;
  // The scripted server reads the request and never answers nor closes: only the client's own
  // deadline can end the call, and its error must say so (not "connection closed").
  ScriptedQgs qgs(tmp.File("s.sock"), {}, /*hang=*/true);
  auto quote = QgsClient(qgs.address(), {.timeout = 200ms}).GetQuote(TestReport());
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), "QGS at unix:" + tmp.File("s.sock") + ": reading the reply's length prefix: timed out after 0 bytes");
}

TEST(QgsClientChecks, PlatformInfoAcceptsAnyMinorVersion) {
  tdxvirt::testing::TempDir tmp;
  Bytes m = wire::Header(5, 28 + 2, 1, 0);
  wire::Le16(m, 1);
  wire::Le16(m, 2);
  wire::Le32(m, 1);
  wire::Le32(m, 1);
  m.push_back(0xaa);
  m.push_back(0xbb);
  ScriptedQgs qgs(tmp.File("s.sock"), wire::Framed(m));
  auto info = QgsClient(qgs.address(), {.timeout = 2000ms}).GetPlatformInfo();
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->platform_id, Bytes{0xaa});
  EXPECT_EQ(qgs.request(), *FromHex("00000010 01000100 04000000 10000000 00000000"));
}

TEST(QgsAddress, ParsesEveryForm) {
  using K = QgsAddress::Kind;
  struct Case {
    const char* text;
    QgsAddress want;
  };
  const std::vector<Case> cases = {
      {"unix:/var/run/tdx-qgs/qgs.socket",
       {.kind = K::kUnix, .path = "/var/run/tdx-qgs/qgs.socket"}},
      {"/run/qgs", {.kind = K::kUnix, .path = "/run/qgs"}},
      {"vsock:2:4050", {.kind = K::kVsock, .cid = 2, .port = 4050}},
      {"localhost:1234", {.kind = K::kTcp, .host = "localhost", .port = 1234}},
      {"tcp:127.0.0.1:4050", {.kind = K::kTcp, .host = "127.0.0.1", .port = 4050}},
      {"[::1]:4050", {.kind = K::kTcp, .host = "::1", .port = 4050}},
      {R"({"type":"vsock","cid":"2","port":"4050"})", {.kind = K::kVsock, .cid = 2, .port = 4050}},
      {R"({"type":"vsock","cid":3,"port":4051})", {.kind = K::kVsock, .cid = 3, .port = 4051}},
      {R"({"type":"unix","path":"/run/q.sock"})", {.kind = K::kUnix, .path = "/run/q.sock"}},
      {R"({"type":"inet","host":"10.0.0.1","port":"99"})",
       {.kind = K::kTcp, .host = "10.0.0.1", .port = 99}},
      {"  vsock:2:4050\n", {.kind = K::kVsock, .cid = 2, .port = 4050}},
  };
  for (const Case& c : cases) {
    auto a = ParseQgsAddress(c.text);
    ASSERT_TRUE(a.ok()) << c.text << ": " << a.error();
    EXPECT_EQ(*a, c.want) << c.text;
  }
  EXPECT_EQ(ToString(*ParseQgsAddress("[::1]:4050")), "[::1]:4050");
  EXPECT_EQ(ToString(*ParseQgsAddress("vsock:2:4050")), "vsock:2:4050");
  EXPECT_EQ(ToString(*ParseQgsAddress("unix:/x")), "unix:/x");
}

TEST(QgsAddress, RejectsNonsense) {
  for (const char* text :
       {"", "unix:", "vsock:2", "vsock:x:1", "host", "host:70000", ":80", "::1:80", "host:-1",
        R"({"type":"pipe"})", R"({"type":"vsock","cid":"2"})", "{bad json"}) {
    auto a = ParseQgsAddress(text);
    EXPECT_FALSE(a.ok()) << text;
  }
}

}  // namespace
}  // namespace tdxvirt::qgs
