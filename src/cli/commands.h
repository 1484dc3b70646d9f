// Subcommand registration for the `tdxvirt` executable. Each mission area adds its own commands;
// a command's callback stores its exit code in `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace tdxvirt::cli {

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitNegative = 1;  // evidence rejected, validation failed
inline constexpr int kExitUsage = 2;     // bad usage or unreadable/malformed input

// Prints "tdxvirt: error: <message>" to stderr and returns kExitUsage.
int InputError(const std::string& message);

void AddQuoteCommands(CLI::App& app, int& exit_code);

}  // namespace tdxvirt::cli
