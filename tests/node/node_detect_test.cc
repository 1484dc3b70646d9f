// TDX host detection on fake host trees, the parsers behind it, and `tdxvirt node detect`.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>

#include <nlohmann/json.hpp>

#include "node/host.h"
#include "test_util.h"

namespace tdxvirt::node {
namespace {

using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;
using tdxvirt::testing::TestdataPath;
using tdxvirt::testing::WriteFile;

const Check* FindCheck(const TdxDetection& d, const std::string& name) {
  for (const Check& c : d.checks)
    if (c.name == name) return &c;
  return nullptr;
}

TEST(NodeDetect, TdxHostWithKeys) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path(), {.keys = 16, .used_outside = 2,
                                                  .used_by_kubernetes = 3}).ok());
  TdxDetection d = DetectTdx(root.path());
  EXPECT_TRUE(d.ready) << d.summary;
  EXPECT_TRUE(d.tdx_enabled);
  EXPECT_TRUE(d.keys_known);
  EXPECT_EQ(d.keys.capacity, 16);
  EXPECT_EQ(d.keys.used, 5);
  EXPECT_EQ(d.keys.used_by_kubernetes, 3);
  EXPECT_EQ(d.keys.used_outside(), 2);
  EXPECT_EQ(d.keys.free(), 11);
  EXPECT_EQ(d.keys.available_to_kubernetes(), 14);
  EXPECT_EQ(d.cpu.vendor_id, "GenuineIntel");
  EXPECT_EQ(d.cpu.processors, 2u);
  ASSERT_TRUE(d.kernel);
  EXPECT_EQ(d.kernel->major, 6);
  EXPECT_EQ(d.kernel->minor, 16);
  for (const char* name : {"cpu_vendor", "cpu_flag", "kernel", "kvm_intel_tdx", "misc_cgroup",
                           "kubernetes_key_usage"}) {
    const Check* c = FindCheck(d, name);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_EQ(c->verdict, Verdict::kPass) << name << ": " << c->reason;
  }
  EXPECT_EQ(FindCheck(d, "libvirt_domcapabilities")->verdict, Verdict::kSkip);
  EXPECT_EQ(d.summary, "TDX host ready: 16 keys, 11 free, 14 offered to Kubernetes");

  auto j = ToJson(d);
  EXPECT_EQ(j["ready"], true);
  EXPECT_EQ(j["keys"]["capacity"], 16);
  EXPECT_EQ(j["keys"]["used_outside_kubernetes"], 2);
  EXPECT_EQ(j["keys"]["offered_to_kubernetes"], 14);
  for (const auto& c : j["checks"]) {
    EXPECT_FALSE(c["reason"].get<std::string>().empty()) << c.dump();
    EXPECT_TRUE(c.contains("verdict"));
  }
}

TEST(NodeDetect, TdxDisabledInKvmIntel) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path(), {.kvm_tdx = false}).ok());
  TdxDetection d = DetectTdx(root.path());
  EXPECT_FALSE(d.ready);
  EXPECT_FALSE(d.tdx_enabled);
  const Check* c = FindCheck(d, "kvm_intel_tdx");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->verdict, Verdict::kFail);
  EXPECT_EQ(c->value, "N");
  EXPECT_EQ(c->reason, "kvm_intel tdx=N: boot with kvm_intel.tdx=1");
  EXPECT_EQ(d.summary, "not a usable TDX host: kvm_intel tdx=N: boot with kvm_intel.tdx=1");
}

TEST(NodeDetect, NoMiscCgroup) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path(), {.misc_cgroup = false}).ok());
  TdxDetection d = DetectTdx(root.path());
  EXPECT_TRUE(d.tdx_enabled);  // CPU and KVM are fine...
  EXPECT_FALSE(d.keys_known);  // ...but the keys cannot be counted
  EXPECT_FALSE(d.ready);
  const Check* c = FindCheck(d, "misc_cgroup");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->verdict, Verdict::kFail);
  EXPECT_EQ(c->reason, "misc cgroup: cannot open " + root.File("sys/fs/cgroup/misc.capacity") +
                           ": No such file or directory (needs cgroup v2 with the misc controller, kernel "
                           "CONFIG_CGROUP_MISC)");
  EXPECT_TRUE(ToJson(d)["keys"].is_null());
}

TEST(NodeDetect, NonIntelCpu) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path(), {.intel = false}).ok());
  TdxDetection d = DetectTdx(root.path());
  EXPECT_FALSE(d.ready);
  EXPECT_FALSE(d.tdx_enabled);
  const Check* c = FindCheck(d, "cpu_vendor");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->verdict, Verdict::kFail);
  EXPECT_EQ(c->value, "AuthenticAMD");
  EXPECT_EQ(c->reason, "TDX needs an Intel Xeon with TDX (5th Gen Xeon Scalable or later); this CPU is AuthenticAMD");
  EXPECT_EQ(FindCheck(d, "cpu_flag"), nullptr);  // Intel's flag is meaningless on AMD
}

TEST(NodeDetect, NoHostPlatformFlagAndZeroKeys) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path(), {.keys = 0, .tdx_host_platform = false}).ok());
  TdxDetection d = DetectTdx(root.path());
  EXPECT_FALSE(d.ready);
  EXPECT_EQ(FindCheck(d, "cpu_flag")->verdict, Verdict::kFail);
  EXPECT_EQ(FindCheck(d, "cpu_flag")->reason,
            "no tdx_host_platform flag in /proc/cpuinfo: enable TDX, SEAM loader and TME-MK key "
            "partitioning in the BIOS, and use a kernel with TDX host support (6.16+)");
  EXPECT_EQ(FindCheck(d, "misc_cgroup")->verdict, Verdict::kFail);
  EXPECT_EQ(FindCheck(d, "misc_cgroup")->reason,
            "misc.capacity tdx 0: the BIOS reserved no TDX private KeyIDs; raise the TDX key split in the BIOS");
}

TEST(NodeDetect, OldKernelIsAWarningNotAFailure) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path(), {.kernel = "6.8.0-1004-intel"}).ok());
  TdxDetection d = DetectTdx(root.path());
  EXPECT_TRUE(d.ready);
  EXPECT_EQ(FindCheck(d, "kernel")->verdict, Verdict::kWarn);
}

TEST(NodeDetect, EmptyRootNamesEveryMissingFile) {
  TempDir root;
  TdxDetection d = DetectTdx(root.path());
  EXPECT_FALSE(d.ready);
  EXPECT_EQ(FindCheck(d, "cpu_vendor")->reason,
            "cannot open " + root.File("proc/cpuinfo") + ": No such file or directory");
  EXPECT_EQ(FindCheck(d, "kernel")->reason,
            "cannot open " + root.File("proc/sys/kernel/osrelease") + ": No such file or directory");
  EXPECT_EQ(FindCheck(d, "kvm_intel_tdx")->reason,
            "no /sys/module/kvm_intel/parameters/tdx: load kvm_intel from a kernel with TDX host support "
            "(6.16+) and boot with kvm_intel.tdx=1");
  EXPECT_EQ(FindCheck(d, "misc_cgroup")->verdict, Verdict::kFail);
  EXPECT_EQ(FindCheck(d, "misc_cgroup")->reason,
            "misc cgroup: cannot open " + root.File("sys/fs/cgroup/misc.capacity") +
                ": No such file or directory (needs cgroup v2 with the misc controller, kernel "
                "CONFIG_CGROUP_MISC)");
}

// Detection reads only regular files and never blocks: a FIFO in place of a host file (which a
// plain open would wait on for ever) is a failed check naming the path and what it is.
TEST(NodeDetect, FifoInPlaceOfHostFilesIsReportedNotWaitedOn) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path()).ok());
  const std::vector<std::string> fifos = {"proc/cpuinfo", "proc/sys/kernel/osrelease",
                                          "sys/module/kvm_intel/parameters/tdx",
                                          "sys/fs/cgroup/misc.capacity"};
  for (const auto& f : fifos) {
    std::filesystem::remove(root.File(f));
    ASSERT_EQ(mkfifo(root.File(f).c_str(), 0600), 0) << f;
  }
  auto detection = std::async(std::launch::async, [&] {
    return std::make_pair(DetectTdx(root.path()), ReadKeyCounts(root.path()));
  });
  if (detection.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "DetectTdx blocked on a FIFO";
    // Watchdog: release the reader from each open() it blocks in, so the test ends (failing).
    while (detection.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready)
      for (const auto& f : fifos) {
        int fd = open(root.File(f).c_str(), O_WRONLY | O_NONBLOCK);
        if (fd >= 0) close(fd);
      }
  }
  auto [d, keys] = detection.get();
  EXPECT_FALSE(d.ready);
  const std::string fifo = " is a FIFO (named pipe), not a regular file";
  EXPECT_EQ(FindCheck(d, "cpu_vendor")->reason, root.File("proc/cpuinfo") + fifo);
  EXPECT_EQ(FindCheck(d, "kernel")->reason, root.File("proc/sys/kernel/osrelease") + fifo);
  EXPECT_EQ(FindCheck(d, "kvm_intel_tdx")->reason, root.File("sys/module/kvm_intel/parameters/tdx") + fifo);
  EXPECT_EQ(FindCheck(d, "misc_cgroup")->reason, "misc cgroup: " + root.File("sys/fs/cgroup/misc.capacity") + fifo);
  EXPECT_EQ(d.summary, "not a usable TDX host: " + root.File("proc/cpuinfo") + fifo);
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(keys.error(), "misc cgroup: " + root.File("sys/fs/cgroup/misc.capacity") + fifo);
}

TEST(NodeDetect, DirectoryOrSymlinkInPlaceOfAHostFile) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path()).ok());
  std::string tdx = root.File("sys/module/kvm_intel/parameters/tdx");
  std::filesystem::remove(tdx);
  std::filesystem::create_directory(tdx);
  EXPECT_EQ(FindCheck(DetectTdx(root.path()), "kvm_intel_tdx")->reason, tdx + " is a directory, not a regular file");
  std::filesystem::remove(tdx);
  WriteFile(root.File("elsewhere"), "Y\n");
  std::filesystem::create_symlink(root.File("elsewhere"), tdx);  // could point out of the root
  EXPECT_EQ(FindCheck(DetectTdx(root.path()), "kvm_intel_tdx")->reason, tdx + " is a symbolic link, not a regular file");
}

TEST(NodeDetect, KeysOutsideKubernetes) {
  TempDir root;
  // No kubepods cgroup: nothing runs in pods, so every used key is outside Kubernetes.
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path(), {.keys = 8, .used_outside = 3,
                                                  .kubepods_cgroup = ""}).ok());
  auto k = ReadKeyCounts(root.path());
  ASSERT_TRUE(k.ok()) << k.error();
  EXPECT_TRUE(k->kubernetes_usage_known);
  EXPECT_EQ(k->used_outside(), 3);
  EXPECT_EQ(k->available_to_kubernetes(), 5);

  // Pods' cgroup without the misc controller: usage cannot be split; nothing is subtracted.
  std::filesystem::create_directories(root.File("sys/fs/cgroup/kubepods.slice"));
  k = ReadKeyCounts(root.path());
  ASSERT_TRUE(k.ok());
  EXPECT_FALSE(k->kubernetes_usage_known);
  EXPECT_EQ(k->available_to_kubernetes(), 8);
  EXPECT_EQ(FindCheck(DetectTdx(root.path()), "kubernetes_key_usage")->verdict, Verdict::kWarn);

  // cgroupfs driver name, chosen explicitly.
  ASSERT_TRUE(SetSimulatedKeyUsage(root.path(), 1, 2, std::nullopt, "kubepods").ok());
  k = ReadKeyCounts(root.path(), "kubepods");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->used, 3);
  EXPECT_EQ(k->used_outside(), 1);
}

TEST(NodeDetect, CgroupV1MiscHierarchy) {
  TempDir root;
  std::filesystem::create_directories(root.File("sys/fs/cgroup/misc"));
  WriteFile(root.File("sys/fs/cgroup/misc/misc.capacity"), "tdx 32\n");
  WriteFile(root.File("sys/fs/cgroup/misc/misc.current"), "tdx 4\n");
  auto k = ReadKeyCounts(root.path());
  ASSERT_TRUE(k.ok()) << k.error();
  EXPECT_EQ(k->capacity, 32);
  EXPECT_EQ(k->used, 4);
}

TEST(NodeDetect, MalformedMiscFileIsAnErrorNamingTheFile) {
  TempDir root;
  std::filesystem::create_directories(root.File("sys/fs/cgroup"));
  WriteFile(root.File("sys/fs/cgroup/misc.capacity"), "tdx lots\n");
  auto k = ReadKeyCounts(root.path());
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.error(), root.File("sys/fs/cgroup/misc.capacity") +
                           ": tdx line \"tdx lots\": the value is not a non-negative integer");
}

TEST(NodeParsers, MiscValue) {
  auto v = ParseMiscValue("sev 0\nsev_es 0\ntdx 64\n", "tdx");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or(-1), 64);
  v = ParseMiscValue("tdxx 5\nsev 1", "tdx");  // prefix is not a match (unlike NFD's HasPrefix)
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->has_value());
  auto refusal = [](const std::string& text) {
    auto r = ParseMiscValue(text, "tdx");
    return r.ok() ? std::string("accepted") : r.error();
  };
  EXPECT_EQ(refusal("tdx -1\n"), "tdx line \"tdx -1\": the value is not a non-negative integer");
  v = ParseMiscValue("tdx\n", "tdx");  // no value: not a "tdx <n>" line at all
  ASSERT_TRUE(v.ok()) << v.error();
  EXPECT_FALSE(v->has_value());
  EXPECT_EQ(refusal("tdx 99999999999999999999999\n"),
            "tdx line \"tdx 99999999999999999999999\": the value is not a non-negative integer");
  EXPECT_EQ(ParseMiscValue("  tdx\t7  \r\n", "tdx")->value_or(-1), 7);
}

TEST(NodeParsers, Cpuinfo) {
  auto c = ParseCpuinfo("processor : 0\nvendor_id : GenuineIntel\nflags : fpu tdx_guest vmx\n");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->tdx_guest);
  EXPECT_FALSE(c->tdx_host_platform);
  for (const char* text : {"", "garbage without colons"}) {
    auto bad = ParseCpuinfo(text);
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_EQ(bad.error(), "no \"processor\" line: not a /proc/cpuinfo (is the host root right?)");
  }
  // Only whole flags count.
  EXPECT_FALSE(ParseCpuinfo("processor:0\nflags: tdx_host_platformx\n")->tdx_host_platform);
}

TEST(NodeParsers, ModuleBoolAndKernel) {
  EXPECT_TRUE(*ParseModuleBool("Y\n"));
  EXPECT_FALSE(*ParseModuleBool("N\n"));
  EXPECT_TRUE(*ParseModuleBool("1"));
  ASSERT_FALSE(ParseModuleBool("yes").ok());
  EXPECT_EQ(ParseModuleBool("yes").error(), "expected Y or N, got \"yes\"");
  auto k = ParseKernelRelease("6.16.3-1-amd64\n");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->patch, 3);
  EXPECT_TRUE(k->AtLeast(6, 16));
  EXPECT_FALSE(ParseKernelRelease("5.15")->AtLeast(6, 16));
  EXPECT_TRUE(ParseKernelRelease("7.0")->AtLeast(6, 16));
  for (const char* text : {"linux", "6"}) {
    auto bad = ParseKernelRelease(text);
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_EQ(bad.error(), std::string("kernel release \"") + text + "\" does not start with MAJOR.MINOR");
  }
}

TEST(NodeParsers, DomCapabilitiesFromLibvirt) {
  auto read = [](const std::string& name) {
    Bytes b = tdxvirt::testing::ReadTestdata("kubevirt/domcapabilities/" + name);
    return std::string(b.begin(), b.end());
  };
  auto tdx = ParseDomCapabilities(read("domcapabilities_tdx.xml"));
  ASSERT_TRUE(tdx.ok()) << tdx.error();
  EXPECT_TRUE(tdx->tdx_supported);
  EXPECT_TRUE(tdx->sectype_tdx);
  auto no = ParseDomCapabilities(read("virsh_domcapabilities.xml"));
  ASSERT_TRUE(no.ok()) << no.error();
  EXPECT_FALSE(no->tdx_supported);
  auto sev = ParseDomCapabilities(read("domcapabilities_sevsnp.xml"));
  ASSERT_TRUE(sev.ok());
  EXPECT_FALSE(sev->tdx_supported);
  EXPECT_FALSE(sev->sectype_tdx);
  auto other = ParseDomCapabilities("<domain/>");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error(), "domain capabilities: no <domainCapabilities> root element");
  auto bad = ParseDomCapabilities("<domainCapabilities><features>");
  ASSERT_FALSE(bad.ok());
  // pugixml's description, and the offset where it noticed the unclosed <features>.
  EXPECT_EQ(bad.error(), "domain capabilities: not XML (Start-end tags mismatch at byte 29)");
}

TEST(NodeDetect, LibvirtCheckFromFile) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path()).ok());
  auto yes = DetectTdx(root.path(), {.domcapabilities_file = TestdataPath(
                                         "kubevirt/domcapabilities/domcapabilities_tdx.xml")});
  EXPECT_TRUE(yes.ready) << yes.summary;
  EXPECT_EQ(FindCheck(yes, "libvirt_domcapabilities")->value, "tdx supported=yes, sectype tdx");
  auto no = DetectTdx(root.path(), {.domcapabilities_file = TestdataPath(
                                        "kubevirt/domcapabilities/virsh_domcapabilities.xml")});
  EXPECT_FALSE(no.ready);
  EXPECT_EQ(no.summary,
            "not a usable TDX host: libvirt reports <tdx supported='no'/>: use libvirt 11.2+ with QEMU "
            "10.1+ built with TDX support");
  auto missing = DetectTdx(root.path(), {.domcapabilities_file = root.File("nope.xml")});
  EXPECT_FALSE(missing.ready);
  EXPECT_EQ(FindCheck(missing, "libvirt_domcapabilities")->reason,
            root.File("nope.xml") + ": cannot open " + root.File("nope.xml") + ": No such file or directory");
}

TEST(NodeSimHost, UsageChangesAreAtomicRewrites) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path(), {.keys = 4}).ok());
  ASSERT_TRUE(SetSimulatedKeyUsage(root.path(), 1, 1, 6).ok());
  auto k = ReadKeyCounts(root.path());
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->capacity, 6);
  EXPECT_EQ(k->used, 2);
  EXPECT_EQ(k->available_to_kubernetes(), 5);
  Status negative = SetSimulatedKeyUsage(root.path(), -1);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error(), "simulated host: key counts must not be negative");
  // No temporary files left behind.
  for (auto& e : std::filesystem::directory_iterator(root.File("sys/fs/cgroup")))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(NodeCli, DetectPrintsJsonAndExitCodes) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path(), {.keys = 8}).ok());
  auto r = RunTdxvirt("node detect --root " + root.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ready"], true);
  EXPECT_EQ(j["keys"]["capacity"], 8);

  ASSERT_EQ(RunTdxvirt("node sim-host --root " + root.path() + " --kvm-tdx-off").exit_code, 0);
  r = RunTdxvirt("node detect --root " + root.path());
  EXPECT_EQ(r.exit_code, 1);
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["summary"], "not a usable TDX host: kvm_intel tdx=N: boot with kvm_intel.tdx=1");
  const nlohmann::json* kvm = nullptr;
  for (const auto& c : j["checks"])
    if (c["name"] == "kvm_intel_tdx") kvm = &c;
  ASSERT_NE(kvm, nullptr) << r.out;
  EXPECT_EQ((*kvm)["verdict"], "fail");
  EXPECT_EQ((*kvm)["reason"], "kvm_intel tdx=N: boot with kvm_intel.tdx=1");

  // libvirt's capabilities on stdin, as `virsh domcapabilities | tdxvirt node detect ...`.
  ASSERT_EQ(RunTdxvirt("node sim-host --root " + root.path()).exit_code, 0);
  Bytes caps = tdxvirt::testing::ReadTestdata("kubevirt/domcapabilities/domcapabilities_tdx.xml");
  r = RunTdxvirt("node detect --domcapabilities - --root " + root.path(),
                 std::string(caps.begin(), caps.end()));
  EXPECT_EQ(r.exit_code, 0) << r.out;

  r = RunTdxvirt("node detect --root " + root.File("missing"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --root: host root " + root.File("missing") + " is not a directory\n");
}

// Host files can hold any bytes; the JSON report replaces what is not UTF-8 instead of aborting.
TEST(NodeCli, DetectReportsHostFilesThatAreNotUtf8) {
  TempDir root;
  ASSERT_TRUE(WriteSimulatedTdxHost(root.path(), {.keys = 8}).ok());
  tdxvirt::testing::WriteFile(root.File("sys/module/kvm_intel/parameters/tdx"), "\xff\xfe\n");
  auto r = RunTdxvirt("node detect --root " + root.path());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["ready"], false);
}

}  // namespace
}  // namespace tdxvirt::node
