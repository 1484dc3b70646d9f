// Sockets for QGS: addresses (UNIX, TCP, AF_VSOCK), listening, connecting, and reads/writes that
// stop at a deadline or when a cancel descriptor becomes readable (how the server's Stop() reaches
// every connection).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"

namespace tdxvirt::qgs {

inline constexpr uint32_t kDefaultVsockPort = 4050;
inline constexpr char kDefaultUnixSocketPath[] = "/var/run/tdx-qgs/qgs.socket";

struct QgsAddress {
  enum class Kind { kUnix, kTcp, kVsock };
  Kind kind = Kind::kUnix;
  std::string path;   // kUnix
  std::string host;   // kTcp: name or address (IPv6 without brackets)
  uint32_t cid = 0;   // kVsock: 2 = the host, as seen from a guest; -1U = any (listening)
  uint32_t port = 0;  // kTcp, kVsock
  bool operator==(const QgsAddress&) const = default;
};

// Accepted forms:
//   unix:PATH, or a path starting with '/'
//   vsock:CID:PORT                           (QEMU's and Intel's MVP form, e.g. vsock:2:4050)
//   HOST:PORT, tcp:HOST:PORT, [IPV6]:PORT
//   QEMU SocketAddress JSON: {"type":"unix","path":...}, {"type":"vsock","cid":"2","port":"4050"},
//   {"type":"inet","host":...,"port":...} (numbers or strings)
Result<QgsAddress> ParseQgsAddress(std::string_view text);
// The first text form above ("unix:/run/qgs", "vsock:2:4050", "127.0.0.1:4050", "[::1]:4050").
std::string ToString(const QgsAddress& address);

// Owns a file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

using Clock = std::chrono::steady_clock;

enum class IoStatus { kOk, kEof, kTimeout, kCancelled, kTooLarge, kError };
struct IoResult {
  IoStatus status = IoStatus::kOk;
  size_t bytes = 0;  // transferred before the call ended
  int error = 0;     // errno, for kError
  bool ok() const { return status == IoStatus::kOk; }
  // "timed out after 12 bytes", "connection closed", ...
  std::string Describe() const;
};

// Each call works on a non-blocking descriptor and ends at `deadline`, or with kCancelled as soon
// as `cancel_fd` (if >= 0) is readable.
IoResult ReadExact(int fd, std::span<uint8_t> out, Clock::time_point deadline, int cancel_fd = -1);
IoResult WriteAll(int fd, ByteSpan data, Clock::time_point deadline, int cancel_fd = -1);
// Appends everything until the peer closes; kTooLarge past `max_size` bytes.
IoResult ReadUntilEof(int fd, Bytes& out, size_t max_size, Clock::time_point deadline,
                      int cancel_fd = -1);

// A connected, non-blocking, close-on-exec socket.
Result<UniqueFd> Connect(const QgsAddress& address, Clock::time_point deadline);

struct ListenOptions {
  int backlog = 64;
  mode_t unix_mode = 0660;  // applied to a UNIX socket file
};
// A listening, non-blocking socket. `bound` receives the address actually bound (the port chosen
// for port 0). A UNIX socket file left by a dead server is replaced; one a live server answers on
// is not. AF_VSOCK missing from the kernel is reported as such.
Result<UniqueFd> Listen(const QgsAddress& address, const ListenOptions& options, QgsAddress* bound);

// The peer of a connected socket, for logs: "127.0.0.1:5000", "vsock:3:1034", "unix:pid=12,uid=0".
std::string DescribePeer(int fd, QgsAddress::Kind kind);

// Who is on the other end, as the server's per-peer connection cap counts it: one key per TD, as
// far as the transport can tell.
//   - TCP: "tcp:" + the source IP, without the port (a client opens each connection from a new
//     port). An IPv4-mapped IPv6 address counts as the IPv4 one. All clients on one host (or
//     behind one NAT) are one peer.
//   - AF_VSOCK: "vsock:" + the CID: the hypervisor assigns one per guest, so one per TD.
//   - UNIX: "unix:pid=" + SO_PEERCRED's pid. Each TD is one QEMU process, and QEMU connects per
//     request from that process; the uid is no identity (every QEMU runs as the same user).
//     The kernel reports pid 0 for a process outside the server's PID namespace, so a QGS that
//     cannot see QEMU's processes counts all of them as one peer, "unix:pid=0": run it in the
//     host's PID namespace, as Intel's QGS (a host service) is.
// "unknown" when the transport cannot tell (getpeername/getsockopt failed).
std::string PeerKey(int fd, QgsAddress::Kind kind);

}  // namespace tdxvirt::qgs
