// The QGS server: Intel's Quote Generation Service protocol on UNIX, TCP and AF_VSOCK sockets, with
// the quotes made by a QuoteBackend.
//
// Per connection, as Intel's QGS: one request, one reply, close. Each connection ends with one JSON
// log line (peer, type, outcome, bytes, duration), and never logs report or quote contents.
//
// Against a client that connects and then sends nothing, or a trickle (one TD denying quotes to
// the others):
//   - A thread serves each connection, and a half-sent request pins its thread. So the whole
//     request must arrive within `request_timeout` of the accept (default 5 s; QEMU sends it at
//     once), else the connection is closed and logged "timeout"; the reply has its own
//     `write_timeout`.
//   - At most `max_connections_per_peer` connections per peer (PeerKey in transport.h: TCP source
//     IP, vsock CID, UNIX peer pid = one QEMU = one TD). A connection over that is accepted, closed
//     at once without a thread, counted (connections_refused) and logged "refused" (at most one
//     line per peer per `refusal_log_interval`, with the number left unlogged). It must be below
//     `max_connections`, so one peer always leaves the others at least the difference.
//   - At most `max_connections` in all (threads, descriptors); beyond that new connections wait in
//     the kernel's listen backlog until a slot frees, which a deadline guarantees.
//
// What arrives first decides the mode. The 4-byte length prefix and the 16 bytes after it are read:
//   - a prefix under the 16-byte header: closed on;
//   - a prefix up to `max_request_size`: a frame; the message is read and goes to HandleMessage
//     (handler.h): a reply, an error response with the decoder's code, or a close;
//   - a longer prefix whose header agrees (version 1, a known type, header.size equal to the
//     prefix): an oversized frame, answered INVALID_SIZE without reading further if it is a
//     request, else closed on;
//   - anything else is no frame: raw mode, as in Intel's QGS. Bytes up to 1024 are read and, if
//     they are a TDREPORT (CheckRawReport) the backend quotes, the bare quote is written back;
//     otherwise the connection is closed. A TDREPORT always lands here: it starts 0x81 0x00 (a
//     "length" over 2 GiB) and its bytes 4..7 are zero (never version 1).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "qgs/backend.h"
#include "qgs/messages.h"
#include "qgs/transport.h"

namespace tdxvirt::qgs {

struct ServerOptions {
  // From accept to the last request byte. Intel's QGS allows a connection 30 s; QEMU and the guest
  // library send the request as soon as they connect, so a few seconds is ample, and it bounds how
  // long a stalled client holds a slot.
  std::chrono::milliseconds request_timeout{5000};
  // For writing the reply (a client that does not read).
  std::chrono::milliseconds write_timeout{5000};
  size_t max_connections = 64;
  // Connections one peer (PeerKey) may hold at once; must be below max_connections (Start checks).
  size_t max_connections_per_peer = 8;
  // A peer's refusals are logged at most once per interval (the line counts the ones skipped),
  // so a client looping on connect cannot flood the log.
  std::chrono::milliseconds refusal_log_interval{1000};
  size_t max_request_size = kDefaultMaxRequestSize;
  // Calls the backend one at a time; set false only for a backend that is safe to call
  // concurrently.
  bool serialize_backend = true;
  mode_t unix_mode = 0660;  // of UNIX socket files: QEMU's user must be able to write them
  int backlog = 64;
  // Receives each log line (one JSON object, no newline). Default: stderr.
  std::function<void(const std::string&)> log;
};

class QgsServer {
 public:
  // `backend` must outlive the server.
  QgsServer(QuoteBackend& backend, ServerOptions options = {});
  ~QgsServer();  // Stop()
  QgsServer(const QgsServer&) = delete;
  QgsServer& operator=(const QgsServer&) = delete;

  // Listens on every address (all or none) and starts serving. Call once, and not after Stop().
  // Fails on limits that would let one peer take every slot.
  Status Start(const std::vector<QgsAddress>& listen);
  // The addresses being served, with the ports chosen for port 0.
  const std::vector<QgsAddress>& addresses() const { return bound_; }

  // Stops accepting, cancels every connection's pending I/O, joins all threads, removes the UNIX
  // socket files it created. Idempotent; returns when everything has stopped.
  void Stop();

  size_t active_connections() const;
  uint64_t connections_served() const { return served_.load(); }
  // Connections closed at once because their peer was at max_connections_per_peer.
  uint64_t connections_refused() const { return refused_.load(); }

 private:
  struct Listener {
    QgsAddress address;
    UniqueFd fd;
    dev_t dev = 0;  // of a UNIX socket file, so Stop() removes only its own
    ino_t ino = 0;
  };
  struct Connection {
    std::thread thread;
    bool done = false;  // guarded by mu_
  };
  struct Peer {
    size_t active = 0;
    // Refusals are logged at most once per refusal_log_interval; the ones between are counted.
    std::optional<Clock::time_point> last_refusal_log;
    uint64_t unlogged_refusals = 0;
  };
  struct RequestLog;

  void AcceptLoop();
  // Takes a slot for `peer_key`, or refuses (closes and logs) the connection; true if taken.
  bool Admit(UniqueFd& fd, const Listener& listener, const std::string& peer_key);
  void Release(const std::string& peer_key);
  void Serve(UniqueFd fd, const Listener& listener, Clock::time_point accepted);
  void ServeMessage(int fd, Bytes head, RequestLog& log);  // `head`: prefix + 16 bytes
  void ServeRaw(int fd, Bytes head, RequestLog& log);
  void Reply(int fd, ByteSpan bytes, RequestLog& log);
  void Emit(const RequestLog& log);
  void LogEvent(const std::string& event, const std::string& detail);
  void JoinFinished(bool all);

  QuoteBackend* backend_;
  std::unique_ptr<SerializedBackend> serialized_;
  ServerOptions options_;
  std::vector<Listener> listeners_;
  std::vector<QgsAddress> bound_;
  UniqueFd stop_fd_;  // eventfd: readable once Stop() begins; every poll watches it
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // a connection finished, or stopping
  std::list<std::unique_ptr<Connection>> connections_;
  size_t active_ = 0;
  std::unordered_map<std::string, Peer> peers_;  // peers with a connection open
  bool stopping_ = false;
  bool warned_unidentified_ = false;  // "peer_unidentified" is logged once
  bool stopped_ = false;
  std::mutex stop_mu_;  // one Stop() at a time
  std::atomic<uint64_t> served_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace tdxvirt::qgs
