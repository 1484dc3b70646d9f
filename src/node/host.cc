#include "node/host.h"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <filesystem>

#include <pugixml.hpp>

#include "common/file.h"

namespace tdxvirt::node {
namespace {

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Calls f(line) for each line (without the newline); stops when f returns false.
template <typename F>
void ForEachLine(std::string_view text, F f) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!f(line)) return;
    if (nl == std::string_view::npos) return;
    text.remove_prefix(nl + 1);
  }
}

bool ParseInt64(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string Join(const std::string& root, const std::string& rel) {
  if (root.empty() || root == "/") return "/" + rel;
  return root.back() == '/' ? root + rel : root + "/" + rel;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool ExistsNoFollow(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Host files are read only when they are regular files, never blocking: a FIFO, device or
// directory in a file's place (a broken or hostile host root) is an error naming it, not a hang.
// Symbolic links are not followed (one could point out of the host root). "-" (standard input,
// `virsh domcapabilities | tdxvirt node detect --domcapabilities -`) is a pipe by design.
Result<std::string> ReadText(const std::string& path, size_t max = kMaxHostFileSize,
                             bool follow_symlinks = false) {
  auto bytes = path == "-" ? ReadFile(path, max) : ReadRegularFile(path, max, follow_symlinks);
  if (!bytes.ok()) return Error{bytes.error()};
  return std::string(bytes->begin(), bytes->end());
}

// The kubepods cgroup directory (absolute), or "" when none exists.
std::string FindKubepods(const std::string& root, const std::string& configured) {
  std::string base = Join(root, kCgroupRoot);
  if (!configured.empty()) {
    std::string p = base + "/" + configured;
    return Exists(p) ? p : "";
  }
  for (const char* name : {"kubepods.slice", "kubepods"}) {
    std::string p = base + "/" + name;
    if (Exists(p)) return p;
  }
  return "";
}

}  // namespace

Result<CpuInfo> ParseCpuinfo(std::string_view text) {
  CpuInfo info;
  bool flags_seen = false;
  ForEachLine(text, [&](std::string_view line) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return true;
    std::string_view key = Trim(line.substr(0, colon));
    std::string_view value = Trim(line.substr(colon + 1));
    if (key == "processor") {
      ++info.processors;
    } else if (key == "vendor_id" && info.vendor_id.empty()) {
      info.vendor_id = std::string(value.substr(0, 64));
    } else if (key == "flags" && !flags_seen) {
      flags_seen = true;
      while (!value.empty()) {
        size_t sp = value.find_first_of(" \t");
        std::string_view flag = value.substr(0, sp);
        if (flag == "tdx_host_platform") info.tdx_host_platform = true;
        if (flag == "tdx_guest") info.tdx_guest = true;
        if (sp == std::string_view::npos) break;
        value = Trim(value.substr(sp));
      }
    }
    return true;
  });
  if (info.processors == 0)
    return Error{"no \"processor\" line: not a /proc/cpuinfo (is the host root right?)"};
  return info;
}

Result<std::optional<int64_t>> ParseMiscValue(std::string_view text, std::string_view resource) {
  std::optional<int64_t> found;
  std::string error;
  ForEachLine(text, [&](std::string_view line) {
    line = Trim(line);
    if (line.empty()) return true;
    size_t sp = line.find_first_of(" \t");
    if (sp == std::string_view::npos || line.substr(0, sp) != resource) return true;
    std::string_view value = Trim(line.substr(sp));
    int64_t v = 0;
    // "max" only appears in misc.max, never in misc.capacity or misc.current.
    if (!ParseInt64(value, v) || v < 0) {
      error = std::string(resource) + " line \"" + std::string(line.substr(0, 80)) +
              "\": the value is not a non-negative integer";
      return false;
    }
    found = v;
    return false;
  });
  if (!error.empty()) return Error{error};
  return found;
}

Result<bool> ParseModuleBool(std::string_view text) {
  std::string_view v = Trim(text);
  if (v == "Y" || v == "1") return true;
  if (v == "N" || v == "0") return false;
  return Error{"expected Y or N, got \"" + std::string(v.substr(0, 32)) + "\""};
}

Result<KernelVersion> ParseKernelRelease(std::string_view text) {
  KernelVersion k;
  std::string_view v = Trim(text);
  k.release = std::string(v.substr(0, 256));
  int* parts[] = {&k.major, &k.minor, &k.patch};
  size_t i = 0, n = 0;
  for (int* part : parts) {
    size_t start = i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9' && i - start < 6) ++i;
    if (i == start) {
      if (n >= 2) break;  // "6.16" without a patch level
      return Error{"kernel release \"" + k.release + "\" does not start with MAJOR.MINOR"};
    }
    std::from_chars(v.data() + start, v.data() + i, *part);
    ++n;
    if (i < v.size() && v[i] == '.' && n < 3) ++i;
    else break;
  }
  if (n < 2) return Error{"kernel release \"" + k.release + "\" does not start with MAJOR.MINOR"};
  return k;
}

Result<DomCapsTdx> ParseDomCapabilities(std::string_view xml) {
  pugi::xml_document doc;
  auto parsed = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed)
    return Error{std::string("domain capabilities: not XML (") + parsed.description() +
                 " at byte " + std::to_string(parsed.offset) + ")"};
  pugi::xml_node caps = doc.child("domainCapabilities");
  if (!caps) return Error{"domain capabilities: no <domainCapabilities> root element"};
  DomCapsTdx out;
  pugi::xml_node features = caps.child("features");
  out.tdx_supported = std::string_view(features.child("tdx").attribute("supported").value()) == "yes";
  pugi::xml_node ls = features.child("launchSecurity");
  if (std::string_view(ls.attribute("supported").value()) == "yes") {
    for (pugi::xml_node e : ls.children("enum")) {
      if (std::string_view(e.attribute("name").value()) != "sectype") continue;
      for (pugi::xml_node v : e.children("value"))
        if (std::string_view(v.text().get()) == "tdx") out.sectype_tdx = true;
    }
  }
  return out;
}

std::string_view ToString(Verdict v) {
  switch (v) {
    case Verdict::kPass: return "pass";
    case Verdict::kFail: return "fail";
    case Verdict::kWarn: return "warn";
    case Verdict::kSkip: return "skip";
  }
  return "skip";
}

int64_t KeyCounts::used_outside() const {
  if (!kubernetes_usage_known) return 0;
  return std::max<int64_t>(0, used - used_by_kubernetes);
}
int64_t KeyCounts::available_to_kubernetes() const {
  return std::max<int64_t>(0, capacity - used_outside());
}
int64_t KeyCounts::free() const { return std::max<int64_t>(0, capacity - used); }

Result<KeyCounts> ReadKeyCounts(const std::string& root, const std::string& kubepods_cgroup) {
  std::string cg = Join(root, kCgroupRoot);
  // cgroup v2 keeps misc files at the root; a v1 host mounts the misc hierarchy under misc/.
  std::string dir = cg;
  if (!Exists(cg + "/misc.capacity") && Exists(cg + "/misc/misc.capacity")) dir = cg + "/misc";
  auto cap_text = ReadText(dir + "/misc.capacity", 64 << 10);
  if (!cap_text.ok() && ExistsNoFollow(dir + "/misc.capacity")) return Error{"misc cgroup: " + cap_text.error()};
  if (!cap_text.ok())
    return Error{"misc cgroup: " + cap_text.error() +
                 " (needs cgroup v2 with the misc controller, kernel CONFIG_CGROUP_MISC)"};
  auto cap = ParseMiscValue(*cap_text, kMiscResourceTdx);
  if (!cap.ok()) return Error{dir + "/misc.capacity: " + cap.error()};
  if (!cap->has_value())
    return Error{dir + "/misc.capacity has no \"tdx\" line: KVM did not bring TDX up (check dmesg "
                       "for \"virt/tdx\"; boot with kvm_intel.tdx=1)"};
  KeyCounts k;
  k.capacity = **cap;
  // The root shows misc.current from Linux 6.2; when absent, count nothing as used.
  if (auto cur_text = ReadText(dir + "/misc.current", 64 << 10); cur_text.ok()) {
    auto cur = ParseMiscValue(*cur_text, kMiscResourceTdx);
    if (!cur.ok()) return Error{dir + "/misc.current: " + cur.error()};
    k.used = cur->value_or(0);
  }
  std::string pods = FindKubepods(root, kubepods_cgroup);
  if (pods.empty()) {
    // No pod cgroup: no TD on this host runs in a pod, so every used key is outside Kubernetes.
    k.kubernetes_usage_known = true;
  } else if (auto pods_text = ReadText(pods + "/misc.current", 64 << 10); pods_text.ok()) {
    auto cur = ParseMiscValue(*pods_text, kMiscResourceTdx);
    if (!cur.ok()) return Error{pods + "/misc.current: " + cur.error()};
    k.used_by_kubernetes = cur->value_or(0);
    k.kubernetes_usage_known = true;
  }
  // Pods exist but their cgroup has no misc controller: usage cannot be split, so nothing is
  // counted as outside (as upstream KubeVirt does) rather than count pods' keys twice.
  return k;
}

TdxDetection DetectTdx(const std::string& root, const DetectOptions& options) {
  TdxDetection d;
  auto add = [&](std::string name, Verdict v, std::string value, std::string reason) {
    d.checks.push_back({std::move(name), v, std::move(value), std::move(reason)});
  };

  // CPU: vendor and the host-platform flag.
  bool intel = false, flag = false;
  std::string cpuinfo_path = Join(root, kCpuinfoPath);
  auto cpu_text = ReadText(cpuinfo_path);
  Result<CpuInfo> cpu = cpu_text.ok() ? ParseCpuinfo(*cpu_text) : Result<CpuInfo>(Error{cpu_text.error()});
  if (!cpu.ok()) {
    // A read error names the path already; a parse error does not.
    add("cpu_vendor", Verdict::kFail, "", cpu_text.ok() ? cpuinfo_path + ": " + cpu.error() : cpu.error());
  } else {
    d.cpu = *cpu;
    intel = cpu->vendor_id == "GenuineIntel";
    add("cpu_vendor", intel ? Verdict::kPass : Verdict::kFail, cpu->vendor_id,
        intel ? "Intel CPU"
              : "TDX needs an Intel Xeon with TDX (5th Gen Xeon Scalable or later); this CPU is " +
                    (cpu->vendor_id.empty() ? std::string("not x86") : cpu->vendor_id));
    if (intel) {
      flag = cpu->tdx_host_platform;
      add("cpu_flag", flag ? Verdict::kPass : Verdict::kFail,
          flag ? "tdx_host_platform" : "",
          flag ? "the platform is a TDX host (SEAM loaded, keys partitioned)"
               : "no tdx_host_platform flag in /proc/cpuinfo: enable TDX, SEAM loader and TME-MK "
                 "key partitioning in the BIOS, and use a kernel with TDX host support (6.16+)");
      if (cpu->tdx_guest)
        add("tdx_guest", Verdict::kWarn, "tdx_guest",
            "this machine is itself a trust domain; nested TDs are not supported");
    }
  }

  // Kernel release: informational, the module parameter is what decides.
  std::string rel_path = Join(root, kOsReleasePath);
  if (auto rel_text = ReadText(rel_path, 4096); !rel_text.ok()) {
    add("kernel", Verdict::kWarn, "", rel_text.error());
  } else if (auto k = ParseKernelRelease(*rel_text); !k.ok()) {
    add("kernel", Verdict::kWarn, std::string(Trim(*rel_text).substr(0, 256)), k.error());
  } else {
    d.kernel = *k;
    bool new_enough = k->AtLeast(kTdxKernelMajor, kTdxKernelMinor);
    add("kernel", new_enough ? Verdict::kPass : Verdict::kWarn, k->release,
        new_enough ? "Linux 6.16 or later has KVM TDX host support"
                   : "Linux " + k->release +
                         " predates upstream KVM TDX (6.16); it works only with a vendor's TDX "
                         "patches");
  }

  // KVM: kvm_intel's tdx parameter (read-only after load, default off).
  bool kvm = false;
  std::string kvm_path = Join(root, kKvmIntelTdxPath);
  if (auto t = ReadText(kvm_path, 4096); !t.ok() && ExistsNoFollow(kvm_path)) {
    add("kvm_intel_tdx", Verdict::kFail, "", t.error());
  } else if (!t.ok()) {
    add("kvm_intel_tdx", Verdict::kFail, "",
        "no " + std::string("/") + kKvmIntelTdxPath +
            ": load kvm_intel from a kernel with TDX host support (6.16+) and boot with "
            "kvm_intel.tdx=1");
  } else if (auto b = ParseModuleBool(*t); !b.ok()) {
    add("kvm_intel_tdx", Verdict::kFail, std::string(Trim(*t).substr(0, 32)),
        kvm_path + ": " + b.error());
  } else {
    kvm = *b;
    add("kvm_intel_tdx", kvm ? Verdict::kPass : Verdict::kFail, kvm ? "Y" : "N",
        kvm ? "KVM has TDX enabled" : "kvm_intel tdx=N: boot with kvm_intel.tdx=1");
  }
  d.tdx_enabled = intel && flag && kvm;

  // Keys: the misc cgroup.
  auto keys = ReadKeyCounts(root, options.kubepods_cgroup);
  if (!keys.ok()) {
    add("misc_cgroup", Verdict::kFail, "", keys.error());
  } else {
    d.keys = *keys;
    d.keys_known = true;
    bool some = keys->capacity > 0;
    add("misc_cgroup", some ? Verdict::kPass : Verdict::kFail,
        "tdx " + std::to_string(keys->capacity),
        some ? std::to_string(keys->capacity) + " TDX private KeyIDs, " +
                   std::to_string(keys->used) + " in use"
             : "misc.capacity tdx 0: the BIOS reserved no TDX private KeyIDs; raise the TDX key "
               "split in the BIOS");
    add("kubernetes_key_usage", keys->kubernetes_usage_known ? Verdict::kPass : Verdict::kWarn,
        std::to_string(keys->used_by_kubernetes),
        keys->kubernetes_usage_known
            ? std::to_string(keys->used_outside()) + " keys used outside Kubernetes are not offered"
            : "the kubepods cgroup has no misc.current (misc controller not delegated): keys used "
              "outside Kubernetes cannot be told apart and are not subtracted");
  }

  // libvirt: what KubeVirt's own node labeller looks at.
  bool libvirt_ok = true;
  if (options.domcapabilities_file.empty()) {
    add("libvirt_domcapabilities", Verdict::kSkip, "", "not checked (give --domcapabilities FILE)");
  } else {
    auto xml = ReadText(options.domcapabilities_file, kMaxDomCapabilitiesSize, /*follow_symlinks=*/true);
    Result<DomCapsTdx> caps = xml.ok() ? ParseDomCapabilities(*xml) : Result<DomCapsTdx>(Error{xml.error()});
    if (!caps.ok()) {
      libvirt_ok = false;
      add("libvirt_domcapabilities", Verdict::kFail, "", options.domcapabilities_file + ": " + caps.error());
    } else {
      libvirt_ok = caps->tdx_supported;
      std::string value = std::string("tdx supported=") + (caps->tdx_supported ? "yes" : "no") +
                          (caps->sectype_tdx ? ", sectype tdx" : "");
      add("libvirt_domcapabilities", libvirt_ok ? Verdict::kPass : Verdict::kFail, value,
          libvirt_ok ? "libvirt can launch TDs"
                     : "libvirt reports <tdx supported='no'/>: use libvirt 11.2+ with QEMU 10.1+ "
                       "built with TDX support");
    }
  }

  d.ready = d.tdx_enabled && d.keys_known && d.keys.capacity > 0 && libvirt_ok;
  if (d.ready) {
    d.summary = "TDX host ready: " + std::to_string(d.keys.capacity) + " keys, " +
                std::to_string(d.keys.free()) + " free, " +
                std::to_string(d.keys.available_to_kubernetes()) + " offered to Kubernetes";
  } else {
    for (const Check& c : d.checks)
      if (c.verdict == Verdict::kFail) {
        d.summary = "not a usable TDX host: " + c.reason;
        break;
      }
  }
  return d;
}

nlohmann::ordered_json ToJson(const TdxDetection& d) {
  nlohmann::ordered_json j;
  j["ready"] = d.ready;
  j["tdx_enabled"] = d.tdx_enabled;
  j["summary"] = d.summary;
  if (d.keys_known) {
    j["keys"] = {{"capacity", d.keys.capacity},
                 {"used", d.keys.used},
                 {"used_by_kubernetes", d.keys.used_by_kubernetes},
                 {"used_outside_kubernetes", d.keys.used_outside()},
                 {"free", d.keys.free()},
                 {"offered_to_kubernetes", d.keys.available_to_kubernetes()}};
  } else {
    j["keys"] = nullptr;
  }
  j["cpu"] = {{"vendor_id", d.cpu.vendor_id},
              {"tdx_host_platform", d.cpu.tdx_host_platform},
              {"processors", d.cpu.processors}};
  j["kernel"] = d.kernel ? nlohmann::ordered_json(d.kernel->release) : nlohmann::ordered_json();
  auto& checks = j["checks"] = nlohmann::ordered_json::array();
  for (const Check& c : d.checks)
    checks.push_back({{"name", c.name},
                      {"verdict", ToString(c.verdict)},
                      {"value", c.value},
                      {"reason", c.reason}});
  return j;
}

// ---- Simulated host ----

namespace {

Status WriteText(const std::string& path, const std::string& text) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return Error{"cannot create the directory of " + path + ": " + ec.message()};
  return WriteFileAtomic(path, ByteSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

}  // namespace

Status WriteSimulatedTdxHost(const std::string& root, const SimHostOptions& o) {
  if (o.keys < 0 || o.used_outside < 0 || o.used_by_kubernetes < 0)
    return Error{"simulated host: key counts must not be negative"};
  std::string flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov";
  if (o.tdx_host_platform) flags += " tdx_host_platform";
  flags += " vmx avx512f movdir64b";
  std::string cpuinfo;
  for (int i = 0; i < 2; ++i) {
    cpuinfo += "processor\t: " + std::to_string(i) + "\n";
    cpuinfo += std::string("vendor_id\t: ") + (o.intel ? "GenuineIntel" : "AuthenticAMD") + "\n";
    cpuinfo += "cpu family\t: 6\nmodel\t\t: 207\n";
    cpuinfo += std::string("model name\t: ") +
               (o.intel ? "INTEL(R) XEON(R) PLATINUM 8580 (tdxvirt simulator)"
                        : "AMD EPYC 9654 (tdxvirt simulator)") + "\n";
    cpuinfo += "flags\t\t: " + flags + "\n\n";
  }
  if (Status s = WriteText(Join(root, kCpuinfoPath), cpuinfo); !s.ok()) return s;
  if (Status s = WriteText(Join(root, kOsReleasePath), o.kernel + "\n"); !s.ok()) return s;
  if (Status s = WriteText(Join(root, kKvmIntelTdxPath), o.kvm_tdx ? "Y\n" : "N\n"); !s.ok())
    return s;
  std::error_code ec;
  std::filesystem::create_directories(Join(root, kCgroupRoot), ec);
  if (!o.misc_cgroup) return OkStatus();
  return SetSimulatedKeyUsage(root, o.used_outside, o.used_by_kubernetes, o.keys, o.kubepods_cgroup);
}

Status SetSimulatedKeyUsage(const std::string& root, int64_t used_outside,
                            int64_t used_by_kubernetes, std::optional<int64_t> capacity,
                            const std::string& kubepods_cgroup) {
  if (used_outside < 0 || used_by_kubernetes < 0 || (capacity && *capacity < 0))
    return Error{"simulated host: key counts must not be negative"};
  std::string cg = Join(root, kCgroupRoot);
  if (capacity) {
    if (Status s = WriteText(cg + "/misc.capacity",
                             "sev 0\nsev_es 0\ntdx " + std::to_string(*capacity) + "\n");
        !s.ok())
      return s;
  }
  if (!kubepods_cgroup.empty()) {
    if (Status s = WriteText(cg + "/" + kubepods_cgroup + "/misc.current",
                             "sev 0\nsev_es 0\ntdx " + std::to_string(used_by_kubernetes) + "\n");
        !s.ok())
      return s;
  }
  return WriteText(cg + "/misc.current", "sev 0\nsev_es 0\ntdx " +
                                             std::to_string(used_outside + used_by_kubernetes) +
                                             "\n");
}

}  // namespace tdxvirt::node
