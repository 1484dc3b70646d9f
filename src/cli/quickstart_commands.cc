// `tdxvirt quickstart`: the whole flow on the simulator (src/quickstart).
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "quickstart/quickstart.h"

namespace tdxvirt::cli {

namespace {

// libvirt's RelaxNG schemas: $TDXVIRT_SHARED_DIR, then the shared folder this build was
// configured with; "" when neither has them (the check is then skipped, and says so).
std::string DefaultSchemaDir() {
  namespace fs = std::filesystem;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("TDXVIRT_SHARED_DIR"); env && *env) candidates.push_back(env);
  candidates.push_back(TDXVIRT_DEFAULT_SHARED_DIR);
  for (const auto& shared : candidates) {
    fs::path dir = fs::path(shared) / "testdata" / "libvirt-schemas";
    if (fs::exists(dir / "domain.rng")) return dir.string();
  }
  return "";
}

}  // namespace

void AddQuickstartCommands(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<quickstart::Options>();
  o->manifest = std::string(TDXVIRT_SOURCE_DIR) + "/examples/vm-tdx.yaml";
  auto* cmd = app.add_subcommand(
      "quickstart",
      "The whole flow on the simulator: admit a TDX VM, place it on a node with a free key, render "
      "its TD domain, boot and attest it, verify the token, refuse a debug/misconfigured/tampered TD");
  cmd->add_option("--dir", o->dir, "directory for the artefacts (default: a new /tmp/tdxvirt-quickstart.*)");
  cmd->add_option("--manifest", o->manifest, "the TDX VirtualMachine manifest")->capture_default_str();
  cmd->add_option("--schema-dir", o->schema_dir,
                  "libvirt RelaxNG schemas for the domain check (default: the shared test data)");
  cmd->add_option("--keys", o->keys, "TDX keys on the simulated node")->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_option("--kubevirt-version", o->kubevirt_version,
                  "KubeVirt release the simulated cluster runs: the report shows what tdxvirt adds "
                  "and what it leaves to KubeVirt there")
      ->check(CLI::IsMember({"1.6", "1.7", "1.8", "1.9"}))
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "print the report as JSON");
  cmd->add_flag("--verbose", o->verbose, "component logs to stderr (default: files under --dir/logs)");
  cmd->callback([&exit_code, o] {
    if (o->schema_dir.empty()) o->schema_dir = DefaultSchemaDir();
    exit_code = quickstart::Run(*o, std::cout, std::cerr);
  });
}

}  // namespace tdxvirt::cli
