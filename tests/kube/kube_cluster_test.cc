// The Kubernetes API client (bounded requests, retries, size limit) and the KubeVirt CR reader
// (ParseKubevirtList over CRs shaped as v1.6..v1.9 report them, ClusterWatcher) against a
// loopback HTTPS API-server peer (tests/fake_kube_api.h).
#include <gtest/gtest.h>

#include <fstream>

#include "fake_kube_api.h"
#include "kube/client.h"
#include "kube/cluster.h"
#include "kube/kubevirt_version.h"
#include "test_util.h"

namespace tdxvirt::kube {
namespace {

using nlohmann::json;
using tdxvirt::testing::FakeKubeApi;
using tdxvirt::testing::KubevirtList;
using tdxvirt::testing::TempDir;
using namespace std::chrono_literals;

// The fields and defaults of v1.9's confidentialCompute, as facts.json → cluster_config lists them.
json V19ClusterConfigDefaults() {
  std::ifstream in(std::string(TDXVIRT_TESTDATA) + "/kubevirt/versions/v1.9/facts.json");
  json facts = json::parse(in);
  return facts["cluster_config"]["value"];
}

TEST(ParseKubevirtList, EachReleaseAsItsCrReportsIt) {
  json gate = {{"developerConfiguration", {{"featureGates", {"LiveMigration", "WorkloadEncryptionTDX"}}}}};
  for (const char* v : {"v1.6.0", "v1.7.0", "v1.8.0"}) {
    auto c = ParseKubevirtList(KubevirtList(v, gate));
    ASSERT_TRUE(c.ok()) << v << ": " << c.error();
    EXPECT_EQ(c->observed_version, v);
    EXPECT_FALSE(c->qgs_socket_path.has_value()) << v;  // no confidentialCompute before 1.9
    EXPECT_FALSE(c->attestation_enforced);
    EXPECT_TRUE(c->tdx_gate) << v;
    EXPECT_EQ(ParseKubevirtVersion(c->observed_version)->Text(), std::string(v).substr(1, 3));
  }
  EXPECT_FALSE(ParseKubevirtList(KubevirtList("v1.6.0"))->tdx_gate);

  // v1.9 with the attestation block as the CRD's defaults fill it in.
  json defaults = V19ClusterConfigDefaults();
  json attestation = {
      {"enforced", defaults["spec.configuration.confidentialCompute.tdx.attestation.enforced"]["default"]},
      {"qgsSocketPath",
       defaults["spec.configuration.confidentialCompute.tdx.attestation.qgsSocketPath"]["default"]}};
  json config = gate;
  config["confidentialCompute"] = {{"tdx", {{"attestation", attestation}}}};
  auto c = ParseKubevirtList(KubevirtList("v1.9.0", config));
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->observed_version, "v1.9.0");
  EXPECT_EQ(c->qgs_socket_path, "/var/run/tdx-qgs/qgs.socket");
  EXPECT_FALSE(c->attestation_enforced);

  // An administrator's own path and enforcement.
  config["confidentialCompute"]["tdx"]["attestation"] = {{"enforced", true},
                                                         {"qgsSocketPath", "/run/qgs/qgs.sock"}};
  c = ParseKubevirtList(KubevirtList("v1.9.1", config));
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->qgs_socket_path, "/run/qgs/qgs.sock");
  EXPECT_TRUE(c->attestation_enforced);

  // confidentialCompute without the path: upstream's default applies.
  c = ParseKubevirtList(KubevirtList("v1.9.0", {{"confidentialCompute", json::object()}}));
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->qgs_socket_path, kUpstreamDefaultQgsSocket);
  EXPECT_FALSE(c->tdx_gate);
}

TEST(ParseKubevirtList, ErrorsNameWhatIsMissing) {
  json empty = KubevirtList("v1.9.0");
  empty["items"] = json::array();
  EXPECT_EQ(ParseKubevirtList(empty).error(),
            "no KubeVirt CR in the cluster (GET /apis/kubevirt.io/v1/kubevirts listed none): "
            "install KubeVirt, or name the version explicitly");
  EXPECT_EQ(ParseKubevirtList(KubevirtList("")).error(),
            "KubeVirt kubevirt/kubevirt has no status.observedKubeVirtVersion yet (virt-operator "
            "has not finished deploying it)");
  EXPECT_EQ(ParseKubevirtList(json::object()).error(), "KubeVirtList: no items array (is this the body of GET /apis/kubevirt.io/v1/kubevirts?)");
  EXPECT_EQ(ParseKubevirtList(KubevirtList("banana")).error(), "KubeVirt kubevirt/kubevirt: status.observedKubeVirtVersion: KubeVirt version \"banana\" is not "
            "MAJOR.MINOR such as 1.9 or v1.9.0");
  json bad = KubevirtList("v1.9.0", {{"confidentialCompute", {{"tdx", {{"attestation", {{"qgsSocketPath", 7}}}}}}}});
  EXPECT_EQ(ParseKubevirtList(bad).error(),
            "KubeVirt kubevirt/kubevirt: spec.configuration.confidentialCompute.tdx.attestation."
            "qgsSocketPath: expected a string");
  bad = KubevirtList("v1.9.0", {{"confidentialCompute", {{"tdx", {{"attestation", {{"qgsSocketPath", "qgs.sock"}}}}}}}});
  EXPECT_EQ(ParseKubevirtList(bad).error(), "KubeVirt kubevirt/kubevirt: spec.configuration.confidentialCompute.tdx.attestation."
            "qgsSocketPath \"qgs.sock\": expected an absolute path");
  bad = KubevirtList("v1.9.0", {{"developerConfiguration", {{"featureGates", "WorkloadEncryptionTDX"}}}});
  EXPECT_EQ(ParseKubevirtList(bad).error(), "KubeVirt kubevirt/kubevirt: spec.configuration.developerConfiguration.featureGates: expected a "
            "list");
}

class KubeApi : public ::testing::Test {
 protected:
  void SetUp() override { config_ = api_.Config(dir_); }
  FakeKubeApi api_;
  TempDir dir_;
  KubeApiConfig config_;
};

TEST_F(KubeApi, FetchesTheKubevirtCrWithTheToken) {
  api_.SetKubevirtList(KubevirtList("v1.8.2"));
  auto c = FetchKubevirtCluster(config_);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->observed_version, "v1.8.2");
  auto seen = api_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].path, "/apis/kubevirt.io/v1/kubevirts");
  EXPECT_EQ(seen[0].authorization, "Bearer sa-token-1");
}

TEST_F(KubeApi, ForbiddenNamesTheRbacAndNeverTheToken) {
  api_.Fail({403});
  auto c = FetchKubevirtCluster(config_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error(), "GET /apis/kubevirt.io/v1/kubevirts: HTTP 403: injected 403 (the "
                       "ServiceAccount needs get/list on kubevirts.kubevirt.io; see deploy/) "
                       "(after 1 attempt)");
  EXPECT_EQ(api_.seen().size(), 1u);
}

TEST_F(KubeApi, RetriesServerErrorsThenSucceeds) {
  api_.Fail({503, 429});
  auto r = Send(config_, {.method = "GET", .path = kKubevirtListPath});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->attempts, 3);
  EXPECT_EQ(r->status, 200);
}

TEST_F(KubeApi, AResponseOverTheLimitIsRefused) {
  config_.max_response = 512;  // the CR list is larger
  auto r = GetJson(config_, kKubevirtListPath);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "GET /apis/kubevirt.io/v1/kubevirts: response over 512 bytes");
  EXPECT_EQ(api_.seen().size(), 1u);  // not retried

  // Without a Content-Length the limit holds while reading.
  api_.SetChunked(true);
  r = GetJson(config_, kKubevirtListPath);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "GET /apis/kubevirt.io/v1/kubevirts: response over 512 bytes");
  config_.max_response = 1 << 20;
  EXPECT_TRUE(GetJson(config_, kKubevirtListPath).ok());  // and a chunked body reads whole
}

TEST_F(KubeApi, PostAndPatchCarryTheirContentTypes) {
  ASSERT_TRUE(PostJson(config_, "/api/v1/namespaces/default/events", R"({"kind":"Event"})").ok());
  ASSERT_TRUE(MergePatch(config_, "/api/v1/nodes/n1", R"({"metadata":{"labels":{"a":"b"}}})").ok());
  auto seen = api_.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].content_type, "application/json");
  EXPECT_EQ(seen[0].body, R"({"kind":"Event"})");
  EXPECT_EQ(seen[1].content_type, "application/merge-patch+json");
  EXPECT_EQ(api_.node_labels().at("a"), "b");
}

TEST_F(KubeApi, WatcherFollowsAVersionChange) {
  api_.SetKubevirtList(KubevirtList("v1.8.0"));
  std::mutex mu;
  std::vector<std::string> changes;
  ClusterWatcher w(config_, 1h, [&](const KubevirtCluster& now, const std::optional<KubevirtCluster>& before) {
    std::lock_guard lock(mu);
    changes.push_back((before ? before->observed_version : "none") + "->" + now.observed_version);
  });
  w.Start();
  ASSERT_GE(w.WaitForRead(0, 60s), 1u);
  ASSERT_TRUE(w.last());
  EXPECT_EQ(w.last()->observed_version, "v1.8.0");
  EXPECT_EQ(w.last_error(), "");

  // An upgrade: the next read (here forced; in service every interval) sees it.
  json upgraded = KubevirtList("v1.9.0", {{"confidentialCompute", json::object()}});
  api_.SetKubevirtList(upgraded);
  uint64_t seen = w.reads();
  w.ReadNow();
  ASSERT_GT(w.WaitForRead(seen, 60s), seen);
  EXPECT_EQ(w.last()->observed_version, "v1.9.0");
  EXPECT_EQ(w.last()->qgs_socket_path, kUpstreamDefaultQgsSocket);

  // A failed read keeps the last good value and says why.
  api_.Fail({403});
  seen = w.reads();
  w.ReadNow();
  ASSERT_GT(w.WaitForRead(seen, 60s), seen);
  EXPECT_EQ(w.last()->observed_version, "v1.9.0");
  EXPECT_EQ(w.last_error(), "GET /apis/kubevirt.io/v1/kubevirts: HTTP 403: injected 403 (the ServiceAccount needs "
            "get/list on kubevirts.kubevirt.io; see deploy/) (after 1 attempt)");
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(changes, (std::vector<std::string>{"none->v1.8.0", "v1.8.0->v1.9.0"}));
  }
  w.Stop();  // promptly: the wait is an hour
}

TEST_F(KubeApi, WatcherStopsDuringARetryBackoff) {
  config_.initial_backoff = config_.max_backoff = 1h;
  api_.Fail({500, 500});
  ClusterWatcher w(config_, 1h);
  w.Start();
  ASSERT_TRUE(api_.WaitFor([&] { return api_.seen().size() >= 1; }));
  w.Stop();  // would hang for an hour if the backoff slept
  EXPECT_EQ(api_.seen().size(), 1u);
}

}  // namespace
}  // namespace tdxvirt::kube
