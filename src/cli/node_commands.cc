// `tdxvirt` commands of src/node.
#include "cli/commands.h"

namespace tdxvirt::cli {

void AddNodeCommands(CLI::App& app, int& exit_code) {
  (void)app;
  (void)exit_code;
}

}  // namespace tdxvirt::cli
