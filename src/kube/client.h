// A small Kubernetes API client: the in-cluster config and bounded JSON requests with retries.
// Enough for what tdxvirt asks of the API server (read the KubeVirt CR, patch a Node's labels,
// post an Event); no watch streams, no informers. Everything goes over TLS verified against the
// configured CA; the bearer token is re-read per request (projected tokens rotate) and never
// appears in an error, a log line or a retry message.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace tdxvirt::kube {

struct KubeApiConfig {
  std::string server;      // "https://10.96.0.1:443"
  std::string token_file;  // re-read on every request: projected tokens rotate
  std::string ca_file;     // PEM bundle that signs the API server's certificate
  // Per attempt: connect, each read and write, and the whole response (a server dripping bytes
  // cannot hold a request longer than this).
  std::chrono::milliseconds timeout{10000};
  int max_attempts = 5;    // retried on 409, 429, 5xx and transport errors
  std::chrono::milliseconds initial_backoff{200};  // doubled each attempt, with jitter
  std::chrono::milliseconds max_backoff{5000};
  size_t max_response = 4 << 20;  // larger bodies end the attempt (not retried)
  std::string user_agent = "tdxvirt";
  // Waits between attempts; returns false to give up now (a watcher being stopped). Default:
  // sleeps.
  std::function<bool(std::chrono::milliseconds)> backoff_wait;
};

inline constexpr char kServiceAccountDir[] = "/var/run/secrets/kubernetes.io/serviceaccount";
// From KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the service account's token and
// ca.crt, as client-go's in-cluster config. `fix` ends the error when not in a pod.
Result<KubeApiConfig> InClusterConfig(const std::string& service_account_dir = kServiceAccountDir,
                                      const std::string& fix = "run in-cluster");

struct KubeRequest {
  std::string method = "GET";  // GET, POST, PATCH
  std::string path;            // "/api/v1/nodes/worker-1"; the caller checks its segments
  std::string body;
  std::string content_type;    // with a body
  // Appended to a 401/403 error: which RBAC the caller's ServiceAccount needs, and where.
  std::string forbidden_hint;
};

struct KubeResponse {
  int status = 0;
  int attempts = 0;
  std::string body;
};

// Sends `request`, retrying 409, 429, 5xx and transport errors with jittered exponential backoff
// up to max_attempts. A 2xx is the result; any other status is an error carrying the API
// server's Status message ("GET /apis/...: HTTP 404: ..."), with forbidden_hint on 401/403.
Result<KubeResponse> Send(const KubeApiConfig& config, const KubeRequest& request);

// GET path, parsed as a JSON object.
Result<nlohmann::json> GetJson(const KubeApiConfig& config, const std::string& path,
                               const std::string& forbidden_hint = "");
// PATCH path with Content-Type application/merge-patch+json (RFC 7386).
Result<KubeResponse> MergePatch(const KubeApiConfig& config, const std::string& path,
                                const std::string& body, const std::string& forbidden_hint = "");
// POST path with Content-Type application/json (creating an object).
Result<KubeResponse> PostJson(const KubeApiConfig& config, const std::string& path,
                              const std::string& body, const std::string& forbidden_hint = "");

// A DNS subdomain (RFC 1123) as object names are: safe as a path segment once it passes.
bool IsDnsSubdomain(const std::string& name);

}  // namespace tdxvirt::kube
