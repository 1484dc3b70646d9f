// The QGS server over real UNIX and TCP sockets, driven by a client written from the protocol
// text (wire.h: hand-built bytes, plain sockets), not by QgsClient.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>

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
    // Every client of these tests is one peer (this process, or 127.0.0.1); the per-peer cap has
    // its own tests.
    o.max_connections_per_peer = 32;
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
  EXPECT_EQ(log["detail"], "backend: fake backend told to fail");
}

TEST_F(QgsServerTest, OversizedFrameIsAnsweredBeforeItsBody) {
  ServerOptions o = FastOptions();
  o.max_request_size = 4096;
  // Longer than the client's 5 s receive watchdog: an answer that waited for the deadline would
  // not be read (closed stays false).
  o.request_timeout = 30000ms;
  Start(o);
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
  // An oversized frame of a response type is closed on, at once.
  Bytes resp = {0x7f, 0xff, 0xff, 0xff};
  Bytes resp_header = wire::Header(1, 0x7fffffff);
  resp.insert(resp.end(), resp_header.begin(), resp_header.end());
  EXPECT_TRUE(Exchange(resp, &closed, /*half_close=*/false).empty());
  EXPECT_TRUE(closed);
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
  ServerOptions o = FastOptions();
  o.request_timeout = 30000ms;  // so only the client's end of stream can end it (log: truncated)
  Start(o);
  Bytes frame = wire::Framed(wire::GetQuoteReq(TestReport()));
  frame.resize(100);
  bool closed = false;
  Bytes reply = Exchange(frame, &closed);
  EXPECT_TRUE(reply.empty());
  EXPECT_TRUE(closed);
  EXPECT_TRUE(WaitFor([&] { return RequestLogs().size() == 1; }));
  auto log = RequestLogs().at(0);
  EXPECT_EQ(log["outcome"], "truncated");
  EXPECT_EQ(log["bytes_in"], 100);
  EXPECT_EQ(log["type"], "GET_QUOTE_REQ");
}

// A half-sent request is closed when the request deadline passes: the client sees the close (its
// receive watchdog, 5 s, is far beyond the 300 ms deadline), and the line says why.
TEST_F(QgsServerTest, HalfSentRequestIsClosedAtTheDeadline) {
  Start();  // 300 ms from the accept to the last request byte
  Bytes frame = wire::Framed(wire::GetQuoteReq(TestReport()));
  auto half = wire::Conn::Unix(UnixPath());
  ASSERT_TRUE(half.connected());
  ASSERT_TRUE(half.Send(Bytes(frame.begin(), frame.begin() + 30)));  // prefix, header, 10 bytes
  // Others are served meanwhile.
  for (int i = 0; i < 3; ++i) {
    Bytes report = TestReport(uint8_t(10 + i));
    ExpectQuoteReply(Exchange(wire::Framed(wire::GetQuoteReq(report))), report);
  }
  bool closed = false;
  EXPECT_TRUE(half.ReadToEof(&closed).empty());
  EXPECT_TRUE(closed) << "the server must close a request that is not complete by the deadline";
  ASSERT_TRUE(WaitFor([&] {
    for (auto& j : RequestLogs())
      if (j["outcome"] == "timeout") return true;
    return false;
  }));
  for (auto& j : RequestLogs()) {
    if (j["outcome"] != "timeout") continue;
    EXPECT_EQ(j["type"], "GET_QUOTE_REQ");
    EXPECT_EQ(j["bytes_in"], 30);
    EXPECT_EQ(j["detail"], "reading the message body: timed out after 10 bytes");
    EXPECT_EQ(j["level"], "warn");
  }
  EXPECT_TRUE(WaitFor([&] { return server_->active_connections() == 0; }));
}

TEST_F(QgsServerTest, TricklingClientIsDroppedAtTheDeadline) {
  Start();  // 300 ms for the whole request
  Bytes frame = wire::Framed(wire::GetQuoteReq(TestReport()));
  auto c = wire::Conn::Unix(UnixPath());
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
  EXPECT_TRUE(dropped) << "60 bytes in 1.2 s never make a request; the 300 ms deadline ends it";
  EXPECT_TRUE(WaitFor(
      [&] { return RequestLogs().size() == 1 && RequestLogs()[0]["outcome"] == "timeout"; }));
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
  o.max_connections_per_peer = 1;
  Start(o);  // 300 ms request timeout
  // Three peers: this process on the UNIX socket, 127.0.0.1 and 127.0.0.2 over TCP.
  auto a = wire::Conn::Unix(UnixPath());
  auto b = wire::Conn::Tcp(TcpPort());
  ASSERT_TRUE(a.connected() && b.connected());
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 2; }));
  // Queued in the backlog until a stalled client's deadline frees a slot, then served: so its
  // log line comes after a "timeout" line (a connection logs before it frees its slot).
  Bytes report = TestReport(42);
  auto c = wire::Conn::Tcp(TcpPort(), "127.0.0.2");
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(wire::Framed(wire::GetQuoteReq(report))));
  bool closed = false;
  ExpectQuoteReply(c.ReadToEof(&closed), report);
  EXPECT_TRUE(closed);
  ASSERT_TRUE(WaitFor([&] {
    for (auto& j : RequestLogs())
      if (j["outcome"] == "ok") return true;
    return false;
  }));
  auto logs = RequestLogs();
  EXPECT_EQ(logs[0]["outcome"], "timeout");
  size_t ok_at = logs.size();
  for (size_t i = 0; i < logs.size(); ++i)
    if (logs[i]["outcome"] == "ok") ok_at = i;
  ASSERT_LT(ok_at, logs.size());
  EXPECT_GE(ok_at, 1u) << "served before any slot was free";
  EXPECT_TRUE(logs[ok_at]["peer"].get<std::string>().starts_with("127.0.0.2:"));
  EXPECT_EQ(server_->connections_refused(), 0u);
}

// Probe finding #6: half-sent requests from one peer used to fill the server for the whole
// deadline. With a per-peer cap below the overall one, that peer's extra connections are closed at
// once and another peer still gets its quote. The deadline here (30 s) is beyond every watchdog,
// so only the cap can make room: without it the hostile peer's connections fill both slots left,
// its extra connections are not closed and the other peer waits in the backlog.
TEST_F(QgsServerTest, OnePeerAtItsCapDoesNotDenyQuotesToAnother) {
  ServerOptions o = FastOptions();
  o.max_connections = 4;
  o.max_connections_per_peer = 2;
  o.request_timeout = 30000ms;
  Start(o);
  Bytes frame = wire::Framed(wire::GetQuoteReq(TestReport(3)));
  Bytes half(frame.begin(), frame.begin() + 30);
  std::vector<wire::Conn> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(wire::Conn::Tcp(TcpPort()));  // from 127.0.0.1
    ASSERT_TRUE(held.back().connected());
    ASSERT_TRUE(held.back().Send(half));
  }
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 2; }));
  // Beyond its cap: each closed at once, with nothing read or answered. The client keeps its end
  // open, as a hostile one would.
  for (int i = 0; i < 4; ++i) {
    held.push_back(wire::Conn::Tcp(TcpPort()));
    wire::Conn& extra = held.back();
    ASSERT_TRUE(extra.connected());
    extra.Send(half);  // may fail: the server may have closed already
    bool closed = false;
    EXPECT_TRUE(extra.ReadToEof(&closed).empty());
    EXPECT_TRUE(closed) << "connection " << i << " over the per-peer cap was not closed";
  }
  EXPECT_EQ(server_->connections_refused(), 4u);
  // Another peer (127.0.0.2) gets a real quote, within the 5 s receive watchdog.
  Bytes report = TestReport(4);
  auto other = wire::Conn::Tcp(TcpPort(), "127.0.0.2");
  ASSERT_TRUE(other.connected());
  ASSERT_TRUE(other.Send(wire::Framed(wire::GetQuoteReq(report))));
  bool closed = false;
  ExpectQuoteReply(other.ReadToEof(&closed), report);
  EXPECT_TRUE(closed);
  // The hostile peer's two connections are still held (the deadline is 30 s away); the other
  // peer's slot frees just after its reply.
  EXPECT_TRUE(WaitFor([&] { return server_->active_connections() == 2; }));
}

// The same over the UNIX socket, where the peer is the connecting process (one QEMU = one TD):
// this process holds its cap, a child process still gets a quote.
TEST_F(QgsServerTest, OneUnixPeerAtItsCapDoesNotDenyQuotesToAnotherProcess) {
  ServerOptions o = FastOptions();
  o.max_connections = 4;
  o.max_connections_per_peer = 2;
  o.request_timeout = 30000ms;
  Start(o);
  Bytes report = TestReport(5);
  Bytes request = wire::Framed(wire::GetQuoteReq(report));
  Bytes half(request.begin(), request.begin() + 30);
  std::vector<wire::Conn> held;  // all kept open, as a hostile client would
  for (int i = 0; i < 2; ++i) {
    held.push_back(wire::Conn::Unix(UnixPath()));
    ASSERT_TRUE(held.back().connected());
    ASSERT_TRUE(held.back().Send(half));
  }
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 2; }));
  for (int i = 0; i < 2; ++i) {  // over the cap: closed at once
    held.push_back(wire::Conn::Unix(UnixPath()));
    held.back().Send(half);
    bool closed = false;
    EXPECT_TRUE(held.back().ReadToEof(&closed).empty());
    EXPECT_TRUE(closed) << "connection " << i << " over the per-peer cap was not closed";
  }
  EXPECT_EQ(server_->connections_refused(), 2u);

  // The child uses only system calls (the parent has threads); it sends the reply's bytes, or
  // none, back through a pipe.
  std::string path = UnixPath();
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  static uint8_t buffer[64 << 10];
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipe_fds[0]);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    wire::SetTimeouts(fd, 5000);  // the watchdog: a client left in the backlog gives up
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) _exit(1);
    for (size_t done = 0; done < request.size();) {
      ssize_t n = send(fd, request.data() + done, request.size() - done, MSG_NOSIGNAL);
      if (n <= 0) _exit(1);
      done += size_t(n);
    }
    size_t got = 0;
    for (ssize_t n;
         got < sizeof(buffer) && (n = recv(fd, buffer + got, sizeof(buffer) - got, 0)) > 0;)
      got += size_t(n);
    for (size_t done = 0; done < got;) {
      ssize_t n = write(pipe_fds[1], buffer + done, got - done);
      if (n <= 0) _exit(1);
      done += size_t(n);
    }
    _exit(0);
  }
  close(pipe_fds[1]);
  Bytes reply;
  for (;;) {
    pollfd p{pipe_fds[0], POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) break;  // a watchdog beyond the child's own
    ssize_t n = read(pipe_fds[0], buffer, sizeof(buffer));
    if (n <= 0) break;
    reply.insert(reply.end(), buffer, buffer + n);
  }
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ExpectQuoteReply(reply, report);
  // The line is written just after the reply.
  EXPECT_TRUE(WaitFor([&] {
    for (auto& j : RequestLogs())
      if (j["outcome"] == "ok" &&
          j["peer"].get<std::string>().starts_with("unix:pid=" + std::to_string(pid) + ","))
        return true;
    return false;
  })) << "the child's request was not logged as its own peer";
  EXPECT_TRUE(WaitFor([&] { return server_->active_connections() == 2; }))
      << "this process's two are still held";
}

// A refusal is one "refused" line naming the peer (its identity, and its address in "peer"); a
// peer looping on connect gets one line per refusal_log_interval, not one per connection.
TEST_F(QgsServerTest, PerPeerRefusalIsLoggedWithThePeer) {
  ServerOptions o = FastOptions();
  o.max_connections = 4;
  o.max_connections_per_peer = 1;
  o.request_timeout = 30000ms;
  o.refusal_log_interval = std::chrono::hours(1);
  Start(o);
  auto tcp = wire::Conn::Tcp(TcpPort());
  auto unix_held = wire::Conn::Unix(UnixPath());
  ASSERT_TRUE(tcp.connected() && unix_held.connected());
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 2; }));
  for (int i = 0; i < 3; ++i) {
    auto extra = wire::Conn::Tcp(TcpPort());
    bool closed = false;
    EXPECT_TRUE(extra.ReadToEof(&closed).empty());
    EXPECT_TRUE(closed);
  }
  auto extra_unix = wire::Conn::Unix(UnixPath());
  bool closed = false;
  EXPECT_TRUE(extra_unix.ReadToEof(&closed).empty());
  EXPECT_TRUE(closed);
  EXPECT_EQ(server_->connections_refused(), 4u);
  std::vector<nlohmann::json> refused;
  auto collect = [&] {
    refused.clear();
    for (auto& j : RequestLogs())
      if (j["outcome"] == "refused") refused.push_back(j);
    return refused.size() >= 2;
  };
  ASSERT_TRUE(WaitFor(collect));  // a line is written just after the close
  ASSERT_EQ(refused.size(), 2u) << "one line per peer within the interval";
  EXPECT_EQ(refused[0]["detail"],
            "peer tcp:127.0.0.1 already has max_connections_per_peer (1) connections open");
  EXPECT_TRUE(refused[0]["peer"].get<std::string>().starts_with("127.0.0.1:")) << refused[0];
  EXPECT_EQ(refused[0]["listener"], "127.0.0.1:" + std::to_string(TcpPort()));
  EXPECT_EQ(refused[0]["level"], "warn");
  EXPECT_EQ(refused[0]["bytes_in"], 0);
  std::string me = "unix:pid=" + std::to_string(getpid());
  EXPECT_EQ(refused[1]["detail"],
            "peer " + me + " already has max_connections_per_peer (1) connections open");
  EXPECT_TRUE(refused[1]["peer"].get<std::string>().starts_with(me + ",")) << refused[1];
}

TEST_F(QgsServerTest, LimitsThatLetOnePeerTakeEverySlotAreRefused) {
  ServerOptions o = FastOptions();
  o.max_connections = 4;
  o.max_connections_per_peer = 4;
  QgsServer server(backend_, o);
  Status s = server.Start({{.kind = QgsAddress::Kind::kUnix, .path = UnixPath()}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(),
            "QGS server: max_connections_per_peer 4 must be from 1 to 3 (below max_connections, "
            "so one peer cannot take every slot)");
  o.max_connections = 1;
  o.max_connections_per_peer = 1;
  QgsServer tiny(backend_, o);
  s = tiny.Start({{.kind = QgsAddress::Kind::kUnix, .path = UnixPath()}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(),
            "QGS server: max_connections 1 must be at least 2 (a per-peer cap below it must leave "
            "room for another peer)");
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
  server_->Stop();
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
  ServerOptions o = FastOptions();
  o.log = [this](const std::string& line) {
    std::lock_guard lock(log_mu_);
    logs_.push_back(line);
  };
  QgsServer server(backend_, o);
  server.Stop();
  server.Stop();
  EXPECT_EQ(server.active_connections(), 0u);
  EXPECT_TRUE(Logs().empty()) << "nothing started, so no \"stopped\" line";
  // A stopped server stays stopped: it does not listen again.
  Status s = server.Start({{.kind = QgsAddress::Kind::kUnix, .path = UnixPath()}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "QGS server: Start() after Stop()");
  struct stat st {};
  EXPECT_NE(stat(UnixPath().c_str(), &st), 0) << "no socket file was created";
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
  EXPECT_EQ(s.error(), "listen unix:" + UnixPath() + ": another server is listening there");
  ExpectQuoteReply(Exchange(wire::Framed(wire::GetQuoteReq(TestReport()))), TestReport());
  // Something that is not a socket is never removed.
  tdxvirt::testing::WriteFile(tmp_.File("plain"), "x");
  QgsServer third(backend_, FastOptions());
  s = third.Start({{.kind = QgsAddress::Kind::kUnix, .path = tmp_.File("plain")}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "listen unix:" + tmp_.File("plain") + ": exists and is not a socket");
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
