#include "kubevirt/webhook_server.h"

#include <chrono>
#include <cmath>
#include <map>
#include <mutex>

#include "common/file.h"
#include "common/log.h"
#include "http/server.h"
#include "kubevirt/admission.h"

namespace tdxvirt::kubevirt {

ClusterSettings WithObservedCluster(const ClusterSettings& base, const ObservedCluster& observed) {
  ClusterSettings s = base;
  if (!observed.value) return s;
  if (s.kubevirt_version == "auto")
    if (auto v = kube::ParseKubevirtVersion(observed.value->observed_version); v.ok())
      s.observed_version = *v;
  // On 1.9 upstream's QGS path (the CR's) wins; admission decides per version.
  s.observed_qgs_socket_path = observed.value->qgs_socket_path;
  return s;
}

struct WebhookServer::Impl {
  ClusterSettings settings;
  WebhookOptions options;
  std::unique_ptr<http::Server> server;
  std::atomic<bool> ready{false};
  std::mutex mu;
  std::map<std::string, uint64_t> counts;  // "endpoint,outcome" -> requests
  std::map<int, uint64_t> responses;       // HTTP status -> responses, the layer's own too
  double seconds_total = 0;

  void Log(const std::string& level, const std::string& event, const nlohmann::ordered_json& extra) {
    auto j = LogRecord(level, "kubevirt-webhook", event);
    for (auto& [k, v] : extra.items()) j[k] = v;
    (options.log ? options.log : LogToStderr)(LogLine(j));
  }

  void Count(const std::string& endpoint, const std::string& outcome, double seconds) {
    std::lock_guard lock(mu);
    counts[endpoint + "\",outcome=\"" + outcome]++;
    seconds_total += seconds;
  }

  void Handle(const std::string& endpoint, ReviewKind kind, const http::Request& req,
              http::Response& res) {
    auto start = std::chrono::steady_clock::now();
    // The API server sends AdmissionReview JSON; YAML is for files, never for network input.
    size_t first = req.body.find_first_not_of(" \t\r\n");
    Result<ReviewResult> r = first == std::string::npos || req.body[first] != '{'
                                 ? Result<ReviewResult>(Error{"the body must be an AdmissionReview JSON object"})
                                 : ReviewWithCluster(req.body, kind);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!r.ok()) {
      res.Set(400, nlohmann::json{{"error", r.error()}}.dump(), "application/json");
      Count(endpoint, "bad_request", s);
      res.log["endpoint"] = endpoint;
      res.log["outcome"] = "bad_request";
      res.log["error"] = r.error();
      return;
    }
    res.Set(200, r->response.dump(), "application/json");
    std::string outcome = r->allowed ? (r->patch.empty() ? "allowed" : "patched") : "denied";
    Count(endpoint, outcome, s);
    nlohmann::ordered_json extra = {{"endpoint", endpoint},
                                    {"uid", StringField(r->response["response"], "uid")},
                                    {"tdx", r->is_tdx},
                                    {"outcome", outcome},
                                    {"duration_ms", std::round(s * 1e6) / 1e3}};
    if (!r->allowed) extra["denials"] = r->denials;
    res.log = std::move(extra);
  }

  Result<ReviewResult> ReviewWithCluster(const std::string& body, ReviewKind kind) {
    if (!options.cluster && !options.on_review) return Review(body, settings, kind);
    ClusterSettings s = options.cluster ? WithObservedCluster(settings, options.cluster()) : settings;
    if (options.on_review) options.on_review(s);
    return Review(body, s, kind);
  }

  // 503 until started and, with "kubevirtVersion: auto", until the cluster named its version.
  std::pair<int, std::string> Readiness() {
    if (!ready) return {503, "starting\n"};
    if (!options.cluster || settings.kubevirt_version != "auto") return {200, "ready\n"};
    ObservedCluster o = options.cluster();
    ClusterSettings s = WithObservedCluster(settings, o);
    if (!s.observed_version) {
      return {503, "not ready: kubevirtVersion is auto and the KubeVirt version is unknown: " +
                       (o.error.empty() ? std::string("not read yet") : o.error) + "\n"};
    }
    return {200, "ready: KubeVirt " + s.observed_version->Text() + " (from the KubeVirt CR)\n"};
  }

  // One line per response, the layer's own (413, 408, 503...) included.
  void OnResponse(const http::Event& e) {
    {
      std::lock_guard lock(mu);
      responses[e.status]++;
    }
    bool denied = e.fields && e.fields->contains("denials");
    auto j = LogRecord(e.status >= 500 ? "error" : e.status >= 400 || denied ? "warn" : "info",
                       "kubevirt-webhook", e.fields && e.fields->contains("endpoint") ? "review" : "request");
    http::AddLogFields(e, j);
    (options.log ? options.log : LogToStderr)(LogLine(j));
  }

  std::string Metrics() {
    std::lock_guard lock(mu);
    std::string out =
        "# HELP tdxvirt_webhook_reviews_total AdmissionReviews answered, by endpoint and outcome.\n"
        "# TYPE tdxvirt_webhook_reviews_total counter\n";
    for (const auto& [k, v] : counts)
      out += "tdxvirt_webhook_reviews_total{endpoint=\"" + k + "\"} " + std::to_string(v) + "\n";
    out += "# HELP tdxvirt_webhook_review_seconds_total Time spent reviewing.\n"
           "# TYPE tdxvirt_webhook_review_seconds_total counter\n"
           "tdxvirt_webhook_review_seconds_total " + std::to_string(seconds_total) + "\n"
           "# HELP tdxvirt_webhook_feature_gate 1 when TDX VMs are admitted.\n"
           "# TYPE tdxvirt_webhook_feature_gate gauge\n"
           "tdxvirt_webhook_feature_gate " + std::string(settings.feature_gate ? "1" : "0") + "\n";
    out += "# HELP tdxvirt_webhook_responses_total HTTP responses by status code.\n"
           "# TYPE tdxvirt_webhook_responses_total counter\n";
    for (const auto& [code, v] : responses)
      out += "tdxvirt_webhook_responses_total{code=\"" + std::to_string(code) + "\"} " +
             std::to_string(v) + "\n";
    if (options.cluster) {
      ObservedCluster o = options.cluster();
      ClusterSettings s = WithObservedCluster(settings, o);
      auto v = EffectiveKubevirtVersion(s);
      out += "# HELP tdxvirt_webhook_kubevirt_info The KubeVirt release reviews act for (source: "
             "settings or cluster).\n# TYPE tdxvirt_webhook_kubevirt_info gauge\n";
      if (v.ok())
        out += "tdxvirt_webhook_kubevirt_info{version=\"" + v->Text() + "\",source=\"" +
               (settings.kubevirt_version == "auto" ? "cluster" : "settings") + "\"} 1\n";
      out += "# HELP tdxvirt_webhook_kubevirt_cr_readable 1 when the last read of the KubeVirt CR "
             "succeeded.\n# TYPE tdxvirt_webhook_kubevirt_cr_readable gauge\n"
             "tdxvirt_webhook_kubevirt_cr_readable " + std::string(o.error.empty() && o.value ? "1" : "0") + "\n";
    }
    if (server) out += http::StatsText(server->stats(), "tdxvirt_webhook");
    return out;
  }
};

WebhookServer::WebhookServer(ClusterSettings settings, WebhookOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->settings = std::move(settings);
  impl_->options = std::move(options);
}

WebhookServer::~WebhookServer() { Stop(); }

Result<int> WebhookServer::Start() {
  Impl& m = *impl_;
  for (const std::string* f : {&m.options.cert_file, &m.options.key_file}) {
    auto b = ReadFile(*f, 1 << 20);
    if (!b.ok()) return Error{"TLS " + std::string(f == &m.options.cert_file ? "--tls-cert " : "--tls-key ") +
                              *f + ": " + b.error()};
  }
  using Req = http::Request;
  using Res = http::Response;
  std::vector<http::Route> routes;
  for (auto [path, kind] : {std::pair{"/validate", ReviewKind::kValidate}, {"/mutate", ReviewKind::kMutate}}) {
    http::Route r;
    r.method = "POST";
    r.path = path;
    r.max_body = m.options.max_body;
    std::string endpoint = path + 1;
    r.handler = [&m, endpoint, kind](const Req& q, Res& res) { m.Handle(endpoint, kind, q, res); };
    routes.push_back(std::move(r));
  }
  auto probe = [&](std::string path, http::Handler h) {
    http::Route r;
    r.method = "GET";
    r.path = std::move(path);
    r.handler = std::move(h);
    r.inline_io = true;
    routes.push_back(std::move(r));
  };
  probe("/healthz", [](const Req&, Res& r) { r.Set(200, "ok\n", "text/plain"); });
  probe("/readyz", [&m](const Req&, Res& r) {
    auto [code, text] = m.Readiness();
    r.Set(code, text, "text/plain");
  });
  probe("/metrics", [&m](const Req&, Res& r) { r.Set(200, m.Metrics(), "text/plain; version=0.0.4"); });
  http::ServerOptions ho;
  ho.host = m.options.host;
  ho.port = m.options.port;
  ho.tls_cert_path = m.options.cert_file;
  ho.tls_key_path = m.options.key_file;
  ho.limits = m.options.limits;
  ho.on_response = [&m](const http::Event& e) { m.OnResponse(e); };
  auto server = http::Server::Create(std::move(ho), std::move(routes));
  if (!server.ok()) return Error{"TLS: " + server.error()};
  auto port = (*server)->Start();
  if (!port.ok()) return Error{port.error()};
  {
    std::lock_guard lock(m.mu);
    m.server = std::move(*server);
  }
  m.ready = true;
  m.Log("info", "listening", {{"address", m.options.host + ":" + std::to_string(*port)},
                              {"feature_gate", m.settings.feature_gate}});
  return *port;
}

void WebhookServer::Stop() {
  if (!impl_ || !impl_->server) return;
  impl_->ready = false;
  impl_->server->Stop();
  {
    std::lock_guard lock(impl_->mu);
    impl_->server.reset();
  }
  impl_->Log("info", "stopped", nlohmann::ordered_json::object());
}

}  // namespace tdxvirt::kubevirt
