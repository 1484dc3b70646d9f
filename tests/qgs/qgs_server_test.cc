// The QGS server over real UNIX and TCP sockets, driven by a client written from the protocol
// text (wire.h: hand-built bytes, plain sockets), not by QgsClient.
#include <gtest/gtest.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/stat.h>

#include <mutex>
#include <nlohmann/json.hpp>
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

struct WireReply {
  uint32_t prefix = 0;
  uint16_t major = 0, minor = 0;
  uint32_t type = 0, size = 0, error_code = 0;
  Bytes message;  // after the prefix
};

// Parses a framed reply by the protocol text; fails the test when it is not one.
WireReply ParseReply(const Bytes& data) {
  WireReply r;
  EXPECT_GE(data.size(), 20u) << "reply too short";
  if (data.size() < 20) return r;
  r.prefix = wire::GetBe32(data, 0);
  r.message.assign(data.begin() + 4, data.end());
  EXPECT_EQ(r.prefix, r.message.size()) << "length prefix vs bytes received";
  r.major = wire::GetLe16(r.message, 0);
  r.minor = wire::GetLe16(r.message, 2);
  r.type = wire::GetLe32(r.message, 4);
  r.size = wire::GetLe32(r.message, 8);
  r.error_code = wire::GetLe32(r.message, 12);
  EXPECT_EQ(r.size, r.message.size()) << "header size vs message";
  return r;
}

// A GET_QUOTE_RESP as QEMU checks it: version 1.1, type 1, error 0, selected_id_size 0,
// quote_size matching, and the quote itself.
void ExpectQuoteReply(const Bytes& data, const Bytes& report) {
  Bytes quote = FakeQuoteFor(report);
  ASSERT_EQ(data.size(), 4 + 24 + quote.size());
  WireReply r = ParseReply(data);
  EXPECT_EQ(r.prefix, 24 + quote.size());
  EXPECT_EQ(r.major, 1);
  EXPECT_EQ(r.minor, 1);
  EXPECT_EQ(r.type, 1u);
  EXPECT_EQ(r.error_code, 0u);
  EXPECT_EQ(wire::GetLe32(r.message, 16), 0u);  // selected_id_size
  EXPECT_EQ(wire::GetLe32(r.message, 20), quote.size());
  EXPECT_EQ(Bytes(r.message.begin() + 24, r.message.end()), quote);
}

void ExpectErrorReply(const Bytes& data, uint32_t type, uint32_t code, const std::string& what) {
  WireReply r = ParseReply(data);
  EXPECT_EQ(r.type, type) << what;
  EXPECT_EQ(r.error_code, code) << what;
  EXPECT_EQ(r.major, 1) << what;
  // qgs_msg_gen_error_resp: the fixed part, zero but the header.
  size_t fixed = type == 1 ? 24 : type == 3 ? 48 : 28;
  EXPECT_EQ(r.message.size(), fixed) << what;
  for (size_t i = 16; i < r.message.size(); ++i) EXPECT_EQ(r.message[i], 0) << what << " @" << i;
}

template <typename F>
bool WaitFor(F pred, std::chrono::milliseconds limit = 3000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

class QgsServerTest : public ::testing::Test {
 protected:
  static ServerOptions FastOptions() {
    ServerOptions o;
    o.request_timeout = 300ms;
    o.write_timeout = 1000ms;
    return o;
  }

  void Start(ServerOptions o = FastOptions()) {
    o.log = [this](const std::string& line) {
      std::lock_guard lock(log_mu_);
      logs_.push_back(line);
    };
    server_ = std::make_unique<QgsServer>(backend_, o);
    Status s = server_->Start({{.kind = QgsAddress::Kind::kUnix, .path = UnixPath()},
                               {.kind = QgsAddress::Kind::kTcp, .host = "127.0.0.1", .port = 0}});
    ASSERT_TRUE(s.ok()) << s.error();
    ASSERT_EQ(server_->addresses().size(), 2u);
    ASSERT_NE(TcpPort(), 0);
  }

  std::string UnixPath() const { return tmp_.File("qgs.sock"); }
  uint16_t TcpPort() const { return uint16_t(server_->addresses()[1].port); }

  // One exchange on a fresh UNIX connection: send, half-close, read until the server closes.
  Bytes Exchange(const Bytes& data, bool* closed = nullptr, bool half_close = true) {
    auto c = wire::Conn::Unix(UnixPath());
    EXPECT_TRUE(c.connected());
    EXPECT_TRUE(c.Send(data));
    if (half_close) c.ShutdownWrite();
    return c.ReadToEof(closed);
  }

  std::vector<nlohmann::json> Logs() {
    std::lock_guard lock(log_mu_);
    std::vector<nlohmann::json> out;
    for (const std::string& l : logs_) out.push_back(nlohmann::json::parse(l));
    return out;
  }
  std::vector<nlohmann::json> RequestLogs() {
    std::vector<nlohmann::json> out;
    for (auto& j : Logs())
      if (j["event"] == "request") out.push_back(j);
    return out;
  }

  // Declared before server_: its destructor still logs.
  tdxvirt::testing::TempDir tmp_;
  FakeBackend backend_;
  std::mutex log_mu_;
  std::vector<std::string> logs_;
  std::unique_ptr<QgsServer> server_;
};

TEST_F(QgsServerTest, GetQuoteOverUnix) {
  Start();
  Bytes report = TestReport(1);
  bool closed = false;
  Bytes reply = Exchange(wire::Framed(wire::GetQuoteReq(report)), &closed);
  ExpectQuoteReply(reply, report);
  EXPECT_TRUE(closed) << "one request per connection";
}

TEST_F(QgsServerTest, GetQuoteOverTcp) {
  Start();
  Bytes report = TestReport(2);
  auto c = wire::Conn::Tcp(TcpPort());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(wire::Framed(wire::GetQuoteReq(report))));
  // No half-close: the server must answer on the length prefix alone, as QEMU expects.
  bool closed = false;
  Bytes reply = c.ReadToEof(&closed);
  ExpectQuoteReply(reply, report);
  EXPECT_TRUE(closed);
}

TEST_F(QgsServerTest, GetCollateralAndPlatformInfo) {
  backend_.collateral = testing::SampleCollateral();
  Start();
  Bytes req = wire::Header(2, 24 + 6 + 9);
  wire::Le32(req, 6);
  wire::Le32(req, 9);
  req.insert(req.end(), testing::kSampleFmspc.begin(), testing::kSampleFmspc.end());
  for (char ch : std::string("platform")) req.push_back(uint8_t(ch));
  req.push_back(0);
  Bytes reply = Exchange(wire::Framed(req));
  WireReply r = ParseReply(reply);
  EXPECT_EQ(r.type, 3u);
  EXPECT_EQ(r.error_code, 0u);
  auto decoded = DecodeGetCollateralResponse(r.message);
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  auto c = CollateralFromResponse(*decoded);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->tcb_info, backend_.collateral.tcb_info);

  Bytes pi = Exchange(wire::Framed(wire::Header(4, 16)));
  WireReply p = ParseReply(pi);
  EXPECT_EQ(p.type, 5u);
  EXPECT_EQ(p.error_code, 0u);
  EXPECT_EQ(wire::GetLe16(p.message, 16), 4);   // tdqe_isvsvn
  EXPECT_EQ(wire::GetLe16(p.message, 18), 13);  // pce_isvsvn
  EXPECT_EQ(wire::GetLe32(p.message, 20), 16u);
  EXPECT_EQ(wire::GetLe32(p.message, 24), 16u);
  EXPECT_EQ(p.message.size(), 28u + 32);
}

TEST_F(QgsServerTest, MalformedRequestsGetTheirErrorCodeOrAClose) {
  Start();
  Bytes report = TestReport();
  Bytes good = wire::GetQuoteReq(report);
  auto set32 = [](Bytes b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
    return b;
  };
  Bytes major2 = good;
  major2[0] = 2;
  Bytes minor0 = good;
  minor0[2] = 0;
  Bytes pi_extra = wire::Header(4, 17);
  pi_extra.push_back(0);
  struct Case {
    const char* name;
    Bytes frame;
    int code;  // -1: closed without a reply; 0: a successful quote
    uint32_t type = 1;
  };
  const std::vector<Case> cases = {
      {"bad major version", wire::Framed(major2), int(kErrorInvalidVersion)},
      {"minor version 0 (only major is checked)", wire::Framed(minor0), 0},
      {"unknown type", wire::Framed(set32(good, 4, 7)), -1},
      {"a response type", wire::Framed(set32(good, 4, 1)), -1},
      {"header.size != received", wire::Framed(set32(good, 8, 1000)), int(kErrorInvalidSize)},
      {"report_size 0", wire::Framed(set32(good, 16, 0)), int(kErrorInvalidCode)},
      {"id_list beyond the end", wire::Framed(set32(good, 20, 64)), int(kErrorInvalidSize)},
      {"report beyond the end", wire::Framed(set32(good, 16, 2000)), int(kErrorInvalidSize)},
      {"error_code set in a request", wire::Framed(set32(good, 12, kErrorUnexpected)),
       int(kErrorInvalidCode)},
      {"prefix shorter than a header", {0, 0, 0, 8, 1, 0, 1, 0, 0, 0, 0, 0}, -1},
      {"platform info with a trailing byte", wire::Framed(pi_extra), int(kErrorInvalidSize), 5},
      {"collateral with fmspc_size 0", wire::Framed([] {
         Bytes b = wire::Header(2, 24 + 9);
         wire::Le32(b, 0);
         wire::Le32(b, 9);
         for (char ch : std::string("platform")) b.push_back(uint8_t(ch));
         b.push_back(0);
         return b;
       }()),
       int(kErrorInvalidSize), 3},
  };
  for (const Case& c : cases) {
    bool closed = false;
    Bytes reply = Exchange(c.frame, &closed);
    EXPECT_TRUE(closed) << c.name;
    if (c.code < 0) {
      EXPECT_TRUE(reply.empty()) << c.name << ": " << reply.size() << " bytes";
    } else if (c.code == 0) {
      ExpectQuoteReply(reply, report);
    } else {
      ExpectErrorReply(reply, c.type, uint32_t(c.code), c.name);
    }
  }
  // Each connection logged one line.
  EXPECT_TRUE(WaitFor([&] { return RequestLogs().size() == cases.size(); }));
}

TEST_F(QgsServerTest, BackendFailureIsUnexpected) {
  Start();
  backend_.fail = true;
  Bytes reply = Exchange(wire::Framed(wire::GetQuoteReq(TestReport())));
  ExpectErrorReply(reply, 1, kErrorUnexpected, "backend failure");
  EXPECT_TRUE(WaitFor([&] { return RequestLogs().size() == 1; }));
  auto log = RequestLogs().at(0);
  EXPECT_EQ(log["outcome"], "error");
  EXPECT_EQ(log["error_code"], "UNEXPECTED (0x12001)");
  EXPECT_NE(log["detail"].get<std::string>().find("told to fail"), std::string::npos);
}

TEST_F(QgsServerTest, OversizedFrameIsAnsweredBeforeItsBody) {
  ServerOptions o = FastOptions();
  o.max_request_size = 4096;
  o.request_timeout = 5000ms;  // the answer must not wait for a timeout
  Start(o);
  auto start = std::chrono::steady_clock::now();
  // 1 MiB claimed, only the header sent, the connection left open.
  Bytes frame = {0x00, 0x10, 0x00, 0x00};
  Bytes header = wire::Header(0, 0x100000);
  frame.insert(frame.end(), header.begin(), header.end());
  auto c = wire::Conn::Unix(UnixPath());
  ASSERT_TRUE(c.Send(frame));
  bool closed = false;
  Bytes reply = c.ReadToEof(&closed);
  EXPECT_TRUE(closed);
  ExpectErrorReply(reply, 1, kErrorInvalidSize, "oversized");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2000ms);
  // An oversized frame of a response type is closed on, at once.
  Bytes resp = {0x7f, 0xff, 0xff, 0xff};
  Bytes resp_header = wire::Header(1, 0x7fffffff);
  resp.insert(resp.end(), resp_header.begin(), resp_header.end());
  start = std::chrono::steady_clock::now();
  EXPECT_TRUE(Exchange(resp, &closed, /*half_close=*/false).empty());
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2000ms);
  // A huge prefix whose header disagrees is no frame: it is read as a raw TDREPORT, which this is
  // not (the client's end of stream ends it), so no reply.
  Bytes junk = {0x7f, 0xff, 0xff, 0xff};
  Bytes junk_header = wire::Header(9, 0x7fffffff);
  junk.insert(junk.end(), junk_header.begin(), junk_header.end());
  EXPECT_TRUE(Exchange(junk, &closed).empty());
  EXPECT_TRUE(closed);
  EXPECT_TRUE(WaitFor([&] { return RequestLogs().size() == 3; }));
  int raw = 0;
  for (auto& j : RequestLogs())
    if (j["type"] == "raw") raw += j["outcome"] == "truncated";
  EXPECT_EQ(raw, 1);
}

TEST_F(QgsServerTest, NonFrameOf1024BytesIsARejectedRawReport) {
  Start();
  Bytes blob(1024, 0x42);  // prefix 0x42424242: over the limit, and no frame header
  bool closed = false;
  EXPECT_TRUE(Exchange(blob, &closed, /*half_close=*/false).empty());
  EXPECT_TRUE(closed);
  EXPECT_TRUE(WaitFor([&] { return RequestLogs().size() == 1; }));
  EXPECT_EQ(RequestLogs().at(0)["type"], "raw");
  EXPECT_EQ(RequestLogs().at(0)["outcome"], "rejected");
  EXPECT_EQ(backend_.calls.load(), 0);
}

TEST_F(QgsServerTest, TruncatedFrameThenCloseGetsNoReply) {
  Start();
  Bytes frame = wire::Framed(wire::GetQuoteReq(TestReport()));
  frame.resize(100);
  auto start = std::chrono::steady_clock::now();
  bool closed = false;
  Bytes reply = Exchange(frame, &closed);
  EXPECT_TRUE(reply.empty());
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 250ms) << "EOF must end it, not the timeout";
  EXPECT_TRUE(WaitFor([&] { return RequestLogs().size() == 1; }));
  auto log = RequestLogs().at(0);
  EXPECT_EQ(log["outcome"], "truncated");
  EXPECT_EQ(log["bytes_in"], 100);
  EXPECT_EQ(log["type"], "GET_QUOTE_REQ");
}

TEST_F(QgsServerTest, SlowClientIsDroppedWhileOthersAreServed) {
  Start();  // 300 ms request timeout
  auto start = std::chrono::steady_clock::now();
  auto slow = wire::Conn::Unix(UnixPath());
  ASSERT_TRUE(slow.connected());
  ASSERT_TRUE(slow.Send({0x00}));  // one byte, then nothing
  // Others are served meanwhile, at once.
  for (int i = 0; i < 3; ++i) {
    Bytes report = TestReport(uint8_t(10 + i));
    auto t0 = std::chrono::steady_clock::now();
    ExpectQuoteReply(Exchange(wire::Framed(wire::GetQuoteReq(report))), report);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 250ms);
  }
  bool closed = false;
  Bytes got = slow.ReadToEof(&closed);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(closed);
  EXPECT_TRUE(got.empty());
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 3000ms);
  EXPECT_TRUE(WaitFor([&] {
    for (auto& j : RequestLogs())
      if (j["outcome"] == "timeout" && j["bytes_in"] == 1) return true;
    return false;
  }));
}

TEST_F(QgsServerTest, TricklingClientIsDroppedAtTheDeadline) {
  Start();  // 300 ms for the whole request
  Bytes frame = wire::Framed(wire::GetQuoteReq(TestReport()));
  auto c = wire::Conn::Unix(UnixPath());
  auto start = std::chrono::steady_clock::now();
  bool dropped = false;
  for (size_t i = 0; i < 60 && !dropped; ++i) {  // 1 byte / 20 ms would take 21 s
    if (!c.Send({frame[i]})) {
      dropped = true;  // the server closed first
      break;
    }
    std::this_thread::sleep_for(20ms);
    pollfd p{c.fd(), POLLIN, 0};
    if (poll(&p, 1, 0) == 1) {
      uint8_t b;
      dropped = recv(c.fd(), &b, 1, MSG_DONTWAIT) <= 0;
    }
  }
  EXPECT_TRUE(dropped);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2000ms);
}

TEST_F(QgsServerTest, ManyConcurrentClients) {
  ServerOptions o = FastOptions();
  o.request_timeout = 5000ms;
  o.serialize_backend = false;
  backend_.delay = 40ms;
  Start(o);
  constexpr int kClients = 16;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      Bytes report = TestReport(uint8_t(i));
      auto c = i % 2 ? wire::Conn::Tcp(TcpPort()) : wire::Conn::Unix(UnixPath());
      if (!c.connected() || !c.Send(wire::Framed(wire::GetQuoteReq(report)))) return;
      Bytes reply = c.ReadToEof();
      Bytes quote = FakeQuoteFor(report);
      if (reply.size() == 28 + quote.size() &&
          std::equal(quote.begin(), quote.end(), reply.begin() + 28))
        ++good;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), kClients);
  EXPECT_GT(backend_.max_in_flight.load(), 1) << "connections must be served concurrently";
  EXPECT_TRUE(WaitFor([&] { return server_->connections_served() == kClients; }));
}

TEST_F(QgsServerTest, BackendCallsAreSerializedByDefault) {
  ServerOptions o = FastOptions();
  o.request_timeout = 5000ms;
  backend_.delay = 10ms;
  Start(o);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      Bytes report = TestReport(uint8_t(i));
      ExpectQuoteReply(Exchange(wire::Framed(wire::GetQuoteReq(report))), report);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(backend_.max_in_flight.load(), 1);
  EXPECT_EQ(backend_.calls.load(), 8);
}

TEST_F(QgsServerTest, ConnectionCapLeavesOthersInTheBacklog) {
  ServerOptions o = FastOptions();
  o.max_connections = 2;
  Start(o);  // 300 ms request timeout
  auto a = wire::Conn::Unix(UnixPath());
  auto b = wire::Conn::Unix(UnixPath());
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 2; }));
  Bytes report = TestReport(42);
  std::atomic<bool> done{false};
  size_t max_active = 0;
  std::thread sampler([&] {
    while (!done) {
      max_active = std::max(max_active, server_->active_connections());
      std::this_thread::sleep_for(2ms);
    }
  });
  // Queued until a stalled client times out, then served.
  auto start = std::chrono::steady_clock::now();
  ExpectQuoteReply(Exchange(wire::Framed(wire::GetQuoteReq(report))), report);
  auto waited = std::chrono::steady_clock::now() - start;
  done = true;
  sampler.join();
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 3000ms);
  EXPECT_LE(max_active, 2u);
}

TEST_F(QgsServerTest, RawReportGetsABareQuoteThenClose) {
  Start();
  Bytes report = TestReport(7);
  bool closed = false;
  Bytes reply = Exchange(report, &closed, /*half_close=*/false);
  EXPECT_TRUE(closed);
  EXPECT_EQ(reply, FakeQuoteFor(report)) << "no length prefix, no header";
  // In pieces, over TCP.
  auto c = wire::Conn::Tcp(TcpPort());
  ASSERT_TRUE(c.Send(Bytes(report.begin(), report.begin() + 3)));
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(c.Send(Bytes(report.begin() + 3, report.begin() + 600)));
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(c.Send(Bytes(report.begin() + 600, report.end())));
  EXPECT_EQ(c.ReadToEof(&closed), FakeQuoteFor(report));
  EXPECT_TRUE(WaitFor([&] { return RequestLogs().size() == 2; }));
  EXPECT_EQ(RequestLogs().at(0)["type"], "raw");
  EXPECT_EQ(RequestLogs().at(0)["bytes_in"], 1024);
}

TEST_F(QgsServerTest, RawReportRejectedOrTruncatedIsClosedOn) {
  Start();
  Bytes bad = TestReport();
  bad[1] = 1;  // subtype
  bool closed = false;
  EXPECT_TRUE(Exchange(bad, &closed).empty());
  EXPECT_TRUE(closed);
  Bytes partial = TestReport();
  partial.resize(500);
  EXPECT_TRUE(Exchange(partial, &closed).empty());
  EXPECT_TRUE(closed);
  EXPECT_EQ(backend_.calls.load(), 0);
}

TEST_F(QgsServerTest, StopWhileClientsAreConnected) {
  ServerOptions o = FastOptions();
  o.request_timeout = 30000ms;  // only Stop() can end these
  Start(o);
  std::vector<wire::Conn> idle;
  for (int i = 0; i < 3; ++i) idle.push_back(wire::Conn::Unix(UnixPath()));
  auto mid = wire::Conn::Tcp(TcpPort());
  Bytes frame = wire::Framed(wire::GetQuoteReq(TestReport()));
  ASSERT_TRUE(mid.Send(Bytes(frame.begin(), frame.begin() + 30)));
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 4; }));
  auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1000ms);
  EXPECT_EQ(server_->active_connections(), 0u);
  for (auto& c : idle) {
    bool closed = false;
    EXPECT_TRUE(c.ReadToEof(&closed).empty());
    EXPECT_TRUE(closed);
  }
  bool closed = false;
  EXPECT_TRUE(mid.ReadToEof(&closed).empty());
  EXPECT_TRUE(closed);
  // The socket file is gone and nothing listens any more.
  struct stat st {};
  EXPECT_NE(stat(UnixPath().c_str(), &st), 0);
  EXPECT_FALSE(wire::Conn::Tcp(TcpPort()).connected());
  server_->Stop();  // idempotent
  int cancelled = 0;
  for (auto& j : RequestLogs()) cancelled += j["outcome"] == "cancelled";
  EXPECT_EQ(cancelled, 4);
}

TEST_F(QgsServerTest, StopWithoutStart) {
  QgsServer server(backend_, FastOptions());
  server.Stop();
  server.Stop();
}

TEST_F(QgsServerTest, UnixSocketFileLifecycle) {
  // A stale socket file (its server died without removing it) is replaced.
  {
    UniqueFd stale(socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, UnixPath().c_str(), sizeof(sa.sun_path) - 1);
    ASSERT_EQ(bind(stale.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  }
  ServerOptions o = FastOptions();
  o.unix_mode = 0600;
  Start(o);
  struct stat st {};
  ASSERT_EQ(stat(UnixPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // A live server's socket is not taken over.
  QgsServer second(backend_, FastOptions());
  Status s = second.Start({{.kind = QgsAddress::Kind::kUnix, .path = UnixPath()}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("another server"), std::string::npos) << s.error();
  ExpectQuoteReply(Exchange(wire::Framed(wire::GetQuoteReq(TestReport()))), TestReport());
  // Something that is not a socket is never removed.
  tdxvirt::testing::WriteFile(tmp_.File("plain"), "x");
  QgsServer third(backend_, FastOptions());
  s = third.Start({{.kind = QgsAddress::Kind::kUnix, .path = tmp_.File("plain")}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("not a socket"), std::string::npos) << s.error();
}

TEST_F(QgsServerTest, StartFailsCleanlyWhenOneAddressFails) {
  QgsServer server(backend_, FastOptions());
  Status s = server.Start({{.kind = QgsAddress::Kind::kUnix, .path = UnixPath()},
                           {.kind = QgsAddress::Kind::kTcp, .host = "256.1.1.1", .port = 1}});
  ASSERT_FALSE(s.ok());
  struct stat st {};
  EXPECT_NE(stat(UnixPath().c_str(), &st), 0) << "the UNIX socket must not be left behind";
}

TEST_F(QgsServerTest, LogLinesAreJsonWithoutReportBytes) {
  Start();
  Bytes report = TestReport(9);
  ExpectQuoteReply(Exchange(wire::Framed(wire::GetQuoteReq(report))), report);
  ASSERT_TRUE(WaitFor([&] { return RequestLogs().size() == 1; }));
  auto log = RequestLogs().at(0);
  EXPECT_EQ(log["component"], "qgs");
  EXPECT_EQ(log["type"], "GET_QUOTE_REQ");
  EXPECT_EQ(log["outcome"], "ok");
  EXPECT_EQ(log["level"], "info");
  EXPECT_EQ(log["bytes_in"], 4 + 24 + 1024);
  EXPECT_EQ(log["bytes_out"], 4 + 24 + FakeQuoteFor(report).size());
  EXPECT_GE(log["duration_ms"].get<double>(), 0.0);
  EXPECT_EQ(log["listener"], "unix:" + UnixPath());
  EXPECT_TRUE(log["peer"].get<std::string>().starts_with("unix:pid=")) << log["peer"];
  EXPECT_TRUE(log.contains("time"));
  std::string text = log.dump();
  std::string report_hex = ToHex(ByteSpan(report).subspan(16, 32));
  EXPECT_EQ(text.find(report_hex), std::string::npos);
  bool listening = false;
  for (auto& j : Logs()) listening = listening || j["event"] == "listening";
  EXPECT_TRUE(listening);
}

// AF_VSOCK needs kernel support; where there is none the error must say so.
TEST(QgsServerVsock, ServesOrExplainsWhyNot) {
  FakeBackend backend;
  ServerOptions o;
  o.log = [](const std::string&) {};
  QgsServer server(backend, o);
  Status s = server.Start(
      {{.kind = QgsAddress::Kind::kVsock, .cid = VMADDR_CID_ANY, .port = VMADDR_PORT_ANY}});
  if (!s.ok()) {
    EXPECT_NE(s.error().find("vsock"), std::string::npos) << s.error();
    GTEST_SKIP() << "no AF_VSOCK here: " << s.error();
  }
  QgsAddress local{.kind = QgsAddress::Kind::kVsock,
                   .cid = VMADDR_CID_LOCAL,
                   .port = server.addresses()[0].port};
  auto probe = Connect(local, Clock::now() + 500ms);
  if (!probe.ok()) GTEST_SKIP() << "no vsock loopback transport: " << probe.error();
  probe->reset();
  QgsClient client(local, {.timeout = 2000ms});
  Bytes report = TestReport();
  auto quote = client.GetQuote(report);
  ASSERT_TRUE(quote.ok()) << quote.error();
  EXPECT_EQ(*quote, FakeQuoteFor(report));
}

}  // namespace
}  // namespace tdxvirt::qgs
