// One `tdxvirt` command from two executables (issue 17): tdxvirt runs one-shot commands itself and
// hands the daemons' commands, top-level help and unknown commands to tdxvirt-daemon beside it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>

#include "test_util.h"

namespace tdxvirt {
namespace {

using testing::RunTdxvirt;

TEST(CliDaemonSplit, DaemonCommandsRunThroughTdxvirt) {
  // `serve hook`, `serve node-agent` and `quickstart` are only in tdxvirt-daemon (gRPC): their help
  // comes through tdxvirt.
  auto serve = RunTdxvirt("serve --help");
  ASSERT_EQ(serve.exit_code, 0) << serve.err;
  for (const char* daemon : {"hook", "webhook", "node-agent", "kbs", "attestation", "qgs", "sim-pcs"})
    EXPECT_NE(serve.out.find("\n  " + std::string(daemon) + " "), std::string::npos) << daemon << "\n" << serve.out;
  auto qs = RunTdxvirt("quickstart --help");
  ASSERT_EQ(qs.exit_code, 0) << qs.err;
  EXPECT_NE(qs.out.find("quickstart [OPTIONS]"), std::string::npos) << qs.out;
  // `attest token` (HTTP client) is only in tdxvirt-daemon, `attest quote` in both: the group's help
  // lists both, and the daemon-only leaf runs (here up to its usage check).
  auto attest = RunTdxvirt("attest --help");
  ASSERT_EQ(attest.exit_code, 0) << attest.err;
  for (const char* leaf : {"quote", "token", "verify", "create-key-pair"})
    EXPECT_NE(attest.out.find("\n  " + std::string(leaf) + " "), std::string::npos) << leaf << "\n" << attest.out;
  auto token = RunTdxvirt("attest token --help");
  ASSERT_EQ(token.exit_code, 0) << token.err;
  EXPECT_NE(token.out.find("--pub-path"), std::string::npos) << token.out;
  auto top = RunTdxvirt("--help");
  ASSERT_EQ(top.exit_code, 0) << top.err;
  for (const char* group : {"quote", "attest", "node", "admission", "render", "hook", "quickstart", "serve"})
    EXPECT_NE(top.out.find("\n  " + std::string(group) + " "), std::string::npos) << group << "\n" << top.out;
  // A command neither has is refused as before, by the full command tree.
  auto unknown = RunTdxvirt("frobnicate");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(unknown.err, "A subcommand is required\nRun with --help for more information.\n");
}

TEST(CliDaemonSplit, OneShotCommandsRunInTdxvirtItself) {
  // Copied alone into a directory, tdxvirt still verifies quotes and says so when a command needs
  // the daemon it cannot find.
  testing::TempDir tmp;
  std::filesystem::copy_file(TDXVIRT_BIN, tmp.File("tdxvirt"));
  std::filesystem::permissions(tmp.File("tdxvirt"), std::filesystem::perms::owner_all);
  auto run = [&](const std::string& args) {
    std::string cmd = tmp.File("tdxvirt") + " " + args + " >" + tmp.File("out") + " 2>" + tmp.File("err");
    int status = std::system(cmd.c_str());
    return testing::CommandResult{WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                                  testing::ReadFileText(tmp.File("out")),
                                  testing::ReadFileText(tmp.File("err"))};
  };
  auto version = run("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out, "tdxvirt " TDXVIRT_TEST_VERSION "\n");
  auto verify = run("quote verify --compact --quote " + testing::TestdataPath("quotes/tdx-v4-uptodate/quote.bin") +
                    " --collateral " + testing::TestdataPath("quotes/tdx-v4-uptodate/collateral.json") +
                    " --at 2025-07-19T10:00:34Z");
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_NE(verify.out.find("\"verified\":true"), std::string::npos) << verify.out;
  auto serve = run("serve --help");
  EXPECT_EQ(serve.exit_code, 2);
  EXPECT_EQ(serve.err, "tdxvirt: error: " + tmp.File("tdxvirt-daemon") +
                           ": No such file or directory (this command runs in tdxvirt-daemon, installed "
                           "next to tdxvirt)\n");
}

}  // namespace
}  // namespace tdxvirt
