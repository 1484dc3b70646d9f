// `tdxvirt attest quote`: the binary, with the simulator in process and through a QGS.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "common/file.h"
#include "common/hex.h"
#include "guest/quote_provider.h"
#include "guest_test_util.h"
#include "qgs/server.h"
#include "simulator/sim_backend.h"

namespace tdxvirt::guest {
namespace {

using namespace std::chrono_literals;
using tdxvirt::testing::RunTdxvirt;
using testing::ExpectVerifiedQuote;
using testing::LoadPlatform;
using testing::SimDir;

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// "0102" -> 01 02 00 .. 00: what --report-data means.
evidence::ReportData Padded(const std::string& hex) {
  evidence::ReportData rd{};
  auto b = FromHex(hex);
  EXPECT_TRUE(b.ok());
  std::copy(b->begin(), b->end(), rd.begin());
  return rd;
}

class AttestQuoteCli : public ::testing::Test {
 protected:
  // Runs `attest quote` with `args`, expects success, and returns the JSON line.
  nlohmann::json Quote(const std::string& args, const std::string& report_data) {
    auto r = RunTdxvirt("attest quote --report-data " + report_data + " --out " +
                        tmp_.File("q.bin") + " " + args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.is_object()) << r.out;
    if (!j.is_object()) return nlohmann::json::object();
    auto quote = ReadFile(tmp_.File("q.bin"));
    EXPECT_TRUE(quote.ok());
    if (quote.ok() && j.is_object()) {
      EXPECT_EQ(j["quote_size"], quote->size());
      EXPECT_EQ(j["out"], tmp_.File("q.bin"));
      ExpectVerifiedQuote(*quote, Padded(report_data));
    }
    return j;
  }
  tdxvirt::testing::TempDir tmp_;
  tdxvirt::testing::TempDir empty_root_;
};

TEST_F(AttestQuoteCli, SimProvider) {
  auto j = Quote("--provider sim --sim-dir " + SimDir(), "0102");
  EXPECT_EQ(j["provider"], "sim");
  EXPECT_TRUE(Contains(j["reason"].get<std::string>(), "asked for")) << j;
}

TEST_F(AttestQuoteCli, AutoFallsToTheSimulatorOnAnEmptyRoot) {
  std::string full(128, 'a');
  auto j = Quote(
      "--root-dir " + empty_root_.path() + " --sim-dir " + SimDir() + " --quote-version 5", full);
  EXPECT_EQ(j["provider"], "sim");
  EXPECT_TRUE(Contains(j["reason"].get<std::string>(), "no TDX guest interface")) << j;
  auto quote = ReadFile(tmp_.File("q.bin"));
  EXPECT_EQ(evidence::ParseQuote(*quote)->header.version, 5);
}

TEST_F(AttestQuoteCli, QgsProviderAgainstAServer) {
  simulator::SimQuoteBackend backend(LoadPlatform());
  qgs::QgsServer server(backend, {.request_timeout = 5000ms, .log = [](const std::string&) {}});
  ASSERT_TRUE(
      server.Start({{.kind = qgs::QgsAddress::Kind::kUnix, .path = tmp_.File("qgs.sock")}}).ok());
  auto j =
      Quote("--provider qgs --qgs unix:" + tmp_.File("qgs.sock") + " --sim-dir " + SimDir(), "ab");
  EXPECT_EQ(j["provider"], "qgs");
  // Auto picks the same with an empty root.
  j = Quote("--root-dir " + empty_root_.path() + " --qgs unix:" + tmp_.File("qgs.sock") +
                " --sim-dir " + SimDir(),
            "cd");
  EXPECT_EQ(j["provider"], "qgs");
  server.Stop();  // joins the connection threads: a connection counts once its thread is done
  EXPECT_EQ(server.connections_served(), 2u);
}

TEST_F(AttestQuoteCli, QuoteToStdout) {
  auto r =
      RunTdxvirt("attest quote --provider sim --sim-dir " + SimDir() + " --report-data ff --out -");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectVerifiedQuote(Bytes(r.out.begin(), r.out.end()), Padded("ff"));
}

TEST_F(AttestQuoteCli, Errors) {
  auto r = RunTdxvirt("attest quote --root-dir " + empty_root_.path() + " --report-data 00 --out " +
                      tmp_.File("q"));
  EXPECT_EQ(r.exit_code, 2);
  const std::string root = empty_root_.path();
  EXPECT_EQ(r.err, "tdxvirt: error: no quote provider available: " + root +
                       "/sys/kernel/config/tsm/report (configfs-tsm, Linux >= 6.7) and " + root +
                       "/dev/tdx_guest (TDX guest driver) are both missing, and no simulator directory was "
                       "given. Run inside a TDX trust domain, or use the simulator: `tdxvirt sim init --dir DIR`, "
                       "then --sim-dir DIR (add --qgs ADDR to quote through a QGS)\n");
  EXPECT_FALSE(std::filesystem::exists(tmp_.File("q")));

  r = RunTdxvirt("attest quote --sim-dir " + SimDir() + " --report-data " + std::string(130, '1') +
                 " --out " + tmp_.File("q"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --report-data: up to 64 bytes of hex (zero-padded at the end to 64), got 65 "
                   "bytes\n");
  r = RunTdxvirt("attest quote --sim-dir " + SimDir() + " --report-data xyz --out " +
                 tmp_.File("q"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --report-data: up to 64 bytes of hex (zero-padded at the end to 64): invalid "
                   "hex character at position 0; expected 0-9, a-f or A-F\n");
  r = RunTdxvirt("attest quote --provider tpm --report-data 00 --out " + tmp_.File("q"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "--provider: tpm not in {auto,configfs,tdx-guest,qgs,sim}\nRun with --help for more information.\n");
  r = RunTdxvirt("attest quote --report-data 00");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "--out is required\nRun with --help for more information.\n");
  r = RunTdxvirt("attest quote --provider qgs --qgs unix:" + tmp_.File("none.sock") +
                 " --timeout 0.2 --sim-dir " + SimDir() + " --report-data 00 --out " +
                 tmp_.File("q"));
  EXPECT_EQ(r.exit_code, 2);
  const std::string none = "unix:" + tmp_.File("none.sock");
  EXPECT_EQ(r.err, "tdxvirt: error: qgs provider: QGS at " + none + ": connect " + none +
                       ": No such file or directory\n");
  r = RunTdxvirt("attest");
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(AttestQuoteCli, IntelsConfigfsPathVariableNamesTheEntry) {
  // A frozen entry under the root: the run fails at the generation check, naming the entry used.
  const std::string entry = std::string(kConfigfsReportDir) + "/com.intel.dcap";
  std::filesystem::create_directories(empty_root_.path() + entry);
  for (const char* f : {"inblob", "outblob"})
    tdxvirt::testing::WriteFile(empty_root_.path() + entry + "/" + f, "");
  tdxvirt::testing::WriteFile(empty_root_.path() + entry + "/provider", "tdx_guest\n");
  tdxvirt::testing::WriteFile(empty_root_.path() + entry + "/generation", "1\n");
  setenv(kIntelConfigfsPathEnv, entry.c_str(), 1);
  auto r = RunTdxvirt("attest quote --root-dir " + empty_root_.path() + " --report-data 00 --out " +
                      tmp_.File("q"));
  unsetenv(kIntelConfigfsPathEnv);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(
      Contains(r.err, "configfs provider: configfs-tsm " + entry + ": generation went from 1 to 1"))
      << r.err;
  EXPECT_TRUE(std::filesystem::is_directory(empty_root_.path() + entry));
}

// A child process, killed (if still running) and reaped when this goes out of scope.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // The exit status if it has exited (without waiting).
  std::optional<int> Poll() {
    int status = 0;
    if (!reaped_ && waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      status_ = status;
    }
    return reaped_ ? std::optional<int>(status_) : std::nullopt;
  }
  int Stop() {
    if (!reaped_) {
      kill(pid_, SIGTERM);
      waitpid(pid_, &status_, 0);
      reaped_ = true;
    }
    return status_;
  }

 private:
  pid_t pid_;
  bool reaped_ = false;
  int status_ = 0;
};

// Through `tdxvirt serve qgs` as a separate process, with the same simulator directory.
TEST_F(AttestQuoteCli, ThroughServeQgsChildProcess) {
  const std::string sim_dir = SimDir();  // before fork: the child must not create its own
  const std::string sock = tmp_.File("child.sock");
  const std::string err = tmp_.File("serve.err");
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a test killed by its timeout
    int fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);  // keep the test's output pipe free of a long-lived child
    dup2(fd, 2);
    execl(TDXVIRT_BIN, TDXVIRT_BIN, "serve", "qgs", "--unix", sock.c_str(), "--sim-dir",
          sim_dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  Child child(pid);
  for (int i = 0; i < 300 && !std::filesystem::exists(sock) && !child.Poll(); ++i)
    std::this_thread::sleep_for(10ms);
  if (child.Poll()) {
    auto text = ReadFile(err);
    FAIL() << "serve qgs exited: " << (text.ok() ? std::string(AsString(*text)) : "");
  }
  ASSERT_TRUE(std::filesystem::exists(sock))
      << "serve qgs did not create " << sock << " within 3 s";
  auto j = Quote("--provider qgs --qgs unix:" + sock + " --sim-dir " + sim_dir, "5a5a");
  EXPECT_EQ(j["provider"], "qgs");
  int status = child.Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace tdxvirt::guest
