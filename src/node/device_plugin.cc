#include "node/device_plugin.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/time.h"
#include "deviceplugin_v1beta1.grpc.pb.h"

namespace tdxvirt::node {
namespace {

using Clock = std::chrono::steady_clock;

bool IsSocket(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  int64_t ctime_ns = 0;  // an inode number can be reused at once; its change time is not
  bool operator==(const FileIdentity&) const = default;
};

bool StatIdentity(const std::string& path, FileIdentity& out) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  out = {st.st_dev, st.st_ino, int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
  return true;
}

bool IsDnsLabelish(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'))
      return false;
  return std::isalnum(static_cast<unsigned char>(s.front())) &&
         std::isalnum(static_cast<unsigned char>(s.back()));
}

// "tdx-key-12" -> 12; -1 for an id this plugin does not serve.
int64_t DeviceIndex(std::string_view id) {
  std::string_view prefix = kDeviceIdPrefix;
  if (id.substr(0, prefix.size()) != prefix || id.size() == prefix.size() ||
      id.size() > prefix.size() + 6)
    return -1;
  int64_t v = 0;
  for (char c : id.substr(prefix.size())) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  if (id.size() > prefix.size() + 1 && id[prefix.size()] == '0') return -1;  // no leading zeros
  return v;
}

std::string ParentDir(const std::string& path) {
  return std::filesystem::path(path).parent_path().string();
}

std::string HostPath(const std::string& root, const std::string& abs) {
  if (root.empty() || root == "/") return abs;
  return (root.back() == '/' ? root.substr(0, root.size() - 1) : root) + abs;
}

}  // namespace

Status ValidateResourceName(const std::string& name) {
  size_t slash = name.find('/');
  if (slash == std::string::npos || name.find('/', slash + 1) != std::string::npos)
    return Error{"resource name \"" + name +
                 "\": must be <domain>/<name>, e.g. " + kDefaultResourceName};
  std::string domain = name.substr(0, slash), res = name.substr(slash + 1);
  if (!IsDnsLabelish(domain, 253) || domain.find('.') == std::string::npos)
    return Error{"resource name \"" + name + "\": the domain \"" + domain +
                 "\" must be a DNS subdomain such as example.com"};
  if (domain == "kubernetes.io" || domain.ends_with(".kubernetes.io"))
    return Error{"resource name \"" + name +
                 "\": the kubernetes.io domain is reserved; use your own domain"};
  if (!IsDnsLabelish(res, 63))
    return Error{"resource name \"" + name + "\": the part after / must be 1-63 characters of "
                 "[A-Za-z0-9._-], starting and ending alphanumeric"};
  return OkStatus();
}

std::vector<PluginDevice> ComputeDevices(const KeyCounts& keys, bool keys_ok, bool qgs_ok) {
  std::vector<PluginDevice> out;
  if (!keys_ok) return out;
  int64_t n = std::min<int64_t>(keys.capacity, kMaxDevices);
  int64_t healthy = qgs_ok ? std::min<int64_t>(keys.available_to_kubernetes(), n) : 0;
  out.reserve(size_t(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) out.push_back({kDeviceIdPrefix + std::to_string(i), i < healthy});
  return out;
}

// ---- The gRPC service ----

class DevicePlugin::Service final : public v1beta1::DevicePlugin::Service {
 public:
  Service(DevicePlugin& plugin, uint64_t epoch) : p_(plugin), epoch_(epoch) {}

  grpc::Status GetDevicePluginOptions(grpc::ServerContext*, const v1beta1::Empty*,
                                      v1beta1::DevicePluginOptions* out) override {
    out->set_pre_start_required(false);
    out->set_get_preferred_allocation_available(true);
    return grpc::Status::OK;
  }

  grpc::Status ListAndWatch(grpc::ServerContext* ctx, const v1beta1::Empty*,
                            grpc::ServerWriter<v1beta1::ListAndWatchResponse>* writer) override {
    uint64_t sent = 0;
    bool first = true;
    p_.Log("info", "list_and_watch_open", "kubelet opened ListAndWatch");
    while (true) {
      v1beta1::ListAndWatchResponse resp;
      {
        std::unique_lock<std::mutex> lock(p_.mu_);
        // Wakes on a change; the timeout only notices a kubelet that went away.
        p_.changed_.wait_for(lock, std::chrono::milliseconds(500), [&] {
          return p_.stopping_ || p_.server_epoch_ != epoch_ || first ||
                 p_.state_.generation != sent;
        });
        if (p_.stopping_ || p_.server_epoch_ != epoch_) return grpc::Status::OK;
        if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "kubelet left");
        if (!first && p_.state_.generation == sent) continue;
        first = false;
        sent = p_.state_.generation;
        for (const PluginDevice& d : p_.devices_) {
          auto* dev = resp.add_devices();
          dev->set_id(d.id);
          dev->set_health(d.healthy ? kHealthy : kUnhealthy);
        }
      }
      if (!writer->Write(resp))
        return grpc::Status(grpc::StatusCode::CANCELLED, "kubelet closed ListAndWatch");
    }
  }

  grpc::Status GetPreferredAllocation(grpc::ServerContext*,
                                      const v1beta1::PreferredAllocationRequest* req,
                                      v1beta1::PreferredAllocationResponse* out) override {
    for (const auto& creq : req->container_requests()) {
      auto* cresp = out->add_container_responses();
      if (creq.allocation_size() < 0)
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "allocation_size is negative");
      size_t want = size_t(creq.allocation_size());
      std::vector<std::string> chosen(creq.must_include_deviceids().begin(),
                                      creq.must_include_deviceids().end());
      std::vector<std::pair<int64_t, std::string>> avail;
      for (const auto& id : creq.available_deviceids())
        if (std::find(chosen.begin(), chosen.end(), id) == chosen.end())
          avail.emplace_back(DeviceIndex(id) < 0 ? INT64_MAX : DeviceIndex(id), id);
      // Lowest ids first: the highest are the ones marked Unhealthy when keys go outside.
      std::sort(avail.begin(), avail.end());
      for (auto& [index, id] : avail) {
        if (chosen.size() >= want) break;
        chosen.push_back(id);
      }
      for (auto& id : chosen) cresp->add_deviceids(id);
    }
    return grpc::Status::OK;
  }

  grpc::Status Allocate(grpc::ServerContext*, const v1beta1::AllocateRequest* req,
                        v1beta1::AllocateResponse* out) override {
    const DevicePluginOptions& o = p_.options_;
    bool qgs_configured = !o.qgs_socket_path.empty();
    bool qgs_present = qgs_configured && IsSocket(HostPath(o.host_root, o.qgs_socket_path));
    std::lock_guard<std::mutex> lock(p_.mu_);
    for (const auto& creq : req->container_requests()) {
      if (creq.devices_ids().empty())
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "Allocate: a container request names no device");
      std::string ids;
      for (const auto& id : creq.devices_ids()) {
        int64_t i = DeviceIndex(id);
        if (i < 0 || size_t(i) >= p_.devices_.size())
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "Allocate: unknown device id \"" + id.substr(0, 64) + "\" (this " +
                                  "plugin serves " + kDeviceIdPrefix + "0.." + kDeviceIdPrefix +
                                  std::to_string(p_.devices_.size()) + " exclusive)");
        ids += (ids.empty() ? "" : ",") + id;
      }
      if (qgs_configured && o.attestation_enforced && !qgs_present)
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "Allocate: attestation is enforced and the QGS socket " +
                                o.qgs_socket_path + " is missing on this node");
      auto* cresp = out->add_container_responses();
      (*cresp->mutable_envs())[kEnvKeyIds] = ids;
      if (qgs_configured) {
        // The directory, not the socket: QGS may (re)create its socket after the TD started.
        auto* m = cresp->add_mounts();
        m->set_host_path(ParentDir(o.qgs_socket_path));
        m->set_container_path(ParentDir(o.qgs_socket_path));
        m->set_read_only(true);
        (*cresp->mutable_envs())[kEnvQgsSocket] = o.qgs_socket_path;
        (*cresp->mutable_envs())[kEnvAttestationEnforced] = o.attestation_enforced ? "true" : "false";
      }
      ++p_.state_.allocations;
    }
    return grpc::Status::OK;
  }

  grpc::Status PreStartContainer(grpc::ServerContext*, const v1beta1::PreStartContainerRequest*,
                                 v1beta1::PreStartContainerResponse*) override {
    return grpc::Status::OK;  // nothing to prepare: a key is taken by KVM when the TD starts
  }

 private:
  DevicePlugin& p_;
  const uint64_t epoch_;
};

// ---- DevicePlugin ----

DevicePlugin::DevicePlugin(DevicePluginOptions options) : options_(std::move(options)) {
  if (!options_.log) options_.log = LogToStderr;
}

DevicePlugin::~DevicePlugin() { Stop(); }

void DevicePlugin::Log(const std::string& level, const std::string& event,
                       const std::string& detail) {
  options_.log(LogLine(level, "device-plugin", event, detail));
}

PluginState DevicePlugin::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

std::vector<PluginDevice> DevicePlugin::devices() const {
  std::lock_guard<std::mutex> lock(mu_);
  return devices_;
}

uint64_t DevicePlugin::WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t wake = wake_seq_;
  changed_.wait_for(lock, timeout,
                    [&] { return state_.generation != seen || stopping_ || wake_seq_ != wake; });
  return state_.generation;
}

void DevicePlugin::WakeWaiters() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++wake_seq_;
  }
  changed_.notify_all();
}

void DevicePlugin::Refresh() {
  refresh_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
}

bool DevicePlugin::ReadHost() {
  auto keys = ReadKeyCounts(options_.host_root, options_.kubepods_cgroup);
  bool qgs_configured = !options_.qgs_socket_path.empty();
  bool qgs_present =
      qgs_configured && IsSocket(HostPath(options_.host_root, options_.qgs_socket_path));
  bool qgs_ok = !(qgs_configured && options_.attestation_enforced) || qgs_present;
  auto devs = ComputeDevices(keys.ok() ? *keys : KeyCounts{}, keys.ok(), qgs_ok);
  size_t healthy = size_t(std::count_if(devs.begin(), devs.end(), [](auto& d) { return d.healthy; }));

  std::string log_level, log_event, log_detail;
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++state_.host_reads;
    std::string keys_error = keys.ok() ? "" : keys.error();
    if (keys_error != state_.keys_error && !keys_error.empty()) {
      log_level = "warn";
      log_event = "host_keys_unreadable";
      log_detail = keys_error;
    }
    if (qgs_configured && qgs_present != state_.qgs_present && state_.host_reads > 1) {
      log_level = qgs_present ? "info" : "warn";
      log_event = qgs_present ? "qgs_socket_present" : "qgs_socket_missing";
      log_detail = options_.qgs_socket_path;
    }
    state_.keys_ok = keys.ok();
    state_.keys_error = keys_error;
    if (keys.ok()) state_.keys = *keys;
    state_.qgs_present = qgs_present;
    bool same = devs.size() == devices_.size() &&
                std::equal(devs.begin(), devs.end(), devices_.begin(), [](auto& a, auto& b) {
                  return a.id == b.id && a.healthy == b.healthy;
                });
    if (!same) {
      devices_ = std::move(devs);
      state_.devices = devices_.size();
      state_.healthy = healthy;
      ++state_.generation;
      changed = true;
    }
  }
  if (!log_event.empty()) Log(log_level, log_event, log_detail);
  if (changed) {
    changed_.notify_all();
    PluginState s = state();
    options_.log(LogLine("info", "device-plugin", "devices",
                         std::to_string(s.healthy) + " of " + std::to_string(s.devices) +
                             " healthy (capacity " + std::to_string(s.keys.capacity) +
                             ", used outside Kubernetes " +
                             std::to_string(s.keys.used_outside()) + ", QGS " +
                             (!qgs_configured ? "not configured"
                              : qgs_present   ? "present"
                                              : "missing") +
                             ")"));
  }
  return changed;
}

Status DevicePlugin::Serve() {
  unlink(socket_path_.c_str());  // a stale socket from a previous run
  uint64_t epoch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    epoch = ++server_epoch_;
  }
  auto service = std::make_unique<Service>(*this, epoch);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path_, grpc::InsecureServerCredentials());
  builder.RegisterService(service.get());
  builder.SetMaxReceiveMessageSize(1 << 20);  // kubelet's requests are a few device ids
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return Error{"cannot serve the device plugin on " + socket_path_};
  chmod(socket_path_.c_str(), 0600);  // only kubelet (root) talks to it
  std::lock_guard<std::mutex> lock(mu_);
  server_ = std::move(server);
  service_ = std::move(service);
  state_.serving = true;
  ++state_.server_starts;
  return OkStatus();
}

void DevicePlugin::StopServer() {
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<Service> service;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++server_epoch_;  // ends this server's ListAndWatch streams
    server = std::move(server_);
    service = std::move(service_);
    state_.serving = false;
    state_.registered = false;
  }
  changed_.notify_all();
  if (server) {
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server->Wait();
  }
  unlink(socket_path_.c_str());
}

Status DevicePlugin::Register() {
  auto channel = grpc::CreateChannel("unix:" + kubelet_socket_, grpc::InsecureChannelCredentials());
  auto stub = v1beta1::Registration::NewStub(channel);
  v1beta1::RegisterRequest req;
  req.set_version(kDevicePluginVersion);
  req.set_endpoint(options_.socket_name);
  req.set_resource_name(options_.resource_name);
  req.mutable_options()->set_pre_start_required(false);
  req.mutable_options()->set_get_preferred_allocation_available(true);
  v1beta1::Empty resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.register_timeout);
  grpc::Status s = stub->Register(&ctx, req, &resp);
  std::lock_guard<std::mutex> lock(mu_);
  if (!s.ok()) {
    state_.registered = false;
    state_.last_error = "register with " + kubelet_socket_ + ": " + s.error_message();
    return Error{state_.last_error};
  }
  state_.registered = true;
  ++state_.registrations;
  return OkStatus();
}

Status DevicePlugin::Start() {
  if (started_) return Error{"device plugin already started"};
  if (Status s = ValidateResourceName(options_.resource_name); !s.ok()) return s;
  if (options_.poll_interval < std::chrono::milliseconds(10) ||
      options_.poll_interval > std::chrono::hours(1))
    return Error{"poll interval must be between 10 ms and 1 hour"};
  if (!options_.qgs_socket_path.empty() && options_.qgs_socket_path.front() != '/')
    return Error{"QGS socket path \"" + options_.qgs_socket_path +
                 "\" must be absolute (a host path, e.g. /var/run/tdx-qgs/qgs.socket)"};
  std::error_code ec;
  std::string dir = std::filesystem::absolute(options_.plugin_dir, ec).lexically_normal().string();
  if (ec || !std::filesystem::is_directory(dir, ec))
    return Error{"device-plugin directory " + options_.plugin_dir +
                 " does not exist (kubelet's is " + kDefaultPluginDir + "; mount it)"};
  if (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (options_.socket_name.empty())
    options_.socket_name =
        "tdxvirt-" + options_.resource_name.substr(options_.resource_name.find('/') + 1) + ".sock";
  if (options_.socket_name.find('/') != std::string::npos || options_.socket_name == kKubeletSocketName)
    return Error{"socket name \"" + options_.socket_name + "\" must be a plain file name other "
                 "than kubelet.sock"};
  socket_path_ = dir + "/" + options_.socket_name;
  kubelet_socket_ = dir + "/" + kKubeletSocketName;
  if (socket_path_.size() >= sizeof(sockaddr_un::sun_path))
    return Error{"socket path " + socket_path_ + " is longer than a UNIX socket address allows (" +
                 std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)"};

  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (inotify_fd_ < 0 || wake_fd_ < 0) {
    Status err = Error{std::string("inotify/eventfd: ") + std::strerror(errno)};
    if (inotify_fd_ >= 0) close(inotify_fd_);
    if (wake_fd_ >= 0) close(wake_fd_);
    inotify_fd_ = wake_fd_ = -1;
    return err;
  }
  // Only an accelerator: the watcher also stats both sockets on every poll.
  inotify_add_watch(inotify_fd_, dir.c_str(), IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM);

  ReadHost();
  if (Status s = Serve(); !s.ok()) {
    close(inotify_fd_);
    close(wake_fd_);
    inotify_fd_ = wake_fd_ = -1;
    return s;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }
  started_ = true;
  PluginState s = state();
  Log("info", "started",
      "serving " + options_.resource_name + " on " + socket_path_ + ": " +
          std::to_string(s.healthy) + " of " + std::to_string(s.devices) + " devices healthy");
  watcher_ = std::thread([this] { WatchLoop(); });
  return OkStatus();
}

void DevicePlugin::Stop() {
  if (!started_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  if (watcher_.joinable()) watcher_.join();
  StopServer();
  close(inotify_fd_);
  close(wake_fd_);
  inotify_fd_ = wake_fd_ = -1;
  started_ = false;
  Log("info", "stopped", "socket " + socket_path_ + " removed");
}

void DevicePlugin::WatchLoop() {
  FileIdentity registered_with;
  bool have_registration = false;
  std::string last_register_error;
  auto next_poll = Clock::now() + options_.poll_interval;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    // Our socket gone (kubelet wipes the directory when it starts): serve anew.
    if (!IsSocket(socket_path_)) {
      Log("warn", "socket_removed", socket_path_ + " vanished; serving again and re-registering");
      StopServer();
      if (Status s = Serve(); !s.ok()) Log("error", "serve_error", s.error());
      have_registration = false;
    }
    FileIdentity kubelet;
    bool kubelet_there = StatIdentity(kubelet_socket_, kubelet);
    bool need_register = kubelet_there && (!have_registration || !(kubelet == registered_with));
    if (!kubelet_there && have_registration) {
      have_registration = false;
      std::lock_guard<std::mutex> lock(mu_);
      state_.registered = false;
    }
    if (need_register && state().serving) {
      if (Status s = Register(); s.ok()) {
        registered_with = kubelet;
        have_registration = true;
        last_register_error.clear();
        Log("info", "registered",
            options_.resource_name + " registered with kubelet at " + kubelet_socket_ +
                " (endpoint " + options_.socket_name + ")");
        need_register = false;
      } else if (s.error() != last_register_error) {
        last_register_error = s.error();
        Log("warn", "register_error", s.error() + " (retrying)");
      }
    }
    auto now = Clock::now();
    if (now >= next_poll || refresh_.exchange(false)) {
      ReadHost();
      next_poll = Clock::now() + options_.poll_interval;
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_poll - Clock::now());
    if (need_register) wait = std::min(wait, std::chrono::milliseconds(200));
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int timeout = int(std::max<int64_t>(0, wait.count()));
    if (poll(fds, 2, timeout) > 0) {
      char buf[4096];
      while (read(inotify_fd_, buf, sizeof buf) > 0) {
      }
      uint64_t v;
      (void)!read(wake_fd_, &v, sizeof v);
    }
  }
}

std::string RenderMetrics(const PluginState& s, const std::string& resource_name) {
  std::string out;
  auto gauge = [&](const std::string& name, const std::string& help, const std::string& type,
                   const std::string& labels, double value) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    out += name + labels + " " + std::to_string(int64_t(value)) + "\n";
  };
  std::string res = "{resource=\"" + resource_name + "\"}";
  gauge("tdxvirt_node_tdx_keys_capacity", "TDX private KeyIDs on this host (misc.capacity).",
        "gauge", "", double(s.keys.capacity));
  gauge("tdxvirt_node_tdx_keys_used", "TDX KeyIDs in use by running TDs (misc.current).", "gauge",
        "", double(s.keys.used));
  gauge("tdxvirt_node_tdx_keys_used_outside_kubernetes",
        "TDX KeyIDs used by TDs outside Kubernetes pods.", "gauge", "",
        double(s.keys.used_outside()));
  gauge("tdxvirt_node_devices", "Devices advertised to kubelet.", "gauge", res, double(s.devices));
  gauge("tdxvirt_node_devices_healthy", "Healthy devices advertised to kubelet.", "gauge", res,
        double(s.healthy));
  gauge("tdxvirt_node_qgs_socket_present", "1 when the QGS socket exists.", "gauge", "",
        s.qgs_present ? 1 : 0);
  gauge("tdxvirt_node_registered", "1 while registered with kubelet.", "gauge", res,
        s.registered ? 1 : 0);
  gauge("tdxvirt_node_registrations_total", "Successful registrations with kubelet.", "counter",
        res, double(s.registrations));
  gauge("tdxvirt_node_allocations_total", "Containers given TDX keys by Allocate.", "counter",
        res, double(s.allocations));
  gauge("tdxvirt_node_host_reads_total", "Reads of the host's misc cgroup.", "counter", "",
        double(s.host_reads));
  return out;
}

}  // namespace tdxvirt::node
