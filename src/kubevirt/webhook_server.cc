#include "kubevirt/webhook_server.h"

#include <httplib.h>

#include <chrono>
#include <cmath>
#include <map>
#include <mutex>

#include "common/file.h"
#include "common/http_listen.h"
#include "common/log.h"
#include "kubevirt/admission.h"

namespace tdxvirt::kubevirt {

namespace {

}  // namespace

struct WebhookServer::Impl {
  ClusterSettings settings;
  WebhookOptions options;
  std::unique_ptr<httplib::SSLServer> server;
  std::thread thread;
  std::atomic<bool> ready{false};
  std::mutex mu;
  std::map<std::string, uint64_t> counts;  // "endpoint,outcome" -> requests
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

  void Handle(const std::string& endpoint, ReviewKind kind, const httplib::Request& req,
              httplib::Response& res) {
    auto start = std::chrono::steady_clock::now();
    // The API server sends AdmissionReview JSON; YAML is for files, never for network input.
    size_t first = req.body.find_first_not_of(" \t\r\n");
    Result<ReviewResult> r = first == std::string::npos || req.body[first] != '{'
                                 ? Result<ReviewResult>(Error{"the body must be an AdmissionReview JSON object"})
                                 : Review(req.body, settings, kind);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!r.ok()) {
      res.status = 400;
      res.set_content(nlohmann::json{{"error", r.error()}}.dump(), "application/json");
      Count(endpoint, "bad_request", s);
      Log("warn", "review", {{"endpoint", endpoint}, {"outcome", "bad_request"}, {"error", r.error()}});
      return;
    }
    res.set_content(r->response.dump(), "application/json");
    std::string outcome = r->allowed ? (r->patch.empty() ? "allowed" : "patched") : "denied";
    Count(endpoint, outcome, s);
    nlohmann::ordered_json extra = {{"endpoint", endpoint},
                                    {"uid", StringField(r->response["response"], "uid")},
                                    {"tdx", r->is_tdx},
                                    {"outcome", outcome},
                                    {"duration_ms", std::round(s * 1e6) / 1e3}};
    if (!r->allowed) extra["denials"] = r->denials;
    Log(r->allowed ? "info" : "warn", "review", extra);
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
  m.server = std::make_unique<httplib::SSLServer>(m.options.cert_file.c_str(),
                                                  m.options.key_file.c_str());
  if (!m.server->is_valid())
    return Error{"TLS: cannot use --tls-cert " + m.options.cert_file + " / --tls-key " +
                 m.options.key_file + " (not a matching PEM certificate and key)"};
  m.server->set_payload_max_length(m.options.max_body);
  m.server->set_read_timeout(10, 0);
  m.server->set_write_timeout(10, 0);
  m.server->Post("/validate", [&m](const httplib::Request& q, httplib::Response& r) {
    m.Handle("validate", ReviewKind::kValidate, q, r);
  });
  m.server->Post("/mutate", [&m](const httplib::Request& q, httplib::Response& r) {
    m.Handle("mutate", ReviewKind::kMutate, q, r);
  });
  m.server->Get("/healthz", [](const httplib::Request&, httplib::Response& r) {
    r.set_content("ok\n", "text/plain");
  });
  m.server->Get("/readyz", [&m](const httplib::Request&, httplib::Response& r) {
    r.status = m.ready ? 200 : 503;
    r.set_content(m.ready ? "ready\n" : "starting\n", "text/plain");
  });
  m.server->Get("/metrics", [&m](const httplib::Request&, httplib::Response& r) {
    r.set_content(m.Metrics(), "text/plain; version=0.0.4");
  });
  int port = m.options.port == 0 ? m.server->bind_to_any_port(m.options.host)
                                 : (m.server->bind_to_port(m.options.host, m.options.port)
                                        ? m.options.port
                                        : -1);
  if (port <= 0)
    return Error{"cannot listen on " + m.options.host + ":" + std::to_string(m.options.port)};
  m.thread = ListenInThread(*m.server);
  m.ready = true;
  m.Log("info", "listening", {{"address", m.options.host + ":" + std::to_string(port)},
                              {"feature_gate", m.settings.feature_gate}});
  return port;
}

void WebhookServer::Stop() {
  if (!impl_ || !impl_->server || !impl_->thread.joinable()) return;
  impl_->ready = false;
  impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->server.reset();
  impl_->Log("info", "stopped", nlohmann::ordered_json::object());
}

}  // namespace tdxvirt::kubevirt
