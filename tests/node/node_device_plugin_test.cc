// The TDX key device plugin against the kubelet stand-in, both speaking v1beta1 gRPC over real
// UNIX sockets in a temporary device-plugin directory, on a simulated host tree.
#include <thread>

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

#include <grpcpp/grpcpp.h>

#include "deviceplugin_v1beta1.grpc.pb.h"
#include "node/device_plugin.h"
#include "node/sim_kubelet.h"
#include "test_util.h"

namespace tdxvirt::node {
namespace {

using tdxvirt::testing::TempDir;
using namespace std::chrono_literals;

constexpr auto kWait = 30s;  // generous: a loaded 2-core machine
const std::string kRes = kDefaultResourceName;

auto Healthy(size_t n, size_t total) {
  return [n, total](const std::vector<PluginDevice>& d) {
    size_t h = 0;
    for (auto& x : d) h += x.healthy;
    return d.size() == total && h == n;
  };
}

// A listening UNIX socket standing in for QGS.
class FakeQgsSocket {
 public:
  explicit FakeQgsSocket(const std::string& path) : path_(path) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    listen(fd_, 1);
  }
  ~FakeQgsSocket() {
    close(fd_);
    unlink(path_.c_str());
  }

 private:
  std::string path_;
  int fd_ = -1;
};

class NodeDevicePlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteSimulatedTdxHost(host_.path(), {.keys = 4}).ok());
    dir_ = tmp_.File("dp");
    std::filesystem::create_directories(dir_);
  }
  DevicePluginOptions Options() {
    DevicePluginOptions o;
    o.host_root = host_.path();
    o.plugin_dir = dir_;
    o.poll_interval = 50ms;
    o.log = [](const std::string&) {};
    return o;
  }
  std::unique_ptr<SimKubelet> StartKubelet(bool wipe = false) {
    auto k = std::make_unique<SimKubelet>(SimKubeletOptions{.dir = dir_, .wipe_plugin_sockets = wipe});
    Status s = k->Start();
    EXPECT_TRUE(s.ok()) << s.error();
    return k;
  }

  TempDir host_, tmp_;
  std::string dir_;
};

TEST_F(NodeDevicePlugin, RegistersAndAdvertisesOneHealthyDevicePerKey) {
  auto kubelet = StartKubelet();
  DevicePlugin plugin(Options());
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(kubelet->WaitForRegistrations(1, kWait));
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
  EXPECT_EQ(kubelet->resources(), std::vector<std::string>{kRes});
  auto devs = kubelet->Devices(kRes);
  EXPECT_EQ(devs[0].id, "tdx-key-0");
  EXPECT_EQ(devs[3].id, "tdx-key-3");
  auto opts = kubelet->PluginOptions(kRes);
  ASSERT_TRUE(opts.ok()) << opts.error();
  EXPECT_FALSE(opts->first);  // no PreStartContainer needed
  EXPECT_TRUE(opts->second);  // GetPreferredAllocation offered
  EXPECT_EQ(plugin.socket_path(), dir_ + "/tdxvirt-tdx-key.sock");
  struct stat st;
  ASSERT_EQ(stat(plugin.socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  PluginState s = plugin.state();
  EXPECT_TRUE(s.registered);
  EXPECT_EQ(s.registrations, 1u);
}

TEST_F(NodeDevicePlugin, RegistersWhenKubeletComesUpLater) {
  DevicePlugin plugin(Options());
  ASSERT_TRUE(plugin.Start().ok());
  EXPECT_FALSE(plugin.state().registered);
  auto kubelet = StartKubelet();
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
}

TEST_F(NodeDevicePlugin, ListAndWatchFollowsTheHost) {
  auto kubelet = StartKubelet();
  DevicePlugin plugin(Options());
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));

  // A TD started outside Kubernetes takes a key: the highest id turns Unhealthy.
  ASSERT_TRUE(SetSimulatedKeyUsage(host_.path(), 1, 0).ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(3, 4), kWait));
  EXPECT_FALSE(kubelet->Devices(kRes)[3].healthy);
  EXPECT_TRUE(kubelet->Devices(kRes)[0].healthy);

  // Keys taken by pods are kubelet's own accounting: no change (no double counting).
  uint64_t gen = plugin.state().generation;
  ASSERT_TRUE(SetSimulatedKeyUsage(host_.path(), 1, 2).ok());
  plugin.Refresh();
  uint64_t reads = plugin.state().host_reads;
  for (int i = 0; i < 200 && plugin.state().host_reads < reads + 3; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(plugin.state().generation, gen);
  EXPECT_EQ(kubelet->HealthyCount(kRes), 3u);

  // More keys (a new capacity) and the outside TD gone.
  ASSERT_TRUE(SetSimulatedKeyUsage(host_.path(), 0, 2, 6).ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(6, 6), kWait));

  // The misc cgroup vanishes (TDX torn down): no devices.
  std::filesystem::remove(host_.File("sys/fs/cgroup/misc.capacity"));
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(0, 0), kWait));
  EXPECT_FALSE(plugin.state().keys_ok);
  EXPECT_EQ(plugin.state().keys_error,
            "misc cgroup: cannot open " + host_.File("sys/fs/cgroup/misc.capacity") +
                ": No such file or directory (needs cgroup v2 with the misc controller, kernel "
                "CONFIG_CGROUP_MISC)");
}

TEST_F(NodeDevicePlugin, AllocateMountsTheQgsSocketDirectory) {
  FakeQgsSocket qgs(host_.File("var/run/tdx-qgs/qgs.socket"));
  auto o = Options();
  o.qgs_socket_path = "/var/run/tdx-qgs/qgs.socket";
  o.attestation_enforced = true;
  auto kubelet = StartKubelet();
  DevicePlugin plugin(o);
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));

  auto a = kubelet->Allocate(kRes, 1);
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a->device_ids, std::vector<std::string>{"tdx-key-0"});  // the preferred, lowest id
  ASSERT_EQ(a->mounts.size(), 1u);
  EXPECT_EQ(a->mounts[0].host_path, "/var/run/tdx-qgs");
  EXPECT_EQ(a->mounts[0].container_path, "/var/run/tdx-qgs");
  EXPECT_TRUE(a->mounts[0].read_only);
  EXPECT_EQ(a->envs[kEnvKeyIds], "tdx-key-0");
  EXPECT_EQ(a->envs[kEnvQgsSocket], "/var/run/tdx-qgs/qgs.socket");
  EXPECT_EQ(a->envs[kEnvAttestationEnforced], "true");

  // N keys place N TDs; the (N+1)th finds no free key.
  for (int i = 1; i < 4; ++i) ASSERT_TRUE(kubelet->Allocate(kRes, 1).ok());
  auto fifth = kubelet->Allocate(kRes, 1);
  ASSERT_FALSE(fifth.ok());
  EXPECT_EQ(fifth.error(), "insufficient tdxvirt.io/tdx-key: need 1, 4 healthy of which 4 allocated");
  EXPECT_EQ(plugin.state().allocations, 4u);
  // A pod deleted frees its key.
  kubelet->Release(*a);
  auto again = kubelet->Allocate(kRes, 1);
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(again->device_ids, std::vector<std::string>{"tdx-key-0"});
}

TEST_F(NodeDevicePlugin, NoAttestationNoMount) {
  auto kubelet = StartKubelet();
  DevicePlugin plugin(Options());
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
  auto a = kubelet->Allocate(kRes, 2);
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_TRUE(a->mounts.empty());
  EXPECT_EQ(a->envs.size(), 1u);
  EXPECT_EQ(a->envs[kEnvKeyIds], "tdx-key-0,tdx-key-1");
}

TEST_F(NodeDevicePlugin, MissingQgsSocketMakesDevicesUnhealthyWhenEnforced) {
  auto o = Options();
  o.qgs_socket_path = "/var/run/tdx-qgs/qgs.socket";
  o.attestation_enforced = true;
  auto kubelet = StartKubelet();
  DevicePlugin plugin(o);
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(0, 4), kWait));
  auto denied = kubelet->AllocateIds(kRes, {"tdx-key-0"});
  ASSERT_FALSE(denied.ok());
  // The stand-in kubelet prefixes the call's name to the plugin's gRPC message, which names it too.
  EXPECT_EQ(denied.error(),
            "Allocate: Allocate: attestation is enforced and the QGS socket "
            "/var/run/tdx-qgs/qgs.socket is missing on this node");
  {
    FakeQgsSocket qgs(host_.File("var/run/tdx-qgs/qgs.socket"));
    ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
    EXPECT_TRUE(plugin.state().qgs_present);
  }
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(0, 4), kWait));  // QGS went away again
}

TEST_F(NodeDevicePlugin, MissingQgsSocketIsFineWhenNotEnforced) {
  auto o = Options();
  o.qgs_socket_path = "/var/run/tdx-qgs/qgs.socket";
  auto kubelet = StartKubelet();
  DevicePlugin plugin(o);
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
  auto a = kubelet->Allocate(kRes, 1);
  ASSERT_TRUE(a.ok()) << a.error();
  ASSERT_EQ(a->mounts.size(), 1u);  // mounted anyway: QGS may come up while the TD runs
  EXPECT_EQ(a->envs[kEnvAttestationEnforced], "false");
}

TEST_F(NodeDevicePlugin, RejectsUnknownDeviceIds) {
  auto kubelet = StartKubelet();
  DevicePlugin plugin(Options());
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
  for (const char* id : {"tdx-key-4", "gpu-0", "tdx-key-01", "tdx-key-", ""}) {
    auto r = kubelet->AllocateIds(kRes, {id});
    ASSERT_FALSE(r.ok()) << id;
    EXPECT_EQ(r.error(), std::string("Allocate: Allocate: unknown device id \"") + id +
                             "\" (this plugin serves tdx-key-0..tdx-key-4 exclusive)");
  }
  auto none = kubelet->AllocateIds(kRes, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error(), "Allocate: Allocate: a container request names no device");
  EXPECT_EQ(plugin.state().allocations, 0u);
}

TEST_F(NodeDevicePlugin, PreferredAllocationAndPreStart) {
  auto kubelet = StartKubelet();
  DevicePlugin plugin(Options());
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
  auto p = kubelet->PreferredAllocation(kRes, {"tdx-key-3", "tdx-key-1", "tdx-key-2"}, {}, 2);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(*p, (std::vector<std::string>{"tdx-key-1", "tdx-key-2"}));
  p = kubelet->PreferredAllocation(kRes, {"tdx-key-3", "tdx-key-1", "tdx-key-2"}, {"tdx-key-3"}, 2);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, (std::vector<std::string>{"tdx-key-3", "tdx-key-1"}));
  EXPECT_TRUE(kubelet->PreStartContainer(kRes, {"tdx-key-0"}).ok());
}

TEST_F(NodeDevicePlugin, KubeletRestartLeadsToReRegistration) {
  auto kubelet = StartKubelet();
  DevicePlugin plugin(Options());
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
  kubelet->Stop();
  kubelet.reset();
  auto restarted = StartKubelet();
  ASSERT_TRUE(restarted->WaitForRegistrations(1, kWait));
  ASSERT_TRUE(restarted->WaitForDevices(kRes, Healthy(4, 4), kWait));
  // The plugin counts a registration when kubelet's reply arrives, which may be after kubelet
  // already streams devices: wait for it rather than race it.
  for (auto end = std::chrono::steady_clock::now() + kWait;
       plugin.state().registrations < 2 && std::chrono::steady_clock::now() < end;)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(plugin.state().registrations, 2u);
  EXPECT_EQ(plugin.state().server_starts, 1u);
}

TEST_F(NodeDevicePlugin, KubeletWipingTheDirectoryMakesThePluginServeAgain) {
  auto kubelet = StartKubelet();
  DevicePlugin plugin(Options());
  ASSERT_TRUE(plugin.Start().ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
  kubelet->Stop();
  kubelet.reset();
  auto restarted = StartKubelet(/*wipe=*/true);  // removes the plugin's socket, as kubelet does
  ASSERT_TRUE(restarted->WaitForDevices(kRes, Healthy(4, 4), kWait));
  EXPECT_EQ(plugin.state().server_starts, 2u);
  EXPECT_TRUE(std::filesystem::exists(plugin.socket_path()));
  auto a = restarted->Allocate(kRes, 1);
  EXPECT_TRUE(a.ok()) << a.error();
}

TEST_F(NodeDevicePlugin, PluginRestart) {
  auto kubelet = StartKubelet();
  auto plugin = std::make_unique<DevicePlugin>(Options());
  ASSERT_TRUE(plugin->Start().ok());
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
  std::string sock = plugin->socket_path();
  plugin->Stop();
  EXPECT_FALSE(std::filesystem::exists(sock));  // clean stop removes the socket
  // Kubelet marks the devices of a vanished plugin Unhealthy.
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(0, 4), kWait));
  plugin = std::make_unique<DevicePlugin>(Options());
  ASSERT_TRUE(plugin->Start().ok());
  ASSERT_TRUE(kubelet->WaitForRegistrations(2, kWait));
  ASSERT_TRUE(kubelet->WaitForDevices(kRes, Healthy(4, 4), kWait));
}

TEST_F(NodeDevicePlugin, BadOptionsAreClearErrors) {
  auto o = Options();
  o.resource_name = "tdx-key";
  auto s = DevicePlugin(o).Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "resource name \"tdx-key\": must be <domain>/<name>, e.g. tdxvirt.io/tdx-key");
  o = Options();
  o.plugin_dir = tmp_.File("nope");
  s = DevicePlugin(o).Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "device-plugin directory " + tmp_.File("nope") +
                           " does not exist (kubelet's is /var/lib/kubelet/device-plugins; mount it)");
  o = Options();
  o.qgs_socket_path = "qgs.socket";
  s = DevicePlugin(o).Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(),
            "QGS socket path \"qgs.socket\" must be absolute (a host path, e.g. /var/run/tdx-qgs/qgs.socket)");
  o = Options();
  o.socket_name = std::string(120, 'a');
  s = DevicePlugin(o).Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "socket path " + dir_ + "/" + std::string(120, 'a') +
                           " is longer than a UNIX socket address allows (107 bytes)");
}

TEST(NodeResourceName, Validation) {
  EXPECT_TRUE(ValidateResourceName("tdxvirt.io/tdx-key").ok());
  EXPECT_TRUE(ValidateResourceName("devices.kubevirt.io/tdx").ok());
  auto refusal = [](const std::string& name) {
    Status s = ValidateResourceName(name);
    return s.ok() ? std::string("accepted") : s.error();
  };
  EXPECT_EQ(refusal("tdx"), "resource name \"tdx\": must be <domain>/<name>, e.g. tdxvirt.io/tdx-key");
  EXPECT_EQ(refusal("example/tdx"),
            "resource name \"example/tdx\": the domain \"example\" must be a DNS subdomain such as "
            "example.com");
  EXPECT_EQ(refusal("kubernetes.io/tdx"),
            "resource name \"kubernetes.io/tdx\": the kubernetes.io domain is reserved; use your own domain");
  EXPECT_EQ(refusal("x.kubernetes.io/tdx"),
            "resource name \"x.kubernetes.io/tdx\": the kubernetes.io domain is reserved; use your own "
            "domain");
  EXPECT_EQ(refusal("a.io/b/c"), "resource name \"a.io/b/c\": must be <domain>/<name>, e.g. tdxvirt.io/tdx-key");
  const std::string kPart = "\": the part after / must be 1-63 characters of [A-Za-z0-9._-], starting and "
                            "ending alphanumeric";
  EXPECT_EQ(refusal("a.io/-x"), "resource name \"a.io/-x" + kPart);
  EXPECT_EQ(refusal("a.io/" + std::string(64, 'x')), "resource name \"a.io/" + std::string(64, 'x') + kPart);
}

TEST(NodeComputeDevices, CapacityMinusOutside) {
  KeyCounts k{.capacity = 5, .used = 4, .used_by_kubernetes = 2, .kubernetes_usage_known = true};
  auto d = ComputeDevices(k, true, true);
  ASSERT_EQ(d.size(), 5u);
  EXPECT_TRUE(d[2].healthy);
  EXPECT_FALSE(d[3].healthy);
  EXPECT_EQ(ComputeDevices(k, true, false)[0].healthy, false);  // QGS missing, enforced
  EXPECT_TRUE(ComputeDevices(k, false, true).empty());
  k.capacity = 1 << 30;  // absurd capacity is bounded
  EXPECT_EQ(ComputeDevices(k, true, true).size(), size_t(kMaxDevices));
}

// The kubelet stand-in itself refuses what kubelet refuses.
TEST_F(NodeDevicePlugin, SimKubeletValidatesRegistration) {
  auto kubelet = StartKubelet();
  auto stub = v1beta1::Registration::NewStub(
      grpc::CreateChannel("unix:" + dir_ + "/kubelet.sock", grpc::InsecureChannelCredentials()));
  auto call = [&](const std::string& version, const std::string& name, const std::string& ep) {
    v1beta1::RegisterRequest req;
    req.set_version(version);
    req.set_resource_name(name);
    req.set_endpoint(ep);
    v1beta1::Empty resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kWait);
    return stub->Register(&ctx, req, &resp);
  };
  EXPECT_EQ(call("v1alpha", kRes, "x.sock").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(call("v1beta1", "bad", "x.sock").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(call("v1beta1", kRes, "../x.sock").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(kubelet->registrations(), 0u);
}

}  // namespace
}  // namespace tdxvirt::node
