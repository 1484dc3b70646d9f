// `tdxvirt qgs ...` against an in-process server, and `tdxvirt serve qgs` usage errors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/file.h"
#include "common/hex.h"
#include "fake_backend.h"
#include "qgs/server.h"
#include "verify/collateral.h"

namespace tdxvirt::qgs {
namespace {

using namespace std::chrono_literals;
using tdxvirt::testing::RunTdxvirt;

class QgsCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_.collateral = testing::SampleCollateral();
    ServerOptions o;
    o.request_timeout = 5000ms;
    o.log = [](const std::string&) {};
    server_ = std::make_unique<QgsServer>(backend_, o);
    Status s = server_->Start({{.kind = QgsAddress::Kind::kUnix, .path = tmp_.File("qgs.sock")}});
    ASSERT_TRUE(s.ok()) << s.error();
    Bytes report = testing::TestReport(11);
    tdxvirt::testing::WriteFile(tmp_.File("report.bin"), std::string(AsString(report)));
  }
  std::string Address() const { return "unix:" + tmp_.File("qgs.sock"); }

  tdxvirt::testing::TempDir tmp_;
  testing::FakeBackend backend_;
  std::unique_ptr<QgsServer> server_;
};

TEST_F(QgsCliTest, GetQuoteFramedAndRaw) {
  Bytes expected = testing::FakeQuoteFor(testing::TestReport(11));
  for (std::string mode : {"", " --raw"}) {
    auto r = RunTdxvirt("qgs get-quote --address " + Address() + " --report " +
                        tmp_.File("report.bin") + " --out " + tmp_.File("quote.bin") + mode);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto quote = ReadFile(tmp_.File("quote.bin"));
    ASSERT_TRUE(quote.ok());
    EXPECT_EQ(*quote, expected);
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["quote_bytes"], expected.size());
    EXPECT_EQ(j["mode"], mode.empty() ? "framed" : "raw");
  }
}

TEST_F(QgsCliTest, GetCollateralAndPlatformInfo) {
  auto r = RunTdxvirt("qgs get-collateral --address " + Address() + " --fmspc " +
                      ToHex(testing::kSampleFmspc) + " --ca platform --out " + tmp_.File("c.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto c = verify::LoadCollateral(tmp_.File("c.json"));
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->tcb_info, backend_.collateral.tcb_info);
  r = RunTdxvirt("qgs platform-info --address " + Address());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["pce_isvsvn"], 13);
  EXPECT_EQ(j["platform_id"], ToHex(Bytes(16, 0xab)));
}

TEST_F(QgsCliTest, Failures) {
  auto r = RunTdxvirt("qgs get-quote --address unix:" + tmp_.File("nothing.sock") + " --report " +
                      tmp_.File("report.bin") + " --out " + tmp_.File("q.bin"));
  EXPECT_EQ(r.exit_code, 2);
  const std::string nothing = "unix:" + tmp_.File("nothing.sock");
  EXPECT_EQ(r.err, "tdxvirt: error: QGS at " + nothing + ": connect " + nothing + ": No such file or directory\n");
  backend_.fail = true;
  r = RunTdxvirt("qgs get-quote --address " + Address() + " --report " + tmp_.File("report.bin") +
                 " --out " + tmp_.File("q.bin"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: QGS at " + Address() +
                       ": GET_QUOTE: the QGS answered with error UNEXPECTED (0x12001)\n");
  r = RunTdxvirt("qgs get-quote --address nonsense --report x --out y");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --address: address 'nonsense': expected unix:PATH, vsock:CID:PORT or HOST:PORT\n");
}

TEST(QgsCliServe, UsageErrors) {
  auto r = RunTdxvirt("serve qgs --unix /tmp/x.sock");
  EXPECT_EQ(r.exit_code, 2) << "--sim-dir is required";
  EXPECT_EQ(r.err, "--sim-dir is required\nRun with --help for more information.\n");
  tdxvirt::testing::TempDir tmp;
  r = RunTdxvirt("serve qgs --sim-dir " + tmp.path() + " --unix " + tmp.File("q.sock") +
                 " --socket-mode 999");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --socket-mode 999: not an octal file mode such as 0660\n");
  r = RunTdxvirt("serve --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("qgs"), std::string::npos);
  r = RunTdxvirt("serve qgs --sim-dir " + tmp.File("no-platform") + " --unix " +
                 tmp.File("q.sock"));
  EXPECT_EQ(r.exit_code, 2);
  const std::string none = tmp.File("no-platform");
  EXPECT_EQ(r.err, "tdxvirt: error: --sim-dir " + none + ": not a simulator directory (run `tdxvirt sim init --dir " +
                       none + "`): cannot open " + none + "/platform.json: No such file or directory\n");
  r = RunTdxvirt("serve qgs --sim-dir " + tmp.path() + " --quote-version 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "--quote-version: 3 not in {4,5}\nRun with --help for more information.\n");
  r = RunTdxvirt("serve qgs --sim-dir " + tmp.path() + " --unix " + tmp.File("q.sock") +
                 " --max-connections 8 --max-connections-per-peer 8");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --max-connections-per-peer 8 must be below --max-connections 8, so one "
                   "peer cannot take every slot\n");
  r = RunTdxvirt("serve qgs --sim-dir " + tmp.path() + " --unix " + tmp.File("q.sock") +
                 " --request-timeout 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --request-timeout must be in (0, 3600] seconds\n");
}

// The whole path: a simulated platform, `serve qgs` on a UNIX socket, a TDREPORT through the
// QGS into a quote and collateral, both verified to the simulated root; then SIGTERM.
TEST(QgsCliServe, SimulatorQuotesVerifyAndSigtermStopsCleanly) {
  tdxvirt::testing::TempDir tmp;
  std::string dir = tmp.File("platform");
  auto r = RunTdxvirt("sim init --dir " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunTdxvirt("sim report --dir " + dir + " --report-data 0102 --out " + tmp.File("report.bin"));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::string sock = tmp.File("qgs.sock");
  pid_t pid =
      tdxvirt::testing::SpawnTdxvirt({"serve", "qgs", "--sim-dir", dir, "--unix", sock,
                                      "--request-timeout", "5", "--max-connections-per-peer", "4"},
                                     tmp.File("serve.err"));
  ASSERT_GT(pid, 0);
  auto ready = [&] {
    struct stat st {};
    return stat(sock.c_str(), &st) == 0;
  };
  for (int i = 0; i < 1000 && !ready(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(ready()) << "serve qgs did not start";

  r = RunTdxvirt("qgs get-quote --address unix:" + sock + " --report " + tmp.File("report.bin") +
                 " --out " + tmp.File("quote.bin"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunTdxvirt("qgs get-collateral --address unix:" + sock +
                 " --fmspc 00a06f000000 --ca platform --out " + tmp.File("collateral.json"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunTdxvirt("quote verify --quote " + tmp.File("quote.bin") + " --collateral " +
                 tmp.File("collateral.json") + " --root " + dir + "/root_ca.pem --compact");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = -1;
  for (int i = 0; i < 500; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(10ms);
  }
  if (!WIFEXITED(status)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "serve qgs did not stop on SIGTERM";
  }
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(ready()) << "the socket file must be removed";
  std::ifstream err(tmp.File("serve.err"));
  std::vector<std::string> events;
  for (std::string line; std::getline(err, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not a JSON line: " << line;
    events.push_back(j["event"].get<std::string>() + ":" + j.value("outcome", ""));
  }
  EXPECT_EQ(events,
            (std::vector<std::string>{"listening:", "request:ok", "request:ok", "stopped:"}));
}

}  // namespace
}  // namespace tdxvirt::qgs
