// `tdxvirt` commands of src/node: node detect / label / sim-host, serve node-agent.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "http/server.h"
#include "common/log.h"
#include "node/device_plugin.h"
#include "node/host.h"
#include "node/labels.h"
#include "node/sim_kubelet.h"

namespace tdxvirt::cli {
namespace {

using namespace tdxvirt::node;

struct DetectFlags {
  std::string root = "/";
  std::string domcapabilities;
  std::string kubepods_cgroup;
};

void AddDetectFlags(CLI::App* cmd, DetectFlags& f, const char* root_flag) {
  cmd->add_option(root_flag, f.root,
                  "host root holding proc/ and sys/ (default /; /host in the DaemonSet)");
  cmd->add_option("--domcapabilities", f.domcapabilities,
                  "`virsh domcapabilities` output (FILE, or - for stdin) to check libvirt too");
  cmd->add_option("--kubepods-cgroup", f.kubepods_cgroup,
                  "pods' cgroup under sys/fs/cgroup (default: kubepods.slice, else kubepods)");
}

Status CheckRoot(const std::string& root) {
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec))
    return Error{"host root " + root + " is not a directory"};
  return OkStatus();
}

DetectOptions ToOptions(const DetectFlags& f) {
  return {.domcapabilities_file = f.domcapabilities, .kubepods_cgroup = f.kubepods_cgroup};
}

struct KubeFlags {
  std::string nfd_dir;
  bool kube_labels = false;
  std::string node_name;
  std::string api_server, token_file, ca_file;  // override the in-cluster config (tests, dev)
  bool kubevirt_label = false;
};

void AddLabelFlags(CLI::App* cmd, KubeFlags& k) {
  cmd->add_option("--nfd-dir", k.nfd_dir,
                  std::string("write labels as an NFD local feature file in DIR (NFD's is ") +
                      kNfdFeaturesDir + ")");
  cmd->add_flag("--kube-labels", k.kube_labels,
                "patch the Node's labels through the Kubernetes API (in-cluster service account)");
  cmd->add_option("--kube-node", k.node_name, "Node to patch (default $NODE_NAME)");
  cmd->add_option("--kube-api-server", k.api_server,
                  "API server URL instead of KUBERNETES_SERVICE_HOST/PORT (with the next two)");
  cmd->add_option("--kube-token-file", k.token_file, "bearer token file (with --kube-api-server)");
  cmd->add_option("--kube-ca-file", k.ca_file, "CA bundle of the API server (with --kube-api-server)");
  cmd->add_flag("--kubevirt-label", k.kubevirt_label,
                "also set kubevirt.io/tdx=true (the label KubeVirt's TD pods select on)");
}

// Where labels go, checked before anything runs.
struct LabelSink {
  std::string nfd_dir;
  std::optional<KubeApiConfig> api;
  std::string node;
  LabelOptions options;
};

Result<LabelSink> MakeSink(const KubeFlags& k, bool required) {
  LabelSink s;
  s.nfd_dir = k.nfd_dir;
  s.options.kubevirt_label = k.kubevirt_label;
  bool api = k.kube_labels || !k.api_server.empty();
  if (api) {
    s.node = k.node_name;
    if (s.node.empty())
      if (const char* n = std::getenv("NODE_NAME")) s.node = n;
    if (s.node.empty())
      return Error{"--kube-labels needs the node's name: --kube-node NAME or NODE_NAME (from the "
                   "downward API spec.nodeName)"};
    if (!k.api_server.empty()) {
      if (k.token_file.empty() || k.ca_file.empty())
        return Error{"--kube-api-server needs --kube-token-file and --kube-ca-file"};
      KubeApiConfig c;
      c.server = k.api_server;
      c.token_file = k.token_file;
      c.ca_file = k.ca_file;
      s.api = c;
    } else {
      auto c = InClusterConfig();
      if (!c.ok()) return Error{"--kube-labels: " + c.error()};
      s.api = *c;
    }
  }
  if (required && s.nfd_dir.empty() && !s.api)
    return Error{"say where labels go: --nfd-dir DIR and/or --kube-labels"};
  return s;
}

Status Publish(const LabelSink& sink, const LabelSet& labels) {
  if (!sink.nfd_dir.empty())
    if (Status s = WriteNfdFeatureFile(sink.nfd_dir, labels); !s.ok()) return s;
  if (sink.api) {
    auto r = PatchNodeLabels(*sink.api, sink.node, labels);
    if (!r.ok()) return Error{r.error()};
  }
  return OkStatus();
}

nlohmann::ordered_json LabelsJson(const LabelSet& labels) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : labels) j[k] = v ? nlohmann::ordered_json(*v) : nullptr;
  return j;
}

int RunDetect(const DetectFlags& f) {
  if (Status s = CheckRoot(f.root); !s.ok()) return InputError("--root: " + s.error());
  TdxDetection d = DetectTdx(f.root, ToOptions(f));
  // Host files may hold any bytes; replace what is not UTF-8 rather than throw.
  std::cout << ToJson(d).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return d.ready ? kExitOk : kExitNegative;
}

int RunLabel(const DetectFlags& f, const KubeFlags& k) {
  if (Status s = CheckRoot(f.root); !s.ok()) return InputError("--root: " + s.error());
  auto sink = MakeSink(k, true);
  if (!sink.ok()) return InputError(sink.error());
  TdxDetection d = DetectTdx(f.root, ToOptions(f));
  LabelSet labels = NodeLabels(d, sink->options);
  if (Status s = Publish(*sink, labels); !s.ok()) {
    std::cerr << "tdxvirt: error: publishing labels: " << s.error() << "\n";
    return kExitNegative;
  }
  nlohmann::ordered_json j;
  j["labels"] = LabelsJson(labels);
  j["summary"] = d.summary;
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return kExitOk;
}

struct SimHostFlags {
  std::string root;
  int64_t keys = 16, used_outside = 0, used_by_kubernetes = 0;
  bool amd = false, no_flag = false, kvm_off = false, no_misc = false, usage_only = false;
  std::string kernel = "6.16.0-tdxvirt-sim";
};

int RunSimHost(const SimHostFlags& f) {
  if (f.keys < 0 || f.used_outside < 0 || f.used_by_kubernetes < 0)
    return InputError("--keys, --used-outside and --used-by-kubernetes must not be negative");
  Status s = f.usage_only
                 ? SetSimulatedKeyUsage(f.root, f.used_outside, f.used_by_kubernetes, f.keys)
                 : WriteSimulatedTdxHost(f.root, {.keys = f.keys,
                                                  .used_outside = f.used_outside,
                                                  .used_by_kubernetes = f.used_by_kubernetes,
                                                  .intel = !f.amd,
                                                  .tdx_host_platform = !f.no_flag,
                                                  .kvm_tdx = !f.kvm_off,
                                                  .misc_cgroup = !f.no_misc,
                                                  .kernel = f.kernel});
  if (!s.ok()) return InputError(s.error());
  return kExitOk;
}

struct AgentFlags {
  DetectFlags detect;
  KubeFlags kube;
  std::string plugin_dir = kDefaultPluginDir;
  std::string resource = kDefaultResourceName;
  std::string qgs_socket;
  bool enforced = false;
  int poll_ms = 1000;
  int label_interval_s = 10;
  std::string listen;
};

int RunAgent(const AgentFlags& f) {
  if (Status s = CheckRoot(f.detect.root); !s.ok()) return InputError("--host-root: " + s.error());
  if (f.poll_ms < 10 || f.poll_ms > 3600000)
    return InputError("--poll-interval must be 10..3600000 milliseconds");
  if (f.label_interval_s < 1 || f.label_interval_s > 86400)
    return InputError("--label-interval must be 1..86400 seconds");
  auto sink = MakeSink(f.kube, false);
  if (!sink.ok()) return InputError(sink.error());
  std::optional<std::pair<std::string, int>> listen;
  if (!f.listen.empty()) {
    auto l = ParseListen(f.listen);
    if (!l.ok()) return InputError(l.error());
    listen = *l;
  }

  sigset_t stop_signals = BlockStopSignals();  // before any thread starts

  DevicePluginOptions po;
  po.host_root = f.detect.root;
  po.resource_name = f.resource;
  po.plugin_dir = f.plugin_dir;
  po.qgs_socket_path = f.qgs_socket;
  po.attestation_enforced = f.enforced;
  po.kubepods_cgroup = f.detect.kubepods_cgroup;
  po.poll_interval = std::chrono::milliseconds(f.poll_ms);
  DevicePlugin plugin(po);
  if (Status s = plugin.Start(); !s.ok()) return InputError(s.error());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> label_publishes{0}, label_errors{0};
  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    stop = true;
    LogToStderr(LogLine("info", "node-agent", "signal",
                        std::string(sig == SIGTERM ? "SIGTERM" : "SIGINT") + ": stopping"));
    plugin.WakeWaiters();
  });

  std::unique_ptr<http::Server> http;
  if (listen) {
    using Req = http::Request;
    using Res = http::Response;
    std::vector<http::Route> routes;
    auto probe = [&](std::string path, http::Handler h) {
      http::Route r;
      r.method = "GET";
      r.path = std::move(path);
      r.handler = std::move(h);
      r.inline_io = true;  // probes and scrapes only, all cheap
      routes.push_back(std::move(r));
    };
    probe("/healthz", [](const Req&, Res& res) { res.Set(200, "ok\n", "text/plain"); });
    probe("/readyz", [&](const Req&, Res& res) {
      PluginState s = plugin.state();
      bool ready = s.serving && s.registered;
      res.Set(ready ? 200 : 503,
              ready ? "ready\n"
                    : std::string("not ready: ") +
                          (s.serving ? "not registered with kubelet" : "not serving") +
                          (s.last_error.empty() ? "" : " (" + s.last_error + ")") + "\n",
              "text/plain");
    });
    probe("/metrics", [&](const Req&, Res& res) {
      std::string m = RenderMetrics(plugin.state(), f.resource);
      m += "# HELP tdxvirt_node_label_publishes_total Label sets published.\n"
           "# TYPE tdxvirt_node_label_publishes_total counter\n"
           "tdxvirt_node_label_publishes_total " + std::to_string(label_publishes.load()) + "\n";
      m += "# HELP tdxvirt_node_label_errors_total Failed label publications.\n"
           "# TYPE tdxvirt_node_label_errors_total counter\n"
           "tdxvirt_node_label_errors_total " + std::to_string(label_errors.load()) + "\n";
      if (http) m += http::StatsText(http->stats(), "tdxvirt_node");
      res.Set(200, m, "text/plain; version=0.0.4");
    });
    http::ServerOptions ho;
    ho.host = listen->first;
    ho.port = listen->second;
    ho.limits.workers = 1;
    ho.limits.max_connections = 256;
    ho.limits.max_connections_per_source = 64;
    ho.on_response = [](const http::Event& e) {
      auto j = LogRecord(e.status < 400 ? "info" : e.status < 500 ? "warn" : "error", "node-agent", "request");
      http::AddLogFields(e, j);
      LogToStderr(LogLine(j));
    };
    auto server = http::Server::Create(std::move(ho), std::move(routes));
    Result<int> port = server.ok() ? (*server)->Start() : Result<int>(Error{server.error()});
    if (!port.ok()) {
      stop = true;
      pthread_kill(signals.native_handle(), SIGTERM);
      signals.join();
      plugin.Stop();
      return InputError("--listen " + f.listen + ": " + port.error());
    }
    http = std::move(*server);
    LogToStderr(LogLine("info", "node-agent", "http_listening",
                        listen->first + ":" + std::to_string(*port) + " (/healthz /readyz /metrics)"));
  }

  // Labels follow the host: re-derived when the devices change and every label interval, and
  // published only when they differ from what was last published.
  std::optional<LabelSet> published;
  bool labels_wanted = !sink->nfd_dir.empty() || sink->api;
  uint64_t gen = 0;
  while (!stop) {
    if (labels_wanted) {
      LabelSet labels = NodeLabels(DetectTdx(f.detect.root, ToOptions(f.detect)), sink->options);
      if (!published || *published != labels) {
        if (Status s = Publish(*sink, labels); s.ok()) {
          published = labels;
          ++label_publishes;
          LogToStderr(LogLine("info", "labels", "published", LabelsJson(labels).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
        } else {
          ++label_errors;
          LogToStderr(LogLine("warn", "labels", "publish_error", s.error()));
        }
      }
    }
    gen = plugin.WaitForChange(gen, std::chrono::seconds(f.label_interval_s));
  }

  if (http) http->Stop();
  signals.join();
  plugin.Stop();
  LogToStderr(LogLine("info", "node-agent", "stopped", "clean shutdown"));
  return kExitOk;
}

// The kubelet stand-in as a process: demos and footprint measurements of the agent.
int RunSimKubelet(const std::string& dir, const std::string& resource) {
  sigset_t stop_signals = BlockStopSignals();
  SimKubelet kubelet({.dir = dir});
  if (Status s = kubelet.Start(); !s.ok()) return InputError(s.error());
  std::atomic<bool> stop{false};
  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    stop = true;
  });
  std::string last;
  while (!stop) {
    auto devs = kubelet.Devices(resource);
    size_t healthy = 0;
    for (auto& d : devs) healthy += d.healthy;
    std::string now = std::to_string(healthy) + " of " + std::to_string(devs.size()) + " healthy";
    if (now != last) {
      nlohmann::ordered_json j;
      j["resource"] = resource;
      j["devices"] = devs.size();
      j["healthy"] = healthy;
      j["registrations"] = kubelet.registrations();
      std::cout << j.dump() << std::endl;
      last = now;
    }
    kubelet.WaitForDevices(resource, [&](const std::vector<PluginDevice>& d) {
      size_t h = 0;
      for (auto& x : d) h += x.healthy;
      return stop || std::to_string(h) + " of " + std::to_string(d.size()) + " healthy" != last;
    }, std::chrono::milliseconds(500));
  }
  signals.join();
  kubelet.Stop();
  return kExitOk;
}

}  // namespace

void AddNodeCommands(CLI::App& app, int& exit_code) {
  auto* node = app.add_subcommand("node", "TDX host: detection, node labels, simulated hosts");
  node->require_subcommand(1);

  auto detect_flags = std::make_shared<DetectFlags>();
  auto* detect = node->add_subcommand(
      "detect",
      "Is this a TDX host, and how many TDX keys are free? Prints JSON with a verdict and reason "
      "per check. Exit 0 ready, 1 not a usable TDX host, 2 usage error");
  AddDetectFlags(detect, *detect_flags, "--root");
  detect->callback([detect_flags, &exit_code] { exit_code = RunDetect(*detect_flags); });

  auto label_detect = std::make_shared<DetectFlags>();
  auto label_kube = std::make_shared<KubeFlags>();
  auto* label = node->add_subcommand(
      "label",
      "Detect once and publish the node labels (NFD feature file and/or Node patch). Exit 0 "
      "published, 1 publishing failed, 2 usage error");
  AddDetectFlags(label, *label_detect, "--root");
  AddLabelFlags(label, *label_kube);
  label->callback([label_detect, label_kube, &exit_code] {
    exit_code = RunLabel(*label_detect, *label_kube);
  });

  auto sim = std::make_shared<SimHostFlags>();
  auto* sim_host = node->add_subcommand(
      "sim-host", "Write a simulated TDX host tree (cpuinfo, kvm_intel tdx, misc cgroup) under a root");
  sim_host->add_option("--root", sim->root, "directory to write the tree under")->required();
  sim_host->add_option("--keys", sim->keys, "TDX keys (misc.capacity tdx; default 16)");
  sim_host->add_option("--used-outside", sim->used_outside, "keys used by TDs outside Kubernetes");
  sim_host->add_option("--used-by-kubernetes", sim->used_by_kubernetes,
                       "keys used by TDs in pods (kubepods.slice misc.current)");
  sim_host->add_flag("--usage-only", sim->usage_only,
                     "only rewrite misc.capacity/misc.current (a TD started or stopped)");
  sim_host->add_flag("--amd", sim->amd, "an AMD CPU");
  sim_host->add_flag("--no-tdx-flag", sim->no_flag, "no tdx_host_platform CPU flag");
  sim_host->add_flag("--kvm-tdx-off", sim->kvm_off, "kvm_intel tdx=N");
  sim_host->add_flag("--no-misc-cgroup", sim->no_misc, "no misc cgroup files");
  sim_host->add_option("--kernel", sim->kernel, "kernel release (default 6.16.0-tdxvirt-sim)");
  sim_host->callback([sim, &exit_code] { exit_code = RunSimHost(*sim); });

  auto sk_dir = std::make_shared<std::string>();
  auto sk_res = std::make_shared<std::string>(kDefaultResourceName);
  auto* sk = node->add_subcommand(
      "sim-kubelet",
      "Kubelet stand-in (device-plugin API v1beta1) on DIR/kubelet.sock: prints the resource's "
      "device counts as JSON lines until SIGTERM");
  sk->add_option("--dir", *sk_dir, "device-plugin directory")->required();
  sk->add_option("--resource-name", *sk_res, "resource to print");
  sk->callback([sk_dir, sk_res, &exit_code] { exit_code = RunSimKubelet(*sk_dir, *sk_res); });

  auto agent = std::make_shared<AgentFlags>();
  auto* serve = ServeCommand(app)->add_subcommand(
      "node-agent",
      "Node agent: TDX keys as a kubelet device-plugin resource (one device per key, following "
      "the host), node labels, /healthz /readyz /metrics. SIGTERM stops it and removes its socket");
  AddDetectFlags(serve, agent->detect, "--host-root");
  AddLabelFlags(serve, agent->kube);
  serve->add_option("--device-plugin-dir", agent->plugin_dir,
                    std::string("kubelet's device-plugin directory (default ") + kDefaultPluginDir +
                        ")");
  serve->add_option("--resource-name", agent->resource,
                    std::string("extended resource (default ") + kDefaultResourceName + ")");
  serve->add_option("--qgs-socket", agent->qgs_socket,
                    "host path of the QGS UNIX socket, e.g. /var/run/tdx-qgs/qgs.socket: its "
                    "directory is mounted into TD pods");
  serve->add_flag("--attestation-enforced", agent->enforced,
                  "devices are Unhealthy while the QGS socket is missing");
  serve->add_option("--poll-interval", agent->poll_ms,
                    "milliseconds between reads of the misc cgroup (default 1000)");
  serve->add_option("--label-interval", agent->label_interval_s,
                    "seconds between label re-checks (default 10)");
  serve->add_option("--listen", agent->listen, "HOST:PORT for /healthz /readyz /metrics");
  serve->callback([agent, &exit_code] { exit_code = RunAgent(*agent); });
}

}  // namespace tdxvirt::cli
