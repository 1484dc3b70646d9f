#include "simulator/domain_boot.h"

#include <gtest/gtest.h>

#include "common/hex.h"
#include "common/openssl.h"
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
  // RTMR0 = SHA-384(0^48 || SHA-384("td-hob:...")).
  Bytes buf(48, 0);
  auto m = ossl::Sha384(AsBytes("td-hob:vcpus=2,memory_kib=2097152"));
  buf.insert(buf.end(), m.begin(), m.end());
  EXPECT_EQ(c->td.rtmr[0], ossl::Sha384(buf));

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
