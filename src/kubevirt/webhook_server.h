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
#include "kube/cluster.h"
#include "kubevirt/settings.h"

namespace tdxvirt::kubevirt {

// What the cluster reported last (a kube::ClusterWatcher's view): the KubeVirt CR, or why not.
struct ObservedCluster {
  std::optional<kube::KubevirtCluster> value;
  std::string error;
};

struct WebhookOptions {
  std::string cert_file;  // PEM (cert-manager's tls.crt)
  std::string key_file;   // PEM (tls.key)
  std::string host = "0.0.0.0";
  int port = 8443;        // 0 picks a free port (tests)
  size_t max_body = 4 << 20;  // larger AdmissionReviews get 413 while still arriving
  http::Limits limits;
  std::function<void(const std::string&)> log;  // one JSON line per event; default stderr
  // The KubeVirt CR as last read, asked before each review (never HTTP in the review path):
  // fills settings.observed_version ("kubevirtVersion: auto") and observed_qgs_socket_path.
  // With auto, /readyz is 503 until it names a version. Unset: the settings alone.
  std::function<ObservedCluster()> cluster;
  // Sees the settings each review runs with (tests).
  std::function<void(const ClusterSettings&)> on_review;
};

// The settings a review runs with: `base` plus what the cluster reported (the version only for
// "kubevirtVersion: auto"; the CR's QGS path always, for admission to weigh per version).
ClusterSettings WithObservedCluster(const ClusterSettings& base, const ObservedCluster& observed);

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
