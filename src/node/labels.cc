#include "node/labels.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/file.h"

namespace tdxvirt::node {
namespace {

ByteSpan AsBytes(const std::string& s) {
  return ByteSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
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
  if (options.keys_used_outside)
    l[kLabelKeysUsedOutside] = d.keys_known ? std::optional<std::string>(std::to_string(d.keys.used_outside()))
                                            : std::nullopt;
  else
    l[kLabelKeysUsedOutside] = std::nullopt;
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

Result<PatchOutcome> PatchNodeLabels(const KubeApiConfig& config, const std::string& node,
                                     const LabelSet& labels) {
  if (!kube::IsDnsSubdomain(node))
    return Error{"node name \"" + node.substr(0, 64) +
                 "\" is not a DNS subdomain (set --kube-node or NODE_NAME from spec.nodeName)"};
  KubeApiConfig c = config;
  c.user_agent = "tdxvirt-node-agent";
  auto r = kube::MergePatch(c, "/api/v1/nodes/" + node, NodeLabelsMergePatch(labels),
                            "(the agent's ServiceAccount needs get/patch on nodes; see deploy/node/)");
  if (!r.ok()) return Error{r.error()};
  return PatchOutcome{.status = r->status, .attempts = r->attempts};
}

}  // namespace tdxvirt::node
