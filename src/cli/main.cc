// tdxvirt: one executable, one subcommand per job. See README.md for the map.
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string_view>

#include "cli/commands.h"
#include "common/time.h"

namespace tdxvirt::cli {

Result<int64_t> ParseTimeOption(const std::string& flag, const std::string& text) {
  if (!text.empty() && text.size() < 19 && text.find_first_not_of("0123456789") == std::string::npos)
    return int64_t(std::stoll(text));
  auto t = ParseRfc3339(text);
  if (!t.ok()) return Error{flag + " " + text + ": " + t.error() + " (or give Unix seconds)"};
  return t;
}

CLI::App* ServeCommand(CLI::App& app) {
  auto found = app.get_subcommands([](CLI::App* a) { return a->get_name() == "serve"; });
  if (!found.empty()) return found.front();
  auto* serve = app.add_subcommand("serve", "Run a long-lived service (logs JSON lines to stderr)");
  serve->require_subcommand(1);
  return serve;
}

CLI::App* AttestCommand(CLI::App& app) {
  auto found = app.get_subcommands([](CLI::App* a) { return a->get_name() == "attest"; });
  if (!found.empty()) return found.front();
  auto* attest = app.add_subcommand("attest", "Attest from inside a trust domain (quotes, ...)");
  attest->require_subcommand(1);
  return attest;
}

int InputError(const std::string& message) {
  std::cerr << "tdxvirt: error: " << message << "\n";
  return kExitUsage;
}

Result<std::pair<std::string, int>> ParseListen(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return Error{"--listen " + text + ": expected HOST:PORT"};
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = -1;
  try {
    size_t used = 0;
    port = std::stoi(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
  }
  if (host.empty() || port < 0 || port > 65535)
    return Error{"--listen " + text + ": expected HOST:PORT with a port in 0..65535"};
  return std::pair{host, port};
}

sigset_t BlockStopSignals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  return s;
}

#ifdef TDXVIRT_LIGHT
// This tdxvirt leaves out the daemons' stacks (gRPC, protobuf, abseil) so one-shot commands start
// fast; tdxvirt-daemon, next to it, has every command. Runs it with the same argv in this process.
[[noreturn]] void ExecDaemon(char** argv) {
  std::string self(4096, '\0');
  ssize_t n = readlink("/proc/self/exe", self.data(), self.size());
  std::string path = "tdxvirt-daemon";
  if (n > 0 && size_t(n) < self.size()) {
    self.resize(size_t(n));
    path = self.substr(0, self.rfind('/') + 1) + path;
  }
  execv(path.c_str(), argv);
  std::cerr << "tdxvirt: error: " << path << ": " << std::strerror(errno)
            << " (this command runs in tdxvirt-daemon, installed next to tdxvirt)\n";
  std::exit(kExitUsage);
}
#endif

}  // namespace tdxvirt::cli

int main(int argc, char** argv) {
  using namespace tdxvirt::cli;
  if (argc == 2 && std::string_view(argv[1]) == "--version") {  // before the command tree is built
    std::cout << "tdxvirt " TDXVIRT_VERSION "\n";
    return kExitOk;
  }
  CLI::App app{"tdxvirt: Intel TDX confidential VMs for KubeVirt, with remote attestation"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tdxvirt ") + TDXVIRT_VERSION);
  int exit_code = kExitOk;
  AddQuoteCommands(app, exit_code);
#ifndef TDXVIRT_LIGHT  // commands of tdxvirt-daemon only (src/CMakeLists.txt)
  AddCollateralCommands(app, exit_code);
#endif
  AddQgsCommands(app, exit_code);
  AddSimCommands(app, exit_code);
  AddAttestCommands(app, exit_code);
#ifndef TDXVIRT_LIGHT
  AddServiceCommands(app, exit_code);
  AddKubevirtCommands(app, exit_code);
  AddNodeCommands(app, exit_code);
  AddQuickstartCommands(app, exit_code);
#endif
  AddTokenPkiCommands(app, exit_code);
  AddMeasureCommands(app, exit_code);
  AddEventlogCommands(app, exit_code);
#ifndef TDXVIRT_LIGHT
  AddKbsCommands(app, exit_code);
  AddKbsClientCommands(app, exit_code);
#endif
  try {
#ifdef TDXVIRT_LIGHT
    // Leaf commands registered here run here. A group's help (`attest --help`, `--help`), a command
    // only the daemon has (`serve hook`, `attest token`) and unknown words go to tdxvirt-daemon,
    // whose full command tree answers them.
    auto all = [](CLI::App*) { return true; };
    CLI::App* at = &app;
    for (int i = 1; i < argc && !at->get_subcommands(all).empty(); ++i) {
      std::string word = argv[i];
      auto next = at->get_subcommands([&word](CLI::App* a) { return a->check_name(word); });
      if (next.empty()) ExecDaemon(argv);
      at = next.front();
    }
    if (!at->get_subcommands(all).empty()) ExecDaemon(argv);
#endif
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  return exit_code;
}
