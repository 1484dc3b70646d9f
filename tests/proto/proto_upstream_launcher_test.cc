// virt-launcher built from the UPSTREAM KubeVirt hook API (tests/upstream-proto/kubevirt/..., code
// generated at build time) against `tdxvirt serve hook` as a separate process: Info, then
// OnDefineDomain (v1alpha3 and v1alpha2) with a TDX VMI and a domain KubeVirt rendered, then the
// v1alpha3 Shutdown, after which the sidecar exits by itself. This binary links no code generated
// from our own .proto (same package names).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>

#include <nlohmann/json.hpp>

#include "api_info.grpc.pb.h"       // generated from upstream's api_info.proto
#include "api_v1alpha2.grpc.pb.h"   // ... api_v1alpha2.proto
#include "api_v1alpha3.grpc.pb.h"   // ... api_v1alpha3.proto
#include "test_util.h"

namespace tdxvirt::proto_test {
namespace {

namespace info = ::kubevirt::hooks::info;
namespace v2 = ::kubevirt::hooks::v1alpha2;
namespace v3 = ::kubevirt::hooks::v1alpha3;
using tdxvirt::testing::ReadFileText;
using tdxvirt::testing::TempDir;
using namespace std::chrono_literals;

constexpr auto kWait = 30s;  // watchdog for every wait: a loaded 2-core machine

std::chrono::system_clock::time_point Deadline() { return std::chrono::system_clock::now() + kWait; }

// A TDX VMI as virt-launcher sends it: what the webhook's patch left in its annotations.
std::string TdxVmiJson() {
  nlohmann::json vmi = {
      {"apiVersion", "kubevirt.io/v1"},
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
         {{"launchSecurity", {{"tdx", nlohmann::json::object()}}},
          {"firmware", {{"bootloader", {{"efi", {{"secureBoot", false}}}}}}}}}}}};
  return vmi.dump();
}

TEST(ProtoUpstreamLauncher, HookSidecarAnswersTheUpstreamHooksApi) {
  TempDir tmp;
  const std::string socket = tmp.File("hook.sock"), err = tmp.File("hook.err");
  const std::string domain_path =
      tdxvirt::testing::TestdataPath("kubevirt/domain-xml/converter_domain_x86_64.xml");
  const std::string domain = ReadFileText(domain_path);
  ASSERT_FALSE(domain.empty()) << domain_path;
  pid_t pid = tdxvirt::testing::SpawnTdxvirt({"serve", "hook", "--socket", socket}, err);
  ASSERT_GT(pid, 0);

  auto channel = grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(Deadline())) << ReadFileText(err);

  {  // Info: virt-launcher learns the hook points and the Callbacks versions.
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    info::InfoResult r;
    ASSERT_TRUE(info::Info::NewStub(channel)->Info(&ctx, info::InfoParams(), &r).ok());
    EXPECT_EQ(r.name(), "tdxvirt-tdx");
    ASSERT_EQ(r.hookpoints_size(), 2);
    EXPECT_EQ(r.hookpoints(0).name(), "OnDefineDomain");
    EXPECT_EQ(r.hookpoints(1).name(), "Shutdown");
    ASSERT_EQ(r.versions_size(), 2);
    EXPECT_EQ(r.versions(0), "v1alpha2");
    EXPECT_EQ(r.versions(1), "v1alpha3");
  }

  // The same answer as the sidecar-shim form of the same product, on the same input.
  tdxvirt::testing::WriteFile(tmp.File("vmi.json"), TdxVmiJson());
  auto shim = tdxvirt::testing::RunTdxvirt("hook on-define-domain --vmi @" + tmp.File("vmi.json") +
                                           " --domain @" + domain_path);
  ASSERT_EQ(shim.exit_code, 0) << shim.err;

  auto v3stub = v3::Callbacks::NewStub(channel);
  {  // OnDefineDomain v1alpha3: the domain becomes a TD.
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v3::OnDefineDomainParams p;
    p.set_domainxml(domain);
    p.set_vmi(TdxVmiJson());
    v3::OnDefineDomainResult r;
    grpc::Status s = v3stub->OnDefineDomain(&ctx, p, &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
    const std::string& out = r.domainxml();
    EXPECT_NE(out.find("<launchSecurity type=\"tdx\">"), std::string::npos) << out;
    EXPECT_NE(out.find("<mrConfigId>" + std::string(64, 'q') + "</mrConfigId>"), std::string::npos)
        << out;  // 48 bytes of 0xaa in base64
    EXPECT_NE(out.find("<quoteGenerationService path=\"/var/run/tdx-qgs/qgs.socket\""),
              std::string::npos) << out;
    EXPECT_TRUE(out == shim.out);
  }
  {  // v1alpha2 answers the same.
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v2::OnDefineDomainParams p;
    p.set_domainxml(domain);
    p.set_vmi(TdxVmiJson());
    v2::OnDefineDomainResult r;
    ASSERT_TRUE(v2::Callbacks::NewStub(channel)->OnDefineDomain(&ctx, p, &r).ok());
    EXPECT_TRUE(r.domainxml() == shim.out);
  }
  {  // Bad input: an error status naming the problem.
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v3::OnDefineDomainParams p;
    p.set_domainxml("<domain><name>");
    p.set_vmi(TdxVmiJson());
    v3::OnDefineDomainResult r;
    grpc::Status s = v3stub->OnDefineDomain(&ctx, p, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(s.error_message().starts_with("domain XML: ")) << s.error_message();
  }

  // Shutdown: the sidecar exits 0 by itself (no signal), within the watchdog.
  auto exited = std::async(std::launch::async, [pid] {
    int status = 0;
    return waitpid(pid, &status, 0) == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  });
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v3::ShutdownResult r;
    ASSERT_TRUE(v3stub->Shutdown(&ctx, v3::ShutdownParams(), &r).ok());
  }
  if (exited.wait_for(kWait) != std::future_status::ready) kill(pid, SIGKILL);  // then fails below
  EXPECT_EQ(exited.get(), 0) << ReadFileText(err);
  EXPECT_NE(ReadFileText(err).find("\"shutdown_requested\""), std::string::npos);
  EXPECT_NE(access(socket.c_str(), F_OK), 0);  // the socket file is removed
}

}  // namespace
}  // namespace tdxvirt::proto_test
