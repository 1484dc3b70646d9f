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

// Makes `domain_xml` a TD domain: <launchSecurity type='tdx'> (policy, mrConfigId/mrOwner/
// mrOwnerConfig in base64, quoteGenerationService), TDVF as a stateless ROM loader without NVRAM,
// SMM off, PMU off, split irqchip, host-passthrough CPU, HPET off, type kvm, a vsock device when
// asked. Idempotent: ApplyTdx(ApplyTdx(x)) == ApplyTdx(x). An existing <launchSecurity
// type='tdx'> keeps the children the user set; only missing ones are added. Errors (never a
// partial result) for XML that does not parse, or a domain that cannot be a TD (another
// launchSecurity type, a non-x86_64 arch, a non-q35 machine).
Result<std::string> ApplyTdx(std::string_view domain_xml, const TdxSettings& tdx);

struct RenderOptions {
  // Instancetypes and preferences the manifest refers to (their manifests).
  std::vector<Json> resources;
  std::string uid = "00000000-0000-0000-0000-000000000000";  // VMI uid for private paths
};

struct RenderResult {
  std::string xml;
  bool is_tdx = false;
  std::vector<std::string> warnings;  // parts of the spec that are node-specific and left out
};

// A VirtualMachine or VirtualMachineInstance manifest (parsed) to a complete domain, following
// KubeVirt's converter for CPU, memory, firmware, features, clock, disks, interfaces, serial
// console, rng, vsock and memballoon; then ApplyTdx when the VM asks for TDX.
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
