// tdxvirt: one executable, one subcommand per job. See README.md for the map.
#include <iostream>

#include "cli/commands.h"

namespace tdxvirt::cli {

int InputError(const std::string& message) {
  std::cerr << "tdxvirt: error: " << message << "\n";
  return kExitUsage;
}

}  // namespace tdxvirt::cli

int main(int argc, char** argv) {
  using namespace tdxvirt::cli;
  CLI::App app{"tdxvirt: Intel TDX confidential VMs for KubeVirt, with remote attestation"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tdxvirt ") + TDXVIRT_VERSION);
  int exit_code = kExitOk;
  AddQuoteCommands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  return exit_code;
}
