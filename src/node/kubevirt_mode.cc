#include "node/kubevirt_mode.h"

#include <cstdio>

namespace tdxvirt::node {

std::string AgentMode::Name() const {
  return device_plugin ? "device-plugin" : "report-keys-outside";
}

AgentMode AgentModeFor(const kube::KubevirtVersion& version, bool kubevirt_label_requested) {
  kube::UpstreamTdx up = kube::UpstreamTdxFor(version);
  AgentMode m;
  m.version = version;
  m.device_plugin = !up.key_resource;
  m.report_keys_outside = up.key_resource;
  m.kubevirt_label = kubevirt_label_requested && !up.node_label;
  m.kubevirt_label_refused = kubevirt_label_requested && up.node_label;
  return m;
}

LabelOptions LabelOptionsFor(const AgentMode& mode) {
  return {.kubevirt_label = mode.kubevirt_label, .keys_used_outside = mode.report_keys_outside};
}

Result<kube::KubevirtVersion> ParseExplicitKubevirtVersion(const std::string& text) {
  auto v = kube::ParseKubevirtVersion(text);
  if (!v.ok() || !v->exact() || v->Text() != text)
    return Error{"--kubevirt-version must be auto or one of 1.6, 1.7, 1.8, 1.9 (the KubeVirt "
                 "release), got \"" + text.substr(0, 40) + "\""};
  return *v;
}

nlohmann::json KeysUsedOutsideEvent(const std::string& node, int64_t used_outside,
                                    int64_t capacity, int64_t unix_nanos,
                                    const std::string& rfc3339) {
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".%llx", static_cast<unsigned long long>(unix_nanos));
  std::string message =
      std::to_string(used_outside) + " TDX key" + (used_outside == 1 ? " is" : "s are") +
      " used by TDs outside Kubernetes; KubeVirt's " + kube::kUpstreamKeyResource +
      " still offers all " + std::to_string(capacity) + " keys of misc.capacity, so up to " +
      std::to_string(used_outside) + " TD" + (used_outside == 1 ? "" : "s") +
      " scheduled on this node may fail to start";
  return {{"apiVersion", "v1"},
          {"kind", "Event"},
          {"metadata", {{"name", node + suffix}, {"namespace", "default"}}},
          // kubelet names its Node with the node name as uid too.
          {"involvedObject", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node}, {"uid", node}}},
          {"type", "Warning"},
          {"reason", kKeysUsedOutsideReason},
          {"message", message},
          {"source", {{"component", "tdxvirt-node-agent"}, {"host", node}}},
          {"reportingComponent", "tdxvirt.io/node-agent"},
          {"reportingInstance", node},
          {"firstTimestamp", rfc3339},
          {"lastTimestamp", rfc3339},
          {"count", 1}};
}

Status PostNodeEvent(const kube::KubeApiConfig& config, const nlohmann::json& event) {
  kube::KubeApiConfig c = config;
  c.user_agent = "tdxvirt-node-agent";
  auto r = kube::PostJson(c, "/api/v1/namespaces/default/events", event.dump(),
                          "(the agent's ServiceAccount needs create on events; see deploy/node/)");
  if (!r.ok()) return Error{r.error()};
  return OkStatus();
}

}  // namespace tdxvirt::node
