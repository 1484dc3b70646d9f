// Node labels for TDX hosts, published either as a Node Feature Discovery local feature file or by
// patching the Node through the Kubernetes API (where NFD is absent).
//
// Labels (values are strings, as Kubernetes wants):
//   tdxvirt.io/tdx             "true" on a ready TDX host; removed otherwise
//   tdxvirt.io/tdx-keys-total  misc.capacity tdx
//   tdxvirt.io/tdx-keys-free   capacity minus every key in use (a hint for people; the scheduler
//                              counts with the device-plugin resource, which is exact)
//   tdxvirt.io/tdx-keys-used-outside  keys held by TDs outside Kubernetes, only with
//                              keys_used_outside (KubeVirt 1.9+, whose devices.kubevirt.io/tdx
//                              does not subtract them); removed otherwise
//   kubevirt.io/tdx            "true" (upstream KubeVirt's value), only with kubevirt_label: the
//                              label KubeVirt's virt-controller puts in a TD pod's nodeSelector,
//                              for clusters whose virt-handler does not label TDX hosts itself
//                              (KubeVirt 1.6; from 1.7 virt-handler owns it, see kubevirt_mode.h).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "common/result.h"
#include "kube/client.h"
#include "node/host.h"

namespace tdxvirt::node {

inline constexpr char kLabelTdx[] = "tdxvirt.io/tdx";
inline constexpr char kLabelKeysTotal[] = "tdxvirt.io/tdx-keys-total";
inline constexpr char kLabelKeysFree[] = "tdxvirt.io/tdx-keys-free";
inline constexpr char kLabelKeysUsedOutside[] = "tdxvirt.io/tdx-keys-used-outside";
inline constexpr char kKubevirtTdxLabel[] = "kubevirt.io/tdx";
inline constexpr char kNfdFeaturesDir[] = "/etc/kubernetes/node-feature-discovery/features.d";
inline constexpr char kNfdFeatureFile[] = "tdxvirt-tdx";
inline constexpr size_t kNfdMaxFileSize = 64 << 10;  // NFD's limit per feature file

struct LabelOptions {
  bool kubevirt_label = false;
  bool keys_used_outside = false;
};

// Label -> value; nullopt means "remove this label" (a null in the merge patch).
using LabelSet = std::map<std::string, std::optional<std::string>>;

LabelSet NodeLabels(const TdxDetection& d, const LabelOptions& options = {});

// The NFD local feature file: a comment, then one "name=value" per present label.
std::string RenderNfdFeatureFile(const LabelSet& labels);
// Writes <dir>/<name> atomically: a dot file (NFD ignores those) renamed over the real one.
Status WriteNfdFeatureFile(const std::string& dir, const LabelSet& labels,
                           const std::string& name = kNfdFeatureFile);

// {"metadata":{"labels":{...}}} for a JSON merge patch (RFC 7386) touching only our labels.
std::string NodeLabelsMergePatch(const LabelSet& labels);

// ---- Kubernetes API (src/kube/client.h) ----

using kube::InClusterConfig;
using kube::KubeApiConfig;
using kube::kServiceAccountDir;

struct PatchOutcome {
  int status = 0;
  int attempts = 0;
};
// PATCH /api/v1/nodes/<node> with Content-Type application/merge-patch+json and the bearer
// token, over TLS verified against ca_file. A 4xx other than 409/429 fails at once.
Result<PatchOutcome> PatchNodeLabels(const KubeApiConfig& config, const std::string& node,
                                     const LabelSet& labels);

}  // namespace tdxvirt::node
