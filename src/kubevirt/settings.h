// Cluster-wide TDX settings for the webhook, the renderer and the hook: one YAML/JSON document, a
// file or a ConfigMap (its data key "settings.yaml", or one data key per setting).
#pragma once

#include <string>
#include <string_view>

#include <optional>

#include "common/result.h"
#include "kube/kubevirt_version.h"

namespace tdxvirt::kubevirt {

// The node label and key resource must match the node agent's (src/node).
inline constexpr char kDefaultKeyResource[] = "tdxvirt.io/tdx-key";
inline constexpr char kDefaultNodeLabel[] = "tdxvirt.io/tdx";
inline constexpr char kDefaultQgsSocketPath[] = "/var/run/tdx-qgs/qgs.socket";
// Upstream KubeVirt's TDVF names (pkg/virt-launcher/virtwrap/efi) in its default OVMF folder.
inline constexpr char kDefaultTdvf[] = "/usr/share/edk2/ovmf/OVMF.inteltdx.fd";
inline constexpr char kDefaultTdvfSecureBoot[] = "/usr/share/edk2/ovmf/OVMF.inteltdx.secboot.fd";
inline constexpr char kDefaultSidecarImage[] = "tdxvirt/tdxvirt:0.1.0";

struct ClusterSettings {
  bool feature_gate = false;  // featureGate: alpha, off until an administrator turns it on
  std::string qgs_socket_path = kDefaultQgsSocketPath;  // qgsSocketPath
  bool qgs_enforced = false;                            // qgsEnforced
  std::string key_resource = kDefaultKeyResource;       // keyResourceName
  std::string node_label = kDefaultNodeLabel;           // nodeLabel (KubeVirt's: kubevirt.io/tdx)
  std::string node_label_value = "true";                // nodeLabelValue
  std::string tdvf = kDefaultTdvf;                      // tdvf.plain
  std::string tdvf_secure_boot = kDefaultTdvfSecureBoot;  // tdvf.secureBoot ("" forbids it)
  std::string sidecar_image = kDefaultSidecarImage;     // sidecarImage ("" adds no sidecar)
  std::string hook_version = "v1alpha3";                // hookVersion: v1alpha2 | v1alpha3
  // kubevirtVersion: "1.6".."1.9" names the KubeVirt release; "auto" reads the KubeVirt CR's
  // status.observedKubeVirtVersion (the live webhook and node agent).
  std::string kubevirt_version = "auto";
  // Filled at run time when kubevirt_version is auto: the version the cluster reports (nullopt:
  // not known yet) and, from 1.9, the CR's attestation qgsSocketPath.
  std::optional<kube::KubevirtVersion> observed_version;
  std::optional<std::string> observed_qgs_socket_path;  // CR ...confidentialCompute.tdx.attestation
};

// The release to act for: the setting, or what the cluster reports for "auto". An error when it
// is "auto" and the cluster has not told us yet (a live webhook then refuses TDX objects).
Result<kube::KubevirtVersion> EffectiveKubevirtVersion(const ClusterSettings& settings);

// Parses settings text. Unknown keys and wrong types are errors naming the key, so a typo never
// silently falls back to a default.
Result<ClusterSettings> ParseClusterSettings(std::string_view text);
// Reads and parses a settings file ("" gives the defaults).
Result<ClusterSettings> LoadClusterSettings(const std::string& path);

}  // namespace tdxvirt::kubevirt
