// The QGS wire protocol as the reference text states it, for tests: hand-built messages and plain
// blocking POSIX sockets, independent of qgs/messages.h, qgs/transport.h and QgsClient.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/bytes.h"

namespace tdxvirt::qgs::wire {

inline void Le16(Bytes& b, uint16_t v) {
  b.push_back(uint8_t(v));
  b.push_back(uint8_t(v >> 8));
}
inline void Le32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
}
inline uint32_t GetLe32(const Bytes& b, size_t at) {
  return uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 | uint32_t(b[at + 2]) << 16 |
         uint32_t(b[at + 3]) << 24;
}
inline uint16_t GetLe16(const Bytes& b, size_t at) { return uint16_t(b[at] | b[at + 1] << 8); }
inline uint32_t GetBe32(const Bytes& b, size_t at) {
  return uint32_t(b[at]) << 24 | uint32_t(b[at + 1]) << 16 | uint32_t(b[at + 2]) << 8 |
         uint32_t(b[at + 3]);
}

// [u32 big-endian length][message]
inline Bytes Framed(const Bytes& message) {
  uint32_t n = uint32_t(message.size());
  Bytes out{uint8_t(n >> 24), uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)};
  out.insert(out.end(), message.begin(), message.end());
  return out;
}

// qgs_msg_header_t: u16 major, u16 minor, u32 type, u32 size, u32 error_code.
inline Bytes Header(uint32_t type, uint32_t size, uint16_t major = 1, uint16_t minor = 1,
                    uint32_t error_code = 0) {
  Bytes b;
  Le16(b, major);
  Le16(b, minor);
  Le32(b, type);
  Le32(b, size);
  Le32(b, error_code);
  return b;
}

// qgs_msg_get_quote_req_t, sized honestly unless told otherwise.
inline Bytes GetQuoteReq(const Bytes& report, const Bytes& id_list = {}) {
  Bytes b = Header(0, uint32_t(24 + report.size() + id_list.size()));
  Le32(b, uint32_t(report.size()));
  Le32(b, uint32_t(id_list.size()));
  b.insert(b.end(), report.begin(), report.end());
  b.insert(b.end(), id_list.begin(), id_list.end());
  return b;
}

inline void SetTimeouts(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// A blocking client socket; every recv gives up after 5 s so a broken server fails a test
// instead of hanging it.
class Conn {
 public:
  static Conn Unix(const std::string& path) {
    Conn c(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
    c.connected_ = connect(c.fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
    return c;
  }
  // To 127.0.0.1:port, from `from` (another loopback address, e.g. "127.0.0.2", is another peer).
  static Conn Tcp(uint16_t port, const char* from = nullptr) {
    Conn c(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (from) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      inet_pton(AF_INET, from, &src.sin_addr);
      if (bind(c.fd_, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) return c;
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c.connected_ = connect(c.fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
    return c;
  }
  Conn(Conn&& o) noexcept : fd_(o.fd_), connected_(o.connected_) { o.fd_ = -1; }
  Conn(const Conn&) = delete;
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool Send(const Bytes& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += size_t(n);
    }
    return true;
  }
  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }

  // Everything until the server closes. `closed` is false when the 5 s receive timeout hit first.
  Bytes ReadToEof(bool* closed = nullptr) {
    Bytes out;
    uint8_t buf[8192];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        out.insert(out.end(), buf, buf + n);
        continue;
      }
      if (closed) *closed = n == 0 || errno == ECONNRESET;
      return out;
    }
  }

 private:
  explicit Conn(int fd) : fd_(fd) { SetTimeouts(fd_, 5000); }
  int fd_;
  bool connected_ = false;
};

}  // namespace tdxvirt::qgs::wire
