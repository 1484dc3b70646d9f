// The simulator from the command line: init -> report -> quote -> verify, as a person would.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace tdxvirt {
namespace {

using nlohmann::json;
using testing::RunTdxvirt;

constexpr char kAt[] = "2026-01-01T01:00:00Z";

struct SimFlow {
  testing::TempDir tmp;
  std::string dir = tmp.File("sim");

  int Init(const std::string& extra = "") {
    return RunTdxvirt("sim init --dir " + dir + " --at 2026-01-01T00:00:00Z " + extra).exit_code;
  }
  testing::CommandResult Quote(const std::string& td_json, const std::string& version = "4") {
    testing::WriteFile(tmp.File("td.json"), td_json);
    auto r = RunTdxvirt("sim report --dir " + dir + " --td " + tmp.File("td.json") +
                        " --report-data 0011aabb --out " + tmp.File("report.bin"));
    if (r.exit_code != 0) return r;
    return RunTdxvirt("sim quote --dir " + dir + " --report " + tmp.File("report.bin") +
                      " --quote-version " + version + " --out " + tmp.File("quote.bin"));
  }
  testing::CommandResult Verify(bool sim_root) {
    return RunTdxvirt("quote verify --compact --quote " + tmp.File("quote.bin") + " --collateral " + dir +
                      "/collateral.json --at " + kAt + (sim_root ? " --root " + dir + "/root_ca.pem" : ""));
  }
};

// What an init killed with -9 can leave (its staging directory beside --dir, possibly holding
// keys) does not stop the next init, which removes it; a directory with a key of one platform and
// the certificate of another (left by an older, non-atomic init) is refused by `sim report` with
// the fix, and `sim init` over it succeeds.
TEST(SimCli, InitAfterAnInterruptedInit) {
  SimFlow f;
  ASSERT_EQ(f.Init(), 0);
  std::string other = f.tmp.File("other");
  ASSERT_EQ(RunTdxvirt("sim init --dir " + other).exit_code, 0);
  ASSERT_EQ(mkdir(f.tmp.File(".sim.init-Xy12Zq").c_str(), 0700), 0);
  testing::WriteFile(f.tmp.File(".sim.init-Xy12Zq/pck.key"), "-----BEGIN PRIVATE KEY-----\n");
  std::ifstream in(other + "/pck.key");
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  testing::WriteFile(f.dir + "/pck.key", key);
  testing::WriteFile(f.tmp.File("td.json"), "{}");
  auto r = RunTdxvirt("sim report --dir " + f.dir + " --td " + f.tmp.File("td.json") + " --out " +
                      f.tmp.File("report.bin"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: " + f.dir + "/pck.key does not match " + f.dir +
                       "/pck.pem: the directory is from an interrupted `sim init`; run `tdxvirt sim "
                       "init --dir " + f.dir + "` again\n");
  ASSERT_EQ(f.Init(), 0);
  EXPECT_FALSE(std::filesystem::exists(f.tmp.File(".sim.init-Xy12Zq")));
  ASSERT_EQ(f.Quote("{}").exit_code, 0);
  EXPECT_EQ(f.Verify(true).exit_code, 0);
}

TEST(CliSim, QuoteVerifiesUnderSimRootOnly) {
  SimFlow f;
  ASSERT_EQ(f.Init(), 0);
  auto q = f.Quote(R"({"mr_config_id":")" + std::string(96, 'c') + "\"}");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto ok = f.Verify(true);
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_EQ(json::parse(ok.out)["tcb_status"], "UpToDate");
  auto intel = f.Verify(false);
  EXPECT_EQ(intel.exit_code, 1);
  auto inspect = RunTdxvirt("quote inspect " + f.tmp.File("quote.bin"));
  ASSERT_EQ(inspect.exit_code, 0);
  json j = json::parse(inspect.out);
  EXPECT_EQ(j["mr_config_id"], std::string(96, 'c'));
  EXPECT_EQ(j["report_data"], "0011aabb" + std::string(120, '0'));
  EXPECT_EQ(j["pck_chain"][0]["subject"].get<std::string>().rfind("CN=tdxvirt Simulated SGX PCK Certificate", 0),
            0u);
}

TEST(CliSim, KeysAreWrittenPrivate) {
  SimFlow f;
  ASSERT_EQ(f.Init(), 0);
  struct stat st {};
  ASSERT_EQ(stat((f.dir + "/pck.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(CliSim, RevokedScenarioIsRefused) {
  SimFlow f;
  ASSERT_EQ(f.Init("--scenario revoked"), 0);
  ASSERT_EQ(f.Quote("{}").exit_code, 0);
  auto r = f.Verify(true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(json::parse(r.out)["tcb_status"], "Revoked");
}

TEST(CliSim, Version5AndBadInput) {
  SimFlow f;
  ASSERT_EQ(f.Init(), 0);
  ASSERT_EQ(f.Quote(R"({"td15":true})", "5").exit_code, 0);
  EXPECT_EQ(f.Verify(true).exit_code, 0);
  EXPECT_EQ(f.Init("--scenario sideways"), 2);
  auto bad_td = f.Quote(R"({"mr_td":"zz"})");
  EXPECT_EQ(bad_td.exit_code, 2);
  EXPECT_EQ(bad_td.err, "tdxvirt: error: " + f.tmp.File("td.json") +
                            ": TD config: mr_td: invalid hex character at position 0; expected 0-9, a-f or A-F\n");
  auto no_dir = RunTdxvirt("sim report --dir /nonexistent --out /tmp/x");
  EXPECT_EQ(no_dir.exit_code, 2);
  EXPECT_EQ(no_dir.err, "tdxvirt: error: not a simulator directory (run `tdxvirt sim init --dir /nonexistent`): "
                            "cannot open /nonexistent/platform.json: No such file or directory\n");
}

// A person's PCS flow on the simulator: serve its collateral as PCS, fetch it with `collateral
// fetch` as from Intel, verify a quote with what was fetched; SIGTERM ends the server cleanly.
TEST(CliSim, ServeSimPcsFeedsCollateralFetch) {
  testing::TempDir tmp;
  std::string dir = tmp.File("sim");
  ASSERT_EQ(RunTdxvirt("sim init --dir " + dir).exit_code, 0);
  ASSERT_EQ(RunTdxvirt("sim report --dir " + dir + " --out " + tmp.File("report.bin")).exit_code, 0);
  ASSERT_EQ(RunTdxvirt("sim quote --dir " + dir + " --report " + tmp.File("report.bin") + " --out " +
                       tmp.File("quote.bin")).exit_code, 0);
  pid_t pid = testing::SpawnTdxvirt({"serve", "sim-pcs", "--sim", dir, "--listen", "127.0.0.1:0",
                                     "--port-file", tmp.File("port")}, tmp.File("log"));
  ASSERT_GT(pid, 0);
  int port = 0;
  for (int i = 0; i < 600 && port == 0; ++i) {  // generous: a loaded 2-core machine
    std::ifstream in(tmp.File("port"));
    if (!(in >> port)) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (port == 0) kill(pid, SIGKILL);
  ASSERT_GT(port, 0);
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto fetch = RunTdxvirt("collateral fetch --quote " + tmp.File("quote.bin") + " --pcs " + url + " --out " +
                          tmp.File("fetched/"));
  EXPECT_EQ(fetch.exit_code, 0) << fetch.err;
  auto verify = RunTdxvirt("quote verify --compact --quote " + tmp.File("quote.bin") + " --collateral " +
                           tmp.File("fetched") + " --root " + dir + "/root_ca.pem");
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(json::parse(verify.out)["tcb_status"], "UpToDate");
  auto unknown = RunTdxvirt("collateral fetch --fmspc 112233445566 --ca platform --pcs " + url + " --out " +
                            tmp.File("none.json"));
  EXPECT_EQ(unknown.exit_code, 2);
  // Whole, but for the server's request counter.
  EXPECT_TRUE(std::regex_match(
      unknown.err,
      std::regex("tdxvirt: error: fetching collateral for FMSPC 112233445566 \\(platform CA\\): GET " + url +
                 "/tdx/certification/v4/tcb\\?fmspc=112233445566: HTTP 404 \\(no TCB info for this FMSPC\\); "
                 "Request-ID [0-9]+\n")))
      << unknown.err;
  EXPECT_EQ(testing::TerminateAndWait(pid), 0);
  std::string text = tdxvirt::testing::ReadFileText(tmp.File("log"));
  EXPECT_NE(text.find("\"component\":\"sim-pcs\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"event\":\"stopped\""), std::string::npos) << text;
}

}  // namespace
}  // namespace tdxvirt
