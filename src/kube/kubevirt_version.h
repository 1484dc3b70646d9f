// Which KubeVirt release a cluster runs, and what that release already does for Intel TDX, so
// tdxvirt adds only what upstream lacks (docs/kubevirt.md, "Division of labour"). Facts and their
// sources: shared/reference/kubevirt-versions.md and shared/testdata/kubevirt/versions/<v>/facts.json.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace tdxvirt::kube {

// The releases whose TDX behaviour tdxvirt knows and ships CRD schemas for.
inline constexpr int kOldestKnownMinor = 6;
inline constexpr int kNewestKnownMinor = 9;

// A KubeVirt version as the KubeVirt CR reports it (status.observedKubeVirtVersion, "v1.9.0",
// "v1.8.0-rc.1", "v1.7.0-alpha.0.12+abc") or as the setting `kubevirtVersion` names it ("1.7").
struct KubevirtVersion {
  int major = 1;
  int minor = kNewestKnownMinor;
  // The release whose behaviour applies: 1.6 also for older ones, 1.9 also for newer ones.
  int profile_minor() const;
  // One of 1.6..1.9: the shipped schema of that release is what its API server prunes with.
  // A newer release has its own schema (say VEP 340's tdx.initDataRef), which we must not apply.
  bool exact() const { return major == 1 && minor >= kOldestKnownMinor && minor <= kNewestKnownMinor; }
  std::string Text() const { return std::to_string(major) + "." + std::to_string(minor); }
  bool operator==(const KubevirtVersion&) const = default;
};

// Accepts "1.9", "v1.9", "v1.9.0" and pre-release/build suffixes. Errors name the expected form.
Result<KubevirtVersion> ParseKubevirtVersion(std::string_view text);

// What upstream KubeVirt does for a TDX VMI (launchSecurity.tdx) in a given release.
struct UpstreamTdx {
  bool tdx_field = false;          // 1.7+: launchSecurity.tdx exists (an empty struct)
  bool node_selector = false;      // 1.7+: launcher pods select kubevirt.io/tdx=true
  bool node_label = false;         // 1.7+: virt-handler owns the node label kubevirt.io/tdx
  bool renders_domain = false;     // 1.7+: <launchSecurity type='tdx'/>, TDVF ROM, PMU off
  bool stock_launcher_runs_tds = false;  // 1.8+: its libvirt/QEMU pins can start a TD
  bool key_resource = false;       // 1.9+: devices.kubevirt.io/tdx, requested for every TD pod
  bool qgs = false;                // 1.9+: QGS annotation, <quoteGenerationService>, socket mount
  bool secure_boot = false;        // 1.9+: Secure Boot TDVF allowed (exempt from the SMM rule)
  bool domainspec_keeps_qgs = false;  // 1.9+: api.DomainSpec has launchSecurity/quoteGenerationService
};
UpstreamTdx UpstreamTdxFor(const KubevirtVersion& v);

// Upstream's names.
inline constexpr char kUpstreamNodeLabel[] = "kubevirt.io/tdx";
inline constexpr char kUpstreamKeyResource[] = "devices.kubevirt.io/tdx";
inline constexpr char kUpstreamQgsAnnotation[] = "kubevirt.io/qgs-socket-path";
inline constexpr char kUpstreamDefaultQgsSocket[] = "/var/run/tdx-qgs/qgs.socket";

}  // namespace tdxvirt::kube
