#include "simulator/domain_boot.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/file.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "eventlog/abi.h"
#include "eventlog/builder.h"
#include "eventlog/decode.h"
#include "eventlog/replay.h"
#include "simulator/tdvf.h"

namespace tdxvirt::simulator {
namespace {

// libvirt's own TDX test input (tests/qemuxmlconfdata/launch-security-tdx.xml), trimmed.
std::string Domain(const std::string& launch_security, int vcpus = 2) {
  return R"(<domain type='kvm'><name>td1</name><memory unit='MiB'>2048</memory><vcpu>)" +
         std::to_string(vcpus) + R"(</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><loader type='rom'>/usr/share/ovmf/OVMF.inteltdx.fd</loader></os>
  <devices><disk type='file' device='disk'><source file='/var/run/kubevirt-ephemeral-disks/disk-data/containerdisk/disk.img'/><target dev='vda' bus='virtio'/></disk></devices>
  )" + launch_security + "</domain>";
}

const char kLibvirtTdx[] = R"(<launchSecurity type='tdx'>
  <policy>0x10000000</policy>
  <mrConfigId>ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8BI0VniavN7wEjRWeJq83v</mrConfigId>
  <mrOwner>ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8BI0VniavN7wEjRWeJq83v</mrOwner>
  <quoteGenerationService path='/var/run/tdx-qgs/qgs.socket'/>
</launchSecurity>)";

TEST(DomainBootTest, ReadsWhatQemuTakesFromTheDomain) {
  auto d = ReadTdDomain(Domain(kLibvirtTdx));
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->name, "td1");
  EXPECT_EQ(d->loader, "/usr/share/ovmf/OVMF.inteltdx.fd");
  EXPECT_EQ(d->attributes, 0x10000000u);
  EXPECT_EQ(ToHex(d->mr_config_id).substr(0, 32), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(d->mr_owner, d->mr_config_id);
  EXPECT_TRUE(IsAllZero(d->mr_owner_config));
  EXPECT_TRUE(d->has_qgs);
  EXPECT_EQ(d->qgs_path, "/var/run/tdx-qgs/qgs.socket");
  EXPECT_EQ(d->vcpus, 2u);
  EXPECT_EQ(d->memory_kib, 2048u * 1024);
  ASSERT_EQ(d->disks.size(), 1u);
}

TEST(DomainBootTest, TdConfigTakesMrtdFromFirmwareAndAttributesFromPolicy) {
  Bytes fw = MakeSimulatedTdvf("fw");
  auto d = ReadTdDomain(Domain(kLibvirtTdx));
  ASSERT_TRUE(d.ok());
  auto c = TdConfigForDomain(*d, fw);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->td.mr_td, *ComputeMrtdOfFirmware(fw));
  EXPECT_EQ(c->td.mr_config_id, d->mr_config_id);
  EXPECT_FALSE(c->td.debug());
  EXPECT_TRUE(c->td.sept_ve_disable());
  EXPECT_TRUE(IsAllZero(c->td.rtmr[3]));
  // The RTMRs are those of the simulated boot's event log.
  auto boot = SimulateBoot(*d, fw);
  ASSERT_TRUE(boot.ok()) << boot.error();
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(c->td.rtmr[i], boot->rtmrs[i]) << "rtmr" << i;

  // A debug policy gives a debuggable TD; more vCPUs change RTMR0 only.
  auto debug = ReadTdDomain(Domain("<launchSecurity type='tdx'><policy>0x10000001</policy></launchSecurity>", 4));
  ASSERT_TRUE(debug.ok());
  auto dc = TdConfigForDomain(*debug, fw);
  ASSERT_TRUE(dc.ok());
  EXPECT_TRUE(dc->td.debug());
  EXPECT_NE(dc->td.rtmr[0], c->td.rtmr[0]);
  EXPECT_EQ(dc->td.rtmr[1], c->td.rtmr[1]);
  EXPECT_EQ(dc->td.mr_td, c->td.mr_td);
}

evidence::Sha384Digest Extend(const evidence::Sha384Digest& r, const evidence::Sha384Digest& d) {
  Bytes buf(r.begin(), r.end());
  buf.insert(buf.end(), d.begin(), d.end());
  return ossl::Sha384(buf);
}

std::string DirectBoot(const std::string& os_extra, const std::string& loader_attrs = "") {
  return R"(<domain type='kvm'><name>td1</name><memory unit='MiB'>2048</memory><vcpu>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><loader type='rom')" + loader_attrs +
         R"(>/usr/share/ovmf/OVMF.inteltdx.fd</loader>)" + os_extra + R"(</os>
  <launchSecurity type='tdx'/></domain>)";
}

TEST(DomainBootTest, ReadsDirectKernelBootAndSecureBoot) {
  auto d = ReadTdDomain(DirectBoot("<kernel>/boot/vmlinuz</kernel><initrd>/boot/initrd.img</initrd>"
                                   "<cmdline>console=hvc0 root=/dev/vda1</cmdline>",
                                   " secure='yes'"));
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->kernel, "/boot/vmlinuz");
  EXPECT_EQ(d->initrd, "/boot/initrd.img");
  EXPECT_EQ(d->cmdline, "console=hvc0 root=/dev/vda1");
  EXPECT_TRUE(d->secure_boot);
  auto plain = ReadTdDomain(DirectBoot(""));
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->secure_boot);
  EXPECT_TRUE(plain->kernel.empty() && plain->initrd.empty() && plain->cmdline.empty());
}

// RTMR2 recomputed from the facts alone (reference "Direct boot"): the load options as UTF-16LE
// with a NUL, " initrd=initrd" appended when there is an initrd, then the initrd's SHA-384.
TEST(DomainBootTest, Rtmr2IsTheLoadOptionsThenTheInitrd) {
  Bytes fw = MakeSimulatedTdvf("fw");
  auto d = ReadTdDomain(DirectBoot("<kernel>/boot/vmlinuz</kernel><cmdline>console=hvc0</cmdline>"));
  ASSERT_TRUE(d.ok());
  auto boot = SimulateBoot(*d, fw);
  ASSERT_TRUE(boot.ok()) << boot.error();
  Bytes utf16;
  for (char ch : std::string("console=hvc0")) utf16.insert(utf16.end(), {uint8_t(ch), 0});
  utf16.insert(utf16.end(), {0, 0});
  EXPECT_EQ(boot->rtmrs[2], Extend({}, ossl::Sha384(utf16)));

  // With an initrd that exists here: its bytes are measured.
  std::string initrd = testing::TempDir() + "/sim-initrd.img";
  ASSERT_TRUE(WriteFileAtomic(initrd, AsBytes("an initrd")).ok());
  d->initrd = initrd;
  auto with = SimulateBoot(*d, fw);
  ASSERT_TRUE(with.ok());
  Bytes utf16i;
  for (char ch : std::string("console=hvc0 initrd=initrd")) utf16i.insert(utf16i.end(), {uint8_t(ch), 0});
  utf16i.insert(utf16i.end(), {0, 0});
  EXPECT_EQ(with->rtmrs[2], Extend(Extend({}, ossl::Sha384(utf16i)), ossl::Sha384(AsBytes("an initrd"))));
  EXPECT_EQ(SimulatedInitrdDigest(*d), ossl::Sha384(AsBytes("an initrd")));
  EXPECT_EQ(with->rtmrs[0], boot->rtmrs[0]);
  EXPECT_EQ(with->rtmrs[1], boot->rtmrs[1]);
  std::filesystem::remove(initrd);
  // Gone: a stand-in over the path, still different from the file's digest.
  EXPECT_NE(SimulatedInitrdDigest(*d), ossl::Sha384(AsBytes("an initrd")));
}

// Each setting moves the register the firmware measures it into, and only that one.
TEST(DomainBootTest, EachSettingMovesItsRegister) {
  Bytes fw = MakeSimulatedTdvf("fw");
  auto base = *ReadTdDomain(DirectBoot("<kernel>/boot/vmlinuz</kernel><cmdline>console=hvc0</cmdline>"));
  auto b0 = *SimulateBoot(base, fw);
  auto changed = [&](auto edit) {
    TdDomain d = base;
    edit(d);
    auto b = *SimulateBoot(d, fw);
    std::string moved;
    for (size_t i = 0; i < 4; ++i)
      if (b.rtmrs[i] != b0.rtmrs[i]) moved += "rtmr" + std::to_string(i) + " ";
    return moved;
  };
  EXPECT_EQ(changed([](TdDomain& d) { d.vcpus = 4; }), "rtmr0 ");
  EXPECT_EQ(changed([](TdDomain& d) { d.memory_kib *= 2; }), "rtmr0 ");
  EXPECT_EQ(changed([](TdDomain& d) { d.secure_boot = true; }), "rtmr0 ");
  EXPECT_EQ(changed([](TdDomain& d) { d.kernel = "/boot/vmlinuz-other"; }), "rtmr1 ");
  EXPECT_EQ(changed([](TdDomain& d) { d.cmdline = "console=hvc0 debug"; }), "rtmr2 ");
  // Another firmware: another configuration volume, so RTMR0.
  auto other = *SimulateBoot(base, MakeSimulatedTdvf("other fw"));
  EXPECT_NE(other.rtmrs[0], b0.rtmrs[0]);
  EXPECT_EQ(other.rtmrs[1], b0.rtmrs[1]);
  EXPECT_TRUE(IsAllZero(b0.rtmrs[3]));
}

// The log a simulated TD leaves, parsed and replayed by the verifier's own code, gives the RTMRs
// its TD config (and so its quotes) carry; it reads as OVMF's direct boot does.
TEST(DomainBootTest, TheLogReplaysToTheTdConfigsRtmrs) {
  Bytes fw = MakeSimulatedTdvf("fw");
  std::string initrd = testing::TempDir() + "/sim-initrd-2.img";
  ASSERT_TRUE(WriteFileAtomic(initrd, AsBytes("initrd bytes")).ok());
  auto d = ReadTdDomain(DirectBoot("<kernel>/boot/vmlinuz</kernel><initrd>" + initrd +
                                   "</initrd><cmdline>console=hvc0 root=/dev/vda1</cmdline>"));
  ASSERT_TRUE(d.ok());
  auto c = TdConfigForDomain(*d, fw);
  auto boot = SimulateBoot(*d, fw);
  ASSERT_TRUE(c.ok() && boot.ok());
  auto table = eventlog::ParseCcelTable(boot->ccel_table);
  ASSERT_TRUE(table.ok()) << table.error();
  EXPECT_EQ(table->laml, kSimCcelLaml);
  auto log = eventlog::ParseEventLog(boot->ccel_data, {.laml = table->laml});
  ASSERT_TRUE(log.ok()) << log.error();
  EXPECT_EQ(log->fill, std::optional<uint8_t>(0xFF));
  auto replayed = eventlog::Replay(*log);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(ToHex(replayed.rtmrs[i]), ToHex(c->td.rtmr[i])) << "rtmr" << i;
  EXPECT_EQ(replayed.extends, (std::array<size_t, 4>{14, 4, 2, 0}));  // as trustee-ovmf's log
  eventlog::Rtmrs quoted{c->td.rtmr[0], c->td.rtmr[1], c->td.rtmr[2], c->td.rtmr[3]};
  for (const auto& v : eventlog::Judge(replayed, quoted)) EXPECT_EQ(v.verdict, eventlog::Verdict::kMatch);

  auto decoded = eventlog::DecodeEvents(*log);
  std::vector<std::string> names;
  for (size_t i = 1; i < log->events.size(); ++i) {
    EXPECT_NE(decoded[i].binding, eventlog::Binding::kBroken) << eventlog::EventToJson(log->events[i], decoded[i]);
    names.push_back(std::string(eventlog::EventTypeName(log->events[i].type)));
  }
  EXPECT_EQ(names, (std::vector<std::string>{
                       "EV_EFI_HANDOFF_TABLES2", "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
                       "EV_EFI_VARIABLE_DRIVER_CONFIG", "EV_EFI_VARIABLE_DRIVER_CONFIG",
                       "EV_EFI_VARIABLE_DRIVER_CONFIG", "EV_EFI_VARIABLE_DRIVER_CONFIG",
                       "EV_EFI_VARIABLE_DRIVER_CONFIG", "EV_SEPARATOR", "EV_PLATFORM_CONFIG_FLAGS",
                       "EV_PLATFORM_CONFIG_FLAGS", "EV_PLATFORM_CONFIG_FLAGS",
                       "EV_EFI_BOOT_SERVICES_APPLICATION", "EV_EFI_VARIABLE_BOOT", "EV_EFI_VARIABLE_BOOT",
                       "EV_EFI_ACTION", "EV_SEPARATOR", "EV_EVENT_TAG", "EV_EVENT_TAG", "EV_EFI_ACTION",
                       "EV_EFI_ACTION"}));
  auto summary = eventlog::Summarize(*log, decoded);
  EXPECT_EQ(summary.secure_boot, std::optional<bool>(false));
  ASSERT_TRUE(summary.initrd.has_value());
  ASSERT_TRUE(summary.cmdline.has_value());
  EXPECT_EQ(summary.initrd->digest, ossl::Sha384(AsBytes("initrd bytes")));
  EXPECT_EQ(summary.cmdline->digest,
            ossl::Sha384(*eventlog::DirectBootLoadOptions("console=hvc0 root=/dev/vda1", true)));
  EXPECT_EQ(summary.boot_attempts, 1u);
  // OVMF measures the kernel image before "Calling EFI Application from Boot Option".
  ASSERT_TRUE(summary.kernel.has_value());
  EXPECT_EQ(summary.kernel->digest, SimulatedKernelDigest(*d));
  std::filesystem::remove(initrd);

  d->secure_boot = true;
  auto sb = SimulateBoot(*d, fw);
  auto sb_log = eventlog::ParseEventLog(sb->ccel_data);
  ASSERT_TRUE(sb_log.ok());
  EXPECT_EQ(eventlog::Summarize(*sb_log, eventlog::DecodeEvents(*sb_log)).secure_boot, std::optional<bool>(true));
}

TEST(DomainBootTest, CcelIsPaddedToLamlWithATdxTable) {
  auto d = *ReadTdDomain(DirectBoot("<kernel>/boot/vmlinuz</kernel>"));
  auto boot = SimulateBoot(d, MakeSimulatedTdvf("fw"));
  ASSERT_TRUE(boot.ok());
  ASSERT_EQ(boot->ccel_data.size(), kSimCcelLaml);
  EXPECT_EQ(boot->ccel_data.back(), 0xFF);
  EXPECT_EQ(boot->ccel_table, eventlog::MakeCcelTable(kSimCcelLaml, kSimCcelLasa));
}

TEST(DomainBootTest, CommandLineMustBeUtf8) {
  auto d = *ReadTdDomain(DirectBoot("<kernel>/boot/vmlinuz</kernel>"));
  d.cmdline = "console=hvc0 ";
  d.cmdline += char(0xff);
  auto boot = SimulateBoot(d, MakeSimulatedTdvf("fw"));
  ASSERT_FALSE(boot.ok());
  EXPECT_EQ(boot.error(), "<os><cmdline>: text is not UTF-8 at byte 13; pass UTF-8 text");
  EXPECT_FALSE(TdConfigForDomain(d, MakeSimulatedTdvf("fw")).ok());
}

TEST(DomainBootTest, QemuDefaultAttributesWithoutPolicy) {
  auto d = ReadTdDomain(Domain("<launchSecurity type='tdx'/>"));
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->attributes, kQemuDefaultTdAttributes);
  EXPECT_FALSE(d->has_qgs);
}

TEST(DomainBootTest, ErrorsNameTheElement) {
  EXPECT_EQ(ReadTdDomain(Domain("")).error(),
            "domain XML: not a TD: <launchSecurity type='tdx'> is missing");
  EXPECT_EQ(ReadTdDomain(Domain("<launchSecurity type='sev'/>")).error(),
            "domain XML: not a TD: <launchSecurity type='tdx'> is missing");
  EXPECT_EQ(ReadTdDomain(Domain("<launchSecurity type='tdx'><mrConfigId>AAAA</mrConfigId></launchSecurity>"))
                .error(),
            "launchSecurity/mrConfigId: decodes to 3 bytes; QEMU requires 48 (a SHA-384 value)");
  EXPECT_NE(ReadTdDomain(Domain("<launchSecurity type='tdx'><mrOwner>not base64!</mrOwner></launchSecurity>"))
                .error()
                .find("launchSecurity/mrOwner: not standard base64"),
            std::string::npos);
  EXPECT_EQ(ReadTdDomain(Domain("<launchSecurity type='tdx'><policy>0xzz</policy></launchSecurity>")).error(),
            "launchSecurity/policy: \"0xzz\" is not a hex number");
  EXPECT_NE(ReadTdDomain("<domain><launchSecurity").error().find("domain XML: "), std::string::npos);
  EXPECT_EQ(ReadTdDomain("<domain><launchSecurity type='tdx'/></domain>").error(),
            "domain XML: <os><loader> is missing: a TD boots TDVF from a loader path");
  EXPECT_NE(TdConfigForDomain(*ReadTdDomain(Domain("<launchSecurity type='tdx'/>")), Bytes(100, 0))
                .error()
                .find("loader /usr/share/ovmf/OVMF.inteltdx.fd: firmware:"),
            std::string::npos);
}

}  // namespace
}  // namespace tdxvirt::simulator
