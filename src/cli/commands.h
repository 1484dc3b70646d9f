// Subcommand registration for the `tdxvirt` executable. Each mission area adds its own commands;
// a command's callback stores its exit code in `exit_code`.
#pragma once

#include <CLI/CLI.hpp>
#include <signal.h>

#include <string>
#include <utility>

#include "common/result.h"

namespace tdxvirt::cli {

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitNegative = 1;  // evidence rejected, validation failed
inline constexpr int kExitUsage = 2;     // bad usage or unreadable/malformed input

// A time given as RFC 3339 ("2025-07-19T10:00:34Z") or Unix seconds; `flag` names it in errors.
Result<int64_t> ParseTimeOption(const std::string& flag, const std::string& text);

// Prints "tdxvirt: error: <message>" to stderr and returns kExitUsage.
int InputError(const std::string& message);

// --listen HOST:PORT ("0.0.0.0:8443", "[::1]:0"; port 0..65535, 0 = any free port).
Result<std::pair<std::string, int>> ParseListen(const std::string& text);

// Blocks SIGINT and SIGTERM in the calling thread and returns the set for sigwait. Daemons call it
// before starting any thread, so every thread inherits the mask and only their sigwait sees them.
sigset_t BlockStopSignals();

void AddQuoteCommands(CLI::App& app, int& exit_code);
void AddCollateralCommands(CLI::App& app, int& exit_code);
void AddQgsCommands(CLI::App& app, int& exit_code);
void AddSimCommands(CLI::App& app, int& exit_code);
void AddAttestCommands(CLI::App& app, int& exit_code);
void AddServiceCommands(CLI::App& app, int& exit_code);   // serve attestation, attest token/...
void AddKubevirtCommands(CLI::App& app, int& exit_code);  // admission, render, hook, serve webhook
void AddNodeCommands(CLI::App& app, int& exit_code);      // node detect/label, serve node-agent
void AddQuickstartCommands(CLI::App& app, int& exit_code);  // quickstart
void AddTokenPkiCommands(CLI::App& app, int& exit_code);    // token-pki init|rotate|revoke
void AddMeasureCommands(CLI::App& app, int& exit_code);     // measure (reference values)
void AddEventlogCommands(CLI::App& app, int& exit_code);    // eventlog inspect|replay
void AddKbsCommands(CLI::App& app, int& exit_code);         // serve kbs (key broker)
void AddKbsClientCommands(CLI::App& app, int& exit_code);   // attest secret (key broker client)

// The `serve` group of long-running services (`serve qgs`, ...): created by the first caller,
// shared by the rest.
CLI::App* ServeCommand(CLI::App& app);
// The `attest` group of in-TD attestation steps (`attest quote`, ...): created by the first caller,
// shared by the rest.
CLI::App* AttestCommand(CLI::App& app);

}  // namespace tdxvirt::cli
