// A Kubernetes API server peer for tests: real HTTPS on loopback with a test CA, serving what
// tdxvirt asks of the API (GET the KubeVirt CRs, PATCH a Node, POST an Event). It records every
// request, keeps the Node's labels as a merge patch leaves them, can fail the next requests with
// given statuses, and lets a test wait for a request (condition variable, bounded).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/http_listen.h"
#include "kube/client.h"
#include "test_util.h"

namespace tdxvirt::testing {

struct SeenRequest {
  std::string method, path, content_type, authorization, body;
};

// A KubeVirtList as GET /apis/kubevirt.io/v1/kubevirts returns it, its one CR shaped like one
// virt-operator deployed (status filled by the operator). `version` "" leaves the status without
// observedKubeVirtVersion (still deploying); `spec_configuration` is the CR's spec.configuration.
inline nlohmann::json KubevirtList(const std::string& version,
                                   nlohmann::json spec_configuration = nlohmann::json::object()) {
  nlohmann::json status = {{"phase", version.empty() ? "Deploying" : "Deployed"},
                           {"observedKubeVirtRegistry", "quay.io/kubevirt"},
                           {"targetKubeVirtRegistry", "quay.io/kubevirt"},
                           {"defaultArchitecture", "amd64"},
                           {"observedDeploymentID", "4a1b5f2c0e3d"},
                           {"outdatedVirtualMachineInstanceWorkloads", 0},
                           {"conditions", {{{"type", "Available"}, {"status", version.empty() ? "False" : "True"},
                                            {"reason", version.empty() ? "DeploymentInProgress" : "AllComponentsReady"}}}}};
  if (!version.empty()) {
    status["observedKubeVirtVersion"] = version;
    status["targetKubeVirtVersion"] = version;
    status["operatorVersion"] = version;
  }
  nlohmann::json cr = {
      {"apiVersion", "kubevirt.io/v1"},
      {"kind", "KubeVirt"},
      {"metadata", {{"name", "kubevirt"}, {"namespace", "kubevirt"}, {"generation", 2},
                    {"uid", "0d6a3c1e-7f5b-4b8e-9a51-3c2d1f0e9b7a"},
                    {"finalizers", {"foregroundDeleteKubeVirt"}},
                    {"annotations", {{"kubevirt.io/latest-observed-api-version", "v1"},
                                     {"kubevirt.io/storage-observed-api-version", "v1"}}}}},
      {"spec", {{"certificateRotateStrategy", nlohmann::json::object()},
                {"configuration", spec_configuration},
                {"customizeComponents", nlohmann::json::object()},
                {"imagePullPolicy", "IfNotPresent"},
                {"workloadUpdateStrategy", nlohmann::json::object()}}},
      {"status", status}};
  return {{"apiVersion", "kubevirt.io/v1"},
          {"kind", "KubeVirtList"},
          {"metadata", {{"resourceVersion", "48213"}, {"continue", ""}}},
          {"items", {cr}}};
}

class FakeKubeApi {
 public:
  FakeKubeApi()
      : id_(MakeLoopbackTlsIdentity("kube-apiserver test")), server_(id_.cert.get(), id_.key.get()) {
    server_.Patch(R"(/api/v1/nodes/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (Answer(req, res)) return;
      auto patch = nlohmann::json::parse(req.body, nullptr, false);
      {
        std::lock_guard lock(mu_);
        if (patch.is_object() && patch["metadata"]["labels"].is_object())
          for (auto& [k, v] : patch["metadata"]["labels"].items()) {
            if (v.is_null()) node_labels_.erase(k);
            else if (v.is_string()) node_labels_[k] = v.get<std::string>();
          }
      }
      cv_.notify_all();
      res.set_content(R"({"kind":"Node","metadata":{"name":")" + req.matches[1].str() + "\"}}",
                      "application/json");
    });
    server_.Get("/apis/kubevirt.io/v1/kubevirts", [this](const httplib::Request& req, httplib::Response& res) {
      if (Answer(req, res)) return;
      std::lock_guard lock(mu_);
      if (!chunked_) return res.set_content(kubevirts_.dump(), "application/json");
      // No Content-Length: the client learns the size only while reading.
      res.set_chunked_content_provider("application/json", [body = kubevirts_.dump()](size_t, httplib::DataSink& sink) {
        sink.write(body.data(), body.size());
        sink.done();
        return true;
      });
    });
    server_.Post(R"(/api/v1/namespaces/([^/]+)/events)", [this](const httplib::Request& req, httplib::Response& res) {
      if (Answer(req, res)) return;
      res.status = 201;
      res.set_content(req.body, "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = ListenInThread(server_);
  }
  ~FakeKubeApi() {
    server_.stop();
    thread_.join();
  }

  // The next requests get these statuses (a Status body "injected <code>"), in order.
  void Fail(std::vector<int> statuses) {
    std::lock_guard lock(mu_);
    statuses_ = std::move(statuses);
  }
  void SetChunked(bool on) {
    std::lock_guard lock(mu_);
    chunked_ = on;
  }
  void SetKubevirtList(nlohmann::json list) {
    std::lock_guard lock(mu_);
    kubevirts_ = std::move(list);
  }
  std::vector<SeenRequest> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  std::vector<SeenRequest> seen(const std::string& method, const std::string& path_prefix) const {
    std::lock_guard lock(mu_);
    std::vector<SeenRequest> out;
    for (auto& s : seen_)
      if (s.method == method && s.path.rfind(path_prefix, 0) == 0) out.push_back(s);
    return out;
  }
  std::map<std::string, std::string> node_labels() const {
    std::lock_guard lock(mu_);
    return node_labels_;
  }
  // Waits (bounded) until `pred` holds over the state, re-checked after every request.
  bool WaitFor(const std::function<bool()>& pred, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    std::unique_lock lock(mu_);
    auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
      lock.unlock();
      bool ok = pred();
      lock.lock();
      if (ok) return true;
      if (cv_.wait_until(lock, end) == std::cv_status::timeout) {
        lock.unlock();
        return pred();
      }
    }
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  const std::string& ca_pem() const { return id_.cert_pem; }
  // Writes token and ca.crt into `dir` and returns a config using them (short backoff).
  kube::KubeApiConfig Config(const TempDir& dir, const std::string& token = "sa-token-1") const {
    WriteFile(dir.File("token"), token + "\n");
    WriteFile(dir.File("ca.crt"), ca_pem());
    kube::KubeApiConfig c;
    c.server = url();
    c.token_file = dir.File("token");
    c.ca_file = dir.File("ca.crt");
    c.initial_backoff = std::chrono::milliseconds(5);
    c.max_backoff = std::chrono::milliseconds(20);
    c.timeout = std::chrono::seconds(30);
    return c;
  }

 private:
  // Records the request; true when an injected failure answered it.
  bool Answer(const httplib::Request& req, httplib::Response& res) {
    int status = 0;
    {
      std::lock_guard lock(mu_);
      seen_.push_back({req.method, req.path, req.get_header_value("Content-Type"),
                       req.get_header_value("Authorization"), req.body});
      if (!statuses_.empty()) {
        status = statuses_.front();
        statuses_.erase(statuses_.begin());
      }
    }
    cv_.notify_all();
    if (status == 0) return false;
    res.status = status;
    res.set_content(R"({"kind":"Status","status":"Failure","message":"injected )" +
                        std::to_string(status) + "\"}",
                    "application/json");
    return true;
  }

  TlsIdentity id_;
  httplib::SSLServer server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> statuses_;
  std::vector<SeenRequest> seen_;
  nlohmann::json kubevirts_ = KubevirtList("v1.9.0");
  std::map<std::string, std::string> node_labels_;
  bool chunked_ = false;
};

}  // namespace tdxvirt::testing
