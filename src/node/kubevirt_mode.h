// What the node agent does on each KubeVirt release, so it adds only what upstream lacks
// (shared/reference/kubevirt-versions.md §4 rows 1 and 4):
//   <= 1.8  the agent's device plugin (tdxvirt.io/tdx-key) is the only key resource;
//   >= 1.9  upstream's devices.kubevirt.io/tdx counts misc.capacity keys, so a second plugin
//           would count the same keys: no plugin, no QGS mount; the agent reports keys used
//           outside Kubernetes instead (label, metric, a Warning Event on the Node);
//   >= 1.7  virt-handler owns the node label kubevirt.io/tdx (it deletes and re-adds every label
//           starting with it), so the agent never writes it, --kubevirt-label or not.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "kube/client.h"
#include "kube/kubevirt_version.h"
#include "node/labels.h"

namespace tdxvirt::node {

struct AgentMode {
  kube::KubevirtVersion version;
  bool device_plugin = true;       // run the tdxvirt.io/tdx-key device plugin (and its QGS mount)
  bool report_keys_outside = false;  // label + metric + Event for keys used outside Kubernetes
  bool kubevirt_label = false;     // write kubevirt.io/tdx (asked for, and 1.6)
  bool kubevirt_label_refused = false;  // asked for, but virt-handler owns it
  std::string Name() const;  // "device-plugin" or "report-keys-outside"
  bool operator==(const AgentMode&) const = default;
};

AgentMode AgentModeFor(const kube::KubevirtVersion& version, bool kubevirt_label_requested);
LabelOptions LabelOptionsFor(const AgentMode& mode);

// "1.6".."1.9" exactly (the releases whose behaviour is known), for --kubevirt-version.
Result<kube::KubevirtVersion> ParseExplicitKubevirtVersion(const std::string& text);

inline constexpr char kKeysUsedOutsideReason[] = "TDXKeysUsedOutsideKubernetes";

// A core/v1 Event of type Warning on the Node (namespace "default", as kubelet's node events):
// `used_outside` keys are held outside Kubernetes while upstream still offers all `capacity`.
// `unix_nanos` names it (client-go's "<object>.<hex nanoseconds>") and `rfc3339` stamps it.
nlohmann::json KeysUsedOutsideEvent(const std::string& node, int64_t used_outside,
                                    int64_t capacity, int64_t unix_nanos, const std::string& rfc3339);

// POST /api/v1/namespaces/default/events. The 401/403 error names the RBAC needed.
Status PostNodeEvent(const kube::KubeApiConfig& config, const nlohmann::json& event);

}  // namespace tdxvirt::node
