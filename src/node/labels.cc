#include "node/labels.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/file.h"

namespace tdxvirt::node {
namespace {

ByteSpan AsBytes(const std::string& s) {
  return ByteSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Node names are DNS subdomains: a safe path segment when they pass this.
bool ValidNodeName(const std::string& n) {
  if (n.empty() || n.size() > 253) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  return true;
}

}  // namespace

LabelSet NodeLabels(const TdxDetection& d, const LabelOptions& options) {
  LabelSet l;
  l[kLabelTdx] = d.ready ? std::optional<std::string>("true") : std::nullopt;
  if (d.keys_known) {
    l[kLabelKeysTotal] = std::to_string(d.keys.capacity);
    l[kLabelKeysFree] = std::to_string(d.keys.free());
  } else {
    l[kLabelKeysTotal] = std::nullopt;
    l[kLabelKeysFree] = std::nullopt;
  }
  if (options.kubevirt_label)
    l[kKubevirtTdxLabel] = d.ready ? std::optional<std::string>("true") : std::nullopt;
  return l;
}

std::string RenderNfdFeatureFile(const LabelSet& labels) {
  std::string out =
      "# Written by the tdxvirt node agent (tdxvirt serve node-agent); replaced atomically.\n";
  for (const auto& [name, value] : labels)
    if (value) out += name + "=" + *value + "\n";
  return out;
}

Status WriteNfdFeatureFile(const std::string& dir, const LabelSet& labels,
                           const std::string& name) {
  if (name.empty() || name.front() == '.' || name.find('/') != std::string::npos)
    return Error{"NFD feature file name \"" + name + "\" must be a plain name not starting with ."};
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return Error{"NFD features directory " + dir + " does not exist (NFD's is " +
                 kNfdFeaturesDir + ")"};
  std::string text = RenderNfdFeatureFile(labels);
  if (text.size() > kNfdMaxFileSize) return Error{"NFD feature file over NFD's 64 KiB limit"};
  // NFD skips dot files, so the whole write happens under a dot name, then one rename publishes.
  std::string hidden = dir + "/." + name;
  if (Status s = WriteFileAtomic(hidden, AsBytes(text), 0644); !s.ok()) return s;
  std::string target = dir + "/" + name;
  std::filesystem::rename(hidden, target, ec);
  if (ec) {
    std::filesystem::remove(hidden, ec);
    return Error{"cannot rename " + hidden + " to " + target};
  }
  return OkStatus();
}

std::string NodeLabelsMergePatch(const LabelSet& labels) {
  nlohmann::ordered_json l = nlohmann::ordered_json::object();
  for (const auto& [name, value] : labels) l[name] = value ? nlohmann::ordered_json(*value) : nullptr;
  nlohmann::ordered_json patch;
  patch["metadata"]["labels"] = l;
  return patch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<KubeApiConfig> InClusterConfig(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port)
    return Error{"KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set: not running in a "
                 "pod (use --nfd-dir, or run in-cluster)"};
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

Result<PatchOutcome> PatchNodeLabels(const KubeApiConfig& config, const std::string& node,
                                     const LabelSet& labels) {
  if (!ValidNodeName(node))
    return Error{"node name \"" + node.substr(0, 64) +
                 "\" is not a DNS subdomain (set --kube-node or NODE_NAME from spec.nodeName)"};
  if (config.server.rfind("https://", 0) != 0)
    return Error{"Kubernetes API server " + config.server + " must be https://"};
  std::string body = NodeLabelsMergePatch(labels);
  std::string path = "/api/v1/nodes/" + node;
  std::mt19937 rng(std::random_device{}());
  auto backoff = config.initial_backoff;
  std::string last;
  PatchOutcome out;
  for (int attempt = 1; attempt <= std::max(1, config.max_attempts); ++attempt) {
    out.attempts = attempt;
    auto token = ReadFile(config.token_file, 64 << 10);
    if (!token.ok()) return Error{"service account token: " + token.error()};
    std::string t(token->begin(), token->end());
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();

    httplib::Client client(config.server);
    client.enable_server_certificate_verification(true);
    client.set_ca_cert_path(config.ca_file.c_str());
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(config.timeout).count();
    client.set_connection_timeout(time_t(std::max<int64_t>(1, secs)));
    client.set_read_timeout(time_t(std::max<int64_t>(1, secs)));
    client.set_write_timeout(time_t(std::max<int64_t>(1, secs)));
    client.set_bearer_token_auth(t);
    httplib::Headers headers = {{"Accept", "application/json"},
                                {"User-Agent", "tdxvirt-node-agent"}};
    auto res = client.Patch(path, headers, body, "application/merge-patch+json");
    bool retry = false;
    if (!res) {
      last = "PATCH " + config.server + path + ": " + httplib::to_string(res.error());
      retry = true;
    } else {
      out.status = res->status;
      if (res->status >= 200 && res->status < 300) return out;
      // The body is a Status object; its message says what went wrong (never the token).
      std::string msg = res->body.substr(0, 300);
      try {
        auto j = nlohmann::json::parse(res->body);
        if (j.contains("message") && j["message"].is_string()) msg = j["message"];
      } catch (const std::exception&) {
      }
      last = "PATCH " + path + ": HTTP " + std::to_string(res->status) + ": " + msg;
      if (res->status == 401 || res->status == 403)
        last += " (the agent's ServiceAccount needs get/patch on nodes; see deploy/node/)";
      retry = res->status == 409 || res->status == 429 || res->status >= 500;
    }
    if (!retry || attempt >= config.max_attempts) break;
    // Full jitter keeps a DaemonSet's agents from retrying in step.
    auto ms = std::uniform_int_distribution<int64_t>(backoff.count() / 2, backoff.count())(rng);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    backoff = std::min(config.max_backoff, backoff * 2);
  }
  return Error{last + " (after " + std::to_string(out.attempts) + " attempts)"};
}

}  // namespace tdxvirt::node
