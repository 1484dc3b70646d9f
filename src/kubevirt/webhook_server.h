// `tdxvirt serve webhook`: AdmissionReview v1 over HTTPS. POST /validate and /mutate (VMs and
// VMIs), GET /healthz, /readyz, /metrics (Prometheus text).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/result.h"
#include "http/server.h"
#include "kubevirt/settings.h"

namespace tdxvirt::kubevirt {

struct WebhookOptions {
  std::string cert_file;  // PEM (cert-manager's tls.crt)
  std::string key_file;   // PEM (tls.key)
  std::string host = "0.0.0.0";
  int port = 8443;        // 0 picks a free port (tests)
  size_t max_body = 4 << 20;  // larger AdmissionReviews get 413 while still arriving
  http::Limits limits;
  std::function<void(const std::string&)> log;  // one JSON line per event; default stderr
};

class WebhookServer {
 public:
  WebhookServer(ClusterSettings settings, WebhookOptions options);
  ~WebhookServer();
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;

  // Loads the key pair, binds, and serves on a background thread. Returns the bound port.
  Result<int> Start();
  void Stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tdxvirt::kubevirt
