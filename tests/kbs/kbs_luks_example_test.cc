// examples/luks/: the systemd unit that unlocks a TD's data disk with a key from the broker, the
// cloud-init snippet that installs it and the KubeVirt TD VM that carries the snippet. Checked
// against the binary they run: every flag the unit passes to `tdxvirt attest secret` is one the
// command has, the snippet installs exactly the unit file, the VM is a TD the webhook admits, and
// (where systemd-analyze is installed) systemd accepts the unit.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "test_util.h"

namespace tdxvirt {
namespace {

using testing::ReadFileText;
using testing::RunTdxvirt;
using testing::TempDir;
using testing::WriteFile;

const std::string kDir = std::string(TDXVIRT_SOURCE_DIR) + "/examples/luks/";

// The unit without its comment lines: what the cloud-init snippet writes.
std::string UnitWithoutComments() {
  std::istringstream in(ReadFileText(kDir + "tdxvirt-luks-unlock.service"));
  std::string out;
  for (std::string line; std::getline(in, line);)
    if (line.empty() || line[0] != '#') out += line + "\n";
  return out;
}

std::vector<std::string> ExecStarts(const std::string& unit) {
  std::vector<std::string> v;
  std::istringstream in(unit);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("ExecStart=", 0) == 0) v.push_back(line.substr(10));
  return v;
}

TEST(LuksExample, TheUnitRunsAttestSecretWithFlagsItHas) {
  std::string unit = UnitWithoutComments();
  auto starts = ExecStarts(unit);
  ASSERT_EQ(starts.size(), 3u);
  const std::string prefix = "/usr/local/bin/tdxvirt attest secret ";
  ASSERT_EQ(starts[0].rfind(prefix, 0), 0u) << starts[0];
  auto help = RunTdxvirt("attest secret --help");
  ASSERT_EQ(help.exit_code, 0) << help.err;
  std::istringstream words(starts[0].substr(prefix.size()));
  std::set<std::string> flags;
  for (std::string w; words >> w;)
    if (w.rfind("--", 0) == 0) flags.insert(w);
  EXPECT_EQ(flags, (std::set<std::string>{"--kbs", "--key-id", "--ca-file", "--timeout", "--out"}));
  for (const auto& f : flags)
    EXPECT_TRUE(std::regex_search(help.out, std::regex("\\s" + f + "\\b"))) << f << " is not a flag of attest secret";
  // The key goes to the file cryptsetup reads, under /run, and is removed after the open.
  EXPECT_NE(starts[0].find("--out /run/tdxvirt/disk.key"), std::string::npos);
  EXPECT_EQ(starts[2].rfind("/usr/sbin/cryptsetup open --key-file /run/tdxvirt/disk.key ", 0), 0u) << starts[2];
  EXPECT_NE(unit.find("ExecStartPost=/usr/bin/rm -f /run/tdxvirt/disk.key\n"), std::string::npos);
  EXPECT_NE(unit.find("ExecStopPost=/usr/bin/rm -f /run/tdxvirt/disk.key\n"), std::string::npos);
  EXPECT_NE(unit.find("\nType=oneshot\n"), std::string::npos);
  EXPECT_NE(unit.find("\nAfter=network-online.target\n"), std::string::npos);
  EXPECT_NE(unit.find("\nBefore=remote-fs-pre.target\n"), std::string::npos);
}

TEST(LuksExample, SystemdAcceptsTheUnit) {
  if (std::system("command -v systemd-analyze >/dev/null 2>&1") != 0) GTEST_SKIP() << "no systemd-analyze";
  // The programs the unit runs must exist for `verify`: the built tdxvirt, and a stand-in for
  // cryptsetup (not installed on build machines).
  TempDir d;
  WriteFile(d.File("cryptsetup"), "#!/bin/sh\n");
  chmod(d.File("cryptsetup").c_str(), 0755);
  std::string unit = ReadFileText(kDir + "tdxvirt-luks-unlock.service");
  unit = std::regex_replace(unit, std::regex("/usr/local/bin/tdxvirt"), TDXVIRT_BIN);
  unit = std::regex_replace(unit, std::regex("/usr/sbin/cryptsetup"), d.File("cryptsetup"));
  WriteFile(d.File("tdxvirt-luks-unlock.service"), unit);
  std::string cmd = "systemd-analyze verify " + d.File("tdxvirt-luks-unlock.service") + " >" + d.File("out") +
                    " 2>&1";
  int rc = std::system(cmd.c_str());
  // Unknown keys are only warnings (exit 0): nothing at all may be printed.
  EXPECT_EQ(rc, 0) << ReadFileText(d.File("out"));
  EXPECT_EQ(ReadFileText(d.File("out")), "");
}

TEST(LuksExample, CloudInitInstallsTheUnitAndItsSettings) {
  std::string text = ReadFileText(kDir + "user-data.yaml");
  ASSERT_EQ(text.rfind("#cloud-config\n", 0), 0u);
  YAML::Node ud = YAML::Load(text);
  std::map<std::string, std::string> files;
  for (const auto& f : ud["write_files"]) files[f["path"].as<std::string>()] = f["content"].as<std::string>();
  ASSERT_TRUE(files.count("/etc/systemd/system/tdxvirt-luks-unlock.service"));
  EXPECT_EQ(files["/etc/systemd/system/tdxvirt-luks-unlock.service"], UnitWithoutComments());
  // Every variable the unit uses is set in luks.env.
  std::set<std::string> set_vars;
  std::istringstream env(files.at("/etc/tdxvirt/luks.env"));
  for (std::string line; std::getline(env, line);) set_vars.insert(line.substr(0, line.find('=')));
  std::string unit = UnitWithoutComments();
  std::regex var("\\$\\{?(TDXVIRT_[A-Z_]+)");
  for (auto it = std::sregex_iterator(unit.begin(), unit.end(), var); it != std::sregex_iterator(); ++it)
    EXPECT_TRUE(set_vars.count((*it)[1].str())) << (*it)[1].str() << " is not in luks.env";
  EXPECT_TRUE(files.count("/etc/tdxvirt/kbs-ca.pem"));
  // The unit is enabled and started on the first boot (it was written after systemd started).
  bool enabled = false;
  for (const auto& c : ud["runcmd"])
    if (c.IsSequence() && c.size() == 4 && c[1].as<std::string>() == "enable" &&
        c[3].as<std::string>() == "tdxvirt-luks-unlock.service")
      enabled = true;
  EXPECT_TRUE(enabled);
  // The mount waits for the unit.
  ASSERT_TRUE(ud["mounts"] && ud["mounts"].size() == 1);
  EXPECT_EQ(ud["mounts"][0][0].as<std::string>(), "/dev/mapper/data");
  EXPECT_NE(ud["mounts"][0][3].as<std::string>().find("x-systemd.requires=tdxvirt-luks-unlock.service"),
            std::string::npos);
}

TEST(LuksExample, TheVmIsATdCarryingTheSnippetAndTheDisk) {
  YAML::Node vm = YAML::LoadFile(kDir + "vm-tdx-luks.yaml");
  auto spec = vm["spec"]["template"]["spec"];
  ASSERT_TRUE(spec["domain"]["launchSecurity"]["tdx"].IsMap());
  std::string user_data, serial;
  for (const auto& v : spec["volumes"])
    if (v["cloudInitNoCloud"]) user_data = v["cloudInitNoCloud"]["userData"].as<std::string>();
  for (const auto& d : spec["domain"]["devices"]["disks"])
    if (d["name"].as<std::string>() == "data") serial = d["serial"].as<std::string>();
  EXPECT_EQ(user_data, ReadFileText(kDir + "user-data.yaml"));
  // The device the unit unlocks is the disk's by-id name.
  EXPECT_NE(user_data.find("TDXVIRT_LUKS_DEVICE=/dev/disk/by-id/virtio-" + serial + "\n"), std::string::npos);
  auto r = RunTdxvirt("admission review " + kDir + "vm-tdx-luks.yaml --settings " + std::string(TDXVIRT_SOURCE_DIR) +
                      "/examples/tdxvirt-settings.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"allowed\": true"), std::string::npos) << r.out.substr(0, 400);
}

}  // namespace
}  // namespace tdxvirt
