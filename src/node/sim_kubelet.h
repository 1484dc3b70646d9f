// A kubelet stand-in that speaks the real device-plugin API v1beta1 over real UNIX sockets: it
// serves Registration on <dir>/kubelet.sock and, on each Register, dials the plugin's endpoint,
// asks its options and consumes ListAndWatch, as kubelet's device manager does. Tests use it as
// the kubelet peer; the quickstart uses it to place TDs and show the (N+1)th finding no key.
//
// Like kubelet, it validates the API version and the resource name, replaces a resource's previous
// endpoint when the plugin registers again, marks a resource's devices Unhealthy when its stream
// ends, and allocates only healthy devices not already held. With `wipe_plugin_sockets`, Start()
// removes every other socket in the directory first, as kubelet does when it (re)starts.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "node/device_plugin.h"

namespace grpc {
class Server;
}

namespace tdxvirt::node {

struct SimKubeletOptions {
  std::string dir;  // the device-plugin directory
  bool wipe_plugin_sockets = false;
  std::chrono::milliseconds dial_timeout{10000};
};

struct SimAllocation {
  std::string resource;
  std::vector<std::string> device_ids;
  std::map<std::string, std::string> envs;
  struct Mount {
    std::string host_path, container_path;
    bool read_only = false;
  };
  std::vector<Mount> mounts;
};

class SimKubelet {
 public:
  explicit SimKubelet(SimKubeletOptions options);
  ~SimKubelet();  // Stop()
  SimKubelet(const SimKubelet&) = delete;
  SimKubelet& operator=(const SimKubelet&) = delete;

  Status Start();
  // Closes every stream and removes kubelet.sock (kubelet going away). Idempotent.
  void Stop();

  size_t registrations() const;            // accepted Register calls
  std::vector<std::string> resources() const;
  std::vector<PluginDevice> Devices(const std::string& resource) const;
  size_t HealthyCount(const std::string& resource) const;
  // The options the plugin answered GetDevicePluginOptions with; error before it connected.
  Result<std::pair<bool, bool>> PluginOptions(const std::string& resource) const;  // pre_start, preferred
  std::set<std::string> Allocated(const std::string& resource) const;

  // Waits until `pred` holds for the resource's device list (checked on every update).
  bool WaitForDevices(const std::string& resource,
                      const std::function<bool(const std::vector<PluginDevice>&)>& pred,
                      std::chrono::milliseconds timeout) const;
  bool WaitForRegistrations(size_t n, std::chrono::milliseconds timeout) const;

  // Admits a container asking for `n` devices, as kubelet does: picks from healthy devices not
  // already allocated (asking GetPreferredAllocation when offered), calls PreStartContainer when
  // required, then Allocate. Fails naming the shortage when fewer than `n` are free.
  Result<SimAllocation> Allocate(const std::string& resource, size_t n);
  // Raw calls, for tests of the plugin's answers to what kubelet would never send.
  Result<SimAllocation> AllocateIds(const std::string& resource, const std::vector<std::string>& ids);
  Result<std::vector<std::string>> PreferredAllocation(const std::string& resource,
                                                       const std::vector<std::string>& available,
                                                       const std::vector<std::string>& must_include,
                                                       int size);
  Status PreStartContainer(const std::string& resource, const std::vector<std::string>& ids);
  // The pod went away: its devices are free again.
  void Release(const SimAllocation& allocation);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tdxvirt::node
