// What the KubeVirt CR says about the cluster: the release that runs (status.observedKubeVirtVersion)
// and, from v1.9, its TDX attestation settings. The webhook and the node agent act per release
// ("kubevirtVersion: auto", `--kubevirt-version auto`) and take the QGS socket path from the CR
// rather than a second setting that could disagree (shared/reference/kubevirt-versions.md §4, §5).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "kube/client.h"

namespace tdxvirt::kube {

// The KubeVirt CRs of every namespace (KubeVirt accepts one; its namespace varies by installer).
inline constexpr char kKubevirtListPath[] = "/apis/kubevirt.io/v1/kubevirts";
inline constexpr char kTdxFeatureGate[] = "WorkloadEncryptionTDX";

struct KubevirtCluster {
  std::string observed_version;  // "v1.9.0" as reported; parses with ParseKubevirtVersion
  // spec.configuration.confidentialCompute.tdx.attestation.qgsSocketPath; upstream's default when
  // confidentialCompute is there without it; nullopt when the CR has no confidentialCompute
  // (before v1.9, or not configured).
  std::optional<std::string> qgs_socket_path;
  bool attestation_enforced = false;  // ...attestation.enforced
  bool tdx_gate = false;  // WorkloadEncryptionTDX in developerConfiguration.featureGates
  bool operator==(const KubevirtCluster&) const = default;
};

// The body of GET /apis/kubevirt.io/v1/kubevirts (a KubeVirtList): its first item. Errors name what
// is missing (no KubeVirt CR; no status.observedKubeVirtVersion yet) or the field of wrong type.
Result<KubevirtCluster> ParseKubevirtList(const nlohmann::json& list);

// GET kKubevirtListPath and parse it. The 401/403 error names the RBAC needed.
Result<KubevirtCluster> FetchKubevirtCluster(const KubeApiConfig& config);

// Re-reads the KubeVirt CR every `interval` on its own thread and keeps the last good value and
// the last error. Stop() returns promptly: the wait between reads and the retry backoff wait on a
// condition variable (an attempt in flight ends within the config's timeout).
class ClusterWatcher {
 public:
  using Fetch = std::function<Result<KubevirtCluster>(const KubeApiConfig&)>;
  // Called on the watcher's thread when a read gives a value different from the last good one
  // (`before` is nullopt on the first).
  using OnChange = std::function<void(const KubevirtCluster& now,
                                      const std::optional<KubevirtCluster>& before)>;

  ClusterWatcher(KubeApiConfig config, std::chrono::milliseconds interval, OnChange on_change = {},
                 Fetch fetch = FetchKubevirtCluster);
  ~ClusterWatcher();  // Stop()
  ClusterWatcher(const ClusterWatcher&) = delete;
  ClusterWatcher& operator=(const ClusterWatcher&) = delete;

  void Start();  // the first read starts at once
  void Stop();   // idempotent

  std::optional<KubevirtCluster> last() const;  // the last good value (kept across errors)
  std::string last_error() const;               // "" after a good read
  uint64_t reads() const;                       // reads completed, good or not
  // Blocks until more than `seen` reads completed, Stop(), or `timeout`; returns reads().
  uint64_t WaitForRead(uint64_t seen, std::chrono::milliseconds timeout) const;
  void ReadNow();  // ends the current wait between reads

 private:
  void Loop();

  KubeApiConfig config_;
  std::chrono::milliseconds interval_;
  OnChange on_change_;
  Fetch fetch_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::optional<KubevirtCluster> last_;
  std::string error_ = "not read yet";
  uint64_t reads_ = 0;
  bool stopping_ = false, read_now_ = false;
  std::thread thread_;
};

}  // namespace tdxvirt::kube
