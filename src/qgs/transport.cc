#include "qgs/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

namespace tdxvirt::qgs {

namespace {

std::string Errno(int err) { return std::strerror(err); }

Result<uint32_t> ParseUint(std::string_view text, uint64_t max, std::string_view what) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v > max)
    return Error{std::string(what) + " '" + std::string(text) + "' is not a number from 0 to " +
                 std::to_string(max)};
  return uint32_t(v);
}

Result<QgsAddress> HostPort(std::string_view text) {
  std::string_view host, port;
  if (text.starts_with('[')) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return Error{"address '" + std::string(text) + "': expected [IPV6]:PORT"};
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return Error{"address '" + std::string(text) +
                   "': expected unix:PATH, vsock:CID:PORT or HOST:PORT"};
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return Error{"address '" + std::string(text) + "': write an IPv6 address as [ADDR]:PORT"};
  }
  if (host.empty()) return Error{"address '" + std::string(text) + "': empty host"};
  auto p = ParseUint(port, 65535, "TCP port");
  if (!p.ok()) return Error{p.error()};
  return QgsAddress{.kind = QgsAddress::Kind::kTcp, .host = std::string(host), .port = *p};
}

// QEMU's SocketAddress JSON; its numbers are usually strings ("cid":"2").
Result<QgsAddress> FromQemuJson(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Error{"address: not a JSON object"};
  auto field = [&](const char* key) -> Result<std::string> {
    auto it = j.find(key);
    if (it == j.end()) return Error{std::string("address JSON: missing \"") + key + "\""};
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number_unsigned()) return std::to_string(it->get<uint64_t>());
    return Error{std::string("address JSON: \"") + key + "\" must be a string or a number"};
  };
  auto type = field("type");
  if (!type.ok()) return Error{type.error()};
  if (*type == "unix") {
    auto path = field("path");
    if (!path.ok()) return Error{path.error()};
    if (path->empty()) return Error{"address JSON: empty \"path\""};
    return QgsAddress{.kind = QgsAddress::Kind::kUnix, .path = *path};
  }
  auto port = field("port");
  if (!port.ok()) return Error{port.error()};
  if (*type == "vsock") {
    auto cid = field("cid");
    if (!cid.ok()) return Error{cid.error()};
    auto c = ParseUint(*cid, UINT32_MAX, "vsock CID");
    auto p = ParseUint(*port, UINT32_MAX, "vsock port");
    if (!c.ok()) return Error{c.error()};
    if (!p.ok()) return Error{p.error()};
    return QgsAddress{.kind = QgsAddress::Kind::kVsock, .cid = *c, .port = *p};
  }
  if (*type == "inet") {
    auto host = field("host");
    if (!host.ok()) return Error{host.error()};
    auto p = ParseUint(*port, 65535, "TCP port");
    if (!p.ok()) return Error{p.error()};
    if (host->empty()) return Error{"address JSON: empty \"host\""};
    return QgsAddress{.kind = QgsAddress::Kind::kTcp, .host = *host, .port = *p};
  }
  return Error{"address JSON: type \"" + *type + "\" is not unix, vsock or inet"};
}

IoStatus WaitReady(int fd, short events, Clock::time_point deadline, int cancel_fd, int* err) {
  for (;;) {
    auto now = Clock::now();
    if (now >= deadline) return IoStatus::kTimeout;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    pollfd fds[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    int n = poll(fds, cancel_fd >= 0 ? 2 : 1, int(std::min<int64_t>(ms, INT_MAX)));
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return IoStatus::kError;
    }
    if (cancel_fd >= 0 && (fds[1].revents & POLLIN)) return IoStatus::kCancelled;
    if (n > 0 && fds[0].revents) return IoStatus::kOk;  // ready, HUP or ERR: the next call says
  }
}

// A non-blocking connect: waits for completion until the deadline.
Status ConnectFd(int fd, const sockaddr* addr, socklen_t len, Clock::time_point deadline,
                 const std::string& name) {
  for (;;) {
    if (connect(fd, addr, len) == 0) return OkStatus();
    if (errno == EINTR) continue;
    if (errno == EAGAIN && addr->sa_family == AF_UNIX) {
      // A UNIX listener's backlog is full: retry until the deadline.
      if (Clock::now() >= deadline) return Error{"connect " + name + ": timed out (backlog full)"};
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (errno != EINPROGRESS) return Error{"connect " + name + ": " + Errno(errno)};
    break;
  }
  int err = 0;
  IoStatus s = WaitReady(fd, POLLOUT, deadline, -1, &err);
  if (s == IoStatus::kTimeout) return Error{"connect " + name + ": timed out"};
  if (s != IoStatus::kOk) return Error{"connect " + name + ": " + Errno(err)};
  socklen_t l = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) err = errno;
  if (err != 0) return Error{"connect " + name + ": " + Errno(err)};
  return OkStatus();
}

Result<sockaddr_un> UnixSockaddr(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sa.sun_path))
    return Error{"UNIX socket path '" + path + "' is empty or longer than " +
                 std::to_string(sizeof(sa.sun_path) - 1) + " bytes"};
  std::memcpy(sa.sun_path, path.data(), path.size());
  return sa;
}

Result<UniqueFd> NewSocket(int family, const std::string& name) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) return UniqueFd(fd);
  if (family == AF_VSOCK && errno == EAFNOSUPPORT)
    return Error{name +
                 ": AF_VSOCK is not supported by this kernel (EAFNOSUPPORT); load the vsock "
                 "transport (modprobe vhost_vsock on a host, vmw_vsock_virtio_transport in a "
                 "guest) or use a UNIX or TCP address"};
  return Error{name + ": socket: " + Errno(errno)};
}

struct AddrInfoFree {
  void operator()(addrinfo* p) const { freeaddrinfo(p); }
};

Result<std::unique_ptr<addrinfo, AddrInfoFree>> Resolve(const QgsAddress& a, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  int rc = getaddrinfo(a.host.c_str(), std::to_string(a.port).c_str(), &hints, &res);
  if (rc != 0) return Error{"resolve " + ToString(a) + ": " + gai_strerror(rc)};
  return std::unique_ptr<addrinfo, AddrInfoFree>(res);
}

std::string SockaddrToString(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  if (ss.ss_family == AF_VSOCK) {
    auto* vm = reinterpret_cast<const sockaddr_vm*>(&ss);
    return "vsock:" + std::to_string(vm->svm_cid) + ":" + std::to_string(vm->svm_port);
  }
  return "unknown";
}

// A UNIX socket file in the way: replace it only if nothing listens on it (connect refused). A
// listener that is merely busy (EAGAIN) is alive.
Status ClearStaleSocket(const std::string& path, const sockaddr_un& sa) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return OkStatus();
    return Error{"listen unix:" + path + ": " + Errno(errno)};
  }
  if (!S_ISSOCK(st.st_mode)) return Error{"listen unix:" + path + ": exists and is not a socket"};
  UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return Error{"listen unix:" + path + ": socket: " + Errno(errno)};
  if (connect(probe.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 0 ||
      errno == EAGAIN)
    return Error{"listen unix:" + path + ": another server is listening there"};
  if (errno != ECONNREFUSED)
    return Error{"listen unix:" + path +
                 ": cannot tell whether a server listens there: " + Errno(errno)};
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    return Error{"listen unix:" + path + ": cannot remove the stale socket: " + Errno(errno)};
  return OkStatus();
}

Result<UniqueFd> ListenUnix(const QgsAddress& a, const ListenOptions& o, QgsAddress* bound) {
  auto sa = UnixSockaddr(a.path);
  if (!sa.ok()) return Error{sa.error()};
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(a.path).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (ec)
      return Error{"listen unix:" + a.path + ": cannot create " + parent.string() + ": " +
                   ec.message()};
  }
  if (Status s = ClearStaleSocket(a.path, *sa); !s.ok()) return Error{s.error()};
  auto fd = NewSocket(AF_UNIX, "listen unix:" + a.path);
  if (!fd.ok()) return fd;
  if (bind(fd->get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof(*sa)) != 0)
    return Error{"listen unix:" + a.path + ": bind: " + Errno(errno)};
  // Before listen(), so nobody connects through the umask's permissions.
  if (chmod(a.path.c_str(), o.unix_mode) != 0) {
    int err = errno;
    unlink(a.path.c_str());
    return Error{"listen unix:" + a.path + ": chmod: " + Errno(err)};
  }
  if (listen(fd->get(), o.backlog) != 0) {
    int err = errno;
    unlink(a.path.c_str());
    return Error{"listen unix:" + a.path + ": " + Errno(err)};
  }
  if (bound) *bound = a;
  return fd;
}

Result<UniqueFd> ListenTcp(const QgsAddress& a, const ListenOptions& o, QgsAddress* bound) {
  auto res = Resolve(a, /*passive=*/true);
  if (!res.ok()) return Error{res.error()};
  std::string last_error = "no usable address";
  for (addrinfo* ai = res->get(); ai; ai = ai->ai_next) {
    auto fd = NewSocket(ai->ai_family, "listen " + ToString(a));
    if (!fd.ok()) {
      last_error = fd.error();
      continue;
    }
    int one = 1;
    setsockopt(fd->get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd->get(), ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd->get(), o.backlog) != 0) {
      last_error = "listen " + ToString(a) + ": " + Errno(errno);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (bound && getsockname(fd->get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      *bound = a;
      bound->port = ss.ss_family == AF_INET
                        ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                        : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    }
    return fd;
  }
  return Error{last_error};
}

Result<UniqueFd> ListenVsock(const QgsAddress& a, const ListenOptions& o, QgsAddress* bound) {
  auto fd = NewSocket(AF_VSOCK, "listen " + ToString(a));
  if (!fd.ok()) return fd;
  sockaddr_vm sa{};
  sa.svm_family = AF_VSOCK;
  sa.svm_cid = a.cid;
  sa.svm_port = a.port;
  if (bind(fd->get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0)
    return Error{"listen " + ToString(a) + ": bind: " + Errno(errno) +
                 (errno == EADDRNOTAVAIL ? " (no vsock transport loaded?)" : "")};
  if (listen(fd->get(), o.backlog) != 0)
    return Error{"listen " + ToString(a) + ": " + Errno(errno)};
  socklen_t len = sizeof(sa);
  if (bound && getsockname(fd->get(), reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
    *bound = a;
    bound->port = sa.svm_port;
  }
  return fd;
}

}  // namespace

Result<QgsAddress> ParseQgsAddress(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.empty()) return Error{"address: empty"};
  if (text.front() == '{') return FromQemuJson(text);
  if (text.front() == '/')
    return QgsAddress{.kind = QgsAddress::Kind::kUnix, .path = std::string(text)};
  if (text.starts_with("unix:")) {
    if (text.size() == 5) return Error{"address 'unix:': empty path"};
    return QgsAddress{.kind = QgsAddress::Kind::kUnix, .path = std::string(text.substr(5))};
  }
  if (text.starts_with("vsock:")) {
    std::string_view rest = text.substr(6);
    size_t colon = rest.find(':');
    if (colon == std::string_view::npos)
      return Error{"address '" + std::string(text) + "': expected vsock:CID:PORT"};
    auto cid = ParseUint(rest.substr(0, colon), UINT32_MAX, "vsock CID");
    auto port = ParseUint(rest.substr(colon + 1), UINT32_MAX, "vsock port");
    if (!cid.ok()) return Error{cid.error()};
    if (!port.ok()) return Error{port.error()};
    return QgsAddress{.kind = QgsAddress::Kind::kVsock, .cid = *cid, .port = *port};
  }
  if (text.starts_with("tcp:")) text.remove_prefix(4);
  return HostPort(text);
}

std::string ToString(const QgsAddress& a) {
  switch (a.kind) {
    case QgsAddress::Kind::kUnix:
      return "unix:" + a.path;
    case QgsAddress::Kind::kVsock:
      return "vsock:" + std::to_string(a.cid) + ":" + std::to_string(a.port);
    case QgsAddress::Kind::kTcp:
      if (a.host.find(':') != std::string::npos)
        return "[" + a.host + "]:" + std::to_string(a.port);
      return a.host + ":" + std::to_string(a.port);
  }
  return "?";
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

std::string IoResult::Describe() const {
  std::string after = " after " + std::to_string(bytes) + " bytes";
  switch (status) {
    case IoStatus::kOk:
      return "ok";
    case IoStatus::kEof:
      return "connection closed" + after;
    case IoStatus::kTimeout:
      return "timed out" + after;
    case IoStatus::kCancelled:
      return "cancelled (server stopping)" + after;
    case IoStatus::kTooLarge:
      return "over the size limit" + after;
    case IoStatus::kError:
      return Errno(error) + after;
  }
  return "?";
}

IoResult ReadExact(int fd, std::span<uint8_t> out, Clock::time_point deadline, int cancel_fd) {
  IoResult r;
  while (r.bytes < out.size()) {
    ssize_t n = recv(fd, out.data() + r.bytes, out.size() - r.bytes, 0);
    if (n > 0) {
      r.bytes += size_t(n);
      continue;
    }
    if (n == 0) {
      r.status = IoStatus::kEof;
      return r;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      r.status = IoStatus::kError;
      r.error = errno;
      return r;
    }
    r.status = WaitReady(fd, POLLIN, deadline, cancel_fd, &r.error);
    if (!r.ok()) return r;
  }
  return r;
}

IoResult WriteAll(int fd, ByteSpan data, Clock::time_point deadline, int cancel_fd) {
  IoResult r;
  while (r.bytes < data.size()) {
    ssize_t n = send(fd, data.data() + r.bytes, data.size() - r.bytes, MSG_NOSIGNAL);
    if (n >= 0) {
      r.bytes += size_t(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      r.status = IoStatus::kError;
      r.error = errno;
      return r;
    }
    r.status = WaitReady(fd, POLLOUT, deadline, cancel_fd, &r.error);
    if (!r.ok()) return r;
  }
  return r;
}

IoResult ReadUntilEof(int fd, Bytes& out, size_t max_size, Clock::time_point deadline,
                      int cancel_fd) {
  IoResult r;
  uint8_t buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      if (out.size() + size_t(n) > max_size) {
        r.status = IoStatus::kTooLarge;
        return r;
      }
      out.insert(out.end(), buf, buf + n);
      r.bytes += size_t(n);
      continue;
    }
    if (n == 0) return r;  // kOk: the peer closed, as expected
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      r.status = IoStatus::kError;
      r.error = errno;
      return r;
    }
    r.status = WaitReady(fd, POLLIN, deadline, cancel_fd, &r.error);
    if (!r.ok()) return r;
  }
}

Result<UniqueFd> Connect(const QgsAddress& a, Clock::time_point deadline) {
  const std::string name = ToString(a);
  switch (a.kind) {
    case QgsAddress::Kind::kUnix: {
      auto sa = UnixSockaddr(a.path);
      if (!sa.ok()) return Error{sa.error()};
      auto fd = NewSocket(AF_UNIX, "connect " + name);
      if (!fd.ok()) return fd;
      Status s = ConnectFd(fd->get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof(*sa),
                           deadline, name);
      if (!s.ok()) return Error{s.error()};
      return fd;
    }
    case QgsAddress::Kind::kVsock: {
      auto fd = NewSocket(AF_VSOCK, "connect " + name);
      if (!fd.ok()) return fd;
      sockaddr_vm sa{};
      sa.svm_family = AF_VSOCK;
      sa.svm_cid = a.cid;
      sa.svm_port = a.port;
      Status s =
          ConnectFd(fd->get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa), deadline, name);
      if (!s.ok()) return Error{s.error()};
      return fd;
    }
    case QgsAddress::Kind::kTcp: {
      auto res = Resolve(a, /*passive=*/false);
      if (!res.ok()) return Error{res.error()};
      std::string last_error = "connect " + name + ": no address";
      for (addrinfo* ai = res->get(); ai; ai = ai->ai_next) {
        auto fd = NewSocket(ai->ai_family, "connect " + name);
        if (!fd.ok()) {
          last_error = fd.error();
          continue;
        }
        Status s = ConnectFd(fd->get(), ai->ai_addr, ai->ai_addrlen, deadline, name);
        if (s.ok()) return fd;
        last_error = s.error();
      }
      return Error{last_error};
    }
  }
  return Error{"connect: unknown address kind"};
}

Result<UniqueFd> Listen(const QgsAddress& a, const ListenOptions& o, QgsAddress* bound) {
  switch (a.kind) {
    case QgsAddress::Kind::kUnix:
      return ListenUnix(a, o, bound);
    case QgsAddress::Kind::kTcp:
      return ListenTcp(a, o, bound);
    case QgsAddress::Kind::kVsock:
      return ListenVsock(a, o, bound);
  }
  return Error{"listen: unknown address kind"};
}

std::string DescribePeer(int fd, QgsAddress::Kind kind) {
  if (kind == QgsAddress::Kind::kUnix) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
      return "unix:pid=" + std::to_string(cred.pid) + ",uid=" + std::to_string(cred.uid);
    return "unix";
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown";
  return SockaddrToString(ss);
}

std::string PeerKey(int fd, QgsAddress::Kind kind) {
  if (kind == QgsAddress::Kind::kUnix) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "unknown";
    return "unix:pid=" + std::to_string(cred.pid);
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown";
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    return "tcp:" + std::string(host);
  }
  if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof(host));
    else
      inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    return "tcp:" + std::string(host);
  }
  if (ss.ss_family == AF_VSOCK)
    return "vsock:" + std::to_string(reinterpret_cast<const sockaddr_vm*>(&ss)->svm_cid);
  return "unknown";
}

}  // namespace tdxvirt::qgs
