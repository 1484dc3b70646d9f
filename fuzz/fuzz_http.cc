// The HTTP layer on arbitrary bytes from a client: each input is sent on a fresh loopback
// connection to one server (plain HTTP, short deadlines), then half-closed. Whatever the bytes, the
// server must answer only with well-formed HTTP/1.1 status lines or close, within its deadlines,
// and keep serving: a normal GET on a new connection must get 200 after every input.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "http/server.h"

namespace {

using namespace tdxvirt;
using namespace std::chrono_literals;

void Require(bool condition) {
  if (!condition) std::abort();
}

int Port() {
  static std::unique_ptr<http::Server> server = [] {
    std::vector<http::Route> routes;
    http::Route a{"GET", "/a", [](const http::Request&, http::Response& r) { r.Set(200, "A", "text/plain"); }};
    routes.push_back(a);
    http::Route echo{"POST", "/echo",
                     [](const http::Request& q, http::Response& r) { r.Set(200, q.body, "text/plain"); }, 4096};
    echo.admit = [](const http::Request& q, http::Response& r) {
      if (q.header("x-deny").empty()) return true;
      r.Set(401, "denied", "text/plain");
      return false;
    };
    routes.push_back(echo);
    http::Route prefix{"GET", "/p/", [](const http::Request& q, http::Response& r) {
                         r.Set(200, q.query, "text/plain");
                       }};
    prefix.prefix = true;
    prefix.inline_io = true;
    routes.push_back(prefix);
    http::ServerOptions o;
    o.limits.header_timeout = 300ms;
    o.limits.body_grace = 300ms;
    o.limits.max_header_bytes = 4096;
    o.limits.max_header_count = 16;
    o.limits.workers = 1;
    auto s = http::Server::Create(std::move(o), std::move(routes));
    Require(s.ok());
    Require((*s)->Start().ok());
    return std::move(*s);
  }();
  return server->port();
}

// Sends `data`, half-closes, returns everything the server wrote until it closed.
std::string Exchange(const std::string& data) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(uint16_t(Port()));
  inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  Require(connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0);
  timeval tv{5, 0};  // far past every server deadline: a hang is a bug
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (!data.empty()) (void)!send(fd, data.data(), data.size(), MSG_NOSIGNAL);
  shutdown(fd, SHUT_WR);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) break;
    Require(n > 0);  // a timeout here means the server neither answered nor closed
    out.append(buf, size_t(n));
  }
  close(fd);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string reply = Exchange(std::string(reinterpret_cast<const char*>(data), size));
  Require(reply.empty() || reply.rfind("HTTP/1.1 ", 0) == 0);
  // Still serving.
  std::string ok = Exchange("GET /a HTTP/1.1\r\nHost: f\r\n\r\n");
  Require(ok.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  return 0;
}
