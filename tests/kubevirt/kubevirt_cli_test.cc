// `tdxvirt admission review`: exit codes, output forms, the quickstart's example manifests.
#include <gtest/gtest.h>

#include "kubevirt/document.h"
#include "kv_test_util.h"

namespace tdxvirt::kubevirt {
namespace {

std::string ExamplesDir() { return std::string(TDXVIRT_SOURCE_DIR) + "/examples"; }

TEST(AdmissionCli, TheQuickstartVmIsAdmittedWithAPatch) {
  auto r = testing::RunTdxvirt("admission review " + ExamplesDir() + "/vm-tdx.yaml --settings " +
                               ExamplesDir() + "/tdxvirt-settings.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json resp = Json::parse(r.out);
  EXPECT_TRUE(resp["response"]["allowed"].get<bool>());
  EXPECT_EQ(resp["response"]["patchType"], "JSONPatch");
  auto patch = testing::RunTdxvirt("admission review " + ExamplesDir() +
                                   "/vm-tdx.yaml --output patch --settings " + ExamplesDir() +
                                   "/tdxvirt-settings.yaml");
  ASSERT_EQ(patch.exit_code, 0);
  EXPECT_TRUE(Json::parse(patch.out).is_array());
}

TEST(AdmissionCli, EveryExampleManifestIsAdmitted) {
  for (const char* f : {"vm-tdx.yaml", "vmi-tdx-vsock.yaml", "vmi-tdx-annotations.yaml"}) {
    auto r = testing::RunTdxvirt("admission review " + ExamplesDir() + "/" + f + " --settings " +
                                 ExamplesDir() + "/tdxvirt-settings.yaml");
    EXPECT_EQ(r.exit_code, 0) << f << ": " << r.err;
    auto d = testing::RunTdxvirt("render " + ExamplesDir() + "/" + f + " --settings " +
                                 ExamplesDir() + "/tdxvirt-settings.yaml --validate " +
                                 testing::SchemaDir());
    EXPECT_EQ(d.exit_code, 0) << f << ": " << d.err;
    EXPECT_NE(d.out.find("<launchSecurity type=\"tdx\">"), std::string::npos) << f;
  }
}

TEST(AdmissionCli, GateOffDeniesWithExitOne) {
  auto r = testing::RunTdxvirt("admission review " + ExamplesDir() + "/vm-tdx.yaml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("denied: spec.template.spec.domain.launchSecurity.tdx: the TDX feature "
                       "gate is off"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(Json::parse(r.out)["response"]["allowed"].get<bool>());
}

TEST(AdmissionCli, InputErrorsExitTwo) {
  auto r = testing::RunTdxvirt("admission review -", "kind: [");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not valid YAML"), std::string::npos) << r.err;
  auto s = testing::RunTdxvirt("admission review " + ExamplesDir() + "/vm-tdx.yaml --settings /nonexistent");
  EXPECT_EQ(s.exit_code, 2);
  auto k = testing::RunTdxvirt("admission review " + ExamplesDir() + "/vm-tdx.yaml --kind maybe");
  EXPECT_EQ(k.exit_code, 2);
}

}  // namespace
}  // namespace tdxvirt::kubevirt
