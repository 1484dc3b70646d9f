// kubelet built from the UPSTREAM device-plugin API (tests/upstream-proto/kubelet/..., generated at
// build time) against `tdxvirt serve node-agent` as a separate process: the agent registers on
// kubelet.sock, then this kubelet calls every DevicePlugin method on the plugin's socket with the
// upstream stubs. This binary links no code generated from our own .proto (same package names).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>

#include "api.grpc.pb.h"  // generated from upstream's api.proto
#include "test_util.h"

namespace tdxvirt::proto_test {
namespace {

using tdxvirt::testing::ReadFileText;
using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;
using namespace std::chrono_literals;

constexpr auto kWait = 30s;  // watchdog for every wait: a loaded 2-core machine

std::chrono::system_clock::time_point Deadline() { return std::chrono::system_clock::now() + kWait; }

// kubelet's Registration service, upstream's generated base class.
class UpstreamRegistration final : public v1beta1::Registration::Service {
 public:
  grpc::Status Register(grpc::ServerContext*, const v1beta1::RegisterRequest* req,
                        v1beta1::Empty*) override {
    std::lock_guard lock(mu_);
    last_ = *req;
    ++count_;
    cv_.notify_all();
    return grpc::Status::OK;
  }
  // The first Register, or nothing after kWait.
  std::optional<v1beta1::RegisterRequest> WaitForRegister() {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, kWait, [&] { return count_ > 0; })) return std::nullopt;
    return last_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  v1beta1::RegisterRequest last_;
  int count_ = 0;
};

// A listening UNIX socket where the node agent looks for QGS (it only checks it is a socket).
class ListeningSocket {
 public:
  explicit ListeningSocket(const std::string& path) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path.copy(a.sun_path, sizeof a.sun_path - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << path;
    EXPECT_EQ(listen(fd_, 1), 0);
  }
  ~ListeningSocket() { close(fd_); }

 private:
  int fd_ = -1;
};

TEST(ProtoUpstreamKubelet, NodeAgentAnswersTheUpstreamDevicePluginApi) {
  TempDir tmp;
  const std::string host = tmp.File("host"), dp = tmp.File("dp"), nfd = tmp.File("nfd");
  std::filesystem::create_directories(dp);
  std::filesystem::create_directories(nfd);
  ASSERT_EQ(RunTdxvirt("node sim-host --root " + host + " --keys 3").exit_code, 0);
  ListeningSocket qgs(host + "/var/run/tdx-qgs/qgs.socket");

  UpstreamRegistration registration;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + dp + "/kubelet.sock", grpc::InsecureServerCredentials());
  builder.RegisterService(&registration);
  std::unique_ptr<grpc::Server> kubelet = builder.BuildAndStart();
  ASSERT_TRUE(kubelet);

  const std::string err = tmp.File("agent.err");
  pid_t pid = tdxvirt::testing::SpawnTdxvirt(
      {"serve", "node-agent", "--kubevirt-version", "1.8", "--host-root", host,
       "--device-plugin-dir", dp, "--nfd-dir", nfd, "--qgs-socket", "/var/run/tdx-qgs/qgs.socket",
       "--attestation-enforced", "--poll-interval", "50"},
      err);
  ASSERT_GT(pid, 0);

  // Register, as kubelet receives it.
  auto reg = registration.WaitForRegister();
  ASSERT_TRUE(reg) << "no Register within the watchdog\n" << ReadFileText(err);
  EXPECT_EQ(reg->version(), "v1beta1");
  EXPECT_EQ(reg->resource_name(), "tdxvirt.io/tdx-key");
  EXPECT_EQ(reg->endpoint(), "tdxvirt-tdx-key.sock");
  EXPECT_FALSE(reg->options().pre_start_required());
  EXPECT_TRUE(reg->options().get_preferred_allocation_available());

  // kubelet dials the endpoint relative to its device-plugin directory.
  auto channel = grpc::CreateChannel("unix:" + dp + "/" + reg->endpoint(),
                                     grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(Deadline())) << ReadFileText(err);
  auto plugin = v1beta1::DevicePlugin::NewStub(channel);

  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1beta1::DevicePluginOptions options;
    ASSERT_TRUE(plugin->GetDevicePluginOptions(&ctx, v1beta1::Empty(), &options).ok());
    EXPECT_FALSE(options.pre_start_required());
    EXPECT_TRUE(options.get_preferred_allocation_available());
  }

  // ListAndWatch: one device per key of the simulated host, all Healthy (QGS is there).
  grpc::ClientContext watch_ctx;
  watch_ctx.set_deadline(Deadline());
  auto watch = plugin->ListAndWatch(&watch_ctx, v1beta1::Empty());
  v1beta1::ListAndWatchResponse list;
  ASSERT_TRUE(watch->Read(&list)) << ReadFileText(err);
  ASSERT_EQ(list.devices_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(list.devices(i).id(), "tdx-key-" + std::to_string(i));
    EXPECT_EQ(list.devices(i).health(), "Healthy");
  }

  {  // The lowest ids are preferred; must-include ones come first.
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1beta1::PreferredAllocationRequest req;
    auto* c = req.add_container_requests();
    for (const char* id : {"tdx-key-2", "tdx-key-1", "tdx-key-0"}) c->add_available_deviceids(id);
    c->add_must_include_deviceids("tdx-key-2");
    c->set_allocation_size(2);
    v1beta1::PreferredAllocationResponse resp;
    ASSERT_TRUE(plugin->GetPreferredAllocation(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.container_responses_size(), 1);
    EXPECT_EQ(std::vector<std::string>(resp.container_responses(0).deviceids().begin(),
                                       resp.container_responses(0).deviceids().end()),
              (std::vector<std::string>{"tdx-key-2", "tdx-key-0"}));
  }

  {  // Allocate: the key ids, and the QGS socket's directory mounted read-only.
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1beta1::AllocateRequest req;
    req.add_container_requests()->add_devices_ids("tdx-key-1");
    v1beta1::AllocateResponse resp;
    auto s = plugin->Allocate(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(resp.container_responses_size(), 1);
    const auto& c = resp.container_responses(0);
    EXPECT_EQ(c.envs().size(), 3u);
    EXPECT_EQ(c.envs().at("TDXVIRT_TDX_KEY_IDS"), "tdx-key-1");
    EXPECT_EQ(c.envs().at("TDXVIRT_QGS_SOCKET"), "/var/run/tdx-qgs/qgs.socket");
    EXPECT_EQ(c.envs().at("TDXVIRT_ATTESTATION_ENFORCED"), "true");
    ASSERT_EQ(c.mounts_size(), 1);
    EXPECT_EQ(c.mounts(0).host_path(), "/var/run/tdx-qgs");
    EXPECT_EQ(c.mounts(0).container_path(), "/var/run/tdx-qgs");
    EXPECT_TRUE(c.mounts(0).read_only());
    EXPECT_EQ(c.devices_size(), 0);
    EXPECT_EQ(c.cdi_devices_size(), 0);
  }

  {  // A device the plugin does not serve is refused by name.
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1beta1::AllocateRequest req;
    req.add_container_requests()->add_devices_ids("tdx-key-9");
    v1beta1::AllocateResponse resp;
    auto s = plugin->Allocate(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(),
              "Allocate: unknown device id \"tdx-key-9\" (this plugin serves tdx-key-0..tdx-key-3 "
              "exclusive)");
  }

  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1beta1::PreStartContainerRequest req;
    req.add_devices_ids("tdx-key-1");
    v1beta1::PreStartContainerResponse resp;
    EXPECT_TRUE(plugin->PreStartContainer(&ctx, req, &resp).ok());
  }

  // SIGTERM: the agent stops cleanly, removes its socket, and the stream ends before its deadline.
  EXPECT_EQ(tdxvirt::testing::TerminateAndWait(pid), 0) << ReadFileText(err);
  EXPECT_FALSE(std::filesystem::exists(dp + "/" + reg->endpoint()));
  while (watch->Read(&list)) {
  }
  grpc::Status end = watch->Finish();
  EXPECT_NE(end.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << end.error_message();
  kubelet->Shutdown(Deadline());
}

}  // namespace
}  // namespace tdxvirt::proto_test
