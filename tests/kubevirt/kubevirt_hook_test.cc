// The hook sidecar over its real UNIX socket, with a gRPC client playing virt-launcher (Info, then
// OnDefineDomain v1alpha2/v1alpha3, then Shutdown), and the sidecar-shim executable contract.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <pugixml.hpp>
#include <sstream>
#include <iterator>
#include <thread>

#include "hooks_info.grpc.pb.h"
#include "hooks_v1alpha2.grpc.pb.h"
#include "hooks_v1alpha3.grpc.pb.h"
#include "kubevirt/domain.h"
#include "kubevirt/hook.h"
#include "kv_test_util.h"

namespace tdxvirt::kubevirt {
namespace {

namespace info = ::kubevirt::hooks::info;
namespace v2 = ::kubevirt::hooks::v1alpha2;
namespace v3 = ::kubevirt::hooks::v1alpha3;

// A TDX VMI as virt-launcher sends it: what the webhook's patch left in its annotations.
std::string TdxVmiJson() {
  Json vmi = {{"apiVersion", "kubevirt.io/v1"},
              {"kind", "VirtualMachineInstance"},
              {"metadata",
               {{"name", "testvmi"},
                {"namespace", "mynamespace"},
                {"annotations",
                 {{"tdx.tdxvirt.io/qgs", "unix:/var/run/tdx-qgs/qgs.socket"},
                  {"tdx.tdxvirt.io/mrconfigid", std::string(96, 'a')},
                  {"tdx.tdxvirt.io/policy", "0x10000000"}}}}},
              {"spec",
               {{"domain",
                 {{"launchSecurity", {{"tdx", Json::object()}}},
                  {"firmware", {{"bootloader", {{"efi", {{"secureBoot", false}}}}}}}}}}}};
  return vmi.dump();
}

std::shared_ptr<grpc::Channel> Connect(const std::string& socket) {
  auto ch = grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
  EXPECT_TRUE(ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30)));
  return ch;
}

grpc::ClientContext* WithDeadline(grpc::ClientContext& c) {
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return &c;
}

struct HookFixture : ::testing::Test {
  testing::TempDir tmp;
  std::string socket = tmp.File("hook.sock");
  std::vector<std::string> logs;
  std::mutex mu;
  std::unique_ptr<HookServer> server;

  void SetUp() override {
    HookServerOptions o;
    o.log = [this](const std::string& l) {
      std::lock_guard lock(mu);
      logs.push_back(l);
    };
    // As the sidecar runs without --kubevirt-version: the release is read from the domain.
    server = std::make_unique<HookServer>(ClusterSettings{}, o);
    Status s = server->Start(socket);
    ASSERT_TRUE(s.ok()) << s.error();
  }
};

TEST_F(HookFixture, InfoAdvertisesOnDefineDomainAndBothVersions) {
  auto stub = info::Info::NewStub(Connect(socket));
  info::InfoParams p;
  info::InfoResult r;
  grpc::ClientContext c;
  ASSERT_TRUE(stub->Info(WithDeadline(c), p, &r).ok());
  EXPECT_EQ(r.name(), kHookName);
  ASSERT_GE(r.hookpoints_size(), 1);
  EXPECT_EQ(r.hookpoints(0).name(), "OnDefineDomain");
  ASSERT_EQ(r.versions_size(), 2);
  EXPECT_EQ(r.versions(0), "v1alpha2");
  EXPECT_EQ(r.versions(1), "v1alpha3");
}

TEST_F(HookFixture, V1alpha2MakesKubevirtsDomainASchemaValidTd) {
  for (const char* f : {"hooks_domain.xml", "converter_domain_x86_64.xml"}) {
    std::string in = testing::ReadText(std::string("kubevirt/domain-xml/") + f);
    auto stub = v2::Callbacks::NewStub(Connect(socket));
    v2::OnDefineDomainParams p;
    p.set_domainxml(in);
    p.set_vmi(TdxVmiJson());
    v2::OnDefineDomainResult r;
    grpc::ClientContext c;
    grpc::Status s = stub->OnDefineDomain(WithDeadline(c), p, &r);
    ASSERT_TRUE(s.ok()) << f << ": " << s.error_message();
    const std::string& out = r.domainxml();
    EXPECT_NE(out.find("<launchSecurity type=\"tdx\">"), std::string::npos);
    EXPECT_NE(out.find("<mrConfigId>" + Base64Encode(ByteArray<48>{[] {
                ByteArray<48> a;
                a.fill(0xaa);
                return a;
              }()}) + "</mrConfigId>"),
              std::string::npos);
    EXPECT_NE(out.find("<quoteGenerationService path=\"/var/run/tdx-qgs/qgs.socket\""),
              std::string::npos);
    SchemaCheck check =
        ValidateDomainXml(testing::WithoutUpstreamSchemaDeviations(out), testing::SchemaDir());
    ASSERT_TRUE(check.ran) << check.message;
    EXPECT_TRUE(check.valid) << f << ": " << check.message;
    // Idempotent: the hook's output through the hook again is unchanged.
    v2::OnDefineDomainParams again;
    again.set_domainxml(out);
    again.set_vmi(TdxVmiJson());
    v2::OnDefineDomainResult r2;
    grpc::ClientContext c2;
    ASSERT_TRUE(stub->OnDefineDomain(WithDeadline(c2), again, &r2).ok());
    EXPECT_TRUE(r2.domainxml() == out) << f << ": not idempotent";
  }
}

TEST_F(HookFixture, V1alpha3OnDefineDomainAndShutdown) {
  auto ch = Connect(socket);
  auto stub = v3::Callbacks::NewStub(ch);
  v3::OnDefineDomainParams p;
  p.set_domainxml(testing::ReadText("kubevirt/domain-xml/converter_domain_x86_64.xml"));
  p.set_vmi(TdxVmiJson());
  v3::OnDefineDomainResult r;
  grpc::ClientContext c;
  ASSERT_TRUE(stub->OnDefineDomain(WithDeadline(c), p, &r).ok());
  EXPECT_TRUE(r.domainxml() == *OnDefineDomain(p.vmi(), p.domainxml(), ClusterSettings{}));

  // A non-TDX VMI's domain passes through untouched.
  v3::OnDefineDomainParams plain;
  plain.set_domainxml(p.domainxml());
  plain.set_vmi(R"({"kind":"VirtualMachineInstance","metadata":{"name":"x"},"spec":{}})");
  v3::OnDefineDomainResult pr;
  grpc::ClientContext pc;
  ASSERT_TRUE(stub->OnDefineDomain(WithDeadline(pc), plain, &pr).ok());
  EXPECT_TRUE(pr.domainxml() == plain.domainxml());

  // Bad input is an error status naming the problem, not a crash.
  v3::OnDefineDomainParams bad;
  bad.set_domainxml("<domain><name>");
  bad.set_vmi(TdxVmiJson());
  v3::OnDefineDomainResult br;
  grpc::ClientContext bc;
  grpc::Status bs = stub->OnDefineDomain(WithDeadline(bc), bad, &br);
  EXPECT_EQ(bs.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(bs.error_message().starts_with("domain XML: ")) << bs.error_message();

  std::thread waiter([&] { server->Wait(); });
  v3::ShutdownParams sp;
  v3::ShutdownResult sr;
  grpc::ClientContext sc;
  ASSERT_TRUE(stub->Shutdown(WithDeadline(sc), sp, &sr).ok());
  waiter.join();  // Wait() returned because virt-launcher asked the sidecar to stop
  server->Stop();
  EXPECT_EQ(server->calls(), 3u);
  std::lock_guard lock(mu);
  bool logged = false;
  for (const std::string& l : logs) logged = logged || l.find("\"shutdown_requested\"") != std::string::npos;
  EXPECT_TRUE(logged);
}

// On a domain KubeVirt >= 1.7 rendered (<launchSecurity type='tdx'/>), the sidecar without a named
// release adds only the launchSecurity children upstream lacks and leaves the rest byte for byte.
TEST_F(HookFixture, OnAnUpstreamTdOnlyLaunchSecurityChildrenAreAdded) {
  auto upstream = ApplyUpstreamTdx(testing::ReadText("kubevirt/domain-xml/converter_domain_x86_64.xml"),
                                   kube::KubevirtVersion{.major = 1, .minor = 8}, false, "");
  ASSERT_TRUE(upstream.ok()) << upstream.error();
  auto stub = v3::Callbacks::NewStub(Connect(socket));
  v3::OnDefineDomainParams p;
  p.set_domainxml(*upstream);
  p.set_vmi(TdxVmiJson());
  v3::OnDefineDomainResult r;
  grpc::ClientContext c;
  ASSERT_TRUE(stub->OnDefineDomain(WithDeadline(c), p, &r).ok());
  auto without_ls = [](const std::string& xml) {
    pugi::xml_document d;
    d.load_string(xml.c_str());
    d.child("domain").remove_child("launchSecurity");
    std::ostringstream o;
    d.save(o);
    return o.str();
  };
  EXPECT_EQ(without_ls(r.domainxml()), without_ls(*upstream));
  pugi::xml_document out;
  ASSERT_TRUE(out.load_string(r.domainxml().c_str()));
  pugi::xml_node ls = out.child("domain").child("launchSecurity");
  EXPECT_STREQ(ls.child_value("policy"), "0x10000000");
  EXPECT_TRUE(ls.child("mrConfigId"));
  EXPECT_STREQ(ls.child("quoteGenerationService").attribute("path").value(),
               "/var/run/tdx-qgs/qgs.socket");
}

TEST(HookServerStart, RefusesAPathThatIsNotASocket) {
  testing::TempDir tmp;
  testing::WriteFile(tmp.File("file"), "x");
  HookServer s(testing::GateOn());
  Status st = s.Start(tmp.File("file"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().find("exists and is not a socket"), std::string::npos);
}

TEST(SidecarShim, OnDefineDomainExecutableContract) {
  testing::TempDir tmp;
  std::string domain = testing::ReadText("kubevirt/domain-xml/hooks_domain.xml");
  testing::WriteFile(tmp.File("vmi.json"), TdxVmiJson());
  testing::WriteFile(tmp.File("domain.xml"), domain);
  // As the shim calls it: the VMI and the domain inline as arguments.
  auto inline_args = testing::RunTdxvirt("hook on-define-domain --vmi \"$(cat " +
                                         tmp.File("vmi.json") + ")\" --domain \"$(cat " +
                                         tmp.File("domain.xml") + ")\"");
  ASSERT_EQ(inline_args.exit_code, 0) << inline_args.err;
  EXPECT_TRUE(inline_args.out == *OnDefineDomain(TdxVmiJson(), domain, ClusterSettings{}));
  auto files = testing::RunTdxvirt("hook on-define-domain --vmi @" + tmp.File("vmi.json") +
                                   " --domain @" + tmp.File("domain.xml"));
  ASSERT_EQ(files.exit_code, 0) << files.err;
  EXPECT_TRUE(files.out == inline_args.out);
  auto bad = testing::RunTdxvirt("hook on-define-domain --vmi '{' --domain @" + tmp.File("domain.xml"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(bad.out.empty());  // nothing partial on stdout
  EXPECT_NE(bad.err.find("vmi: not valid JSON"), std::string::npos) << bad.err;
}

TEST(ServeHookCli, AnswersOnItsSocketAndStopsOnSigterm) {
  testing::TempDir tmp;
  std::string socket = tmp.File("hook.sock");
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = freopen(tmp.File("log").c_str(), "w", stderr);
    (void)f;
    execl(TDXVIRT_BIN, "tdxvirt", "serve", "hook", "--socket", socket.c_str(), "--version",
          "v1alpha3", static_cast<char*>(nullptr));
    _exit(127);
  }
  auto stub = info::Info::NewStub(Connect(socket));
  info::InfoParams p;
  info::InfoResult r;
  grpc::ClientContext c;
  ASSERT_TRUE(stub->Info(WithDeadline(c), p, &r).ok());
  ASSERT_EQ(r.versions_size(), 1);
  EXPECT_EQ(r.versions(0), "v1alpha3");
  EXPECT_EQ(testing::TerminateAndWait(pid), 0);
  std::string log = tdxvirt::testing::ReadFileText(tmp.File("log"));
  EXPECT_NE(log.find("\"event\":\"stopped\""), std::string::npos) << log;
  EXPECT_NE(access(socket.c_str(), F_OK), 0);  // the socket file is removed
}

}  // namespace
}  // namespace tdxvirt::kubevirt
