// Domain rendering and ApplyTdx: every VM/VMI example with TDX added renders to a TD domain that
// libvirt's schema accepts (xmllint), KubeVirt's own domains become TDs, idempotence, and the
// `tdxvirt render` command.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <pugixml.hpp>
#include <sstream>

#include "kubevirt/domain.h"
#include "kv_test_util.h"

namespace tdxvirt::kubevirt {
namespace {

using testing::GateOn;
using testing::SchemaDir;

std::vector<Json> InstancetypesAndPreferences() {
  std::vector<Json> out;
  for (const char* f : {"clarge.yaml", "csmall.yaml", "cluster-csmall.yaml", "windows.yaml",
                        "virtio.yaml"}) {
    Json j = testing::ReadManifest(std::string("kubevirt/examples/") + f);
    if (!j.is_null()) out.push_back(j);
  }
  return out;
}

void ExpectSchemaValid(const std::string& xml, const std::string& what) {
  SchemaCheck c = ValidateDomainXml(xml, SchemaDir());
  ASSERT_TRUE(c.ran) << c.message;  // xmllint is a declared dependency
  EXPECT_TRUE(c.valid) << what << ":\n" << c.message << "\n" << xml.substr(0, 3000);
}

// The TD properties every TD domain must have.
void ExpectTd(const std::string& xml, const std::string& what) {
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(xml.c_str())) << what;
  pugi::xml_node d = doc.child("domain");
  EXPECT_STREQ(d.attribute("type").value(), "kvm") << what;
  pugi::xml_node ls = d.child("launchSecurity");
  EXPECT_STREQ(ls.attribute("type").value(), "tdx") << what;
  EXPECT_STREQ(ls.child_value("policy"), "0x10000000") << what;
  pugi::xml_node loader = d.child("os").child("loader");
  EXPECT_STREQ(loader.attribute("type").value(), "rom") << what;
  EXPECT_STREQ(loader.attribute("secure").value(), "no") << what;
  EXPECT_FALSE(d.child("os").child("nvram")) << what;
  EXPECT_FALSE(d.child("features").child("smm")) << what;  // never <smm state=...>
  EXPECT_STREQ(d.child("features").child("pmu").attribute("state").value(), "off") << what;
  EXPECT_STREQ(d.child("features").child("ioapic").attribute("driver").value(), "qemu") << what;
  EXPECT_STREQ(d.child("cpu").attribute("mode").value(), "host-passthrough") << what;
  EXPECT_FALSE(d.child("cpu").child("model")) << what;
  EXPECT_STREQ(d.child("clock").find_child_by_attribute("timer", "name", "hpet")
                   .attribute("present").value(), "no") << what;
}

TEST(Render, EveryVmAndVmiExampleWithTdxIsASchemaValidTd) {
  RenderOptions ro;
  ro.resources = InstancetypesAndPreferences();
  size_t rendered = 0;
  for (const std::string& name : testing::VmAndVmiExamples()) {
    // 1.6: the hook writes the whole TD (the other releases: kubevirt_versions_test.cc).
    Json m = testing::WithTdxFor(testing::ReadManifest("kubevirt/examples/" + name), "1.6");
    auto r = RenderDomain(m, GateOn("1.6"), ro);
    if (name == "vmi-windows.yaml") {  // SMM on: no TD can start, so no domain either
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error(), "render: admission would deny it: spec.domain.features.smm: TDX does "
                           "not work along with SMM (QEMU: \"TDX VM doesn't support SMM\"); remove "
                           "features.smm or set enabled: false");
      continue;
    }
    ASSERT_TRUE(r.ok()) << name << ": " << r.error();
    EXPECT_TRUE(r->is_tdx) << name;
    ExpectTd(r->xml, name);
    ExpectSchemaValid(r->xml, name);
    ++rendered;
  }
  EXPECT_GE(rendered, 25u);
}

TEST(Render, ExamplesWithoutTdxRenderPlainDomains) {
  RenderOptions ro;
  ro.resources = InstancetypesAndPreferences();
  for (const std::string& name : testing::VmAndVmiExamples()) {
    auto r = RenderDomain(testing::ReadManifest("kubevirt/examples/" + name), GateOn(), ro);
    ASSERT_TRUE(r.ok()) << name << ": " << r.error();
    EXPECT_FALSE(r->is_tdx);
    EXPECT_EQ(r->xml.find("launchSecurity"), std::string::npos) << name;
    ExpectSchemaValid(r->xml, name);
  }
}

TEST(Render, ConvertsTheSpec) {
  Json m = testing::WithTdxFor(testing::ReadManifest("kubevirt/examples/vmi-fedora.yaml"), "1.6");
  m["metadata"]["annotations"]["tdx.tdxvirt.io/qgs"] = "unix:/var/run/tdx-qgs/vm.sock";
  m["metadata"]["annotations"]["tdx.tdxvirt.io/mrconfigid"] = std::string(96, '0');
  auto r = RenderDomain(m, GateOn("1.6"));
  ASSERT_TRUE(r.ok()) << r.error();
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(r->xml.c_str()));
  pugi::xml_node d = doc.child("domain");
  EXPECT_STREQ(d.child_value("name"), "default_vmi-fedora");
  EXPECT_STREQ(d.child_value("memory"), "1024000000");  // 1024M
  EXPECT_EQ(std::string(d.child("os").child_value("loader")), kDefaultTdvf);
  pugi::xml_node ls = d.child("launchSecurity");
  EXPECT_STREQ(ls.child("quoteGenerationService").attribute("path").value(),
               "/var/run/tdx-qgs/vm.sock");
  EXPECT_EQ(std::string(ls.child_value("mrConfigId")), std::string(64, 'A'));
  EXPECT_EQ(std::distance(d.child("devices").children("disk").begin(),
                          d.child("devices").children("disk").end()), 2);
  EXPECT_TRUE(d.child("devices").child("rng"));
  EXPECT_STREQ(d.child("devices").child("interface").child("alias").attribute("name").value(),
               "ua-default");
}

TEST(Render, VsockModeAddsTheDeviceAndNoQgsElement) {
  Json vmi = testing::WithTdxFor(testing::ReadManifest("kubevirt/examples/vmi-alpine-efi.yaml"), "1.6");
  vmi["metadata"]["annotations"]["tdx.tdxvirt.io/qgs"] = "vsock:2:4050";
  vmi["spec"]["domain"]["devices"]["autoattachVSOCK"] = true;
  auto r = RenderDomain(vmi, GateOn("1.6"));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_NE(r->xml.find("<vsock model=\"virtio-non-transitional\">"), std::string::npos);
  EXPECT_EQ(r->xml.find("quoteGenerationService"), std::string::npos);
  ExpectSchemaValid(r->xml, "vsock");
}

TEST(Render, InstancetypeMustBeGiven) {
  Json m = testing::ReadManifest("kubevirt/examples/vm-cirros-clarge.yaml");
  auto r = RenderDomain(m, GateOn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "render: spec.instancetype: VirtualMachineInstancetype clarge is not "
                       "given; pass its manifest (render --with FILE)");
}

TEST(ApplyTdx, KubevirtDomainsBecomeSchemaValidTds) {
  for (const char* f : {"hooks_domain.xml", "converter_domain_x86_64.xml",
                        "converter_domain_x86_64_root.xml"}) {
    std::string in = testing::ReadText(std::string("kubevirt/domain-xml/") + f);
    TdxSettings t;
    t.qgs = *ParseQgs("unix:/var/run/tdx-qgs/qgs.socket");
    auto out = ApplyTdx(in, t);
    ASSERT_TRUE(out.ok()) << f << ": " << out.error();
    ExpectTd(*out, f);
    // Elements it does not own stay, even ones libvirt's schema refuses.
    EXPECT_EQ(in.find("<bios></bios>") != std::string::npos,
              out->find("<bios />") != std::string::npos) << f;
    ExpectSchemaValid(testing::WithoutUpstreamSchemaDeviations(*out), f);
    auto twice = ApplyTdx(*out, t);
    ASSERT_TRUE(twice.ok());
    EXPECT_TRUE(*twice == *out) << f << ": not idempotent";
  }
}

TEST(ApplyTdx, KeepsWhatTheUserSet) {
  std::string in = testing::ReadText("libvirt-schemas/sample-tdx-valid.xml");
  TdxSettings t;
  t.policy = kTdAttrSeptVeDisable | kTdAttrPks;
  t.mr_config_id = ByteArray<48>{};
  t.qgs = *ParseQgs("unix:/other/qgs.sock");
  auto out = ApplyTdx(in, t);
  ASSERT_TRUE(out.ok()) << out.error();
  EXPECT_NE(out->find("<policy>0x10000000</policy>"), std::string::npos);
  EXPECT_NE(out->find("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8w"),
            std::string::npos);
  EXPECT_NE(out->find("/var/run/tdx-qgs/qgs.socket"), std::string::npos);
  EXPECT_EQ(out->find("/other/qgs.sock"), std::string::npos);
  ExpectSchemaValid(*out, "sample");
}

TEST(ApplyTdx, RefusesWhatCannotBeATd) {
  TdxSettings t;
  auto sev = ApplyTdx("<domain type='kvm'><name>a</name><launchSecurity type='sev'/></domain>", t);
  ASSERT_FALSE(sev.ok());
  EXPECT_EQ(sev.error(), "domain XML: it already has <launchSecurity type='sev'>; a domain has "
                         "one launchSecurity type");
  auto arm = ApplyTdx(testing::ReadText("kubevirt/domain-xml/converter_domain_arm64.xml"), t);
  ASSERT_FALSE(arm.ok());
  EXPECT_EQ(arm.error(), "domain XML: os/type arch is aarch64; TDX needs x86_64");
  auto i440 = ApplyTdx("<domain><os><type arch='x86_64' machine='pc-i440fx-9.0'>hvm</type></os>"
                       "</domain>", t);
  ASSERT_FALSE(i440.ok());
  EXPECT_EQ(i440.error(), "domain XML: os/type machine is pc-i440fx-9.0; TDX needs q35");
  auto bad = ApplyTdx("<domain><name>", t);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.error().starts_with("domain XML: ")) << bad.error();
  EXPECT_FALSE(ApplyTdx("<vm/>", t).ok());
  EXPECT_FALSE(ApplyTdx(std::string(kMaxDomainXmlBytes + 1, ' '), t).ok());
}

TEST(Schema, InvalidXmlIsReported) {
  SchemaCheck c = ValidateDomainXml(testing::ReadText("libvirt-schemas/sample-tdx-invalid.xml"),
                                    SchemaDir());
  ASSERT_TRUE(c.ran);
  EXPECT_FALSE(c.valid);
  EXPECT_NE(c.message.find("mrTd"), std::string::npos) << c.message;
  SchemaCheck none = ValidateDomainXml("<domain/>", "/nonexistent");
  EXPECT_FALSE(none.ran);
  EXPECT_TRUE(none.message.starts_with("skipped: ")) << none.message;
}

TEST(Quantity, KubernetesForms) {
  EXPECT_EQ(*ParseQuantity("1Gi"), 1073741824u);
  EXPECT_EQ(*ParseQuantity("128Mi"), 134217728u);
  EXPECT_EQ(*ParseQuantity("1024M"), 1024000000u);
  EXPECT_EQ(*ParseQuantity("2048"), 2048u);
  EXPECT_EQ(*ParseQuantity("1.5Gi"), 1610612736u);
  EXPECT_FALSE(ParseQuantity("lots").ok());
  EXPECT_FALSE(ParseQuantity("Gi").ok());
  EXPECT_FALSE(ParseQuantity("-1Gi").ok());
}

TEST(RenderCli, WritesAValidatedTdDomain) {
  testing::TempDir tmp;
  Json m = testing::WithTdx(testing::ReadManifest("kubevirt/examples/vmi-fedora.yaml"));
  testing::WriteFile(tmp.File("vmi.json"), m.dump());
  testing::WriteFile(tmp.File("settings.yaml"), "featureGate: true\n");
  auto r = testing::RunTdxvirt("render " + tmp.File("vmi.json") + " --settings " +
                               tmp.File("settings.yaml") + " --validate " + SchemaDir() +
                               " --out " + tmp.File("d.xml"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(tmp.File("d.xml"));
  std::string xml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(xml.find("<launchSecurity type=\"tdx\">"), std::string::npos) << xml;
  auto vm = testing::RunTdxvirt("render " + testing::TestdataPath("kubevirt/examples/vm-cirros-clarge.yaml") +
                                " --with " + testing::TestdataPath("kubevirt/examples/clarge.yaml"));
  EXPECT_EQ(vm.exit_code, 0) << vm.err;
  EXPECT_NE(vm.out.find("<vcpu placement=\"static\">4</vcpu>"), std::string::npos) << vm.out;
  auto missing = testing::RunTdxvirt("render " + testing::TestdataPath("kubevirt/examples/clarge.yaml"));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("is not VirtualMachine or VirtualMachineInstance"), std::string::npos)
      << missing.err;
}

}  // namespace
}  // namespace tdxvirt::kubevirt
