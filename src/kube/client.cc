#include "kube/client.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include <httplib.h>

#include "common/file.h"

namespace tdxvirt::kube {
namespace {

using Clock = std::chrono::steady_clock;

std::string TrimToken(const Bytes& b) {
  std::string t(b.begin(), b.end());
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  return t;
}

// The API server's Status object says what went wrong; else the start of the body, printable.
std::string StatusMessage(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    return j["message"].get<std::string>().substr(0, 300);
  std::string msg = body.substr(0, 300);
  for (char& c : msg)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  return msg;
}

}  // namespace

bool IsDnsSubdomain(const std::string& n) {
  if (n.empty() || n.size() > 253) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  return std::isalnum(static_cast<unsigned char>(n.front())) &&
         std::isalnum(static_cast<unsigned char>(n.back()));
}

Result<KubeApiConfig> InClusterConfig(const std::string& sa_dir, const std::string& fix) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port)
    return Error{"KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set: not running in a "
                 "pod (" + fix + ")"};
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6 service address
  KubeApiConfig c;
  c.server = "https://" + h + ":" + port;
  c.token_file = sa_dir + "/token";
  c.ca_file = sa_dir + "/ca.crt";
  std::error_code ec;
  if (!std::filesystem::exists(c.token_file, ec) || !std::filesystem::exists(c.ca_file, ec))
    return Error{"service account " + sa_dir +
                 " has no token or ca.crt: set automountServiceAccountToken and a serviceAccount"};
  return c;
}

Result<KubeResponse> Send(const KubeApiConfig& config, const KubeRequest& request) {
  if (config.server.rfind("https://", 0) != 0)
    return Error{"Kubernetes API server " + config.server + " must be https://"};
  if (request.path.empty() || request.path[0] != '/')
    return Error{"Kubernetes API path \"" + request.path + "\" must start with /"};
  const std::string what = request.method + " " + request.path;
  std::mt19937 rng(std::random_device{}());
  auto backoff = config.initial_backoff;
  std::string last;
  KubeResponse out;
  const int attempts = std::max(1, config.max_attempts);
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    out.attempts = attempt;
    auto token = ReadFile(config.token_file, 64 << 10);
    if (!token.ok()) return Error{"service account token: " + token.error()};

    httplib::Client client(config.server);
    client.enable_server_certificate_verification(true);
    client.set_ca_cert_path(config.ca_file.c_str());
    auto secs = std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::seconds>(config.timeout).count());
    client.set_connection_timeout(time_t(secs));
    client.set_read_timeout(time_t(secs));
    client.set_write_timeout(time_t(secs));
    client.set_bearer_token_auth(TrimToken(*token));

    httplib::Request req;
    req.method = request.method;
    req.path = request.path;
    req.headers = {{"Accept", "application/json"}, {"User-Agent", config.user_agent}};
    if (!request.body.empty() || request.method != "GET") {
      req.body = request.body;
      req.headers.emplace("Content-Type", request.content_type);
    }
    // Limits before buffering: the body is taken in pieces, capped, and under one deadline.
    std::string body;
    bool too_large = false, too_slow = false;
    const auto deadline = Clock::now() + std::max(config.timeout, std::chrono::milliseconds(1));
    req.response_handler = [&](const httplib::Response& r) {
      auto len = r.get_header_value("Content-Length");
      if (!len.empty() && len.size() < 20 && std::strtoull(len.c_str(), nullptr, 10) > config.max_response) {
        too_large = true;
        return false;
      }
      return true;
    };
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (body.size() + n > config.max_response) {
        too_large = true;
        return false;
      }
      if (Clock::now() > deadline) {
        too_slow = true;
        return false;
      }
      body.append(data, n);
      return true;
    };
    auto res = client.send(req);
    bool retry = false;
    if (too_large) {
      return Error{what + ": response over " + std::to_string(config.max_response) + " bytes"};
    } else if (too_slow) {
      last = what + ": response not complete within " +
             std::to_string(config.timeout.count()) + " ms";
      retry = true;
    } else if (!res) {
      last = what + " (" + config.server + "): " + httplib::to_string(res.error());
      retry = true;
    } else {
      out.status = res->status;
      out.body = std::move(body);
      if (res->status >= 200 && res->status < 300) return out;
      last = what + ": HTTP " + std::to_string(res->status) + ": " + StatusMessage(out.body);
      if ((res->status == 401 || res->status == 403) && !request.forbidden_hint.empty())
        last += " " + request.forbidden_hint;
      retry = res->status == 409 || res->status == 429 || res->status >= 500;
    }
    if (!retry || attempt >= attempts) break;
    // Full jitter keeps a DaemonSet's agents from retrying in step.
    auto ms = std::chrono::milliseconds(
        std::uniform_int_distribution<int64_t>(backoff.count() / 2, backoff.count())(rng));
    if (config.backoff_wait) {
      if (!config.backoff_wait(ms)) {
        last += " (stopped)";
        break;
      }
    } else {
      std::this_thread::sleep_for(ms);
    }
    backoff = std::min(config.max_backoff, backoff * 2);
  }
  return Error{last + " (after " + std::to_string(out.attempts) + " attempt" +
               (out.attempts == 1 ? "" : "s") + ")"};
}

Result<nlohmann::json> GetJson(const KubeApiConfig& config, const std::string& path,
                               const std::string& forbidden_hint) {
  auto r = Send(config, {.method = "GET", .path = path, .forbidden_hint = forbidden_hint});
  if (!r.ok()) return Error{r.error()};
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object()) return Error{"GET " + path + ": the response is not a JSON object"};
  return j;
}

Result<KubeResponse> MergePatch(const KubeApiConfig& config, const std::string& path,
                                const std::string& body, const std::string& forbidden_hint) {
  return Send(config, {.method = "PATCH",
                       .path = path,
                       .body = body,
                       .content_type = "application/merge-patch+json",
                       .forbidden_hint = forbidden_hint});
}

Result<KubeResponse> PostJson(const KubeApiConfig& config, const std::string& path,
                              const std::string& body, const std::string& forbidden_hint) {
  return Send(config, {.method = "POST",
                       .path = path,
                       .body = body,
                       .content_type = "application/json",
                       .forbidden_hint = forbidden_hint});
}

}  // namespace tdxvirt::kube
