#include "kube/cluster.h"

#include "kube/kubevirt_version.h"

namespace tdxvirt::kube {
namespace {

using Json = nlohmann::json;

// The object at a dotted path, nullptr when some step is absent or null; an error when a step is
// there but not an object.
Result<const Json*> Step(const Json& root, std::initializer_list<const char*> path,
                         const std::string& prefix) {
  const Json* at = &root;
  std::string where = prefix;
  for (const char* key : path) {
    where += std::string(".") + key;
    if (!at->is_object()) return Error{where + ": expected an object"};
    auto it = at->find(key);
    if (it == at->end() || it->is_null()) return static_cast<const Json*>(nullptr);
    at = &*it;
  }
  return at;
}

}  // namespace

Result<KubevirtCluster> ParseKubevirtList(const Json& list) {
  if (!list.is_object()) return Error{"KubeVirtList: expected a JSON object"};
  auto items = list.find("items");
  if (items == list.end() || !items->is_array())
    return Error{"KubeVirtList: no items array (is this the body of GET " +
                 std::string(kKubevirtListPath) + "?)"};
  if (items->empty())
    return Error{"no KubeVirt CR in the cluster (GET " + std::string(kKubevirtListPath) +
                 " listed none): install KubeVirt, or name the version explicitly"};
  const Json& kv = (*items)[0];
  if (!kv.is_object()) return Error{"items[0]: expected a KubeVirt object"};
  std::string name = "KubeVirt";
  if (auto md = Step(kv, {"metadata"}, "items[0]"); md.ok() && *md && (*md)->is_object()) {
    std::string ns = (*md)->value("namespace", std::string());
    std::string n = (*md)->value("name", std::string());
    if (!n.empty()) name += " " + (ns.empty() ? "" : ns + "/") + n.substr(0, 253);
  }

  KubevirtCluster c;
  auto version = Step(kv, {"status", "observedKubeVirtVersion"}, "items[0]");
  if (!version.ok()) return Error{name + ": " + version.error()};
  if (!*version || ((*version)->is_string() && (*version)->get<std::string>().empty()))
    return Error{name + " has no status.observedKubeVirtVersion yet (virt-operator has not "
                 "finished deploying it)"};
  if (!(*version)->is_string())
    return Error{name + ": status.observedKubeVirtVersion: expected a string"};
  c.observed_version = (*version)->get<std::string>();
  if (auto v = ParseKubevirtVersion(c.observed_version); !v.ok())
    return Error{name + ": status.observedKubeVirtVersion: " + v.error()};

  auto gates = Step(kv, {"spec", "configuration", "developerConfiguration", "featureGates"}, "items[0]");
  if (!gates.ok()) return Error{name + ": " + gates.error()};
  if (*gates) {
    if (!(*gates)->is_array())
      return Error{name + ": spec.configuration.developerConfiguration.featureGates: expected a list"};
    for (const Json& g : **gates) c.tdx_gate |= g.is_string() && g.get<std::string>() == kTdxFeatureGate;
  }

  const std::string att = "spec.configuration.confidentialCompute.tdx.attestation";
  auto cc = Step(kv, {"spec", "configuration", "confidentialCompute"}, "items[0]");
  if (!cc.ok()) return Error{name + ": " + cc.error()};
  if (*cc) {
    if (!(*cc)->is_object())
      return Error{name + ": spec.configuration.confidentialCompute: expected an object"};
    c.qgs_socket_path = kUpstreamDefaultQgsSocket;  // upstream's CRD default
    auto a = Step(**cc, {"tdx", "attestation"}, "spec.configuration.confidentialCompute");
    if (!a.ok()) return Error{name + ": " + a.error()};
    if (*a) {
      if (!(*a)->is_object()) return Error{name + ": " + att + ": expected an object"};
      if (auto p = (*a)->find("qgsSocketPath"); p != (*a)->end() && !p->is_null()) {
        if (!p->is_string()) return Error{name + ": " + att + ".qgsSocketPath: expected a string"};
        std::string path = p->get<std::string>();
        if (path.empty() || path[0] != '/' || path.size() > 4096 ||
            path.find('\0') != std::string::npos)
          return Error{name + ": " + att + ".qgsSocketPath \"" + path.substr(0, 200) +
                       "\": expected an absolute path"};
        c.qgs_socket_path = path;
      }
      if (auto e = (*a)->find("enforced"); e != (*a)->end() && !e->is_null()) {
        if (!e->is_boolean()) return Error{name + ": " + att + ".enforced: expected true or false"};
        c.attestation_enforced = e->get<bool>();
      }
    }
  }
  return c;
}

Result<KubevirtCluster> FetchKubevirtCluster(const KubeApiConfig& config) {
  auto j = GetJson(config, kKubevirtListPath,
                   "(the ServiceAccount needs get/list on kubevirts.kubevirt.io; see deploy/)");
  if (!j.ok()) return Error{j.error()};
  return ParseKubevirtList(*j);
}

ClusterWatcher::ClusterWatcher(KubeApiConfig config, std::chrono::milliseconds interval,
                               OnChange on_change, Fetch fetch)
    : config_(std::move(config)),
      interval_(std::max(interval, std::chrono::milliseconds(1))),
      on_change_(std::move(on_change)),
      fetch_(std::move(fetch)) {
  // The retry backoff waits here too, so Stop() need not wait it out.
  config_.backoff_wait = [this](std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [this] { return stopping_; });
    return !stopping_;
  };
}

ClusterWatcher::~ClusterWatcher() { Stop(); }

void ClusterWatcher::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void ClusterWatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ClusterWatcher::ReadNow() {
  {
    std::lock_guard lock(mu_);
    read_now_ = true;
  }
  cv_.notify_all();
}

std::optional<KubevirtCluster> ClusterWatcher::last() const {
  std::lock_guard lock(mu_);
  return last_;
}

std::string ClusterWatcher::last_error() const {
  std::lock_guard lock(mu_);
  return error_;
}

uint64_t ClusterWatcher::reads() const {
  std::lock_guard lock(mu_);
  return reads_;
}

uint64_t ClusterWatcher::WaitForRead(uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return reads_ > seen || stopping_; });
  return reads_;
}

void ClusterWatcher::Loop() {
  for (;;) {
    auto r = fetch_(config_);
    std::optional<KubevirtCluster> before;
    bool changed = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      before = last_;
      if (r.ok()) {
        changed = !last_ || *last_ != *r;
        last_ = *r;
        error_.clear();
      } else {
        error_ = r.error();
      }
    }
    // Before the read counts, so a waiter sees the change's effects.
    if (changed && on_change_) on_change_(*r, before);
    {
      std::unique_lock lock(mu_);
      ++reads_;
      cv_.notify_all();
      cv_.wait_for(lock, interval_, [this] { return stopping_ || read_now_; });
      read_now_ = false;
      if (stopping_) return;
    }
  }
}

}  // namespace tdxvirt::kube
