// Node labels for TDX hosts, published either as a Node Feature Discovery local feature file or by
// patching the Node through the Kubernetes API (where NFD is absent).
//
// Labels (values are strings, as Kubernetes wants):
//   tdxvirt.io/tdx             "true" on a ready TDX host; removed otherwise
//   tdxvirt.io/tdx-keys-total  misc.capacity tdx
//   tdxvirt.io/tdx-keys-free   capacity minus every key in use (a hint for people; the scheduler
//                              counts with the device-plugin resource, which is exact)
//   kubevirt.io/tdx            "true" (upstream KubeVirt's value), only with kubevirt_label: the
//                              label KubeVirt's virt-controller puts in a TD pod's nodeSelector,
//                              for clusters whose virt-handler does not label TDX hosts itself.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "common/result.h"
#include "node/host.h"

namespace tdxvirt::node {

inline constexpr char kLabelTdx[] = "tdxvirt.io/tdx";
inline constexpr char kLabelKeysTotal[] = "tdxvirt.io/tdx-keys-total";
inline constexpr char kLabelKeysFree[] = "tdxvirt.io/tdx-keys-free";
inline constexpr char kKubevirtTdxLabel[] = "kubevirt.io/tdx";
inline constexpr char kNfdFeaturesDir[] = "/etc/kubernetes/node-feature-discovery/features.d";
inline constexpr char kNfdFeatureFile[] = "tdxvirt-tdx";
inline constexpr size_t kNfdMaxFileSize = 64 << 10;  // NFD's limit per feature file

struct LabelOptions {
  bool kubevirt_label = false;
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

// ---- Kubernetes API ----

struct KubeApiConfig {
  std::string server;      // "https://10.96.0.1:443"
  std::string token_file;  // re-read on every request: projected tokens rotate
  std::string ca_file;     // PEM bundle that signs the API server's certificate
  std::chrono::milliseconds timeout{10000};
  int max_attempts = 5;    // retried on 409, 429, 5xx and transport errors
  std::chrono::milliseconds initial_backoff{200};  // doubled each attempt, with jitter
  std::chrono::milliseconds max_backoff{5000};
};

inline constexpr char kServiceAccountDir[] = "/var/run/secrets/kubernetes.io/serviceaccount";
// From KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the service account's token and
// ca.crt, as client-go's in-cluster config.
Result<KubeApiConfig> InClusterConfig(const std::string& service_account_dir = kServiceAccountDir);

struct PatchOutcome {
  int status = 0;
  int attempts = 0;
};
// PATCH /api/v1/nodes/<node> with Content-Type application/merge-patch+json and the bearer
// token, over TLS verified against ca_file. A 4xx other than 409/429 fails at once.
Result<PatchOutcome> PatchNodeLabels(const KubeApiConfig& config, const std::string& node,
                                     const LabelSet& labels);

}  // namespace tdxvirt::node
