// `serve webhook` over HTTPS with a real TLS client: AdmissionReview in, response out; health,
// readiness and metrics; the CLI daemon stops cleanly on SIGTERM.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "fake_kube_api.h"
#include "kube/cluster.h"
#include "kubevirt/admission.h"
#include "kubevirt/webhook_server.h"
#include "kv_test_util.h"

namespace tdxvirt::kubevirt {
namespace {

// A self-signed localhost certificate made with the openssl tool.
void MakeCert(const testing::TempDir& tmp) {
  std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                    "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
                    "-keyout " + tmp.File("tls.key") + " -out " + tmp.File("tls.crt") +
                    " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
}

Json ReviewRequest(const Json& object, const std::string& uid) {
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request", {{"uid", uid}, {"operation", "CREATE"}, {"object", object}}}};
}

struct WebhookFixture : ::testing::Test {
  testing::TempDir tmp;
  std::unique_ptr<WebhookServer> server;
  int port = 0;

  void SetUp() override {
    MakeCert(tmp);
    WebhookOptions o;
    o.cert_file = tmp.File("tls.crt");
    o.key_file = tmp.File("tls.key");
    o.host = "127.0.0.1";
    o.port = 0;
    o.log = [](const std::string&) {};
    server = std::make_unique<WebhookServer>(testing::GateOn(), o);
    auto p = server->Start();
    ASSERT_TRUE(p.ok()) << p.error();
    port = *p;
  }

  std::unique_ptr<httplib::SSLClient> Client() {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    c->set_ca_cert_path(tmp.File("tls.crt").c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(30);
    c->set_read_timeout(60);
    return c;
  }
};

TEST_F(WebhookFixture, MutateThenValidateOverHttps) {
  Json vm = testing::WithTdx(testing::ReadManifest("kubevirt/examples/vm-cirros.yaml"));
  auto c = Client();
  auto res = c->Post("/mutate", ReviewRequest(vm, "u-1").dump(), "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200);
  Json mr = Json::parse(res->body);
  EXPECT_EQ(mr["response"]["uid"], "u-1");
  EXPECT_TRUE(mr["response"]["allowed"].get<bool>());
  auto patch = Base64Decode(mr["response"]["patch"].get<std::string>(), "patch");
  ASSERT_TRUE(patch.ok());
  Json mutated = vm.patch(Json::parse(std::string(patch->begin(), patch->end())));
  // 1.8: our key resource; the node selector is upstream's (kubevirt.io/tdx on the launcher pod).
  EXPECT_EQ(mutated["spec"]["template"]["spec"]["domain"]["resources"]["limits"]["tdxvirt.io/tdx-key"],
            "1");

  auto vres = c->Post("/validate", ReviewRequest(mutated, "u-2").dump(), "application/json");
  ASSERT_TRUE(vres);
  Json vr = Json::parse(vres->body);
  EXPECT_TRUE(vr["response"]["allowed"].get<bool>()) << vres->body;

  mutated["spec"]["template"]["spec"]["domain"]["features"]["smm"] = Json::object();
  auto dres = c->Post("/validate", ReviewRequest(mutated, "u-3").dump(), "application/json");
  ASSERT_TRUE(dres);
  Json dr = Json::parse(dres->body);
  EXPECT_FALSE(dr["response"]["allowed"].get<bool>());
  EXPECT_EQ(dr["response"]["status"]["code"], 403);
  EXPECT_TRUE(dr["response"]["status"]["message"].get<std::string>().starts_with(
      "spec.template.spec.domain.features.smm: TDX does not work along with SMM"));

  auto bad = c->Post("/validate", "{not json", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);

  auto health = c->Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto ready = c->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  auto metrics = c->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("tdxvirt_webhook_reviews_total{endpoint=\"mutate\",outcome=\"patched\"} 1"),
            std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("tdxvirt_webhook_reviews_total{endpoint=\"validate\",outcome=\"denied\"} 1"),
            std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("tdxvirt_webhook_reviews_total{endpoint=\"validate\",outcome=\"bad_request\"} 1"),
            std::string::npos) << metrics->body;
}

// Network input is JSON only: YAML parsing is for files (and yaml-cpp has loops on bad YAML).
TEST_F(WebhookFixture, ABodyThatIsNotJsonIs400) {
  auto c = Client();
  for (const char* body : {",\n", "apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\n", ""}) {
    auto res = c->Post("/validate", body, "application/json");
    ASSERT_TRUE(res) << body;
    EXPECT_EQ(res->status, 400) << body;
    EXPECT_NE(res->body.find("AdmissionReview JSON"), std::string::npos) << res->body;
  }
}

TEST_F(WebhookFixture, PlainHttpIsRefused) {
  httplib::Client plain("127.0.0.1", port);
  plain.set_connection_timeout(30);
  plain.set_read_timeout(30);
  auto res = plain.Get("/healthz");
  EXPECT_FALSE(res && res->status == 200);
}

TEST(WebhookStart, BadKeyPairIsAClearError) {
  testing::TempDir tmp;
  testing::WriteFile(tmp.File("tls.crt"), "not a certificate");
  testing::WriteFile(tmp.File("tls.key"), "not a key");
  WebhookOptions o;
  o.cert_file = tmp.File("tls.crt");
  o.key_file = tmp.File("tls.key");
  o.host = "127.0.0.1";
  o.port = 0;
  WebhookServer s(testing::GateOn(), o);
  auto r = s.Start();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "TLS: --tls-cert " + tmp.File("tls.crt") + ": not a readable PEM certificate chain");
  WebhookOptions missing = o;
  missing.cert_file = tmp.File("absent.crt");
  WebhookServer s2(testing::GateOn(), missing);
  EXPECT_FALSE(s2.Start().ok());
}

// kubevirtVersion defaults to auto: the daemon reads the KubeVirt CR (here from the fake API).
TEST(WebhookCli, ServesAndStopsOnSigterm) {
  testing::TempDir tmp;
  MakeCert(tmp);
  testing::FakeKubeApi api;
  api.SetKubevirtList(testing::KubevirtList("v1.8.0"));
  api.Config(tmp);
  testing::WriteFile(tmp.File("settings.yaml"), "featureGate: true\n");
  pid_t pid = testing::SpawnTdxvirt({"serve", "webhook", "--tls-cert", tmp.File("tls.crt"), "--tls-key",
                                     tmp.File("tls.key"), "--listen", "127.0.0.1:0", "--settings",
                                     tmp.File("settings.yaml"), "--kube-api-server", api.url(),
                                     "--kube-token-file", tmp.File("token"), "--kube-ca-file",
                                     tmp.File("ca.crt")},
                                    tmp.File("log"));
  // The daemon binds port 0 and logs the port it got.
  int port = testing::WaitForLoggedPort(tmp.File("log"), pid);
  ASSERT_GT(port, 0) << tdxvirt::testing::ReadFileText(tmp.File("log"));
  httplib::SSLClient c("127.0.0.1", port);
  c.enable_server_certificate_verification(false);
  c.set_connection_timeout(5);
  bool up = false;
  for (int i = 0; i < 300 && !up; ++i) {  // generous: a loaded 2-core machine
    auto r = c.Get("/readyz");
    up = r && r->status == 200;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(up);
  auto ready = c.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->body, "ready: KubeVirt 1.8 (from the KubeVirt CR)\n");
  EXPECT_EQ(testing::TerminateAndWait(pid), 0);
  std::string log = tdxvirt::testing::ReadFileText(tmp.File("log"));
  EXPECT_NE(log.find("\"component\":\"kubevirt-webhook\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"event\":\"kubevirt_cluster\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"version\":\"v1.8.0\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"event\":\"stopped\""), std::string::npos) << log;
  EXPECT_FALSE(api.seen("GET", "/apis/kubevirt.io/v1/kubevirts").empty());
}

// auto without any API access: the daemon serves but is not ready, and says how to fix it.
TEST(WebhookCli, AutoWithoutApiAccessIsNotReadyAndNamesTheFix) {
  testing::TempDir tmp;
  MakeCert(tmp);
  unsetenv("KUBERNETES_SERVICE_HOST");
  pid_t pid = testing::SpawnTdxvirt({"serve", "webhook", "--tls-cert", tmp.File("tls.crt"), "--tls-key",
                                     tmp.File("tls.key"), "--listen", "127.0.0.1:0"},
                                    tmp.File("log"));
  int port = testing::WaitForLoggedPort(tmp.File("log"), pid);
  ASSERT_GT(port, 0) << tdxvirt::testing::ReadFileText(tmp.File("log"));
  httplib::SSLClient c("127.0.0.1", port);
  c.enable_server_certificate_verification(false);
  c.set_connection_timeout(30);
  c.set_read_timeout(30);
  auto r = c.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body,
            "not ready: kubevirtVersion is auto and the KubeVirt version is unknown: no Kubernetes "
            "API access to read the KubeVirt CR: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT "
            "are not set: not running in a pod (pass --kube-api-server/--kube-token-file/"
            "--kube-ca-file, or name kubevirtVersion (1.6..1.9) in the settings)\n");
  EXPECT_EQ(testing::TerminateAndWait(pid), 0);
}

// In-process: the webhook with a ClusterWatcher on the fake API, as `serve webhook` wires it.
struct AutoWebhook : ::testing::Test {
  testing::TempDir tmp;
  testing::FakeKubeApi api;
  std::unique_ptr<kube::ClusterWatcher> watcher;
  std::unique_ptr<WebhookServer> server;
  std::mutex mu;
  std::vector<ClusterSettings> reviewed;
  int port = 0;

  void Start(ClusterSettings settings) {
    MakeCert(tmp);
    watcher = std::make_unique<kube::ClusterWatcher>(api.Config(tmp), std::chrono::hours(1));
    WebhookOptions o;
    o.cert_file = tmp.File("tls.crt");
    o.key_file = tmp.File("tls.key");
    o.host = "127.0.0.1";
    o.port = 0;
    o.log = [](const std::string&) {};
    kube::ClusterWatcher* w = watcher.get();
    o.cluster = [w] { return ObservedCluster{w->last(), w->last_error()}; };
    o.on_review = [this](const ClusterSettings& s) {
      std::lock_guard lock(mu);
      reviewed.push_back(s);
    };
    server = std::make_unique<WebhookServer>(settings, o);
    auto p = server->Start();
    ASSERT_TRUE(p.ok()) << p.error();
    port = *p;
    watcher->Start();
    ASSERT_GE(watcher->WaitForRead(0, std::chrono::seconds(60)), 1u);
  }
  void ReadAgain() {
    uint64_t n = watcher->reads();
    watcher->ReadNow();
    ASSERT_GT(watcher->WaitForRead(n, std::chrono::seconds(60)), n);
  }
  void TearDown() override {
    if (server) server->Stop();
    if (watcher) watcher->Stop();
  }
  httplib::Result Get(const std::string& path) {
    httplib::SSLClient c("127.0.0.1", port);
    c.set_ca_cert_path(tmp.File("tls.crt").c_str());
    c.enable_server_certificate_verification(true);
    c.set_read_timeout(60);
    return c.Get(path);
  }
  httplib::Result Post(const std::string& path, const Json& body) {
    httplib::SSLClient c("127.0.0.1", port);
    c.set_ca_cert_path(tmp.File("tls.crt").c_str());
    c.enable_server_certificate_verification(true);
    c.set_read_timeout(60);
    return c.Post(path, body.dump(), "application/json");
  }
};

TEST_F(AutoWebhook, NotReadyUntilTheVersionIsKnownThenReviewsUseIt) {
  api.SetKubevirtList(testing::KubevirtList(""));  // virt-operator still deploying
  Start(testing::GateOn("auto"));
  auto r = Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "not ready: kubevirtVersion is auto and the KubeVirt version is unknown: "
                     "KubeVirt kubevirt/kubevirt has no status.observedKubeVirtVersion yet "
                     "(virt-operator has not finished deploying it)\n");

  api.SetKubevirtList(testing::KubevirtList(
      "v1.9.0", {{"confidentialCompute", {{"tdx", {{"attestation", {{"qgsSocketPath", "/run/qgs/qgs.sock"}}}}}}}}));
  ReadAgain();
  r = Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ready: KubeVirt 1.9 (from the KubeVirt CR)\n");

  Json vm = testing::WithTdx(testing::ReadManifest("kubevirt/examples/vm-cirros.yaml"));
  auto res = Post("/mutate", ReviewRequest(vm, "u-auto"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(reviewed.size(), 1u);
    ASSERT_TRUE(reviewed[0].observed_version.has_value());
    EXPECT_EQ(reviewed[0].observed_version->Text(), "1.9");
    EXPECT_EQ(reviewed[0].observed_qgs_socket_path, "/run/qgs/qgs.sock");
    EXPECT_EQ(EffectiveKubevirtVersion(reviewed[0])->Text(), "1.9");
  }
  auto m = Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("tdxvirt_webhook_kubevirt_info{version=\"1.9\",source=\"cluster\"} 1"),
            std::string::npos) << m->body;

  // The cluster upgraded back... to 1.8 (a restore): the next review acts for 1.8.
  api.SetKubevirtList(testing::KubevirtList("v1.8.0"));
  ReadAgain();
  ASSERT_TRUE(Post("/mutate", ReviewRequest(vm, "u-auto-2")));
  std::lock_guard lock(mu);
  ASSERT_EQ(reviewed.size(), 2u);
  EXPECT_EQ(reviewed[1].observed_version->Text(), "1.8");
  EXPECT_FALSE(reviewed[1].observed_qgs_socket_path.has_value());
}

// An explicit version needs no API access and stays ready; the CR's QGS path still reaches review.
TEST_F(AutoWebhook, AnExplicitVersionIsReadyAndStillTakesTheCrQgsPath) {
  api.SetKubevirtList(testing::KubevirtList("v1.9.0", {{"confidentialCompute", Json::object()}}));
  ClusterSettings s = testing::GateOn();
  s.kubevirt_version = "1.9";
  Start(s);
  auto r = Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ready\n");
  Json vm = testing::WithTdx(testing::ReadManifest("kubevirt/examples/vm-cirros.yaml"));
  ASSERT_TRUE(Post("/validate", ReviewRequest(vm, "u-x")));
  std::lock_guard lock(mu);
  ASSERT_EQ(reviewed.size(), 1u);
  EXPECT_FALSE(reviewed[0].observed_version.has_value());
  EXPECT_EQ(reviewed[0].observed_qgs_socket_path, "/var/run/tdx-qgs/qgs.socket");
}

}  // namespace
}  // namespace tdxvirt::kubevirt
