#include "node/sim_kubelet.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "deviceplugin_v1beta1.grpc.pb.h"

namespace tdxvirt::node {
namespace {

std::chrono::system_clock::time_point Deadline(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

}  // namespace

// One plugin endpoint, as kubelet's device manager keeps it.
struct SimEndpoint {
  std::string resource, socket;
  std::unique_ptr<v1beta1::DevicePlugin::Stub> stub;
  grpc::ClientContext stream_ctx;
  std::thread thread;
  bool options_known = false, pre_start = false, preferred = false;
};

class SimKubelet::Impl final : public v1beta1::Registration::Service {
 public:
  explicit Impl(SimKubeletOptions o) : o_(std::move(o)) {}

  grpc::Status Register(grpc::ServerContext*, const v1beta1::RegisterRequest* req,
                        v1beta1::Empty*) override {
    std::lock_guard<std::mutex> serial(register_mu_);  // one endpoint swap at a time
    if (req->version() != kDevicePluginVersion)
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "unsupported device plugin API version \"" + req->version() +
                              "\" (kubelet speaks v1beta1)");
    if (Status s = ValidateResourceName(req->resource_name()); !s.ok())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, s.error());
    const std::string& ep = req->endpoint();
    if (ep.empty() || ep.find('/') != std::string::npos || ep == kKubeletSocketName)
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "endpoint must be a socket file name in the device-plugin directory");
    auto e = std::make_shared<SimEndpoint>();
    e->resource = req->resource_name();
    e->socket = o_.dir + "/" + ep;
    e->stub = v1beta1::DevicePlugin::NewStub(
        grpc::CreateChannel("unix:" + e->socket, grpc::InsecureChannelCredentials()));
    std::shared_ptr<SimEndpoint> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "kubelet stopping");
      old = endpoints_[e->resource];
      endpoints_[e->resource] = e;
      ++registrations_;
    }
    Retire(old);
    e->thread = std::thread([this, e] { Run(e); });
    cv_.notify_all();
    return grpc::Status::OK;
  }

  void Retire(const std::shared_ptr<SimEndpoint>& e) {
    if (!e) return;
    e->stream_ctx.TryCancel();
    if (e->thread.joinable()) e->thread.join();
  }

  // Kubelet's endpoint loop: options, then the ListAndWatch stream until it ends.
  void Run(std::shared_ptr<SimEndpoint> e) {
    v1beta1::DevicePluginOptions opts;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(o_.dial_timeout));
      ctx.set_wait_for_ready(true);
      if (!e->stub->GetDevicePluginOptions(&ctx, v1beta1::Empty(), &opts).ok()) return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      e->options_known = true;
      e->pre_start = opts.pre_start_required();
      e->preferred = opts.get_preferred_allocation_available();
    }
    auto reader = e->stub->ListAndWatch(&e->stream_ctx, v1beta1::Empty());
    v1beta1::ListAndWatchResponse r;
    while (reader->Read(&r)) {
      std::vector<PluginDevice> devs;
      for (const auto& d : r.devices()) devs.push_back({d.id(), d.health() == kHealthy});
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (endpoints_[e->resource] != e) break;
        devices_[e->resource] = std::move(devs);
        ++updates_;
      }
      cv_.notify_all();
    }
    reader->Finish();
    {
      // The plugin went away: its devices stay known but Unhealthy, as in kubelet.
      std::lock_guard<std::mutex> lock(mu_);
      if (endpoints_[e->resource] == e)
        for (auto& d : devices_[e->resource]) d.healthy = false;
      ++updates_;
    }
    cv_.notify_all();
  }

  std::shared_ptr<SimEndpoint> Endpoint(const std::string& resource) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = endpoints_.find(resource);
    return it == endpoints_.end() ? nullptr : it->second;
  }

  SimKubeletOptions o_;
  std::string socket_;
  std::unique_ptr<grpc::Server> server_;
  std::mutex register_mu_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stopping_ = false;
  size_t registrations_ = 0;
  uint64_t updates_ = 0;
  std::map<std::string, std::shared_ptr<SimEndpoint>> endpoints_;
  std::map<std::string, std::vector<PluginDevice>> devices_;
  std::map<std::string, std::set<std::string>> allocated_;
};

SimKubelet::SimKubelet(SimKubeletOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

SimKubelet::~SimKubelet() { Stop(); }

Status SimKubelet::Start() {
  if (impl_->server_) return Error{"kubelet stand-in already started"};
  std::error_code ec;
  std::string dir = std::filesystem::absolute(impl_->o_.dir, ec).lexically_normal().string();
  if (ec || !std::filesystem::is_directory(dir, ec))
    return Error{"device-plugin directory " + impl_->o_.dir + " does not exist"};
  if (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  impl_->o_.dir = dir;
  if (impl_->o_.wipe_plugin_sockets) {
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
      if (entry.is_socket(ec) && entry.path().filename() != kKubeletSocketName)
        std::filesystem::remove(entry.path(), ec);
  }
  impl_->socket_ = dir + "/" + kKubeletSocketName;
  unlink(impl_->socket_.c_str());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + impl_->socket_, grpc::InsecureServerCredentials());
  builder.RegisterService(impl_.get());
  impl_->server_ = builder.BuildAndStart();
  if (!impl_->server_) return Error{"cannot serve " + impl_->socket_};
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->stopping_ = false;
  return OkStatus();
}

void SimKubelet::Stop() {
  if (!impl_->server_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu_);
    impl_->stopping_ = true;
  }
  impl_->server_->Shutdown(Deadline(std::chrono::milliseconds(2000)));
  impl_->server_->Wait();
  impl_->server_.reset();
  std::map<std::string, std::shared_ptr<SimEndpoint>> endpoints;
  {
    std::lock_guard<std::mutex> lock(impl_->mu_);
    endpoints.swap(impl_->endpoints_);
  }
  for (auto& [name, e] : endpoints) impl_->Retire(e);
  unlink(impl_->socket_.c_str());
}

size_t SimKubelet::registrations() const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  return impl_->registrations_;
}

std::vector<std::string> SimKubelet::resources() const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  std::vector<std::string> out;
  for (auto& [name, e] : impl_->endpoints_) out.push_back(name);
  return out;
}

std::vector<PluginDevice> SimKubelet::Devices(const std::string& resource) const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  auto it = impl_->devices_.find(resource);
  return it == impl_->devices_.end() ? std::vector<PluginDevice>{} : it->second;
}

size_t SimKubelet::HealthyCount(const std::string& resource) const {
  auto d = Devices(resource);
  return size_t(std::count_if(d.begin(), d.end(), [](auto& x) { return x.healthy; }));
}

Result<std::pair<bool, bool>> SimKubelet::PluginOptions(const std::string& resource) const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  auto it = impl_->endpoints_.find(resource);
  if (it == impl_->endpoints_.end() || !it->second->options_known)
    return Error{"no plugin connected for " + resource};
  return std::pair{it->second->pre_start, it->second->preferred};
}

std::set<std::string> SimKubelet::Allocated(const std::string& resource) const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  auto it = impl_->allocated_.find(resource);
  return it == impl_->allocated_.end() ? std::set<std::string>{} : it->second;
}

bool SimKubelet::WaitForDevices(const std::string& resource,
                                const std::function<bool(const std::vector<PluginDevice>&)>& pred,
                                std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(impl_->mu_);
  return impl_->cv_.wait_for(lock, timeout, [&] {
    auto it = impl_->devices_.find(resource);
    return pred(it == impl_->devices_.end() ? std::vector<PluginDevice>{} : it->second);
  });
}

bool SimKubelet::WaitForRegistrations(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(impl_->mu_);
  return impl_->cv_.wait_for(lock, timeout, [&] { return impl_->registrations_ >= n; });
}

Result<std::vector<std::string>> SimKubelet::PreferredAllocation(
    const std::string& resource, const std::vector<std::string>& available,
    const std::vector<std::string>& must_include, int size) {
  auto e = impl_->Endpoint(resource);
  if (!e) return Error{"no plugin registered for " + resource};
  v1beta1::PreferredAllocationRequest req;
  auto* c = req.add_container_requests();
  for (auto& id : available) c->add_available_deviceids(id);
  for (auto& id : must_include) c->add_must_include_deviceids(id);
  c->set_allocation_size(size);
  v1beta1::PreferredAllocationResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(impl_->o_.dial_timeout));
  grpc::Status s = e->stub->GetPreferredAllocation(&ctx, req, &resp);
  if (!s.ok()) return Error{"GetPreferredAllocation: " + s.error_message()};
  if (resp.container_responses_size() != 1)
    return Error{"GetPreferredAllocation: expected one container response"};
  const auto& ids = resp.container_responses(0).deviceids();
  return std::vector<std::string>(ids.begin(), ids.end());
}

Status SimKubelet::PreStartContainer(const std::string& resource,
                                     const std::vector<std::string>& ids) {
  auto e = impl_->Endpoint(resource);
  if (!e) return Error{"no plugin registered for " + resource};
  v1beta1::PreStartContainerRequest req;
  for (auto& id : ids) req.add_devices_ids(id);
  v1beta1::PreStartContainerResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(impl_->o_.dial_timeout));
  grpc::Status s = e->stub->PreStartContainer(&ctx, req, &resp);
  if (!s.ok()) return Error{"PreStartContainer: " + s.error_message()};
  return OkStatus();
}

Result<SimAllocation> SimKubelet::AllocateIds(const std::string& resource,
                                              const std::vector<std::string>& ids) {
  auto e = impl_->Endpoint(resource);
  if (!e) return Error{"no plugin registered for " + resource};
  v1beta1::AllocateRequest req;
  auto* c = req.add_container_requests();
  for (auto& id : ids) c->add_devices_ids(id);
  v1beta1::AllocateResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(impl_->o_.dial_timeout));
  grpc::Status s = e->stub->Allocate(&ctx, req, &resp);
  if (!s.ok()) return Error{"Allocate: " + s.error_message()};
  if (resp.container_responses_size() != 1)
    return Error{"Allocate: expected one container response, got " +
                 std::to_string(resp.container_responses_size())};
  const auto& cr = resp.container_responses(0);
  SimAllocation a;
  a.resource = resource;
  a.device_ids = ids;
  for (const auto& [k, v] : cr.envs()) a.envs[k] = v;
  for (const auto& m : cr.mounts()) a.mounts.push_back({m.host_path(), m.container_path(), m.read_only()});
  return a;
}

Result<SimAllocation> SimKubelet::Allocate(const std::string& resource, size_t n) {
  std::vector<std::string> available;
  bool pre_start = false, preferred = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mu_);
    auto e = impl_->endpoints_.find(resource);
    if (e == impl_->endpoints_.end()) return Error{"no plugin registered for " + resource};
    pre_start = e->second->pre_start;
    preferred = e->second->preferred;
    const auto& held = impl_->allocated_[resource];
    size_t healthy = 0;
    for (const auto& d : impl_->devices_[resource]) {
      if (!d.healthy) continue;
      ++healthy;
      if (!held.count(d.id)) available.push_back(d.id);
    }
    if (available.size() < n)
      return Error{"insufficient " + resource + ": need " + std::to_string(n) + ", " +
                   std::to_string(healthy) + " healthy of which " + std::to_string(held.size()) +
                   " allocated"};
  }
  std::vector<std::string> ids(available.begin(), available.begin() + long(n));
  if (preferred) {
    auto p = PreferredAllocation(resource, available, {}, int(n));
    if (!p.ok()) return Error{p.error()};
    if (p->size() == n &&
        std::all_of(p->begin(), p->end(), [&](auto& id) {
          return std::find(available.begin(), available.end(), id) != available.end();
        }))
      ids = *p;
  }
  if (pre_start)
    if (Status s = PreStartContainer(resource, ids); !s.ok()) return Error{s.error()};
  auto a = AllocateIds(resource, ids);
  if (!a.ok()) return a;
  std::lock_guard<std::mutex> lock(impl_->mu_);
  for (auto& id : ids) impl_->allocated_[resource].insert(id);
  return a;
}

void SimKubelet::Release(const SimAllocation& allocation) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  for (auto& id : allocation.device_ids) impl_->allocated_[allocation.resource].erase(id);
}

}  // namespace tdxvirt::node
