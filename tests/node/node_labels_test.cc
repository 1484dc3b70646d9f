// Node labels: the NFD local feature file, the merge patch, and the Kubernetes API client against
// a loopback HTTPS API-server peer (path, content type, body, bearer token, retries).
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "fake_kube_api.h"
#include "node/labels.h"
#include "test_util.h"

namespace tdxvirt::node {
namespace {

using tdxvirt::testing::TempDir;
using tdxvirt::testing::WriteFile;
using namespace std::chrono_literals;

TdxDetection ReadyHost(int64_t capacity = 16, int64_t used = 3) {
  TdxDetection d;
  d.ready = d.tdx_enabled = d.keys_known = true;
  d.keys.capacity = capacity;
  d.keys.used = used;
  d.keys.kubernetes_usage_known = true;
  return d;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(NodeLabels, ForAReadyHostAndOthers) {
  LabelSet l = NodeLabels(ReadyHost());
  EXPECT_EQ(l.at(kLabelTdx), "true");
  EXPECT_EQ(l.at(kLabelKeysTotal), "16");
  EXPECT_EQ(l.at(kLabelKeysFree), "13");
  EXPECT_EQ(l.count(kKubevirtTdxLabel), 0u);
  EXPECT_EQ(NodeLabels(ReadyHost(), {.kubevirt_label = true}).at(kKubevirtTdxLabel), "true");

  // KubeVirt 1.9+: keys used outside Kubernetes as a label; otherwise the label is removed.
  TdxDetection split = ReadyHost(16, 5);
  split.keys.used_by_kubernetes = 2;
  EXPECT_EQ(NodeLabels(split, {.keys_used_outside = true}).at(kLabelKeysUsedOutside), "3");
  EXPECT_FALSE(NodeLabels(split).at(kLabelKeysUsedOutside).has_value());
  EXPECT_FALSE(NodeLabels(TdxDetection{}, {.keys_used_outside = true}).at(kLabelKeysUsedOutside).has_value());

  TdxDetection off;  // not a TDX host: our labels are removed
  LabelSet none = NodeLabels(off, {.kubevirt_label = true});
  EXPECT_FALSE(none.at(kLabelTdx).has_value());
  EXPECT_FALSE(none.at(kLabelKeysTotal).has_value());
  EXPECT_FALSE(none.at(kKubevirtTdxLabel).has_value());
}

TEST(NodeLabels, NfdFeatureFileIsReplacedAtomically) {
  TempDir dir;
  ASSERT_TRUE(WriteNfdFeatureFile(dir.path(), NodeLabels(ReadyHost())).ok());
  EXPECT_EQ(ReadAll(dir.File(kNfdFeatureFile)),
            "# Written by the tdxvirt node agent (tdxvirt serve node-agent); replaced atomically.\n"
            "tdxvirt.io/tdx=true\n"
            "tdxvirt.io/tdx-keys-free=13\n"
            "tdxvirt.io/tdx-keys-total=16\n");
  ASSERT_TRUE(WriteNfdFeatureFile(dir.path(), NodeLabels(TdxDetection{})).ok());
  std::string text = ReadAll(dir.File(kNfdFeatureFile));
  // Every label absent (= removed by NFD): only the header remains.
  EXPECT_EQ(text, "# Written by the tdxvirt node agent (tdxvirt serve node-agent); replaced atomically.\n");
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), kNfdFeatureFile);  // no temporary or dot file left
  }
  EXPECT_EQ(files, 1u);

  auto missing = WriteNfdFeatureFile(dir.File("nope"), {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), "NFD features directory " + dir.File("nope") +
                                 " does not exist (NFD's is /etc/kubernetes/node-feature-discovery/features.d)");
  for (const char* name : {".hidden", "a/b", ""}) {
    auto bad = WriteNfdFeatureFile(dir.path(), {}, name);
    ASSERT_FALSE(bad.ok()) << name;
    EXPECT_EQ(bad.error(), std::string("NFD feature file name \"") + name +
                               "\" must be a plain name not starting with .");
  }
}

TEST(NodeLabels, MergePatchTouchesOnlyOurLabels) {
  LabelSet l = NodeLabels(TdxDetection{}, {.kubevirt_label = true});
  l[kLabelKeysTotal] = "4";
  EXPECT_EQ(NodeLabelsMergePatch(l),
            R"({"metadata":{"labels":{"kubevirt.io/tdx":null,"tdxvirt.io/tdx":null,)"
            R"("tdxvirt.io/tdx-keys-free":null,"tdxvirt.io/tdx-keys-total":"4",)"
            R"("tdxvirt.io/tdx-keys-used-outside":null}}})");
}

TEST(NodeLabels, InClusterConfigFromTheEnvironment) {
  TempDir sa;
  WriteFile(sa.File("token"), "t0ken\n");
  WriteFile(sa.File("ca.crt"), "-----BEGIN CERTIFICATE-----\n");
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto c = InClusterConfig(sa.path());
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token_file, sa.File("token"));
  EXPECT_EQ(c->ca_file, sa.File("ca.crt"));
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  EXPECT_EQ(InClusterConfig(sa.path())->server, "https://[fd00::1]:443");
  auto no_sa = InClusterConfig(sa.File("none"));
  ASSERT_FALSE(no_sa.ok());
  EXPECT_EQ(no_sa.error(), "service account " + sa.File("none") +
                               " has no token or ca.crt: set automountServiceAccountToken and a serviceAccount");
  unsetenv("KUBERNETES_SERVICE_HOST");
  auto no = InClusterConfig(sa.path());
  ASSERT_FALSE(no.ok());
  EXPECT_EQ(no.error(),
            "KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set: not running in a pod (run in-cluster)");
  unsetenv("KUBERNETES_SERVICE_PORT");
}

// ---- Against a Kubernetes API server peer over HTTPS (tests/fake_kube_api.h) ----

class NodeKubeApi : public ::testing::Test {
 protected:
  void SetUp() override { config_ = api_.Config(dir_); }
  tdxvirt::testing::FakeKubeApi api_;
  TempDir dir_;
  KubeApiConfig config_;
};

TEST_F(NodeKubeApi, PatchesTheNodeWithAMergePatch) {
  LabelSet labels = NodeLabels(ReadyHost(), {.kubevirt_label = true});
  auto r = PatchNodeLabels(config_, "worker-1", labels);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->attempts, 1);
  auto seen = api_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "PATCH");
  EXPECT_EQ(seen[0].path, "/api/v1/nodes/worker-1");
  EXPECT_EQ(seen[0].content_type, "application/merge-patch+json");
  EXPECT_EQ(seen[0].authorization, "Bearer sa-token-1");
  auto body = nlohmann::json::parse(seen[0].body);
  EXPECT_EQ(body.size(), 1u);
  EXPECT_EQ(body["metadata"].size(), 1u);
  EXPECT_EQ(body["metadata"]["labels"],
            nlohmann::json({{"tdxvirt.io/tdx", "true"},
                            {"tdxvirt.io/tdx-keys-total", "16"},
                            {"tdxvirt.io/tdx-keys-free", "13"},
                            {"tdxvirt.io/tdx-keys-used-outside", nullptr},
                            {"kubevirt.io/tdx", "true"}}));
  EXPECT_EQ(api_.node_labels().count("tdxvirt.io/tdx-keys-used-outside"), 0u);

  // A rotated token is picked up on the next request.
  WriteFile(dir_.File("token"), "sa-token-2");
  ASSERT_TRUE(PatchNodeLabels(config_, "worker-1", labels).ok());
  EXPECT_EQ(api_.seen().back().authorization, "Bearer sa-token-2");
}

TEST_F(NodeKubeApi, RetriesConflictsAndServerErrors) {
  api_.Fail({409, 500, 503});
  auto r = PatchNodeLabels(config_, "worker-1", NodeLabels(ReadyHost()));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->attempts, 4);
  EXPECT_EQ(api_.seen().size(), 4u);
  for (const auto& s : api_.seen()) EXPECT_EQ(s.body, api_.seen()[0].body);  // same patch each time
}

TEST_F(NodeKubeApi, GivesUpAfterMaxAttempts) {
  api_.Fail({500, 500, 500, 500, 500, 500});
  config_.max_attempts = 3;
  auto r = PatchNodeLabels(config_, "worker-1", NodeLabels(ReadyHost()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "PATCH /api/v1/nodes/worker-1: HTTP 500: injected 500 (after 3 attempts)");
  EXPECT_EQ(api_.seen().size(), 3u);
}

TEST_F(NodeKubeApi, ForbiddenIsNotRetriedAndSaysWhatRbacIsNeeded) {
  api_.Fail({403});
  auto r = PatchNodeLabels(config_, "worker-1", NodeLabels(ReadyHost()));
  ASSERT_FALSE(r.ok());
  // Exact, so neither the token nor anything else rides along.
  EXPECT_EQ(r.error(),
            "PATCH /api/v1/nodes/worker-1: HTTP 403: injected 403 (the agent's ServiceAccount needs "
            "get/patch on nodes; see deploy/node/) (after 1 attempt)");
  EXPECT_EQ(api_.seen().size(), 1u);
}

TEST_F(NodeKubeApi, RefusesAnUntrustedServerAndBadNodeNames) {
  TempDir other;
  tdxvirt::testing::TlsIdentity stranger = tdxvirt::testing::MakeLoopbackTlsIdentity("kube-apiserver test");
  WriteFile(other.File("ca.crt"), stranger.cert_pem);
  config_.ca_file = other.File("ca.crt");
  config_.max_attempts = 2;
  auto r = PatchNodeLabels(config_, "worker-1", NodeLabels(ReadyHost()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "PATCH /api/v1/nodes/worker-1 (" + config_.server +
                           "): SSLServerVerification (after 2 attempts)");
  EXPECT_TRUE(api_.seen().empty());

  config_.ca_file = dir_.File("ca.crt");
  for (const char* bad : {"", "../nodes", "Worker", "a/b", "a?b"}) {
    auto b = PatchNodeLabels(config_, bad, {});
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_EQ(b.error(), std::string("node name \"") + bad +
                             "\" is not a DNS subdomain (set --kube-node or NODE_NAME from spec.nodeName)");
  }
  config_.server = "http://127.0.0.1:1";
  auto plain = PatchNodeLabels(config_, "worker-1", {});
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.error(), "Kubernetes API server http://127.0.0.1:1 must be https://");
  EXPECT_TRUE(api_.seen().empty());
}

}  // namespace
}  // namespace tdxvirt::node
