// `tdxvirt` commands of src/service.
#include "cli/commands.h"

namespace tdxvirt::cli {

void AddServiceCommands(CLI::App& app, int& exit_code) {
  (void)app;
  (void)exit_code;
}

}  // namespace tdxvirt::cli
