#include "qgs/server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <system_error>

#include "common/log.h"
#include "qgs/handler.h"

namespace tdxvirt::qgs {

namespace {

const char* IoOutcome(const IoResult& r) {
  switch (r.status) {
    case IoStatus::kEof:
      return r.bytes == 0 ? "closed" : "truncated";
    case IoStatus::kTimeout:
      return "timeout";
    case IoStatus::kCancelled:
      return "cancelled";
    default:
      return "io_error";
  }
}

}  // namespace

struct QgsServer::RequestLog {
  std::string listener;
  std::string peer;
  std::string type = "none";
  std::string outcome;
  std::string detail;
  uint32_t error_code = kSuccess;
  size_t bytes_in = 0;
  size_t bytes_out = 0;
  uint64_t unlogged_refusals = 0;  // for a "refused" line: refusals since the last one logged
  Clock::time_point start = Clock::now();
  Clock::time_point deadline;
};

QgsServer::QgsServer(QuoteBackend& backend, ServerOptions options)
    : backend_(&backend), options_(std::move(options)) {
  if (options_.serialize_backend) {
    serialized_ = std::make_unique<SerializedBackend>(backend);
    backend_ = serialized_.get();
  }
  if (!options_.log) options_.log = LogToStderr;
}

QgsServer::~QgsServer() { Stop(); }

Status QgsServer::Start(const std::vector<QgsAddress>& listen) {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return Error{"QGS server: Start() after Stop()"};
  }
  if (acceptor_.joinable()) return Error{"QGS server: Start() called twice"};
  if (listen.empty()) return Error{"QGS server: no address to listen on"};
  if (options_.max_connections < 2)
    return Error{"QGS server: max_connections " + std::to_string(options_.max_connections) +
                 " must be at least 2 (a per-peer cap below it must leave room for another peer)"};
  if (options_.max_connections_per_peer == 0 ||
      options_.max_connections_per_peer >= options_.max_connections)
    return Error{"QGS server: max_connections_per_peer " +
                 std::to_string(options_.max_connections_per_peer) + " must be from 1 to " +
                 std::to_string(options_.max_connections - 1) +
                 " (below max_connections, so one peer cannot take every slot)"};
  stop_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_.valid()) return Error{std::string("QGS server: eventfd: ") + std::strerror(errno)};
  std::vector<Listener> listeners;
  auto cleanup = [&listeners] {
    for (Listener& l : listeners)
      if (l.address.kind == QgsAddress::Kind::kUnix) unlink(l.address.path.c_str());
  };
  for (const QgsAddress& a : listen) {
    Listener l;
    auto fd = Listen(a, {.backlog = options_.backlog, .unix_mode = options_.unix_mode}, &l.address);
    if (!fd.ok()) {
      cleanup();
      return Error{fd.error()};
    }
    l.fd = std::move(*fd);
    struct stat st {};
    if (a.kind == QgsAddress::Kind::kUnix && stat(a.path.c_str(), &st) == 0) {
      l.dev = st.st_dev;
      l.ino = st.st_ino;
    }
    listeners.push_back(std::move(l));
  }
  listeners_ = std::move(listeners);
  std::string names;
  for (const Listener& l : listeners_) {
    bound_.push_back(l.address);
    names += (names.empty() ? "" : " ") + ToString(l.address);
  }
  LogEvent("listening", names);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return OkStatus();
}

void QgsServer::Stop() {
  std::lock_guard stop_lock(stop_mu_);
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopping_ = true;
  }
  if (stop_fd_.valid()) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(stop_fd_.get(), &one, sizeof(one));
  }
  cv_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  JoinFinished(/*all=*/true);
  for (Listener& l : listeners_) {
    l.fd.reset();
    struct stat st {};
    if (l.address.kind == QgsAddress::Kind::kUnix && stat(l.address.path.c_str(), &st) == 0 &&
        st.st_dev == l.dev && st.st_ino == l.ino)
      unlink(l.address.path.c_str());
  }
  bool was_started = !listeners_.empty();
  listeners_.clear();
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  if (was_started) LogEvent("stopped", std::to_string(served_.load()) + " connections served");
}

size_t QgsServer::active_connections() const {
  std::lock_guard lock(mu_);
  return active_;
}

void QgsServer::JoinFinished(bool all) {
  std::list<std::unique_ptr<Connection>> finished;
  {
    std::lock_guard lock(mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (all || (*it)->done) {
        finished.push_back(std::move(*it));
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : finished)
    if (c->thread.joinable()) c->thread.join();
}

void QgsServer::AcceptLoop() {
  std::vector<pollfd> fds;
  for (const Listener& l : listeners_) fds.push_back({l.fd.get(), POLLIN, 0});
  fds.push_back({stop_fd_.get(), POLLIN, 0});
  for (;;) {
    JoinFinished(/*all=*/false);
    {
      // At the cap, leave new connections in the kernel's backlog until a slot frees.
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || active_ < options_.max_connections; });
      if (stopping_) return;
    }
    for (pollfd& p : fds) p.revents = 0;
    int n = poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      LogEvent("accept_error", std::string("poll: ") + std::strerror(errno));
      return;
    }
    if (fds.back().revents & POLLIN) return;  // stopping
    for (size_t i = 0; i + 1 < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      int fd = accept4(fds[i].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
          continue;
        LogEvent("accept_error", std::strerror(errno));
        // Out of descriptors or memory: back off rather than spin.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      Clock::time_point accepted = Clock::now();
      UniqueFd owned(fd);
      const Listener& listener = listeners_[i];
      std::string peer_key = PeerKey(fd, listener.address.kind);
      if (!Admit(owned, listener, peer_key)) break;  // refused: closed and logged, no thread
      auto conn = std::make_unique<Connection>();
      Connection* c = conn.get();
      {
        std::lock_guard lock(mu_);
        connections_.push_back(std::move(conn));
      }
      try {
        c->thread = std::thread(
            [this, c, &listener, accepted, peer_key, owned = std::move(owned)]() mutable {
              Serve(std::move(owned), listener, accepted);
              Release(peer_key);
              {
                std::lock_guard lock(mu_);
                c->done = true;
              }
              served_.fetch_add(1);
              cv_.notify_all();
            });
      } catch (const std::system_error& e) {
        // No thread (resource limits): the lambda, and with it the socket, is already gone.
        Release(peer_key);
        {
          std::lock_guard lock(mu_);
          c->done = true;
        }
        LogEvent("accept_error", std::string("cannot start a connection thread: ") + e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      break;  // one accept per round, so the cap is checked before the next
    }
  }
}

bool QgsServer::Admit(UniqueFd& fd, const Listener& listener, const std::string& peer_key) {
  bool admitted = false;
  bool log_refusal = false;
  bool first_unidentified = false;
  uint64_t unlogged = 0;
  {
    std::lock_guard lock(mu_);
    Peer& peer = peers_[peer_key];
    if (peer.active < options_.max_connections_per_peer) {
      admitted = true;
      ++peer.active;
      ++active_;
      first_unidentified = peer_key == "unix:pid=0" && !warned_unidentified_;
      if (first_unidentified) warned_unidentified_ = true;
    } else {
      // Refusals happen only while the peer has connections open, so its entry lives on.
      Clock::time_point now = Clock::now();
      if (!peer.last_refusal_log || now - *peer.last_refusal_log >= options_.refusal_log_interval) {
        log_refusal = true;
        unlogged = peer.unlogged_refusals;
        peer.unlogged_refusals = 0;
        peer.last_refusal_log = now;
      } else {
        ++peer.unlogged_refusals;
      }
    }
  }
  if (first_unidentified)
    LogEvent("peer_unidentified",
             "a UNIX peer's pid is 0 (its process is outside this PID namespace): all such peers "
             "share one per-peer cap; run the QGS in the host's PID namespace");
  if (admitted) return true;
  refused_.fetch_add(1);
  RequestLog log;
  if (log_refusal) {
    log.listener = ToString(listener.address);
    log.peer = DescribePeer(fd.get(), listener.address.kind);
    log.outcome = "refused";
    log.detail = "peer " + peer_key + " already has max_connections_per_peer (" +
                 std::to_string(options_.max_connections_per_peer) + ") connections open";
    log.unlogged_refusals = unlogged;
  }
  fd.reset();  // at once: no thread, nothing read
  if (log_refusal) Emit(log);
  return false;
}

void QgsServer::Release(const std::string& peer_key) {
  std::lock_guard lock(mu_);
  auto it = peers_.find(peer_key);
  if (it != peers_.end() && it->second.active > 0 && --it->second.active == 0) peers_.erase(it);
  --active_;
}

void QgsServer::Serve(UniqueFd fd, const Listener& listener, Clock::time_point accepted) {
  RequestLog log;
  log.start = accepted;
  log.listener = ToString(listener.address);
  log.peer = DescribePeer(fd.get(), listener.address.kind);
  log.deadline = log.start + options_.request_timeout;
  uint8_t prefix[kFramePrefixSize];
  IoResult r = ReadExact(fd.get(), prefix, log.deadline, stop_fd_.get());
  log.bytes_in = r.bytes;
  if (!r.ok()) {
    log.outcome = IoOutcome(r);
    log.detail = "reading the length prefix: " + r.Describe();
    Emit(log);
    return;
  }
  uint32_t size = LoadBe32(prefix);
  if (size < kHeaderSize) {
    log.outcome = "rejected";
    log.detail = "length prefix " + std::to_string(size) + " is shorter than the 16-byte header";
  } else {
    // The header (or, in raw mode, TDREPORT bytes 4..19) comes next either way.
    Bytes head(kFramePrefixSize + kHeaderSize);
    std::copy(prefix, prefix + kFramePrefixSize, head.begin());
    r = ReadExact(fd.get(), std::span(head).subspan(kFramePrefixSize), log.deadline,
                  stop_fd_.get());
    log.bytes_in += r.bytes;
    if (!r.ok()) {
      log.outcome = r.status == IoStatus::kEof ? "truncated" : IoOutcome(r);
      log.detail = "reading the header: " + r.Describe();
    } else {
      ServeMessage(fd.get(), std::move(head), log);
    }
  }
  // Half-close first so the client reads the whole reply before the end of stream.
  shutdown(fd.get(), SHUT_WR);
  Emit(log);
}

void QgsServer::ServeMessage(int fd, Bytes head, RequestLog& log) {
  uint32_t size = LoadBe32(head.data());
  Header header = *DecodeHeader(std::span(head).subspan(kFramePrefixSize));
  if (size > options_.max_request_size) {
    // Too long to be read. A frame says so consistently in its header; anything else is no
    // frame at all, and is taken as a raw TDREPORT, as Intel's QGS does. (A TDREPORT starts
    // 0x81 0x00, so its "length" is over 2 GiB, and its bytes 4..7 are zero: never version 1.)
    bool frame = header.major_version == kMajorVersion && header.type < kMessageTypeMax &&
                 header.size == size;
    if (!frame) return ServeRaw(fd, std::move(head), log);
    log.type = MessageTypeName(header.type);
    log.detail = "length prefix " + std::to_string(size) + " is over the limit of " +
                 std::to_string(options_.max_request_size) + " bytes";
    if (auto resp = ResponseTypeFor(header.type)) {
      log.outcome = "error";
      log.error_code = kErrorInvalidSize;
      Reply(fd, Frame(EncodeErrorResponse(*resp, kErrorInvalidSize)), log);
      // Read (and drop) a little of what is still coming before the close, so a TCP peer is not
      // reset before it has read the answer. Bounded in bytes and time.
      shutdown(fd, SHUT_WR);
      Bytes sink;
      ReadUntilEof(fd, sink, 64 << 10, Clock::now() + std::chrono::milliseconds(100),
                   stop_fd_.get());
    } else {
      log.outcome = "rejected";
    }
    return;
  }
  log.type = MessageTypeName(header.type);
  Bytes message(head.begin() + kFramePrefixSize, head.end());
  message.resize(size);
  IoResult r = ReadExact(fd, std::span(message).subspan(kHeaderSize), log.deadline, stop_fd_.get());
  log.bytes_in += r.bytes;
  if (!r.ok()) {
    log.outcome = r.status == IoStatus::kEof ? "truncated" : IoOutcome(r);
    log.detail = "reading the message body: " + r.Describe();
    return;
  }
  HandledRequest h = HandleMessage(message, *backend_);
  log.type = h.type;
  log.outcome = h.outcome;
  log.error_code = h.error_code;
  log.detail = h.detail;
  if (!h.response.empty()) Reply(fd, Frame(h.response), log);
}

void QgsServer::ServeRaw(int fd, Bytes head, RequestLog& log) {
  log.type = "raw";
  Bytes report = std::move(head);
  size_t have = report.size();
  report.resize(kRawReportSize);
  IoResult r = ReadExact(fd, std::span(report).subspan(have), log.deadline, stop_fd_.get());
  log.bytes_in += r.bytes;
  if (!r.ok()) {
    log.outcome = r.status == IoStatus::kEof ? "truncated" : IoOutcome(r);
    log.detail = "reading a raw TDREPORT: " + r.Describe();
    return;
  }
  HandledRequest h = HandleRawReport(report, *backend_);
  log.outcome = h.outcome;
  log.detail = h.detail;
  if (!h.response.empty()) Reply(fd, h.response, log);  // bare quote: no prefix, no header
}

void QgsServer::Reply(int fd, ByteSpan bytes, RequestLog& log) {
  IoResult w = WriteAll(fd, bytes, Clock::now() + options_.write_timeout, stop_fd_.get());
  log.bytes_out = w.bytes;
  if (!w.ok()) {
    log.detail +=
        (log.detail.empty() ? "" : "; ") + std::string("writing the reply: ") + w.Describe();
    log.outcome = "write_failed";
  }
}

void QgsServer::Emit(const RequestLog& log) {
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - log.start).count();
  auto j = LogRecord(log.outcome == "ok" ? "info" : "warn", "qgs", "request");
  j["listener"] = log.listener;
  j["peer"] = log.peer;
  j["type"] = log.type;
  j["outcome"] = log.outcome;
  if (log.error_code != kSuccess) j["error_code"] = ErrorCodeName(log.error_code);
  if (!log.detail.empty()) j["detail"] = log.detail;
  if (log.unlogged_refusals) j["refusals_not_logged"] = log.unlogged_refusals;
  j["bytes_in"] = log.bytes_in;
  j["bytes_out"] = log.bytes_out;
  j["duration_ms"] = std::round(ms * 1000) / 1000;
  options_.log(LogLine(j));
}

void QgsServer::LogEvent(const std::string& event, const std::string& detail) {
  options_.log(LogLine(event.ends_with("error") ? "error" : "info", "qgs", event, detail));
}

}  // namespace tdxvirt::qgs
