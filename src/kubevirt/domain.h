// libvirt domain XML for trust domains. ApplyTdx is the one function that turns a domain into a
// TD; `render` (manifest -> domain) and the hook sidecar (KubeVirt's domain -> domain) share it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kubevirt/document.h"
#include "kubevirt/settings.h"
#include "kubevirt/tdx_spec.h"

namespace tdxvirt::kubevirt {

inline constexpr size_t kMaxDomainXmlBytes = 4 << 20;

// How much of the TD the hook writes: all of it where KubeVirt renders none (1.6), or only the
// <launchSecurity type='tdx'> children upstream lacks (1.7+: policy, MR values, and the QGS
// element up to 1.8 or a VM's own QGS socket on 1.9).
enum class HookScope { kFull, kLaunchSecurity };
HookScope HookScopeFor(const kube::KubevirtVersion& kv);

// Makes `domain_xml` a TD domain. kFull: <launchSecurity type='tdx'> (policy, mrConfigId/mrOwner/
// mrOwnerConfig in base64, quoteGenerationService), TDVF as a stateless ROM loader without NVRAM,
// no <smm> (never <smm state=...>: KubeVirt's DomainSpec reads that as SMM on), PMU off, split
// irqchip, host-passthrough CPU, HPET off, type kvm, a vsock device when asked. kLaunchSecurity:
// the children only, nothing else touched. Either way it never removes or reorders an element it
// does not own, and is idempotent: ApplyTdx(ApplyTdx(x)) == ApplyTdx(x). Existing children are
// kept (a VM's own QGS socket replaces upstream's path). Errors (never a partial result) for XML
// that does not parse, or a domain that cannot be a TD (another launchSecurity type, a non-x86_64
// arch, a non-q35 machine, kLaunchSecurity without KubeVirt's <launchSecurity type='tdx'>).
Result<std::string> ApplyTdx(std::string_view domain_xml, const TdxSettings& tdx,
                             HookScope scope = HookScope::kFull);

// What upstream KubeVirt's converter writes for a TDX VMI on release `kv` (1.7+; nothing on 1.6):
// <launchSecurity type='tdx'> (with <quoteGenerationService path=qgs_path> from 1.9), TDVF as a
// ROM without NVRAM from the release's folder, <pmu state='off'/>. Used by `render` and tests to
// stand in for KubeVirt; facts: shared/testdata/kubevirt/versions/<v>/facts.json "converter".
Result<std::string> ApplyUpstreamTdx(std::string_view domain_xml, const kube::KubevirtVersion& kv,
                                     bool secure_boot, const std::string& qgs_path);

// The TDVF a TD of release `kv` boots: upstream's (from 1.7; its folder moved to edk2/ovmf in 1.9)
// or, on 1.6, the settings' tdvf.plain / tdvf.secureBoot, which the full hook writes.
std::string TdvfPath(const ClusterSettings& settings, const kube::KubevirtVersion& kv,
                     bool secure_boot);

struct RenderOptions {
  // Instancetypes and preferences the manifest refers to (their manifests).
  std::vector<Json> resources;
  std::string uid = "00000000-0000-0000-0000-000000000000";  // VMI uid for private paths
};

struct RenderResult {
  std::string xml;
  bool is_tdx = false;
  bool sidecar = false;  // the hook ran (its sidecar is attached on this release)
  std::vector<std::string> warnings;  // parts of the spec that are node-specific and left out
};

// A VirtualMachine or VirtualMachineInstance manifest (parsed) to a complete domain, following
// KubeVirt's converter for CPU, memory, firmware, features, clock, disks, interfaces, serial
// console, rng, vsock and memballoon, for the release EffectiveKubevirtVersion(settings): the
// manifest is pruned with that release's schema and completed by the mutating webhook first, as
// in a cluster; then upstream's TDX part (ApplyUpstreamTdx) and, when the sidecar is attached,
// the hook's (ApplyTdx with HookScopeFor).
Result<RenderResult> RenderDomain(const Json& manifest, const ClusterSettings& settings,
                                  const RenderOptions& options = {});

// Kubernetes quantity ("1Gi", "1024M", "128Mi", "2048") in bytes.
Result<uint64_t> ParseQuantity(std::string_view text);

struct SchemaCheck {
  bool ran = false;     // false: xmllint is not installed (message says "skipped: ...")
  bool valid = false;
  std::string message;  // xmllint's findings, or why it was skipped
};
// Validates against libvirt's RelaxNG schema (`schema_dir`/domain.rng) with xmllint.
SchemaCheck ValidateDomainXml(std::string_view xml, const std::string& schema_dir);

}  // namespace tdxvirt::kubevirt
