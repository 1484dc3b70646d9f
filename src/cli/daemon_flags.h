// The flags every HTTP daemon on the hardened layer (http/server.h) shares, added and applied in
// one place so `serve attestation` and `serve kbs` cannot drift apart in their limits.
#pragma once

#include <CLI/CLI.hpp>
#include <signal.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "http/server.h"

namespace tdxvirt::cli {

struct HttpDaemonFlags {
  int threads = 4;
  size_t max_connections = 1024, max_connections_per_source = 128;
  double header_timeout_s = 10;
  std::string port_file;
};
// --threads, --max-connections, --max-connections-per-source, --header-timeout, --port-file.
void AddHttpDaemonFlags(CLI::App* command, HttpDaemonFlags& flags);
// Checks the ranges and sets workers, connection caps and the header deadline.
Status ApplyHttpDaemonFlags(const HttpDaemonFlags& flags, http::Limits& limits);

// After Start(): writes --port-file (if given), waits for SIGINT/SIGTERM in `stop_signals` (from
// BlockStopSignals), and calls `stop` either way. Returns the exit code.
int ServeUntilSignal(sigset_t stop_signals, int port, const std::string& port_file,
                     const std::function<void()>& stop);

// --api-key-file: one key per line; blank lines and # comments skipped, white space trimmed.
// Errors start with "--api-key-file: ".
Result<std::vector<std::string>> ReadApiKeys(const std::string& path);

}  // namespace tdxvirt::cli
