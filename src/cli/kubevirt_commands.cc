// `tdxvirt` commands of src/kubevirt.
#include "cli/commands.h"

namespace tdxvirt::cli {

void AddKubevirtCommands(CLI::App& app, int& exit_code) {
  (void)app;
  (void)exit_code;
}

}  // namespace tdxvirt::cli
