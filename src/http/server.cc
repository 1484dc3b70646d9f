#include "http/server.h"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/resource.h>

#include <atomic>
#include <cmath>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <fstream>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <strings.h>
#include <thread>
#include <unordered_map>

namespace tdxvirt::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  return "";
}

std::string_view StatusText(int status) {
  auto s = bhttp::obsolete_reason(bhttp::int_to_status(unsigned(status)));
  return {s.data(), s.size()};
}

void AddLogFields(const Event& e, nlohmann::ordered_json& j) {
  j["method"] = e.method;
  j["path"] = e.path;
  j["status"] = e.status;
  j["remote"] = e.remote;
  if (e.fields)
    for (const auto& [k, v] : e.fields->items()) j[k] = v;
  if (!e.error.empty()) j["detail"] = e.error;
  if (!j.contains("duration_ms")) j["duration_ms"] = std::round(e.duration_ms * 1000) / 1000;
}

std::string StatsText(const Stats& s, std::string_view prefix) {
  std::string p(prefix), out;
  auto metric = [&](const char* name, const char* type, const char* help, uint64_t v) {
    out += "# HELP " + p + name + " " + help + "\n# TYPE " + p + name + " " + type + "\n" + p + name +
           " " + std::to_string(v) + "\n";
  };
  metric("_http_connections_open", "gauge", "HTTP connections open now.", s.connections_open);
  metric("_http_connections_total", "counter", "HTTP connections accepted.", s.connections_total);
  metric("_http_refused_total", "counter",
         "Connections or requests answered 503 for a connection cap or a full queue.",
         s.refused_over_cap);
  metric("_http_timeouts_total", "counter",
         "Connections closed for the header deadline, the body rate or the write deadline.",
         s.timeouts);
  metric("_http_tls_failures_total", "counter", "TLS handshakes that failed or timed out.",
         s.tls_failures);
  return out;
}

namespace {

// Rejecting sessions (over a cap) at once; past this the connection is closed without a word.
constexpr size_t kMaxRejecting = 64;
// How long an over-cap client has to send its request header before it is closed.
constexpr std::chrono::milliseconds kRejectTimeout{2000};
// After an error response on a connection with unread input: how long to read and discard what
// the client still sends, so that it reads the response instead of a reset (a close with unread
// input resets the connection, and the peer's kernel drops the answer it has not read yet).
// Bounded in time only: discarding costs no memory.
constexpr std::chrono::milliseconds kLingerTimeout{5000};

size_t SomaxConn() {
  std::ifstream f("/proc/sys/net/core/somaxconn");
  long v = 0;
  if (f >> v && v > 0) return size_t(v);
  return SOMAXCONN;
}

// Each open connection needs a descriptor; the soft limit is often 1024, below the caps.
void RaiseFileLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

// A malformed request, as opposed to a dropped or reset socket.
bool IsParseError(const beast::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category();
}


}  // namespace

class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  virtual ~SessionBase() = default;
  virtual void Run() = 0;
  virtual void Drain() = 0;  // from any thread: runs on the session's strand
  virtual void ForceClose() = 0;  // only once the I/O thread has ended
};

struct Server::Impl {
  ServerOptions options;
  std::vector<Route> routes;

  // Accounting; sessions update it from their destructors.
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, size_t> per_source;
  size_t open = 0, rejecting = 0;
  std::list<std::weak_ptr<SessionBase>> sessions;
  std::atomic<uint64_t> total{0}, refused{0}, timeouts{0}, tls_failures{0};
  std::atomic<size_t> queued{0};

  int port = 0;
  bool started = false, stopped = false;
  std::mutex stop_mu;

  std::unique_ptr<net::ssl::context> ssl;  // before ioc: sessions' streams refer to it
  net::io_context ioc{1};
  std::optional<tcp::acceptor> acceptor;    // after ioc: closed before it goes
  std::optional<net::steady_timer> retry_timer;
  // Keeps run() going while only workers hold requests (during a drain nothing else may be pending).
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::unique_ptr<net::thread_pool> workers;
  std::thread io_thread;

  void Emit(const Event& e) {
    if (options.on_response) options.on_response(e);
  }
  void ErrorBody(Response& res, int status, const std::string& message) {
    res = Response{};
    res.status = status;
    if (options.error_body) {
      options.error_body(res, status, message);
    } else {
      res.Set(status, nlohmann::json{{"code", status}, {"message", message}}.dump(-1, ' ', false,
                                     nlohmann::json::error_handler_t::replace),
              "application/json");
    }
  }
  // The route for a path and method; `path_known` tells 405 from 404.
  const Route* Find(const std::string& method, const std::string& path, bool& path_known,
                    std::string& allow) const {
    path_known = false;
    for (const Route& r : routes) {
      bool match = r.prefix ? path.compare(0, r.path.size(), r.path) == 0 : path == r.path;
      if (!match) continue;
      path_known = true;
      if (r.method == method) return &r;
      if (!allow.empty()) allow += ", ";
      allow += r.method;
    }
    return nullptr;
  }
  // The sessions still alive, held outside the lock: a session may be released by this very
  // list, and its destructor takes the lock.
  std::vector<std::shared_ptr<SessionBase>> Live() {
    std::vector<std::shared_ptr<SessionBase>> out;
    std::lock_guard l(mu);
    for (auto& w : sessions)
      if (auto s = w.lock()) out.push_back(std::move(s));
    return out;
  }
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
};

namespace {

template <bool kTls>
class Session : public SessionBase {
 public:
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;
  enum class State { kHandshake, kHeader, kBody, kHandling, kWriting, kClosing };

  Session(Server::Impl& srv, tcp::socket&& socket, std::string remote, bool reject)
      : srv_(srv), stream_(MakeStream(srv, std::move(socket))), timer_(stream_.get_executor()),
        remote_(std::move(remote)), reject_(reject) {}

  ~Session() override {
    std::lock_guard l(srv_.mu);
    if (reject_) {
      --srv_.rejecting;
    } else {
      --srv_.open;
      auto it = srv_.per_source.find(remote_);
      if (it != srv_.per_source.end() && --it->second == 0) srv_.per_source.erase(it);
    }
    srv_.cv.notify_all();
  }

  void Run() override {
    deadline_ = Clock::now() + (reject_ ? kRejectTimeout : srv_.options.limits.header_timeout);
    auto self = shared_from_this();
    net::dispatch(stream_.get_executor(), [this, self] {
      if constexpr (kTls) {
        state_ = State::kHandshake;
        Arm(deadline_);
        stream_.async_handshake(net::ssl::stream_base::server,
                                [this, self](beast::error_code ec) { OnHandshake(ec); });
      } else {
        ReadHeader();
      }
    });
  }

  void ForceClose() override {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().close(ignored);
  }

  void Drain() override {
    net::post(stream_.get_executor(), [self = Self()] { self->DrainNow(); });
  }

 private:
  void DrainNow() {
    draining_ = true;
    // Requests whose header has arrived finish; connections waiting for one close now.
    if (state_ == State::kHandshake || state_ == State::kHeader) {
      beast::error_code ignored;
      beast::get_lowest_layer(stream_).socket().close(ignored);
    }
  }

  static Stream MakeStream(Server::Impl& srv, tcp::socket&& socket) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *srv.ssl);
    } else {
      return Stream(std::move(socket));
    }
  }
  std::shared_ptr<Session> Self() { return std::static_pointer_cast<Session>(shared_from_this()); }
  const Limits& limits() const { return srv_.options.limits; }

  // Deadlines: a timer that cancels the pending operation (Beast's own stream timeout closes the
  // socket, and then a 408 could not be written). `timed_out_` tells the handler why it ended.
  void Arm(Clock::time_point at) {
    uint64_t gen = ++timer_gen_;
    timed_out_ = false;
    timer_.expires_at(at);
    timer_.async_wait([self = Self(), gen](beast::error_code ec) {
      if (ec || gen != self->timer_gen_) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      beast::get_lowest_layer(self->stream_).socket().cancel(ignored);
    });
  }
  void Disarm() {
    ++timer_gen_;
    timed_out_ = false;
    timer_.cancel();
  }
  bool TimedOut(const beast::error_code& ec) const { return ec && timed_out_; }

  void OnHandshake(beast::error_code ec) {
    if (ec) {
      srv_.tls_failures++;
      if (TimedOut(ec)) srv_.timeouts++;
      return Close();
    }
    ReadHeader();
  }

  void ReadHeader() {
    if (draining_) return Close();
    state_ = State::kHeader;
    req_ = Request{};
    parser_.emplace();
    parser_->header_limit(uint32_t(limits().max_header_bytes));
    // The route's limit is set once the header names it. (Not boost::none: Beast 1.74 compares a
    // length with an empty optional as "over the limit".)
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    start_ = Clock::now();
    Arm(deadline_);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = Self()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  // Method and path from the parsed start line (also when a later header field was refused).
  void StartLine() {
    const auto& h = parser_->get();
    req_.method = std::string(h.method_string());
    req_.target = std::string(h.target());
    size_t q = req_.target.find('?');
    req_.path = req_.target.substr(0, q);
    if (q != std::string::npos) req_.query = req_.target.substr(q + 1);
  }

  void OnHeader(beast::error_code ec) {
    if (ec) {
      StartLine();
      bool some = parser_->got_some() || buffer_.size() > 0;
      if (TimedOut(ec)) {
        if (!some) return Close();  // an idle keep-alive connection: nothing to answer
        srv_.timeouts++;
        return Fail(408, "request header: not complete within " +
                             std::to_string(CurrentHeaderTimeout().count()) + " ms");
      }
      if (ec == bhttp::error::header_limit)
        return Fail(431, "request header: larger than " + std::to_string(limits().max_header_bytes) +
                             " bytes");
      if (IsParseError(ec) && some)  // malformed, not a dropped socket
        return Fail(400, "request: " + ec.message());
      return Close();
    }
    const auto& h = parser_->get();
    req_ = Request{};
    StartLine();
    req_.remote = remote_;
    for (const auto& f : h) req_.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    keep_alive_ = h.keep_alive();

    if (reject_) {
      srv_.refused++;
      return Fail(503, "too many connections from " + remote_ + " or in all; retry later");
    }
    if (req_.headers.size() > limits().max_header_count)
      return Fail(431, "request header: more than " + std::to_string(limits().max_header_count) +
                           " fields");
    bool path_known = false;
    std::string allow;
    route_ = srv_.Find(req_.method, req_.path, path_known, allow);
    if (!route_) {
      if (!path_known) return Fail(404, "no such endpoint: " + req_.path, /*close=*/false);
      res_ = Response{};
      srv_.ErrorBody(res_, 405, req_.method + " " + req_.path + ": use " + allow);
      res_.headers.emplace_back("Allow", allow);
      return Respond(405, "method not allowed");
    }
    auto length = parser_->content_length();
    if (length && *length > route_->max_body)
      return Fail(413, "request body: larger than " + std::to_string(route_->max_body) + " bytes");
    parser_->body_limit(route_->max_body);
    if (route_->admit) {
      res_ = Response{};
      if (!route_->admit(req_, res_)) return Respond(res_.status, "");
    }
    if (parser_->is_done()) return Dispatch();
    body_start_ = Clock::now();
    body_bytes_ = 0;
    state_ = State::kBody;
    if (beast::iequals(h[bhttp::field::expect], "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      Arm(Clock::now() + limits().write_timeout);
      return net::async_write(stream_, net::buffer(kContinue),
                              [self = Self()](beast::error_code ec, size_t) {
                                if (ec) return self->Close();
                                self->ReadBody();
                              });
    }
    ReadBody();
  }

  std::chrono::milliseconds CurrentHeaderTimeout() const {
    return reject_ ? kRejectTimeout : limits().header_timeout;
  }

  void ReadBody() {
    Arm(Clock::now() + limits().body_grace);
    bhttp::async_read_some(stream_, buffer_, *parser_,
                           [self = Self()](beast::error_code ec, size_t n) { self->OnBody(ec, n); });
  }

  void OnBody(beast::error_code ec, size_t n) {
    if (ec == bhttp::error::body_limit)
      return Fail(413, "request body: larger than " + std::to_string(route_->max_body) + " bytes");
    if (TimedOut(ec)) {
      srv_.timeouts++;
      return Fail(408, "request body: no data for " + std::to_string(limits().body_grace.count()) +
                           " ms");
    }
    if (ec) {
      if (IsParseError(ec)) return Fail(400, "request body: " + ec.message());
      return Close();
    }
    body_bytes_ += n;
    if (parser_->is_done()) return Dispatch();
    auto elapsed = Clock::now() - body_start_;
    if (elapsed > limits().body_grace) {
      double seconds = std::chrono::duration<double>(elapsed - limits().body_grace).count();
      if (double(body_bytes_) < double(limits().min_body_rate) * seconds) {
        srv_.timeouts++;
        return Fail(408, "request body: slower than " + std::to_string(limits().min_body_rate) +
                             " bytes/s");
      }
    }
    ReadBody();
  }

  void Dispatch() {
    Disarm();
    req_.body = beast::buffers_to_string(parser_->get().body().data());
    parser_->get().body().clear();
    state_ = State::kHandling;
    res_ = Response{};
    if (route_->inline_io) {
      RunHandler();
      return Respond(res_.status, "");
    }
    if (srv_.queued.fetch_add(1) >= limits().max_queued) {
      srv_.queued--;
      srv_.refused++;
      return Fail(503, "server busy: " + std::to_string(limits().max_queued) +
                           " requests queued; retry later");
    }
    net::post(*srv_.workers, [self = Self()] {
      self->RunHandler();
      net::post(self->stream_.get_executor(), [self] {
        self->srv_.queued--;
        self->Respond(self->res_.status, "");
      });
    });
  }

  void RunHandler() {
    try {
      route_->handler(req_, res_);
    } catch (const std::exception& e) {
      srv_.ErrorBody(res_, 500, "internal error");
      res_.log["error"] = e.what();
    }
  }

  // A response of the layer's own: the body from ErrorBody; the connection is closed after it
  // unless `close` is false and the request was read whole.
  void Fail(int status, const std::string& message, bool close = true) {
    srv_.ErrorBody(res_, status, message);
    if (close) keep_alive_ = false;
    Respond(status, message);
  }

  void Respond(int status, const std::string& error) {
    state_ = State::kWriting;
    // Unread request bytes make the connection unusable for the next request.
    if (!parser_ || !parser_->is_done()) keep_alive_ = false;
    Event e;
    e.method = req_.method;
    e.path = req_.path;
    e.remote = remote_;
    e.status = status;
    e.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
    e.error = error;
    e.fields = error.empty() ? &res_.log : nullptr;
    srv_.Emit(e);

    out_.emplace();
    out_->version(11);
    out_->result(unsigned(status));
    out_->set(bhttp::field::content_type, res_.content_type);
    for (const auto& [k, v] : res_.headers) out_->insert(k, v);
    out_->body() = std::move(res_.body);
    out_->keep_alive(keep_alive_ && !draining_);
    out_->prepare_payload();
    Arm(Clock::now() + limits().write_timeout);
    bhttp::async_write(stream_, *out_, [self = Self()](beast::error_code ec, size_t) {
      if (ec) {
        if (self->TimedOut(ec)) self->srv_.timeouts++;
        return self->Close();
      }
      bool again = self->out_->keep_alive();
      self->out_.reset();
      if (!again) return self->Linger();
      self->deadline_ = Clock::now() + self->limits().header_timeout;
      self->ReadHeader();
    });
  }

  // Ends the connection so that the client reads what was written. After a whole request: TLS
  // close_notify, or a TCP half-close. With request bytes still unread (an error answered early):
  // a TCP half-close and a bounded discard of what the client is still sending, below TLS too,
  // since closing on unread input resets the connection and the client may lose the answer.
  void Linger() {
    state_ = State::kClosing;
    Arm(Clock::now() + kLingerTimeout);
    bool unread = !parser_ || !parser_->is_done() || buffer_.size() > 0;
    if constexpr (kTls) {
      if (!unread)
        return stream_.async_shutdown([self = Self()](beast::error_code) { self->Close(); });
    }
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ignored);
    Discard();
  }

  void Discard() {
    discard_.resize(16 << 10);
    beast::get_lowest_layer(stream_).socket().async_read_some(
        net::buffer(discard_), [self = Self()](beast::error_code ec, size_t n) {
          self->discarded_ += n;
          if (ec) return self->Close();
          self->Discard();
        });
  }

  void Close() {
    state_ = State::kClosing;
    Disarm();
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).close();
  }

  Server::Impl& srv_;
  Stream stream_;
  net::steady_timer timer_;
  uint64_t timer_gen_ = 0;
  bool timed_out_ = false;
  std::string remote_;
  bool reject_;
  State state_ = State::kHeader;
  bool draining_ = false, keep_alive_ = true;
  Clock::time_point deadline_, start_, body_start_;
  size_t body_bytes_ = 0, discarded_ = 0;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::dynamic_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> out_;
  std::string discard_;
  const Route* route_ = nullptr;
  Request req_;
  Response res_;
};

}  // namespace

void Server::Impl::Accept() {
  acceptor->async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
    OnAccept(ec, std::move(s));
  });
}

void Server::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
  if (ec) {
    // Out of descriptors or memory: try again shortly instead of spinning.
    retry_timer->expires_after(std::chrono::milliseconds(50));
    retry_timer->async_wait([this](beast::error_code e) {
      if (!e && acceptor->is_open()) Accept();
    });
    return;
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  auto ep = socket.remote_endpoint(ignored);
  auto addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped())
    addr = net::ip::make_address_v4(net::ip::v4_mapped, addr.to_v6());
  std::string remote = addr.to_string();
  total++;
  bool reject = false;
  {
    std::lock_guard l(mu);
    size_t& mine = per_source[remote];
    if (open >= options.limits.max_connections || mine >= options.limits.max_connections_per_source) {
      if (mine == 0) per_source.erase(remote);
      if (rejecting >= kMaxRejecting) {
        refused++;
        socket.close(ignored);
        Accept();
        return;
      }
      reject = true;
      ++rejecting;
    } else {
      ++open;
      ++mine;
    }
  }
  std::shared_ptr<SessionBase> s;
  if (ssl)
    s = std::make_shared<Session<true>>(*this, std::move(socket), remote, reject);
  else
    s = std::make_shared<Session<false>>(*this, std::move(socket), remote, reject);
  {
    std::lock_guard l(mu);
    sessions.remove_if([](const std::weak_ptr<SessionBase>& w) { return w.expired(); });
    sessions.push_back(s);
  }
  s->Run();
  Accept();
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }

Result<std::unique_ptr<Server>> Server::Create(ServerOptions options, std::vector<Route> routes) {
  auto impl = std::make_unique<Impl>();
  for (const Route& r : routes) {
    if (r.method.empty() || r.path.empty() || r.path[0] != '/' || !r.handler)
      return Error{"http route: a method, a path starting with '/' and a handler are required"};
  }
  const Limits& l = options.limits;
  if (l.workers < 1 || l.max_connections < 1 || l.max_connections_per_source < 1 ||
      l.max_header_bytes < 1024 || l.max_header_count < 8 || l.max_queued < 1)
    return Error{"http limits: workers, connection caps and queue must be >= 1, header limits "
                 ">= 1024 bytes and >= 8 fields"};
  if (options.tls_cert_path.empty() != options.tls_key_path.empty())
    return Error{"TLS: give both the certificate and the key, or neither (plain HTTP)"};
  if (!options.tls_cert_path.empty()) {
    impl->ssl = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
    SSL_CTX* c = impl->ssl->native_handle();
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
    // TLS 1.2: forward-secret AEAD suites only. TLS 1.3's default suites are all AEAD.
    if (SSL_CTX_set_cipher_list(c, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL") != 1)
      return Error{"TLS: OpenSSL refused the AEAD cipher list"};
    if (SSL_CTX_use_certificate_chain_file(c, options.tls_cert_path.c_str()) != 1)
      return Error{"--tls-cert " + options.tls_cert_path + ": not a readable PEM certificate chain"};
    EVP_PKEY* key = nullptr;
    if (BIO* bio = BIO_new_file(options.tls_key_path.c_str(), "r")) {
      key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
      BIO_free(bio);
    }
    if (!key) return Error{"--tls-key " + options.tls_key_path + ": not a readable PEM private key"};
    bool matches = SSL_CTX_use_PrivateKey(c, key) == 1 && SSL_CTX_check_private_key(c) == 1;
    EVP_PKEY_free(key);
    if (!matches)
      return Error{"--tls-key " + options.tls_key_path + ": does not match the certificate in " +
                   options.tls_cert_path};
  }
  impl->options = std::move(options);
  impl->routes = std::move(routes);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Result<int> Server::Start() {
  Impl& m = *impl_;
  std::lock_guard sl(m.stop_mu);
  if (m.started) return Error{"http server: already started"};
  RaiseFileLimit();
  beast::error_code ec;
  auto addr = net::ip::make_address(m.options.host, ec);
  tcp::endpoint ep;
  if (ec) {
    tcp::resolver resolver(m.ioc);
    auto results = resolver.resolve(m.options.host, std::to_string(m.options.port), ec);
    if (ec || results.empty())
      return Error{"cannot listen on " + m.options.host + ":" + std::to_string(m.options.port) +
                   ": unknown host"};
    ep = *results.begin();
  } else {
    ep = tcp::endpoint(addr, uint16_t(m.options.port));
  }
  if (m.options.port < 0 || m.options.port > 65535)
    return Error{"cannot listen on port " + std::to_string(m.options.port) + ": use 0..65535"};
  m.acceptor.emplace(m.ioc);
  m.acceptor->open(ep.protocol(), ec);
  if (!ec) m.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor->bind(ep, ec);
  if (!ec) m.acceptor->listen(int(std::min<size_t>(SomaxConn(), 1 << 16)), ec);
  if (ec)
    return Error{"cannot listen on " + m.options.host + ":" + std::to_string(m.options.port) + ": " +
                 ec.message()};
  m.port = m.acceptor->local_endpoint().port();
  m.retry_timer.emplace(m.ioc);
  m.workers = std::make_unique<net::thread_pool>(size_t(m.options.limits.workers));
  m.Accept();
  m.work.emplace(m.ioc.get_executor());
  m.io_thread = std::thread([&m] { m.ioc.run(); });
  m.started = true;
  return m.port;
}

void Server::Stop() {
  if (!impl_) return;
  Impl& m = *impl_;
  std::lock_guard sl(m.stop_mu);
  if (!m.started || m.stopped) return;
  m.stopped = true;
  net::post(m.ioc, [&m] {
    beast::error_code ignored;
    m.acceptor->close(ignored);
    m.retry_timer->cancel();
    for (auto& s : m.Live()) s->Drain();
  });
  {
    std::unique_lock l(m.mu);
    m.cv.wait_for(l, m.options.limits.drain_timeout, [&m] { return m.open == 0 && m.rejecting == 0; });
  }
  m.work.reset();
  m.ioc.stop();
  if (m.io_thread.joinable()) m.io_thread.join();
  // Past the drain deadline: whatever is left is closed now, even while a worker still runs its
  // handler (the I/O thread has ended, so nothing else touches these sockets).
  for (auto& s : m.Live()) s->ForceClose();
  m.workers->stop();
  m.workers->join();
  m.workers.reset();  // drops handlers that never ran, and the sessions they held
  // Sessions still held by pending operations go when the io_context does (after the counters
  // they update, before the TLS context their streams use).
}

int Server::port() const { return impl_->port; }
bool Server::tls() const { return impl_->ssl != nullptr; }

Stats Server::stats() const {
  Stats s;
  {
    std::lock_guard l(impl_->mu);
    s.connections_open = impl_->open;
  }
  s.connections_total = impl_->total;
  s.refused_over_cap = impl_->refused;
  s.timeouts = impl_->timeouts;
  s.tls_failures = impl_->tls_failures;
  return s;
}

}  // namespace tdxvirt::http
