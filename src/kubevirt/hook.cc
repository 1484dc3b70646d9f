#include "kubevirt/hook.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <pugixml.hpp>

#include "common/log.h"
#include "hooks_info.grpc.pb.h"
#include "hooks_v1alpha2.grpc.pb.h"
#include "hooks_v1alpha3.grpc.pb.h"
#include "kubevirt/document.h"
#include "kubevirt/domain.h"
#include "kubevirt/tdx_spec.h"

namespace tdxvirt::kubevirt {

namespace {

// Without a named release (the webhook passes --kubevirt-version), the domain tells: KubeVirt
// renders <launchSecurity type='tdx'> from 1.7 and its QGS element from 1.9.
kube::KubevirtVersion InferRelease(std::string_view domain_xml) {
  kube::KubevirtVersion v;
  pugi::xml_document doc;
  v.minor = 6;
  if (!doc.load_buffer(domain_xml.data(), std::min(domain_xml.size(), kMaxDomainXmlBytes)))
    return v;
  pugi::xml_node ls = doc.document_element().child("launchSecurity");
  if (ls && std::string(ls.attribute("type").value()) == "tdx")
    v.minor = ls.child("quoteGenerationService") ? 9 : 7;
  return v;
}

}  // namespace

Result<std::string> OnDefineDomain(std::string_view vmi_json, std::string_view domain_xml,
                                   const ClusterSettings& settings) {
  auto vmi = ParseDocument(vmi_json, "vmi");
  if (!vmi.ok()) return Error{vmi.error()};
  auto named = EffectiveKubevirtVersion(settings);
  const kube::KubevirtVersion kv = named.ok() ? *named : InferRelease(domain_xml);
  auto tdx = TdxSettingsForVmi(*vmi, settings, kv);
  if (!tdx.ok()) return Error{"vmi: " + tdx.error()};
  if (!tdx->has_value()) {
    if (domain_xml.size() > kMaxDomainXmlBytes)
      return Error{"domain XML: over the limit of " + std::to_string(kMaxDomainXmlBytes) + " bytes"};
    return std::string(domain_xml);
  }
  return ApplyTdx(domain_xml, **tdx, HookScopeFor(kv));
}

struct HookServer::Impl {
  ClusterSettings settings;
  HookServerOptions options;
  HookServer* owner = nullptr;
  std::unique_ptr<grpc::Server> server;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::string socket_path;

  void Log(const std::string& level, const std::string& event, const nlohmann::ordered_json& extra) {
    auto j = LogRecord(level, "kubevirt-hook", event);
    for (auto& [k, v] : extra.items()) j[k] = v;
    (options.log ? options.log : LogToStderr)(LogLine(j));
  }

  grpc::Status Define(const std::string& version, const std::string& vmi, const std::string& xml,
                      std::string* out) {
    owner->calls_++;
    auto start = std::chrono::steady_clock::now();
    auto r = OnDefineDomain(vmi, xml, settings);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count();
    std::string name;
    if (auto v = ParseDocument(vmi, "vmi"); v.ok() && v->is_object())
      name = StringField(v->value("metadata", Json::object()), "namespace") + "/" +
             StringField(v->value("metadata", Json::object()), "name");
    if (!r.ok()) {
      Log("error", "on_define_domain", {{"version", version}, {"vmi", name}, {"error", r.error()}});
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, r.error());
    }
    *out = std::move(*r);
    Log("info", "on_define_domain",
        {{"version", version}, {"vmi", name}, {"bytes_in", xml.size()}, {"bytes_out", out->size()},
         {"duration_ms", std::round(ms * 1000) / 1000}});
    return grpc::Status::OK;
  }

  void RequestStop() {
    std::lock_guard lock(mu);
    stopping = true;
    cv.notify_all();
  }
};

namespace {

class InfoService final : public ::kubevirt::hooks::info::Info::Service {
 public:
  explicit InfoService(HookServer::Impl* impl) : impl_(impl) {}
  grpc::Status Info(grpc::ServerContext*, const ::kubevirt::hooks::info::InfoParams*,
                    ::kubevirt::hooks::info::InfoResult* out) override {
    out->set_name(kHookName);
    auto* hp = out->add_hookpoints();
    hp->set_name("OnDefineDomain");
    hp->set_priority(0);
    bool alpha3 = false;
    for (const std::string& v : impl_->options.versions) {
      out->add_versions(v);
      alpha3 = alpha3 || v == "v1alpha3";
    }
    if (alpha3) {
      auto* sd = out->add_hookpoints();
      sd->set_name("Shutdown");
      sd->set_priority(0);
    }
    impl_->Log("info", "info", {{"versions", impl_->options.versions}});
    return grpc::Status::OK;
  }

 private:
  HookServer::Impl* impl_;
};

class V1alpha2Service final : public ::kubevirt::hooks::v1alpha2::Callbacks::Service {
 public:
  explicit V1alpha2Service(HookServer::Impl* impl) : impl_(impl) {}
  grpc::Status OnDefineDomain(grpc::ServerContext*,
                              const ::kubevirt::hooks::v1alpha2::OnDefineDomainParams* in,
                              ::kubevirt::hooks::v1alpha2::OnDefineDomainResult* out) override {
    std::string xml;
    grpc::Status s = impl_->Define("v1alpha2", in->vmi(), in->domainxml(), &xml);
    if (s.ok()) out->set_domainxml(std::move(xml));
    return s;
  }
  grpc::Status PreCloudInitIso(grpc::ServerContext*,
                               const ::kubevirt::hooks::v1alpha2::PreCloudInitIsoParams* in,
                               ::kubevirt::hooks::v1alpha2::PreCloudInitIsoResult* out) override {
    out->set_cloudinitnocloudsource(in->cloudinitnocloudsource());
    out->set_cloudinitdata(in->cloudinitdata());
    return grpc::Status::OK;
  }

 private:
  HookServer::Impl* impl_;
};

class V1alpha3Service final : public ::kubevirt::hooks::v1alpha3::Callbacks::Service {
 public:
  explicit V1alpha3Service(HookServer::Impl* impl) : impl_(impl) {}
  grpc::Status OnDefineDomain(grpc::ServerContext*,
                              const ::kubevirt::hooks::v1alpha3::OnDefineDomainParams* in,
                              ::kubevirt::hooks::v1alpha3::OnDefineDomainResult* out) override {
    std::string xml;
    grpc::Status s = impl_->Define("v1alpha3", in->vmi(), in->domainxml(), &xml);
    if (s.ok()) out->set_domainxml(std::move(xml));
    return s;
  }
  grpc::Status PreCloudInitIso(grpc::ServerContext*,
                               const ::kubevirt::hooks::v1alpha3::PreCloudInitIsoParams* in,
                               ::kubevirt::hooks::v1alpha3::PreCloudInitIsoResult* out) override {
    out->set_cloudinitnocloudsource(in->cloudinitnocloudsource());
    out->set_cloudinitdata(in->cloudinitdata());
    return grpc::Status::OK;
  }
  grpc::Status Shutdown(grpc::ServerContext*, const ::kubevirt::hooks::v1alpha3::ShutdownParams*,
                        ::kubevirt::hooks::v1alpha3::ShutdownResult*) override {
    impl_->Log("info", "shutdown_requested", nlohmann::ordered_json::object());
    impl_->RequestStop();
    return grpc::Status::OK;
  }

 private:
  HookServer::Impl* impl_;
};

}  // namespace

HookServer::HookServer(ClusterSettings settings, HookServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->settings = std::move(settings);
  impl_->options = std::move(options);
  impl_->owner = this;
}

HookServer::~HookServer() { Stop(); }

Status HookServer::Start(const std::string& path) {
  for (const std::string& v : impl_->options.versions)
    if (v != "v1alpha2" && v != "v1alpha3")
      return Error{"hook version \"" + v + "\": use v1alpha2 or v1alpha3"};
  if (path.empty() || path.size() > 107)
    return Error{"hook socket path \"" + path + "\" must be 1..107 bytes"};
  std::error_code ec;
  struct stat st{};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error{"hook socket path " + path + " exists and is not a socket"};
    std::filesystem::remove(path, ec);  // stale socket from a previous run
  }
  auto info = std::make_shared<InfoService>(impl_.get());
  auto v2 = std::make_shared<V1alpha2Service>(impl_.get());
  auto v3 = std::make_shared<V1alpha3Service>(impl_.get());
  grpc::ServerBuilder b;
  b.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials());
  b.SetMaxReceiveMessageSize(int(kMaxDomainXmlBytes) * 2);
  b.RegisterService(info.get());
  bool alpha2 = false, alpha3 = false;
  for (const std::string& v : impl_->options.versions) {
    alpha2 = alpha2 || v == "v1alpha2";
    alpha3 = alpha3 || v == "v1alpha3";
  }
  if (alpha2) b.RegisterService(v2.get());
  if (alpha3) b.RegisterService(v3.get());
  impl_->server = b.BuildAndStart();
  if (!impl_->server) return Error{"cannot listen on unix:" + path};
  services_ = {info, v2, v3};
  impl_->socket_path = path;
  impl_->Log("info", "listening", {{"socket", path}, {"versions", impl_->options.versions}});
  return OkStatus();
}

void HookServer::Wait() {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->stopping; });
}

void HookServer::Interrupt() { impl_->RequestStop(); }

void HookServer::Stop() {
  if (!impl_ || !impl_->server) return;
  impl_->RequestStop();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  impl_->server->Wait();
  impl_->server.reset();
  std::error_code ec;
  std::filesystem::remove(impl_->socket_path, ec);
  impl_->Log("info", "stopped", {{"calls", calls_.load()}});
}

}  // namespace tdxvirt::kubevirt
