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

// The project's examples ask for TDX both ways, so each is a TD on every release; on 1.6 the
// review says the API server drops `tdx: {}`.
TEST(AdmissionCli, EveryExampleManifestIsAdmittedOnEveryRelease) {
  for (const char* v : {"1.6", "1.7", "1.8", "1.9"}) {
    for (const char* f : {"vm-tdx.yaml", "vmi-tdx-vsock.yaml", "vmi-tdx-annotations.yaml"}) {
      const std::string args = ExamplesDir() + "/" + f + " --settings " + ExamplesDir() +
                               "/tdxvirt-settings.yaml --kubevirt-version " + v;
      auto r = testing::RunTdxvirt("admission review " + args);
      EXPECT_EQ(r.exit_code, 0) << v << " " << f << ": " << r.err;
      const std::string spec = std::string(f) == "vm-tdx.yaml" ? "spec.template.spec" : "spec";
      EXPECT_EQ(r.err, std::string(v) == "1.6"
                           ? "warning: " + spec + ".domain.launchSecurity.tdx: KubeVirt 1.6's "
                             "schema has no such field; the API server drops it before any "
                             "webhook sees it (kubectl's strict validation refuses the object)\n"
                           : "")
          << v << " " << f;
      auto d = testing::RunTdxvirt("render " + args + " --validate " + testing::SchemaDir());
      EXPECT_EQ(d.exit_code, 0) << v << " " << f << ": " << d.err;
      EXPECT_NE(d.out.find("<launchSecurity type=\"tdx\">"), std::string::npos) << v << " " << f;
    }
  }
  auto bad = testing::RunTdxvirt("admission review " + ExamplesDir() +
                                 "/vm-tdx.yaml --kubevirt-version 1.10");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--kubevirt-version 1.10: use 1.6, 1.7, 1.8 or 1.9"), std::string::npos)
      << bad.err;
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
