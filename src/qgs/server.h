// The QGS server: Intel's Quote Generation Service protocol on UNIX, TCP and AF_VSOCK sockets, with
// the quotes made by a QuoteBackend.
//
// Per connection, as Intel's QGS: one request, one reply, close. A thread serves each connection
// (at most `max_connections`; more wait in the listen backlog). The whole request must arrive
// within `request_timeout` of the accept, so a client that stalls or trickles is dropped without
// holding a slot for long; the reply gets `write_timeout`. Each connection ends with one JSON log
// line (peer, type, outcome, bytes, duration), and never logs report or quote contents.
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
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "qgs/backend.h"
#include "qgs/messages.h"
#include "qgs/transport.h"

namespace tdxvirt::qgs {

struct ServerOptions {
  // From accept to the last request byte (Intel's QGS allows a connection 30 s in all).
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds write_timeout{30000};
  size_t max_connections = 64;
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

  // Listens on every address (all or none) and starts serving. Call once.
  Status Start(const std::vector<QgsAddress>& listen);
  // The addresses being served, with the ports chosen for port 0.
  const std::vector<QgsAddress>& addresses() const { return bound_; }

  // Stops accepting, cancels every connection's pending I/O, joins all threads, removes the UNIX
  // socket files it created. Idempotent; returns when everything has stopped.
  void Stop();

  size_t active_connections() const;
  uint64_t connections_served() const { return served_.load(); }

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
  struct RequestLog;

  void AcceptLoop();
  void Serve(UniqueFd fd, const Listener& listener);
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
  bool stopping_ = false;
  bool stopped_ = false;
  std::mutex stop_mu_;  // one Stop() at a time
  std::atomic<uint64_t> served_{0};
};

}  // namespace tdxvirt::qgs
