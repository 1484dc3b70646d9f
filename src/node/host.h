// TDX host detection: what the kernel, KVM and libvirt say about running trust domains here, and
// how many TDX private KeyIDs (HKIDs, one per running TD) are left.
//
// Everything is read under a host root ("/" on a node, "/host" in the DaemonSet, a fake tree in
// tests). The parsers are pure functions over the file bytes; DetectTdx only adds bounded reads.
//
// Key accounting (see docs/node.md): the kernel charges one `tdx` unit of the misc cgroup per TD to
// the TD's cgroup. The root's misc.current counts every TD on the host; the kubepods cgroup's
// misc.current counts those started by Kubernetes pods. Keys used outside Kubernetes are the
// difference, and only those are taken away from what the device plugin offers: kubelet already
// subtracts the keys it handed to pods.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace tdxvirt::node {

// Paths relative to the host root.
inline constexpr char kCpuinfoPath[] = "proc/cpuinfo";
inline constexpr char kKvmIntelTdxPath[] = "sys/module/kvm_intel/parameters/tdx";
inline constexpr char kOsReleasePath[] = "proc/sys/kernel/osrelease";
inline constexpr char kCgroupRoot[] = "sys/fs/cgroup";  // cgroup v2; v1 has the misc/ hierarchy
inline constexpr char kMiscResourceTdx[] = "tdx";

// Reads of host files are bounded (cpuinfo of a big machine is about 1.5 KiB per CPU).
inline constexpr size_t kMaxHostFileSize = 4 << 20;
inline constexpr size_t kMaxDomCapabilitiesSize = 4 << 20;

// ---- Parsers (pure) ----

struct CpuInfo {
  std::string vendor_id;         // "GenuineIntel"; "" when the file has none (not x86)
  bool tdx_host_platform = false;  // BIOS/SEAM partitioned TDX keys
  bool tdx_guest = false;          // this "host" is itself a TD
  size_t processors = 0;
};
// /proc/cpuinfo text; vendor and flags of the first processor. Fails when no processor is listed.
Result<CpuInfo> ParseCpuinfo(std::string_view text);

// misc.capacity / misc.current: lines "<resource> <value>". The value of `resource`, nullopt when
// the file has no such line; an error when the line is malformed.
Result<std::optional<int64_t>> ParseMiscValue(std::string_view text, std::string_view resource);

// A boolean module parameter as sysfs shows it: "Y" / "N" (also "1" / "0"), trailing newline.
Result<bool> ParseModuleBool(std::string_view text);

struct KernelVersion {
  int major = 0, minor = 0, patch = 0;
  std::string release;  // the whole osrelease text, e.g. "6.16.0-1-amd64"
  bool AtLeast(int ma, int mi) const { return major > ma || (major == ma && minor >= mi); }
};
Result<KernelVersion> ParseKernelRelease(std::string_view text);
// KVM TDX host support was merged in Linux 6.16.
inline constexpr int kTdxKernelMajor = 6, kTdxKernelMinor = 16;

struct DomCapsTdx {
  bool tdx_supported = false;  // <features><tdx supported='yes'/> (what KubeVirt labels on)
  bool sectype_tdx = false;    // <launchSecurity supported='yes'> with sectype value tdx
};
// `virsh domcapabilities` XML. Fails on text that is not a <domainCapabilities> document.
Result<DomCapsTdx> ParseDomCapabilities(std::string_view xml);

// ---- Detection ----

struct DetectOptions {
  // `virsh domcapabilities` output saved to a file; "" skips the libvirt check.
  std::string domcapabilities_file;
  // The cgroup of Kubernetes pods, relative to sys/fs/cgroup; "" tries kubepods.slice (systemd
  // driver) then kubepods (cgroupfs driver).
  std::string kubepods_cgroup;
};

enum class Verdict { kPass, kFail, kWarn, kSkip };
std::string_view ToString(Verdict v);  // "pass", "fail", "warn", "skip"

struct Check {
  std::string name;    // "cpu_vendor", "cpu_flag", "kvm_intel_tdx", "kernel", "misc_cgroup", ...
  Verdict verdict = Verdict::kSkip;
  std::string value;   // what was read, e.g. "GenuineIntel", "tdx 64", "N"
  std::string reason;  // why, and the fix when it failed
};

struct KeyCounts {
  int64_t capacity = 0;          // root misc.capacity "tdx"
  int64_t used = 0;              // root misc.current "tdx": every running TD
  int64_t used_by_kubernetes = 0;  // kubepods misc.current (0 when unknown)
  bool kubernetes_usage_known = false;
  int64_t used_outside() const;  // used - used_by_kubernetes, or 0 when that is unknown
  // What the device plugin offers: capacity minus keys used outside Kubernetes (never < 0).
  int64_t available_to_kubernetes() const;
  int64_t free() const;  // capacity - used (never < 0)
};

struct TdxDetection {
  bool tdx_enabled = false;  // Intel CPU with tdx_host_platform and kvm_intel tdx=Y
  bool keys_known = false;   // misc cgroup has a tdx capacity
  bool ready = false;        // tdx_enabled, keys known and capacity > 0 (libvirt too, if checked)
  std::string summary;       // one line: the first failure's reason, or the key counts
  CpuInfo cpu;
  std::optional<KernelVersion> kernel;
  KeyCounts keys;
  std::vector<Check> checks;
};

// Never fails: unreadable or malformed inputs become failed checks naming the file and the fix.
TdxDetection DetectTdx(const std::string& root, const DetectOptions& options = {});
nlohmann::ordered_json ToJson(const TdxDetection& d);

// Only the key counts (the device plugin's poll): misc files of the root and kubepods cgroups.
Result<KeyCounts> ReadKeyCounts(const std::string& root, const std::string& kubepods_cgroup = "");

// ---- Simulated host tree (tests and the quickstart) ----

struct SimHostOptions {
  int64_t keys = 16;  // misc.capacity tdx
  int64_t used_outside = 0;
  int64_t used_by_kubernetes = 0;
  bool intel = true;              // vendor_id GenuineIntel (else AuthenticAMD)
  bool tdx_host_platform = true;  // cpuinfo flag
  bool kvm_tdx = true;            // kvm_intel tdx=Y (else N)
  bool misc_cgroup = true;        // write misc.capacity / misc.current
  std::string kernel = "6.16.0-tdxvirt-sim";
  std::string kubepods_cgroup = "kubepods.slice";  // "" = no kubepods cgroup
};
// Writes proc/cpuinfo, proc/sys/kernel/osrelease, sys/module/kvm_intel/parameters/tdx and the
// misc cgroup files under `root` (created as needed).
Status WriteSimulatedTdxHost(const std::string& root, const SimHostOptions& options = {});
// A TD started or stopped outside (or inside) Kubernetes, or a new capacity: rewrites the misc
// files atomically so a reader never sees half of them. nullopt keeps the current capacity.
Status SetSimulatedKeyUsage(const std::string& root, int64_t used_outside,
                            int64_t used_by_kubernetes = 0,
                            std::optional<int64_t> capacity = std::nullopt,
                            const std::string& kubepods_cgroup = "kubepods.slice");

}  // namespace tdxvirt::node
