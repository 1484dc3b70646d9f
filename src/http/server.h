// The HTTP(S) server under every daemon that serves HTTP (attestation, webhook, node agent, the
// simulated PCS). Boost.Beast/Asio underneath, kept out of this header so that only server.cc pays
// for it at compile time.
//
// Why its own layer: the clients may be hostile. A thread per connection (cpp-httplib's model)
// let eight slow clients stop a daemon, and bodies were buffered before limits applied. Here:
//   - I/O is asynchronous: an idle or slow connection costs its buffers, never a thread;
//   - handlers run on a small worker pool (cheap ones, marked `inline_io`, on the I/O thread), so a
//     slow handler never stops /healthz;
//   - every wait has a deadline: TLS handshake + request header, a minimum body rate, the write;
//   - header bytes, header count and body size are limited while reading (chunked bodies too),
//     and a route's `admit` check (API keys) runs on the header, before any body byte is read;
//   - connections are capped overall and per source address; over a cap the client gets 503;
//   - Stop() drains: idle connections close, requests in flight finish until the drain deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace tdxvirt::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;  // "GET"
  std::string target;  // as sent: path and query
  std::string path;    // target up to '?'
  std::string query;   // after '?', still percent-encoded
  Headers headers;
  std::string body;
  std::string remote;  // the peer's IP address
  // The first value of a header, by case-insensitive name; "" when absent.
  std::string header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain";
  Headers headers;
  std::string body;
  // Fields the handler adds to the daemon's log line for this request (outcome, ids, reasons).
  nlohmann::ordered_json log = nlohmann::ordered_json::object();
  void Set(int s, std::string b, std::string type) {
    status = s;
    body = std::move(b);
    content_type = std::move(type);
  }
};

using Handler = std::function<void(const Request&, Response&)>;

struct Route {
  std::string method;  // "GET", "POST"
  std::string path;    // exact path, or a prefix when `prefix`
  Handler handler;
  size_t max_body = 0;  // larger bodies get 413 while still arriving; 0: no body
  // Runs on the request header before any body byte is read; false refuses with `res` as filled.
  std::function<bool(const Request&, Response&)> admit;
  bool prefix = false;
  bool inline_io = false;  // cheap and never blocking (probes, metrics): run on the I/O thread
};

struct Limits {
  // From accept (TLS handshake included) or the end of the previous response to the end of the
  // next request header. Also how long an idle keep-alive connection is kept.
  std::chrono::milliseconds header_timeout{10000};
  // A body must arrive at min_body_rate bytes/s on average once body_grace has passed, and no
  // read may wait longer than body_grace.
  size_t min_body_rate = 16 << 10;
  std::chrono::milliseconds body_grace{5000};
  std::chrono::milliseconds write_timeout{10000};
  size_t max_header_bytes = 16 << 10;  // request line + fields (431 beyond)
  size_t max_header_count = 64;        // fields (431 beyond)
  size_t max_connections = 1024;       // open at once, overall (503 beyond)
  size_t max_connections_per_source = 128;  // per peer IP address (503 beyond)
  size_t max_queued = 256;             // requests waiting for or on a worker (503 beyond)
  int workers = 4;                     // handler threads
  std::chrono::milliseconds drain_timeout{10000};  // Stop(): how long requests in flight may finish
};

// One per response, including those the layer writes itself (400, 404, 405, 408, 413, 431, 503),
// so that logs and metrics see every status.
struct Event {
  std::string method, path, remote;
  int status = 0;
  double duration_ms = 0;
  std::string error;  // the layer's reason for its own responses ("" for handled requests)
  const nlohmann::ordered_json* fields = nullptr;  // the handler's Response::log, when handled
};

// What every daemon's request log line carries: method, path, status, remote, the handler's
// fields, the layer's reason as "detail", and duration_ms unless the handler set its own.
void AddLogFields(const Event& e, nlohmann::ordered_json& record);

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                              // 0: any free port
  std::string tls_cert_path, tls_key_path;   // PEM; both empty: plain HTTP
  Limits limits;
  std::function<void(const Event&)> on_response;
  // The body of the layer's own error responses; default {"code": status, "message": message}.
  std::function<void(Response&, int status, const std::string& message)> error_body;
};

// Counters for /metrics.
struct Stats {
  uint64_t connections_open = 0;
  uint64_t connections_total = 0;
  uint64_t refused_over_cap = 0;  // 503 for the overall or per-source cap, or a full queue
  uint64_t timeouts = 0;          // header deadline, body rate or write deadline
  uint64_t tls_failures = 0;      // handshakes that failed or timed out
};
// Stats in Prometheus text, metric names starting with `prefix` ("tdxvirt_attestation").
std::string StatsText(const Stats& s, std::string_view prefix);

class Server {
 public:
  // Checks the routes and loads the TLS identity (TLS 1.2+, AEAD suites only).
  static Result<std::unique_ptr<Server>> Create(ServerOptions options, std::vector<Route> routes);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (backlog from /proc/sys/net/core/somaxconn), starts the I/O thread and workers, returns
  // the bound port.
  Result<int> Start();
  // Stops accepting, closes idle connections, lets requests in flight finish until the drain
  // deadline, then closes the rest and joins. Idempotent.
  void Stop();
  int port() const;
  bool tls() const;
  Stats stats() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The reason phrase of a status code ("Not Found").
std::string_view StatusText(int status);

}  // namespace tdxvirt::http
