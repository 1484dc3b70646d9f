// `tdxvirt serve node-agent` as a process: registers with the kubelet stand-in, follows the host,
// writes the NFD feature file, serves /healthz /readyz /metrics, and on SIGTERM stops cleanly and
// removes its socket. Also `node label` and `node sim-host`.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "node/host.h"
#include "node/labels.h"
#include "node/sim_kubelet.h"
#include "test_util.h"

namespace tdxvirt::node {
namespace {

using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;
using namespace std::chrono_literals;

constexpr auto kWait = 30s;

// The last line of `text` with its newline ("" when there is none).
std::string LastLine(const std::string& text) {
  if (text.empty()) return "";
  size_t start = text.rfind('\n', text.size() - 2);
  return text.substr(start == std::string::npos ? 0 : start + 1);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

template <typename F>
bool Eventually(F f) {
  for (auto end = std::chrono::steady_clock::now() + kWait; std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(20ms))
    if (f()) return true;
  return f();
}

TEST(NodeAgentCli, ServesFollowsLabelsAndStopsOnSigterm) {
  TempDir tmp;
  std::string host = tmp.File("host"), dp = tmp.File("dp"), nfd = tmp.File("features.d");
  std::filesystem::create_directories(dp);
  std::filesystem::create_directories(nfd);
  ASSERT_EQ(RunTdxvirt("node sim-host --root " + host + " --keys 3").exit_code, 0);

  SimKubelet kubelet({.dir = dp});
  ASSERT_TRUE(kubelet.Start().ok());
  std::string err = tmp.File("agent.err");
  pid_t pid = tdxvirt::testing::SpawnTdxvirt({"serve", "node-agent", "--host-root", host, "--device-plugin-dir", dp,
                     "--nfd-dir", nfd, "--poll-interval", "50", "--label-interval", "1",
                     "--listen", "127.0.0.1:0", "--kubevirt-version", "1.8"},
                    err);
  ASSERT_GT(pid, 0);
  const std::string res = kDefaultResourceName;
  auto healthy = [](size_t n, size_t total) {
    return [=](const std::vector<PluginDevice>& d) {
      size_t h = 0;
      for (auto& x : d) h += x.healthy;
      return d.size() == total && h == n;
    };
  };
  ASSERT_TRUE(kubelet.WaitForDevices(res, healthy(3, 3), kWait)) << ReadAll(err);

  // Labels in the NFD feature file, following the host.
  std::string feature = nfd + "/" + kNfdFeatureFile;
  ASSERT_TRUE(Eventually([&] { return ReadAll(feature).find("tdxvirt.io/tdx=true") != std::string::npos; }))
      << ReadAll(err);
  EXPECT_NE(ReadAll(feature).find("tdxvirt.io/tdx-keys-total=3"), std::string::npos);
  ASSERT_EQ(RunTdxvirt("node sim-host --usage-only --root " + host +
                       " --keys 3 --used-outside 1").exit_code, 0);
  ASSERT_TRUE(kubelet.WaitForDevices(res, healthy(2, 3), kWait));
  ASSERT_TRUE(Eventually([&] {
    return ReadAll(feature).find("tdxvirt.io/tdx-keys-free=2") != std::string::npos;
  })) << ReadAll(feature);

  // Probes and metrics on the port it logged.
  std::smatch m;
  std::string log;
  ASSERT_TRUE(Eventually([&] {
    log = ReadAll(err);
    return std::regex_search(log, m, std::regex(R"(127\.0\.0\.1:(\d+) \(/healthz)"));
  })) << log;
  httplib::Client http("127.0.0.1", std::stoi(m[1].str()));
  http.set_read_timeout(30, 0);
  auto h = http.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto r = http.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("tdxvirt_node_tdx_keys_capacity 3"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("tdxvirt_node_devices_healthy{resource=\"tdxvirt.io/tdx-key\"} 2"),
            std::string::npos) << metrics->body;

  // Every log line is one JSON object.
  std::istringstream lines(ReadAll(err));
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_TRUE(j.contains("time") && j.contains("level") && j.contains("event")) << line;
  }

  std::string sock = dp + "/tdxvirt-tdx-key.sock";
  EXPECT_TRUE(std::filesystem::exists(sock));
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << ReadAll(err);
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadAll(err);
  EXPECT_FALSE(std::filesystem::exists(sock));
  EXPECT_NE(ReadAll(err).find("\"event\":\"stopped\""), std::string::npos);
  ASSERT_TRUE(kubelet.WaitForDevices(res, healthy(0, 3), kWait));  // the stream ended
}

TEST(NodeAgentCli, BadOptionsAreUsageErrors) {
  TempDir tmp;
  std::filesystem::create_directories(tmp.File("dp"));
  auto r = RunTdxvirt("serve node-agent --kubevirt-version 1.8 --host-root " + tmp.path() +
                      " --device-plugin-dir " + tmp.File("missing"));
  EXPECT_EQ(r.exit_code, 2);
  // The agent logs its mode (a timestamped JSON line) before it starts the plugin; the refusal is
  // the last line, whole.
  EXPECT_EQ(LastLine(r.err), "tdxvirt: error: device-plugin directory " + tmp.File("missing") +
                       " does not exist (kubelet's is /var/lib/kubelet/device-plugins; mount it)\n");
  r = RunTdxvirt("serve node-agent --kubevirt-version 1.8 --host-root " + tmp.path() +
                 " --device-plugin-dir " + tmp.File("dp") + " --resource-name nodomain");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: resource name \"nodomain\": must be <domain>/<name>, e.g. "
                   "tdxvirt.io/tdx-key\n");
  r = RunTdxvirt("serve node-agent --kubevirt-version 1.8 --host-root " + tmp.path() +
                 " --device-plugin-dir " + tmp.File("dp") + " --listen nowhere");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --listen nowhere: expected HOST:PORT\n");
  r = RunTdxvirt("serve node-agent --host-root " + tmp.path() + " --device-plugin-dir " +
                 tmp.File("dp") + " --kube-labels --kube-node ''");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --kube-labels needs the node's name: --kube-node NAME or NODE_NAME "
                   "(from the downward API spec.nodeName)\n");
  EXPECT_TRUE(std::filesystem::is_empty(tmp.File("dp")));  // nothing served, nothing left
}

TEST(NodeLabelCli, OneShotWritesTheFeatureFile) {
  TempDir tmp;
  std::string host = tmp.File("host");
  std::filesystem::create_directories(tmp.File("nfd"));
  ASSERT_EQ(RunTdxvirt("node sim-host --root " + host + " --keys 5 --used-outside 2").exit_code, 0);
  auto r = RunTdxvirt("node label --root " + host + " --nfd-dir " + tmp.File("nfd") +
                      " --kubevirt-label --kubevirt-version 1.6");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["labels"]["tdxvirt.io/tdx"], "true");
  EXPECT_EQ(j["labels"]["kubevirt.io/tdx"], "true");
  EXPECT_EQ(j["labels"]["tdxvirt.io/tdx-keys-free"], "3");
  std::string text = ReadAll(tmp.File("nfd/") + kNfdFeatureFile);
  EXPECT_NE(text.find("kubevirt.io/tdx=true\n"), std::string::npos) << text;

  r = RunTdxvirt("node label --root " + host);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: say where labels go: --nfd-dir DIR and/or --kube-labels\n");
  r = RunTdxvirt("node label --root " + host + " --nfd-dir " + tmp.File("missing") +
                 " --kubevirt-version 1.8");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "tdxvirt: error: publishing labels: NFD features directory " + tmp.File("missing") +
                       " does not exist (NFD's is /etc/kubernetes/node-feature-discovery/features.d)\n");
}

}  // namespace
}  // namespace tdxvirt::node

namespace tdxvirt::node {
namespace {

// `node sim-kubelet` as a process, with the plugin in-process: the demo pairing reversed.
TEST(NodeSimKubeletCli, PrintsTheDevicesAPluginAdvertises) {
  TempDir tmp;
  std::string dp = tmp.File("dp");
  std::filesystem::create_directories(dp);
  ASSERT_TRUE(WriteSimulatedTdxHost(tmp.File("host"), {.keys = 2}).ok());
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int out = open(tmp.File("kubelet.out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    execl(TDXVIRT_BIN, TDXVIRT_BIN, "node", "sim-kubelet", "--dir", dp.c_str(), nullptr);
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(dp + "/kubelet.sock"); }));
  DevicePlugin plugin({.host_root = tmp.File("host"), .plugin_dir = dp,
                       .poll_interval = std::chrono::milliseconds(50),
                       .log = [](const std::string&) {}});
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(Eventually([&] {
    return ReadAll(tmp.File("kubelet.out")).find(R"("devices":2,"healthy":2,"registrations":1)") !=
           std::string::npos;
  })) << ReadAll(tmp.File("kubelet.out"));
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_FALSE(std::filesystem::exists(dp + "/kubelet.sock"));
}

}  // namespace
}  // namespace tdxvirt::node
