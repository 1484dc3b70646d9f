// The TDX key device plugin: kubelet's device-plugin API v1beta1 over gRPC on a UNIX socket.
//
// Devices are the host's TDX private KeyIDs: ids "tdx-key-0" .. "tdx-key-<capacity-1>". The first
// capacity - (keys used outside Kubernetes) are Healthy, the rest Unhealthy, so kubelet reports
// capacity = misc.capacity and allocatable = what pods may still get. Kubelet subtracts what it
// allocated itself; counting pods' keys again would double count (see host.h). GetPreferredAllocation
// steers kubelet to the lowest ids, so the ids marked Unhealthy are the ones least likely held.
//
// When attestation is configured (a QGS socket path), Allocate bind-mounts the socket's directory
// (read-only: connect() needs no writable mount) and, when it is enforced, a missing socket makes
// every device Unhealthy, so TDs are not scheduled where they could not get a quote.
//
// Following the host: a watcher thread re-reads the misc cgroup and the QGS socket every
// `poll_interval` (cgroup files cannot be watched), and watches the device-plugin directory with
// inotify: when kubelet.sock is re-created (kubelet restarted) it registers again, and when its
// own socket disappears (kubelet wipes the directory on start) it serves anew and registers again.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "node/host.h"

namespace grpc {
class Server;
}

namespace tdxvirt::node {

// Not KubeVirt's built-in devices.kubevirt.io/tdx nor the Intel fork's intel.kubevirt.io/tdx.
inline constexpr char kDefaultResourceName[] = "tdxvirt.io/tdx-key";
inline constexpr char kDefaultPluginDir[] = "/var/lib/kubelet/device-plugins";
inline constexpr char kKubeletSocketName[] = "kubelet.sock";
inline constexpr char kDevicePluginVersion[] = "v1beta1";
inline constexpr char kDeviceIdPrefix[] = "tdx-key-";
inline constexpr char kHealthy[] = "Healthy";
inline constexpr char kUnhealthy[] = "Unhealthy";
// HKIDs are bounded by the key-id bits of TME-MK; more than this is a malformed capacity.
inline constexpr int64_t kMaxDevices = 32768;

// Environment variables Allocate gives the container.
inline constexpr char kEnvKeyIds[] = "TDXVIRT_TDX_KEY_IDS";
inline constexpr char kEnvQgsSocket[] = "TDXVIRT_QGS_SOCKET";
inline constexpr char kEnvAttestationEnforced[] = "TDXVIRT_ATTESTATION_ENFORCED";

struct DevicePluginOptions {
  std::string host_root = "/";
  std::string resource_name = kDefaultResourceName;
  std::string plugin_dir = kDefaultPluginDir;  // holds kubelet.sock
  std::string socket_name;                     // "" = "tdxvirt-<resource name part>.sock"
  std::string qgs_socket_path;                 // "" = attestation not configured: no mount
  bool attestation_enforced = false;           // missing QGS socket -> Unhealthy
  std::string kubepods_cgroup;                 // see DetectOptions
  std::chrono::milliseconds poll_interval{1000};
  std::chrono::milliseconds register_timeout{10000};
  // Receives each JSON log line (no newline). Default: stderr.
  std::function<void(const std::string&)> log;
};

struct PluginDevice {
  std::string id;
  bool healthy = false;
};

// A snapshot for metrics, probes and tests.
struct PluginState {
  bool serving = false;
  bool registered = false;       // the last Register call succeeded
  uint64_t registrations = 0;    // successful Register calls
  uint64_t server_starts = 0;    // gRPC servers started (1 + restarts after the socket vanished)
  uint64_t generation = 0;       // bumps on each change of the device list
  uint64_t allocations = 0;      // Allocate container requests served
  uint64_t host_reads = 0;
  bool keys_ok = false;
  std::string keys_error;
  KeyCounts keys;
  bool qgs_present = false;
  size_t devices = 0, healthy = 0;
  std::string last_error;
};

// Validates a resource name as kubelet does for extended resources: "<domain>/<name>", the domain
// a DNS subdomain outside kubernetes.io, the name a DNS label-like string.
Status ValidateResourceName(const std::string& name);

// The device list for a host state (pure).
std::vector<PluginDevice> ComputeDevices(const KeyCounts& keys, bool keys_ok, bool qgs_ok);

class DevicePlugin {
 public:
  explicit DevicePlugin(DevicePluginOptions options);
  ~DevicePlugin();  // Stop()
  DevicePlugin(const DevicePlugin&) = delete;
  DevicePlugin& operator=(const DevicePlugin&) = delete;

  // Reads the host, serves on <plugin_dir>/<socket_name> and starts the watcher, which registers
  // with kubelet as soon as kubelet.sock accepts (now, or when it appears). Fails on bad options
  // or when the socket cannot be served.
  Status Start();
  // Ends ListAndWatch streams, stops serving, removes the socket. Idempotent.
  void Stop();

  PluginState state() const;
  std::vector<PluginDevice> devices() const;
  std::string socket_path() const { return socket_path_; }
  const DevicePluginOptions& options() const { return options_; }
  // Re-reads the host now instead of at the next poll (tests, and the agent after a signal).
  void Refresh();
  // Blocks until the device list generation differs from `seen` or `timeout`; returns the current
  // generation.
  uint64_t WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) const;
  // Makes every WaitForChange return now (the agent's signal thread).
  void WakeWaiters();

  class Service;  // the gRPC service (device_plugin.cc)

 private:
  friend class Service;
  bool ReadHost();  // true when the device list changed
  Status Serve();
  void StopServer();
  Status Register();
  void WatchLoop();
  void Log(const std::string& level, const std::string& event, const std::string& detail);

  DevicePluginOptions options_;
  std::string socket_path_, kubelet_socket_;
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  PluginState state_;
  std::vector<PluginDevice> devices_;
  bool stopping_ = false;
  uint64_t server_epoch_ = 0;
  uint64_t wake_seq_ = 0;  // ListAndWatch streams of an older server end
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::thread watcher_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Stop() and Refresh() wake the watcher
  std::atomic<bool> refresh_{false};
  bool started_ = false;
};

// Prometheus text exposition of a plugin state (the agent's /metrics).
std::string RenderMetrics(const PluginState& s, const std::string& resource_name);

}  // namespace tdxvirt::node
