// The HTTP layer against raw sockets: what a hostile client can and cannot do to it.
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "test_util.h"

namespace tdxvirt::http {
namespace {

using namespace std::chrono_literals;
using namespace tdxvirt::testing;

// A blocking loopback client with a receive watchdog: a server that hangs fails the test instead
// of hanging it.
class Conn {
 public:
  explicit Conn(int port, const char* source = "127.0.0.1") {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    inet_pton(AF_INET, source, &src.sin_addr);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src), 0);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(uint16_t(port));
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0;
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(const Conn&) = delete;
  bool ok() const { return ok_; }
  int fd() const { return fd_; }

  bool Send(std::string_view data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == ssize_t(data.size());
  }
  // One response: status line, headers and a Content-Length body. status -1 when the connection
  // closed (or the watchdog fired) first.
  struct Reply {
    int status = -1;
    std::string head, body;
    bool closed_after = false;
  };
  Reply Read() {
    Reply r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!Fill()) return r;
    r.head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    r.status = std::stoi(r.head.substr(9, 3));
    size_t len = 0;
    for (auto name : {"Content-Length: ", "content-length: "}) {
      size_t p = r.head.find(name);
      if (p != std::string::npos) len = std::stoul(r.head.substr(p + strlen(name)));
    }
    while (buf_.size() < len)
      if (!Fill()) break;
    r.body = buf_.substr(0, len);
    buf_.erase(0, std::min(len, buf_.size()));
    r.closed_after = r.head.find("Connection: close") != std::string::npos;
    return r;
  }
  // True when the server closed the connection (EOF or reset) before the watchdog.
  bool Closed() {
    char c[4096];
    for (;;) {
      ssize_t n = recv(fd_, c, sizeof c, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  bool Fill() {
    char c[65536];
    ssize_t n = recv(fd_, c, sizeof c, 0);
    if (n <= 0) return false;
    buf_.append(c, size_t(n));
    return true;
  }
  int fd_ = -1;
  bool ok_ = false;
  std::string buf_;
};

std::string Get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

std::string Message(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  return j.is_object() && j.contains("message") ? j["message"].get<std::string>() : "<" + body + ">";
}

// A latch a handler waits on, released by the test.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int waiting = 0;
  void Wait() {
    std::unique_lock l(mu);
    ++waiting;
    cv.notify_all();
    cv.wait(l, [this] { return open; });
  }
  bool WaitForWaiters(int n) {
    std::unique_lock l(mu);
    return cv.wait_for(l, 10s, [&] { return waiting >= n; });
  }
  void Open() {
    std::lock_guard l(mu);
    open = true;
    cv.notify_all();
  }
};

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(Limits limits = {}, std::string cert = "", std::string key = "") {
    std::vector<Route> routes;
    auto add = [&](std::string method, std::string path, Handler h, size_t max_body = 0,
                   bool inline_io = false) {
      Route r;
      r.method = std::move(method);
      r.path = std::move(path);
      r.handler = std::move(h);
      r.max_body = max_body;
      r.inline_io = inline_io;
      routes.push_back(std::move(r));
    };
    add("GET", "/a", [](const Request&, Response& res) { res.Set(200, "A", "text/plain"); });
    add("GET", "/b", [](const Request& req, Response& res) { res.Set(200, "B" + req.query, "text/plain"); });
    add("POST", "/echo", [this](const Request& req, Response& res) {
          handled_++;
          res.Set(200, req.body, "text/plain");
        }, 1024);
    add("GET", "/slow", [this](const Request&, Response& res) {
          gate_.Wait();
          res.Set(200, "slow", "text/plain");
        });
    add("GET", "/healthz", [](const Request&, Response& res) { res.Set(200, "ok", "text/plain"); }, 0, true);
    Route guarded;
    guarded.method = "POST";
    guarded.path = "/guarded";
    guarded.max_body = 1 << 20;
    guarded.handler = [this](const Request&, Response& res) {
      handled_++;
      res.Set(200, "in", "text/plain");
    };
    guarded.admit = [](const Request& req, Response& res) {
      if (req.header("x-api-key") == "k") return true;
      res.Set(401, R"({"code":401,"message":"x-api-key: missing"})", "application/json");
      return false;
    };
    routes.push_back(std::move(guarded));

    ServerOptions o;
    o.limits = limits;
    o.tls_cert_path = cert;
    o.tls_key_path = key;
    o.on_response = [this](const Event& e) {
      std::lock_guard l(events_mu_);
      events_.push_back({e.path, e.status});
    };
    auto s = Server::Create(std::move(o), std::move(routes));
    ASSERT_TRUE(s.ok()) << s.error();
    server_ = std::move(*s);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.error();
    port_ = *port;
  }
  void TearDown() override {
    gate_.Open();
    if (server_) server_->Stop();
  }
  std::vector<std::pair<std::string, int>> Events() {
    std::lock_guard l(events_mu_);
    return events_;
  }

  std::unique_ptr<Server> server_;
  int port_ = 0;
  Gate gate_;
  std::atomic<int> handled_{0};
  std::mutex events_mu_;
  std::vector<std::pair<std::string, int>> events_;
};

TEST_F(HttpServerTest, RoutesUnknownPathsAndWrongMethods) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send(Get("/a")));
  auto r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "A");
  ASSERT_TRUE(c.Send(Get("/nope")));
  r = c.Read();
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Message(r.body), "no such endpoint: /nope");
  ASSERT_TRUE(c.Send("POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"));
  r = c.Read();
  EXPECT_EQ(r.status, 405);
  EXPECT_NE(r.head.find("Allow: GET"), std::string::npos) << r.head;
  EXPECT_EQ(Message(r.body), "POST /a: use GET");
}

TEST_F(HttpServerTest, PipelinedRequestsAreAllAnsweredInOrder) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send(Get("/a") + Get("/b?1") + Get("/b?2") + "POST /echo HTTP/1.1\r\nHost: t\r\n"
                     "Content-Length: 5\r\n\r\nhello" + Get("/a")));
  std::vector<std::string> bodies;
  for (int i = 0; i < 5; ++i) bodies.push_back(c.Read().body);
  EXPECT_EQ(bodies, (std::vector<std::string>{"A", "B1", "B2", "hello", "A"}));
}

TEST_F(HttpServerTest, DeclaredBodyOverTheLimitIsRefusedBeforeItIsRead) {
  StartServer();
  Conn c(port_);
  // Only the header is sent: the answer must not wait for the 2048 bytes.
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2048\r\n\r\n"));
  auto r = c.Read();
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(Message(r.body), "request body: larger than 1024 bytes");
  EXPECT_TRUE(r.closed_after);
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpServerTest, ChunkedBodyOverTheLimitIsRefusedWhileArriving) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::string chunk(600, 'x');
  std::string wire;
  for (int i = 0; i < 4; ++i) wire += "258\r\n" + chunk + "\r\n";  // 0x258 = 600
  c.Send(wire);  // the server may close while this is still being sent
  auto r = c.Read();
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(Message(r.body), "request body: larger than 1024 bytes");
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpServerTest, ChunkedBodyWithinTheLimitIsDelivered) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  auto r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "abcde");
}

TEST_F(HttpServerTest, AdmitRefusesOnTheHeaderWithoutWaitingForTheBody) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send("POST /guarded HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"));
  auto r = c.Read();
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Message(r.body), "x-api-key: missing");
  EXPECT_EQ(handled_, 0);
  Conn ok(port_);
  ASSERT_TRUE(ok.Send("POST /guarded HTTP/1.1\r\nHost: t\r\nx-api-key: k\r\nContent-Length: 2\r\n\r\nhi"));
  EXPECT_EQ(ok.Read().status, 200);
}

TEST_F(HttpServerTest, ExpectContinueGetsAnInterimResponse) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
  EXPECT_EQ(c.Read().status, 100);
  ASSERT_TRUE(c.Send("abc"));
  auto r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "abc");
}

TEST_F(HttpServerTest, HeaderBytesAndFieldCountAreLimited) {
  Limits l;
  l.max_header_bytes = 4096;
  l.max_header_count = 10;
  StartServer(l);
  Conn big(port_);
  big.Send(Get("/a", "X-Big: " + std::string(8000, 'a') + "\r\n"));
  auto r = big.Read();
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(Message(r.body), "request header: larger than 4096 bytes");
  Conn many(port_);
  std::string fields;
  for (int i = 0; i < 11; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  many.Send(Get("/a", fields));
  r = many.Read();
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(Message(r.body), "request header: more than 10 fields");
}

TEST_F(HttpServerTest, TrickledHeaderGets408AtTheDeadline) {
  Limits l;
  l.header_timeout = 300ms;
  StartServer(l);
  Conn c(port_);
  ASSERT_TRUE(c.Send("GET /a HTTP/1.1\r\nHost: t\r\n"));
  auto r = c.Read();
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(Message(r.body), "request header: not complete within 300 ms");
  EXPECT_TRUE(c.Closed());
  // An idle connection (no byte sent) is closed without a response.
  Conn idle(port_);
  EXPECT_TRUE(idle.Closed());
  EXPECT_GE(server_->stats().timeouts, 1u);
}

TEST_F(HttpServerTest, StalledBodyGets408) {
  Limits l;
  l.body_grace = 300ms;
  StartServer(l);
  Conn c(port_);
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nabc"));
  auto r = c.Read();
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(Message(r.body), "request body: no data for 300 ms");
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpServerTest, TrickledBodyBelowTheMinimumRateGets408) {
  Limits l;
  l.body_grace = 200ms;
  l.min_body_rate = 1000;  // bytes/s; the client sends ~20
  StartServer(l);
  Conn c(port_);
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"));
  Conn::Reply r;
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    for (int i = 0; i < 400 && !done; ++i) {
      if (!c.Send("x")) break;
      std::this_thread::sleep_for(50ms);  // the slow client being simulated, not a wait for the server
    }
  });
  r = c.Read();
  done = true;
  trickle.join();
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(Message(r.body), "request body: slower than 1000 bytes/s");
}

TEST_F(HttpServerTest, SlowClientsCostNoWorker) {
  Limits l;
  l.workers = 1;
  StartServer(l);
  std::vector<std::unique_ptr<Conn>> slow;
  for (int i = 0; i < 64; ++i) {
    slow.push_back(std::make_unique<Conn>(port_, "127.0.0.2"));
    slow.back()->Send("GET /a HTTP/1.1\r\nHost: t\r\n");  // never finished
  }
  Conn c(port_);
  ASSERT_TRUE(c.Send(Get("/a")));
  EXPECT_EQ(c.Read().status, 200);
  EXPECT_EQ(server_->stats().connections_open, 65u);
}

TEST_F(HttpServerTest, PerSourceCapAnswers503AndSparesOtherSources) {
  Limits l;
  l.max_connections_per_source = 2;
  StartServer(l);
  Conn a(port_, "127.0.0.2"), b(port_, "127.0.0.2");
  ASSERT_TRUE(a.Send(Get("/a")));
  ASSERT_EQ(a.Read().status, 200);  // both are open and counted
  ASSERT_TRUE(b.Send(Get("/a")));
  ASSERT_EQ(b.Read().status, 200);
  Conn third(port_, "127.0.0.2");
  ASSERT_TRUE(third.Send(Get("/a")));
  auto r = third.Read();
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(Message(r.body), "too many connections from 127.0.0.2 or in all; retry later");
  Conn other(port_, "127.0.0.3");
  ASSERT_TRUE(other.Send(Get("/a")));
  EXPECT_EQ(other.Read().status, 200);
  EXPECT_EQ(server_->stats().refused_over_cap, 1u);
}

TEST_F(HttpServerTest, OverallCapAnswers503) {
  Limits l;
  l.max_connections = 2;
  StartServer(l);
  Conn a(port_, "127.0.0.2"), b(port_, "127.0.0.3");
  ASSERT_TRUE(a.Send(Get("/a")));
  ASSERT_EQ(a.Read().status, 200);
  ASSERT_TRUE(b.Send(Get("/a")));
  ASSERT_EQ(b.Read().status, 200);
  Conn c(port_, "127.0.0.4");
  ASSERT_TRUE(c.Send(Get("/a")));
  EXPECT_EQ(c.Read().status, 503);
}

TEST_F(HttpServerTest, FullQueueAnswers503AndProbesStillAnswer) {
  Limits l;
  l.workers = 1;
  l.max_queued = 1;
  StartServer(l);
  Conn busy(port_);
  ASSERT_TRUE(busy.Send(Get("/slow")));
  ASSERT_TRUE(gate_.WaitForWaiters(1));
  Conn second(port_);
  ASSERT_TRUE(second.Send(Get("/a")));
  auto r = second.Read();
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(Message(r.body), "server busy: 1 requests queued; retry later");
  Conn probe(port_);
  ASSERT_TRUE(probe.Send(Get("/healthz")));
  EXPECT_EQ(probe.Read().status, 200);
  gate_.Open();
  EXPECT_EQ(busy.Read().status, 200);
}

TEST_F(HttpServerTest, EveryResponseIsReportedWithItsRealStatus) {
  StartServer();
  Conn c(port_);
  c.Send(Get("/a") + Get("/nope"));
  c.Read();
  c.Read();
  Conn big(port_);
  big.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n");
  big.Read();
  auto e = Events();
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0], (std::pair<std::string, int>{"/a", 200}));
  EXPECT_EQ(e[1], (std::pair<std::string, int>{"/nope", 404}));
  EXPECT_EQ(e[2], (std::pair<std::string, int>{"/echo", 413}));
}

TEST_F(HttpServerTest, StopClosesIdleConnectionsAndFinishesRequestsInFlight) {
  StartServer();
  Conn idle(port_);
  ASSERT_TRUE(idle.Send(Get("/a")));
  ASSERT_EQ(idle.Read().status, 200);
  Conn busy(port_);
  ASSERT_TRUE(busy.Send(Get("/slow")));
  ASSERT_TRUE(gate_.WaitForWaiters(1));
  auto stopped = std::async(std::launch::async, [this] { server_->Stop(); });
  EXPECT_TRUE(idle.Closed());
  gate_.Open();
  auto r = busy.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "slow");
  EXPECT_TRUE(r.closed_after);
  EXPECT_EQ(stopped.wait_for(10s), std::future_status::ready);
}

TEST_F(HttpServerTest, StopIsBoundedByTheDrainDeadline) {
  Limits l;
  l.drain_timeout = 200ms;
  StartServer(l);
  Conn busy(port_);
  ASSERT_TRUE(busy.Send(Get("/slow")));
  ASSERT_TRUE(gate_.WaitForWaiters(1));
  auto stopped = std::async(std::launch::async, [this] { server_->Stop(); });
  // The handler is still blocked: the connection is closed at the deadline, unanswered.
  EXPECT_TRUE(busy.Closed());
  gate_.Open();  // lets the worker finish so Stop can join it
  EXPECT_EQ(stopped.wait_for(10s), std::future_status::ready);
}

// ---- TLS ----

struct TlsFiles {
  std::string cert, key;
};
TlsFiles WriteIdentity(const TempDir& dir, const std::string& name = "a") {
  TlsFiles f;
  auto id = MakeLoopbackTlsIdentity("127.0.0.1");
  f.cert = dir.File(name + "-cert.pem");
  f.key = dir.File(name + "-key.pem");
  WriteFile(f.cert, id.cert_pem);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, id.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  WriteFile(f.key, std::string(data, size_t(n)));
  BIO_free(bio);
  return f;
}

// A TLS handshake with the given bounds; true when it succeeded.
bool Handshake(int port, int max_version, const char* tls12_ciphers) {
  Conn c(port);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx, max_version);
  SSL_CTX_set_security_level(ctx, 0);  // let the client offer old versions at all
  if (tls12_ciphers) SSL_CTX_set_cipher_list(ctx, tls12_ciphers);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, c.fd());
  bool ok = SSL_connect(ssl) == 1;
  if (ok) {
    std::string req = Get("/a", "Connection: close\r\n");
    SSL_write(ssl, req.data(), int(req.size()));
    char buf[512];
    int n = SSL_read(ssl, buf, sizeof buf);
    ok = n > 12 && std::string(buf, 12) == "HTTP/1.1 200";
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

TEST_F(HttpServerTest, TlsOnlyTls12AndUpWithAeadSuites) {
  TempDir dir;
  auto f = WriteIdentity(dir);
  StartServer({}, f.cert, f.key);
  EXPECT_TRUE(Handshake(port_, TLS1_3_VERSION, nullptr));
  EXPECT_TRUE(Handshake(port_, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256"));
  EXPECT_FALSE(Handshake(port_, TLS1_1_VERSION, nullptr));
  EXPECT_FALSE(Handshake(port_, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA"));
}

TEST_F(HttpServerTest, BareTlsConnectsNeitherBlockOthersNorLinger) {
  TempDir dir;
  auto f = WriteIdentity(dir);
  Limits l;
  l.header_timeout = 300ms;
  StartServer(l, f.cert, f.key);
  std::vector<std::unique_ptr<Conn>> bare;
  for (int i = 0; i < 16; ++i) bare.push_back(std::make_unique<Conn>(port_, "127.0.0.2"));
  EXPECT_TRUE(Handshake(port_, TLS1_3_VERSION, nullptr));
  for (auto& c : bare) EXPECT_TRUE(c->Closed());
  EXPECT_GE(server_->stats().tls_failures, 16u);
}

TEST(HttpServerCreate, RefusesAMismatchedKey) {
  TempDir dir;
  auto a = WriteIdentity(dir, "a");
  auto b = WriteIdentity(dir, "b");
  ServerOptions o;
  o.tls_cert_path = a.cert;
  o.tls_key_path = b.key;
  auto s = Server::Create(std::move(o), {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "--tls-key " + b.key + ": does not match the certificate in " + a.cert);
}

}  // namespace
}  // namespace tdxvirt::http
