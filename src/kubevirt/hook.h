// The hook sidecar: KubeVirt hands it the VMI and the domain XML it generated, and defines what
// the hook returns. Two forms share OnDefineDomain:
//  - the sidecar-shim contract: an executable `onDefineDomain --vmi JSON --domain XML` printing
//    the new XML (`tdxvirt hook on-define-domain`);
//  - the native gRPC hooks server (Info + Callbacks v1alpha2/v1alpha3) on a UNIX socket under
//    /var/run/kubevirt-hooks/ (`tdxvirt serve hook`).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "kubevirt/settings.h"

namespace tdxvirt::kubevirt {

inline constexpr char kDefaultHookSocket[] = "/var/run/kubevirt-hooks/tdxvirt-tdx.sock";
inline constexpr char kHookName[] = "tdxvirt-tdx";

// A VMI that asks for TDX gets ApplyTdx with its settings (annotations the webhook wrote, spec
// fields, cluster defaults); any other VMI's domain comes back unchanged.
Result<std::string> OnDefineDomain(std::string_view vmi_json, std::string_view domain_xml,
                                   const ClusterSettings& settings);

struct HookServerOptions {
  std::vector<std::string> versions = {"v1alpha2", "v1alpha3"};
  std::function<void(const std::string&)> log;  // one JSON line per event; default stderr
};

class HookServer {
 public:
  HookServer(ClusterSettings settings, HookServerOptions options = {});
  ~HookServer();
  HookServer(const HookServer&) = delete;
  HookServer& operator=(const HookServer&) = delete;

  // Binds the UNIX socket (a stale socket file is replaced) and serves in background threads.
  Status Start(const std::string& socket_path);
  // Returns when Stop() is called or virt-launcher calls v1alpha3 Shutdown.
  void Wait();
  void Stop();
  // Makes Wait() return (safe from another thread, e.g. a signal waiter); Stop() still follows.
  void Interrupt();
  uint64_t calls() const { return calls_.load(); }

 public:
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::vector<std::shared_ptr<void>> services_;  // outlive the gRPC server
  std::atomic<uint64_t> calls_{0};

 public:
  // For the services (defined in hook.cc).
  friend struct Impl;
};

}  // namespace tdxvirt::kubevirt
