#include "cli/daemon_flags.h"

#include "cli/commands.h"
#include "common/file.h"

#include <sstream>

namespace tdxvirt::cli {

void AddHttpDaemonFlags(CLI::App* s, HttpDaemonFlags& f) {
  s->add_option("--threads", f.threads, "handler threads (connections never hold one)")->capture_default_str();
  s->add_option("--max-connections", f.max_connections, "open connections at once; 503 beyond")
      ->capture_default_str();
  s->add_option("--max-connections-per-source", f.max_connections_per_source,
                "open connections per client address; 503 beyond")
      ->capture_default_str();
  s->add_option("--header-timeout", f.header_timeout_s,
                "seconds for TLS handshake + request header; also the keep-alive idle time")
      ->capture_default_str();
  s->add_option("--port-file", f.port_file, "write the bound port here once listening");
}

Status ApplyHttpDaemonFlags(const HttpDaemonFlags& f, http::Limits& limits) {
  if (f.threads < 1 || f.threads > 256) return Error{"--threads must be 1..256"};
  if (f.max_connections < 1 || f.max_connections_per_source < 1 ||
      f.max_connections_per_source > f.max_connections)
    return Error{"--max-connections-per-source must be 1..--max-connections"};
  if (!(f.header_timeout_s >= 0.1 && f.header_timeout_s <= 600))
    return Error{"--header-timeout must be 0.1..600 seconds"};
  limits.workers = f.threads;
  limits.max_connections = f.max_connections;
  limits.max_connections_per_source = f.max_connections_per_source;
  limits.header_timeout = std::chrono::milliseconds(int64_t(f.header_timeout_s * 1000));
  return OkStatus();
}

int ServeUntilSignal(sigset_t stop_signals, int port, const std::string& port_file,
                     const std::function<void()>& stop) {
  if (!port_file.empty()) {
    std::string text = std::to_string(port) + "\n";
    if (Status s = WriteFileAtomic(port_file, AsBytes(text)); !s.ok()) {
      stop();
      return InputError("--port-file: " + s.error());
    }
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  stop();
  return kExitOk;
}

Result<std::vector<std::string>> ReadApiKeys(const std::string& path) {
  auto text = ReadFile(path, 1 << 20);
  if (!text.ok()) return Error{"--api-key-file: " + text.error()};
  std::vector<std::string> keys;
  std::istringstream in{std::string(AsString(*text))};
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    size_t b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] == '#') continue;
    keys.push_back(line.substr(b));
  }
  if (keys.empty()) return Error{"--api-key-file: " + path + " holds no key (one per line)"};
  return keys;
}

}  // namespace tdxvirt::cli
