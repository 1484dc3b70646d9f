// `tdxvirt serve node-agent` per KubeVirt release, as a process against the kubelet stand-in and
// the fake Kubernetes API (tests/fake_kube_api.h): on 1.9 no device plugin and keys used outside
// Kubernetes reported (label, metric, Event); from 1.7 never kubevirt.io/tdx; auto following an
// upgrade from 1.8 to 1.9 stops the plugin.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "fake_kube_api.h"
#include "node/device_plugin.h"
#include "node/host.h"
#include "node/kubevirt_mode.h"
#include "node/labels.h"
#include "node/sim_kubelet.h"
#include "test_util.h"

namespace tdxvirt::node {
namespace {

using nlohmann::json;
using tdxvirt::testing::FakeKubeApi;
using tdxvirt::testing::KubevirtList;
using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;
using namespace std::chrono_literals;

constexpr auto kWait = 60s;

// A process's output file: polled (another process writes it), bounded.
std::string WaitForLog(const std::string& path, const std::string& needle) {
  std::string text;
  for (auto end = std::chrono::steady_clock::now() + kWait; std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(20ms)) {
    text = tdxvirt::testing::ReadFileText(path);
    if (text.find(needle) != std::string::npos) return text;
  }
  return text;
}

int LoggedPort(const std::string& err) {
  std::string log = WaitForLog(err, " (/healthz");
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(R"(127\.0\.0\.1:(\d+) \(/healthz)"))) return 0;
  return std::stoi(m[1].str());
}

// Every label key any PATCH of the Node carried (a null counts: removing is writing too).
std::set<std::string> PatchedLabelKeys(const FakeKubeApi& api) {
  std::set<std::string> keys;
  for (auto& r : api.seen("PATCH", "/api/v1/nodes/")) {
    auto j = json::parse(r.body);
    for (auto& [k, v] : j["metadata"]["labels"].items()) keys.insert(k);
  }
  return keys;
}

bool AnyStartsWith(const std::set<std::string>& keys, const std::string& prefix) {
  for (auto& k : keys)
    if (k.rfind(prefix, 0) == 0) return true;
  return false;
}

struct Agent : ::testing::Test {
  TempDir tmp;
  FakeKubeApi api;
  std::string host = tmp.File("host"), dp = tmp.File("dp"), err = tmp.File("agent.err");
  pid_t pid = -1;

  void SetUp() override {
    std::filesystem::create_directories(dp);
    api.Config(tmp);
  }
  void TearDown() override {
    if (pid > 0) {
      EXPECT_EQ(tdxvirt::testing::TerminateAndWait(pid), 0) << tdxvirt::testing::ReadFileText(err);
    }
  }
  void Spawn(std::vector<std::string> extra) {
    std::vector<std::string> args = {"serve", "node-agent", "--host-root", host,
                                      "--device-plugin-dir", dp, "--poll-interval", "50",
                                      "--label-interval", "1", "--listen", "127.0.0.1:0",
                                      "--kube-api-server", api.url(), "--kube-token-file",
                                      tmp.File("token"), "--kube-ca-file", tmp.File("ca.crt"),
                                      "--kube-node", "worker-1"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid = tdxvirt::testing::SpawnTdxvirt(args, err);
    ASSERT_GT(pid, 0);
  }
  std::map<std::string, std::string> Labels() { return api.node_labels(); }
  bool LabelIs(const std::string& k, const std::string& v) {
    return api.WaitFor([&] {
      auto l = api.node_labels();
      return l.count(k) && l[k] == v;
    });
  }
};

TEST(AgentModes, PerRelease) {
  for (int minor : {6, 7, 8, 9}) {
    kube::KubevirtVersion v{1, minor};
    AgentMode m = AgentModeFor(v, true);
    EXPECT_EQ(m.device_plugin, minor <= 8) << minor;
    EXPECT_EQ(m.report_keys_outside, minor >= 9) << minor;
    EXPECT_EQ(m.kubevirt_label, minor == 6) << minor;
    EXPECT_EQ(m.kubevirt_label_refused, minor >= 7) << minor;
    EXPECT_FALSE(AgentModeFor(v, false).kubevirt_label) << minor;
  }
  EXPECT_TRUE(ParseExplicitKubevirtVersion("1.7").ok());
  EXPECT_EQ(ParseExplicitKubevirtVersion("1.10").error(),
            "--kubevirt-version must be auto or one of 1.6, 1.7, 1.8, 1.9 (the KubeVirt release), "
            "got \"1.10\"");
  ASSERT_FALSE(ParseExplicitKubevirtVersion("v1.9.0").ok());
  EXPECT_EQ(ParseExplicitKubevirtVersion("v1.9.0").error(),
            "--kubevirt-version must be auto or one of 1.6, 1.7, 1.8, 1.9 (the KubeVirt release), "
            "got \"v1.9.0\"");
}

TEST(AgentModes, KeysUsedOutsideEventIsACoreV1WarningOnTheNode) {
  json e = KeysUsedOutsideEvent("worker-1", 3, 16, 0x1234, "2026-12-05T06:00:00Z");
  EXPECT_EQ(e["metadata"]["name"], "worker-1.1234");
  EXPECT_EQ(e["metadata"]["namespace"], "default");
  EXPECT_EQ(e["involvedObject"], json({{"apiVersion", "v1"}, {"kind", "Node"}, {"name", "worker-1"}, {"uid", "worker-1"}}));
  EXPECT_EQ(e["type"], "Warning");
  EXPECT_EQ(e["reason"], "TDXKeysUsedOutsideKubernetes");
  EXPECT_EQ(e["message"],
            "3 TDX keys are used by TDs outside Kubernetes; KubeVirt's devices.kubevirt.io/tdx "
            "still offers all 16 keys of misc.capacity, so up to 3 TDs scheduled on this node may "
            "fail to start");
}

// 1.9: KubeVirt's devices.kubevirt.io/tdx counts the keys. The agent registers nothing, and
// reports keys used outside Kubernetes as a label, a metric and Events when the count changes.
TEST_F(Agent, OnKubevirt19RunsNoPluginAndReportsKeysUsedOutside) {
  ASSERT_EQ(RunTdxvirt("node sim-host --root " + host + " --keys 4 --used-outside 1").exit_code, 0);
  SimKubelet kubelet({.dir = dp});
  ASSERT_TRUE(kubelet.Start().ok());
  api.SetKubevirtList(KubevirtList("v1.9.0", {{"confidentialCompute", json::object()}}));
  Spawn({"--kubevirt-label", "--qgs-socket", "/var/run/tdx-qgs/qgs.socket"});  // auto (default)

  ASSERT_TRUE(LabelIs(kLabelKeysUsedOutside, "1")) << tdxvirt::testing::ReadFileText(err);
  EXPECT_EQ(Labels().at(kLabelTdx), "true");
  ASSERT_TRUE(api.WaitFor([&] { return api.seen("POST", "/api/v1/namespaces/default/events").size() >= 1; }));
  auto ev = json::parse(api.seen("POST", "/api/v1/namespaces/default/events")[0].body);
  EXPECT_EQ(ev["reason"], kKeysUsedOutsideReason);
  EXPECT_EQ(ev["type"], "Warning");
  EXPECT_EQ(ev["involvedObject"]["name"], "worker-1");
  EXPECT_NE(ev["message"].get<std::string>().find("1 TDX key is used by TDs outside Kubernetes"),
            std::string::npos) << ev.dump();

  // No plugin: its socket is created before it registers, and is absent; kubelet heard nothing.
  EXPECT_FALSE(std::filesystem::exists(dp + "/tdxvirt-tdx-key.sock"));
  EXPECT_EQ(kubelet.registrations(), 0u);
  EXPECT_TRUE(kubelet.resources().empty());
  // Nor kubevirt.io/tdx, though --kubevirt-label asked: virt-handler owns it on 1.7+.
  EXPECT_FALSE(AnyStartsWith(PatchedLabelKeys(api), "kubevirt.io/tdx"));
  EXPECT_NE(tdxvirt::testing::ReadFileText(err).find("\"event\":\"kubevirt_label_ignored\""), std::string::npos);

  int port = LoggedPort(err);
  ASSERT_GT(port, 0);
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(30, 0);
  auto ready = http.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(ready->body, "ready: KubeVirt 1.9: devices.kubevirt.io/tdx counts the keys; reporting "
                         "keys used outside Kubernetes\n");
  auto m = http.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("tdxvirt_node_kubevirt_info{version=\"1.9\",mode=\"report-keys-outside\"} 1"),
            std::string::npos) << m->body;
  EXPECT_NE(m->body.find("tdxvirt_node_tdx_keys_used_outside 1\n"), std::string::npos) << m->body;

  // Another TD outside Kubernetes: the count changed, so another Event and the label follow.
  ASSERT_EQ(RunTdxvirt("node sim-host --usage-only --root " + host + " --keys 4 --used-outside 2").exit_code, 0);
  ASSERT_TRUE(LabelIs(kLabelKeysUsedOutside, "2"));
  ASSERT_TRUE(api.WaitFor([&] { return api.seen("POST", "/api/v1/namespaces/default/events").size() >= 2; }));
  ev = json::parse(api.seen("POST", "/api/v1/namespaces/default/events")[1].body);
  EXPECT_NE(ev["message"].get<std::string>().find("2 TDX keys are used"), std::string::npos) << ev.dump();
}

// 1.7 and 1.8 keep the plugin, and never write kubevirt.io/tdx; 1.6 writes it with --kubevirt-label.
TEST_F(Agent, KubevirtLabelOnlyOn16) {
  ASSERT_EQ(RunTdxvirt("node sim-host --root " + host + " --keys 2").exit_code, 0);
  Spawn({"--kubevirt-version", "1.7", "--kubevirt-label"});
  ASSERT_TRUE(LabelIs(kLabelTdx, "true")) << tdxvirt::testing::ReadFileText(err);
  EXPECT_FALSE(AnyStartsWith(PatchedLabelKeys(api), "kubevirt.io/tdx"));
  EXPECT_NE(WaitForLog(err, "kubevirt_label_ignored").find("virt-handler owns kubevirt.io/tdx from KubeVirt 1.7"),
            std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dp + "/tdxvirt-tdx-key.sock"));  // the plugin serves on 1.7
  ASSERT_EQ(tdxvirt::testing::TerminateAndWait(pid), 0);
  pid = -1;

  Spawn({"--kubevirt-version", "1.6", "--kubevirt-label"});
  ASSERT_TRUE(LabelIs(kKubevirtTdxLabel, "true")) << tdxvirt::testing::ReadFileText(err);
}

// auto: KubeVirt upgraded from 1.8 to 1.9 under a running agent. Its plugin stops (kubelet sees
// the stream end), and it switches to reporting keys used outside Kubernetes.
TEST_F(Agent, AutoSwitchesFromThePluginOn18ToReportingOn19) {
  ASSERT_EQ(RunTdxvirt("node sim-host --root " + host + " --keys 3 --used-outside 1").exit_code, 0);
  SimKubelet kubelet({.dir = dp});
  ASSERT_TRUE(kubelet.Start().ok());
  api.SetKubevirtList(KubevirtList("v1.8.0"));
  Spawn({});
  auto healthy = [](size_t n, size_t total) {
    return [=](const std::vector<PluginDevice>& d) {
      size_t h = 0;
      for (auto& x : d) h += x.healthy;
      return d.size() == total && h == n;
    };
  };
  ASSERT_TRUE(kubelet.WaitForDevices(kDefaultResourceName, healthy(2, 3), kWait))
      << tdxvirt::testing::ReadFileText(err);
  EXPECT_EQ(Labels().count(kLabelKeysUsedOutside), 0u);
  EXPECT_TRUE(api.seen("POST", "/api/v1/namespaces/default/events").empty());

  api.SetKubevirtList(KubevirtList("v1.9.0"));
  ASSERT_TRUE(kubelet.WaitForDevices(kDefaultResourceName, healthy(0, 3), kWait))  // stream ended
      << tdxvirt::testing::ReadFileText(err);
  ASSERT_TRUE(LabelIs(kLabelKeysUsedOutside, "1"));
  EXPECT_FALSE(std::filesystem::exists(dp + "/tdxvirt-tdx-key.sock"));
  EXPECT_NE(WaitForLog(err, "was KubeVirt 1.8").find("KubeVirt 1.9: report-keys-outside (was KubeVirt 1.8: device-plugin)"),
            std::string::npos);
  ASSERT_TRUE(api.WaitFor([&] { return !api.seen("POST", "/api/v1/namespaces/default/events").empty(); }));
}

// auto with no API access cannot learn the release: a usage error naming the ways out.
TEST(AgentAuto, WithoutApiAccessIsAUsageErrorNamingTheFix) {
  TempDir tmp;
  std::filesystem::create_directories(tmp.File("dp"));
  unsetenv("KUBERNETES_SERVICE_HOST");
  auto r = RunTdxvirt("serve node-agent --host-root " + tmp.path() + " --device-plugin-dir " + tmp.File("dp"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --kubevirt-version auto reads the KubeVirt CR through the Kubernetes API: "
                   "KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set: not running in "
                   "a pod (run in-cluster with a ServiceAccount, pass --kube-api-server/"
                   "--kube-token-file/--kube-ca-file, or name the release: --kubevirt-version "
                   "1.6|1.7|1.8|1.9)\n");
  EXPECT_TRUE(std::filesystem::is_empty(tmp.File("dp")));
  r = RunTdxvirt("serve node-agent --kubevirt-version 2.0 --host-root " + tmp.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --kubevirt-version must be auto or one of 1.6, 1.7, 1.8, 1.9 (the KubeVirt "
                   "release), got \"2.0\"\n");
}

// `node label` one-shot: the release decides kubevirt.io/tdx and the used-outside label.
TEST(NodeLabelCli, PerKubevirtVersion) {
  TempDir tmp;
  std::string host = tmp.File("host");
  std::filesystem::create_directories(tmp.File("nfd"));
  ASSERT_EQ(RunTdxvirt("node sim-host --root " + host + " --keys 5 --used-outside 2").exit_code, 0);
  auto r = RunTdxvirt("node label --root " + host + " --nfd-dir " + tmp.File("nfd") +
                      " --kubevirt-label --kubevirt-version 1.9");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_FALSE(j["labels"].contains("kubevirt.io/tdx")) << r.out;
  EXPECT_EQ(j["labels"]["tdxvirt.io/tdx-keys-used-outside"], "2");
  EXPECT_EQ(j["kubevirt_version"], "1.9");
  EXPECT_EQ(j["mode"], "report-keys-outside");
  EXPECT_EQ(r.err, "warning: virt-handler owns kubevirt.io/tdx from KubeVirt 1.7 (this is 1.9): "
                   "--kubevirt-label is ignored and the agent never writes it\n");

  FakeKubeApi api;
  api.Config(tmp);
  api.SetKubevirtList(KubevirtList("v1.6.3"));
  r = RunTdxvirt("node label --root " + host + " --kubevirt-label --kube-api-server " + api.url() +
                 " --kube-token-file " + tmp.File("token") + " --kube-ca-file " + tmp.File("ca.crt") +
                 " --kube-node worker-1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(api.node_labels().at("kubevirt.io/tdx"), "true");
  EXPECT_EQ(json::parse(r.out)["kubevirt_version"], "1.6");
}

}  // namespace
}  // namespace tdxvirt::node
