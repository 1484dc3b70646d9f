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
#include "common/time.h"
#include "node/device_plugin.h"
#include "node/host.h"
#include "kube/cluster.h"
#include "kube/kubevirt_version.h"
#include "node/kubevirt_mode.h"
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
  std::string kubevirt_version = "auto";
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
                "also set kubevirt.io/tdx=true (the label KubeVirt's TD pods select on); KubeVirt "
                "1.6 only: from 1.7 virt-handler owns it and the flag is ignored");
  cmd->add_option("--kubevirt-version", k.kubevirt_version,
                  "KubeVirt release: auto (default; reads the KubeVirt CR through the API: "
                  "in-cluster or --kube-api-server) or 1.6, 1.7, 1.8, 1.9. From 1.9 no device "
                  "plugin runs (KubeVirt's devices.kubevirt.io/tdx counts the keys)");
}

// Where labels go, checked before anything runs.
struct LabelSink {
  std::string nfd_dir;
  std::optional<KubeApiConfig> api;
  std::string node;
};

Result<LabelSink> MakeSink(const KubeFlags& k, bool required) {
  LabelSink s;
  s.nfd_dir = k.nfd_dir;
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
      auto c = InClusterConfig(kServiceAccountDir, "use --nfd-dir, or run in-cluster");
      if (!c.ok()) return Error{"--kube-labels: " + c.error()};
      s.api = *c;
    }
  }
  if (required && s.nfd_dir.empty() && !s.api)
    return Error{"say where labels go: --nfd-dir DIR and/or --kube-labels"};
  return s;
}

// Which KubeVirt release to act for: named, or read from the KubeVirt CR (auto).
struct VersionSource {
  std::optional<kube::KubevirtVersion> fixed;
  std::optional<KubeApiConfig> api;  // auto: where the CR is read
};

Result<VersionSource> MakeVersionSource(const KubeFlags& k, const LabelSink& sink) {
  VersionSource v;
  if (k.kubevirt_version != "auto") {
    auto parsed = ParseExplicitKubevirtVersion(k.kubevirt_version);
    if (!parsed.ok()) return Error{parsed.error()};
    v.fixed = *parsed;
    return v;
  }
  if (sink.api) {
    v.api = *sink.api;
    return v;
  }
  auto c = InClusterConfig(kServiceAccountDir,
                           "run in-cluster with a ServiceAccount, pass --kube-api-server/"
                           "--kube-token-file/--kube-ca-file, or name the release: "
                           "--kubevirt-version 1.6|1.7|1.8|1.9");
  if (!c.ok()) return Error{"--kubevirt-version auto reads the KubeVirt CR through the Kubernetes "
                            "API: " + c.error()};
  v.api = *c;
  return v;
}

std::string KubevirtLabelIgnored(const AgentMode& m) {
  return "virt-handler owns " + std::string(kKubevirtTdxLabel) + " from KubeVirt 1.7 (this is " +
         m.version.Text() + "): --kubevirt-label is ignored and the agent never writes it";
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
  auto source = MakeVersionSource(k, *sink);
  if (!source.ok()) return InputError(source.error());
  kube::KubevirtVersion version;
  if (source->fixed) {
    version = *source->fixed;
  } else {
    auto c = kube::FetchKubevirtCluster(*source->api);
    auto v = c.ok() ? kube::ParseKubevirtVersion(c->observed_version)
                    : Result<kube::KubevirtVersion>(Error{c.error()});
    if (!v.ok()) {
      std::cerr << "tdxvirt: error: reading the KubeVirt version: " << v.error() << "\n";
      return kExitNegative;
    }
    version = *v;
  }
  AgentMode mode = AgentModeFor(version, k.kubevirt_label);
  if (mode.kubevirt_label_refused) std::cerr << "warning: " << KubevirtLabelIgnored(mode) << "\n";
  TdxDetection d = DetectTdx(f.root, ToOptions(f));
  LabelSet labels = NodeLabels(d, LabelOptionsFor(mode));
  if (Status s = Publish(*sink, labels); !s.ok()) {
    std::cerr << "tdxvirt: error: publishing labels: " << s.error() << "\n";
    return kExitNegative;
  }
  nlohmann::ordered_json j;
  j["labels"] = LabelsJson(labels);
  j["summary"] = d.summary;
  j["kubevirt_version"] = version.Text();
  j["mode"] = mode.Name();
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

// The agent's state shared by its loop, the HTTP probes and the signal thread.
struct AgentState {
  std::mutex mu;
  std::condition_variable wake;
  uint64_t wakes = 0;
  std::optional<AgentMode> mode;        // nullopt: the KubeVirt version is not known yet
  std::shared_ptr<DevicePlugin> plugin;  // set while the mode runs the device plugin
  std::string plugin_error;             // why the mode's plugin is not running
  bool keys_known = false;
  int64_t keys_used_outside = 0;
  bool labels_ok = true;
  std::string labels_error;
  uint64_t label_publishes = 0, label_errors = 0, events = 0, event_errors = 0, mode_changes = 0;

  std::shared_ptr<DevicePlugin> Plugin() {
    std::lock_guard lock(mu);
    return plugin;
  }
  void Wake() {
    std::shared_ptr<DevicePlugin> p;
    {
      std::lock_guard lock(mu);
      ++wakes;
      p = plugin;
    }
    wake.notify_all();
    if (p) p->WakeWaiters();
  }
};

int RunAgent(const AgentFlags& f) {
  if (Status s = CheckRoot(f.detect.root); !s.ok()) return InputError("--host-root: " + s.error());
  if (f.poll_ms < 10 || f.poll_ms > 3600000)
    return InputError("--poll-interval must be 10..3600000 milliseconds");
  if (f.label_interval_s < 1 || f.label_interval_s > 86400)
    return InputError("--label-interval must be 1..86400 seconds");
  if (Status s = ValidateResourceName(f.resource); !s.ok()) return InputError(s.error());
  auto sink = MakeSink(f.kube, false);
  if (!sink.ok()) return InputError(sink.error());
  auto source = MakeVersionSource(f.kube, *sink);
  if (!source.ok()) return InputError(source.error());
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

  AgentState st;
  auto log = [](const std::string& level, const std::string& event, const std::string& detail) {
    LogToStderr(LogLine(level, "node-agent", event, detail));
  };

  // Switches to `want`: the device plugin runs only where KubeVirt has no key resource (<= 1.8).
  auto apply_mode = [&](const std::optional<AgentMode>& want) -> Status {
    std::shared_ptr<DevicePlugin> old;
    bool need_plugin = false;
    {
      std::lock_guard lock(st.mu);
      bool same = st.mode == want;
      need_plugin = want && want->device_plugin && !st.plugin;
      if (same && !need_plugin) return OkStatus();
      if (!same) {
        log("info", "kubevirt_mode",
            want ? "KubeVirt " + want->version.Text() + ": " + want->Name() +
                       (st.mode ? " (was KubeVirt " + st.mode->version.Text() + ": " + st.mode->Name() + ")" : "")
                 : "KubeVirt version unknown");
        if (want && want->kubevirt_label_refused) log("warn", "kubevirt_label_ignored", KubevirtLabelIgnored(*want));
        if (want && want->report_keys_outside)
          log("info", "device_plugin_off",
              std::string(kube::kUpstreamKeyResource) + " (KubeVirt's device plugin) counts the "
              "keys and mounts the QGS directory; reporting keys used outside Kubernetes instead");
        ++st.mode_changes;
        st.mode = want;
      }
      if (st.plugin && !(want && want->device_plugin)) old = std::move(st.plugin);
    }
    if (old) old->Stop();
    if (!need_plugin) return OkStatus();
    auto plugin = std::make_shared<DevicePlugin>(po);
    Status s = plugin->Start();
    std::lock_guard lock(st.mu);
    if (!s.ok()) {
      st.plugin_error = s.error();
      return s;
    }
    st.plugin = plugin;
    st.plugin_error.clear();
    return OkStatus();
  };

  std::unique_ptr<kube::ClusterWatcher> watcher;
  if (source->fixed) {
    if (Status s = apply_mode(AgentModeFor(*source->fixed, f.kube.kubevirt_label)); !s.ok())
      return InputError(s.error());
  } else {
    KubeApiConfig c = *source->api;
    c.user_agent = "tdxvirt-node-agent";
    watcher = std::make_unique<kube::ClusterWatcher>(
        c, std::chrono::seconds(f.label_interval_s),
        [&st](const kube::KubevirtCluster&, const std::optional<kube::KubevirtCluster>&) { st.Wake(); });
  }

  std::atomic<bool> stop{false};
  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    stop = true;
    LogToStderr(LogLine("info", "node-agent", "signal",
                        std::string(sig == SIGTERM ? "SIGTERM" : "SIGINT") + ": stopping"));
    st.Wake();
  });
  auto stop_all = [&] {
    if (watcher) watcher->Stop();
    signals.join();
    std::shared_ptr<DevicePlugin> p;
    {
      std::lock_guard lock(st.mu);
      p = std::move(st.plugin);
    }
    if (p) p->Stop();
  };

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
    // Ready means: the release is known and what its mode runs works.
    probe("/readyz", [&](const Req&, Res& res) {
      std::unique_lock lock(st.mu);
      auto not_ready = [&](const std::string& why) { res.Set(503, "not ready: " + why + "\n", "text/plain"); };
      if (!st.mode) {
        lock.unlock();
        return not_ready("KubeVirt version unknown: " +
                         (watcher ? watcher->last_error() : std::string("not read yet")));
      }
      AgentMode mode = *st.mode;
      std::string prefix = "KubeVirt " + mode.version.Text() + ": ";
      if (mode.device_plugin) {
        auto plugin = st.plugin;
        std::string perr = st.plugin_error;
        lock.unlock();
        if (!plugin) return not_ready(prefix + "device plugin not running (" + perr + ")");
        PluginState s = plugin->state();
        if (!(s.serving && s.registered))
          return not_ready(prefix + (s.serving ? "not registered with kubelet" : "not serving") +
                           (s.last_error.empty() ? "" : " (" + s.last_error + ")"));
        return res.Set(200, "ready: " + prefix + "device plugin " + f.resource + " registered\n",
                       "text/plain");
      }
      if (!st.labels_ok) return not_ready(prefix + "publishing labels failed: " + st.labels_error);
      res.Set(200, "ready: " + prefix + kube::kUpstreamKeyResource +
                       " counts the keys; reporting keys used outside Kubernetes\n",
              "text/plain");
    });
    probe("/metrics", [&](const Req&, Res& res) {
      std::string m;
      if (auto plugin = st.Plugin()) m += RenderMetrics(plugin->state(), f.resource);
      std::lock_guard lock(st.mu);
      auto counter = [&](const std::string& name, const std::string& help, const std::string& type,
                         const std::string& labels, uint64_t v) {
        m += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + labels +
             " " + std::to_string(v) + "\n";
      };
      if (st.mode)
        counter("tdxvirt_node_kubevirt_info", "The KubeVirt release the agent acts for, and its mode.",
                "gauge", "{version=\"" + st.mode->version.Text() + "\",mode=\"" + st.mode->Name() + "\"}", 1);
      if (st.keys_known)
        counter("tdxvirt_node_tdx_keys_used_outside", "TDX keys held by TDs outside Kubernetes.",
                "gauge", "", uint64_t(st.keys_used_outside));
      counter("tdxvirt_node_kubevirt_mode_changes_total", "Switches of the KubeVirt mode.", "counter", "",
              st.mode_changes);
      counter("tdxvirt_node_label_publishes_total", "Label sets published.", "counter", "",
              st.label_publishes);
      counter("tdxvirt_node_label_errors_total", "Failed label publications.", "counter", "",
              st.label_errors);
      counter("tdxvirt_node_events_total", "Events posted on the Node.", "counter", "", st.events);
      counter("tdxvirt_node_event_errors_total", "Events that could not be posted.", "counter", "",
              st.event_errors);
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
      stop_all();
      return InputError("--listen " + f.listen + ": " + port.error());
    }
    http = std::move(*server);
    LogToStderr(LogLine("info", "node-agent", "http_listening",
                        listen->first + ":" + std::to_string(*port) + " (/healthz /readyz /metrics)"));
  }
  if (watcher) watcher->Start();

  // Each round: the mode (auto: from the watcher's last good read), then the labels, re-derived
  // when the devices change and every label interval and published only when they differ from
  // what was last published; on 1.9+ an Event when the keys used outside change to non-zero.
  std::optional<LabelSet> published;
  std::optional<int64_t> reported_outside;
  bool labels_wanted = !sink->nfd_dir.empty() || sink->api;
  uint64_t gen = 0;
  while (!stop) {
    std::optional<AgentMode> want;
    if (source->fixed) {
      want = AgentModeFor(*source->fixed, f.kube.kubevirt_label);
    } else if (auto c = watcher->last()) {
      if (auto v = kube::ParseKubevirtVersion(c->observed_version); v.ok())
        want = AgentModeFor(*v, f.kube.kubevirt_label);
    }
    if (Status s = apply_mode(want); !s.ok()) log("error", "device_plugin_start", s.error());

    if (want) {
      TdxDetection d = DetectTdx(f.detect.root, ToOptions(f.detect));
      {
        std::lock_guard lock(st.mu);
        st.keys_known = d.keys_known;
        st.keys_used_outside = d.keys_known ? d.keys.used_outside() : 0;
      }
      LabelSet labels = NodeLabels(d, LabelOptionsFor(*want));
      if (labels_wanted && (!published || *published != labels)) {
        Status s = Publish(*sink, labels);
        std::lock_guard lock(st.mu);
        st.labels_ok = s.ok();
        st.labels_error = s.ok() ? "" : s.error();
        if (s.ok()) {
          published = labels;
          ++st.label_publishes;
          log("info", "published", LabelsJson(labels).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        } else {
          ++st.label_errors;
          log("warn", "publish_error", s.error());
        }
      }
      if (want->report_keys_outside && d.keys_known) {
        int64_t outside = d.keys.used_outside();
        if (outside == 0) {
          reported_outside = 0;
        } else if (reported_outside != outside) {
          log("warn", "keys_used_outside",
              std::to_string(outside) + " TDX keys used outside Kubernetes; " +
                  kube::kUpstreamKeyResource + " still offers " + std::to_string(d.keys.capacity));
          Status s = OkStatus();
          if (sink->api) {
            auto now = std::chrono::system_clock::now().time_since_epoch();
            s = PostNodeEvent(*sink->api,
                              KeysUsedOutsideEvent(
                                  sink->node, outside, d.keys.capacity,
                                  std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(),
                                  FormatRfc3339(std::chrono::duration_cast<std::chrono::seconds>(now).count())));
          }
          std::lock_guard lock(st.mu);
          if (s.ok()) {
            reported_outside = outside;
            st.events += sink->api ? 1 : 0;
          } else {
            ++st.event_errors;  // tried again next round
            log("warn", "event_error", s.error());
          }
        }
      }
    }

    auto timeout = std::chrono::seconds(f.label_interval_s);
    if (auto plugin = st.Plugin()) {
      gen = plugin->WaitForChange(gen, timeout);
    } else {
      std::unique_lock lock(st.mu);
      uint64_t w = st.wakes;
      st.wake.wait_for(lock, timeout, [&] { return stop || st.wakes != w; });
    }
  }

  if (http) http->Stop();
  stop_all();
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
