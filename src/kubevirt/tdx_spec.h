// A VM's TDX settings: `spec.domain.launchSecurity.tdx` fields and our annotations, merged and
// checked. The same extraction serves admission (on the VM template or VMI), rendering, and the
// hook (on the VMI that virt-launcher passes).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "kubevirt/document.h"
#include "kubevirt/settings.h"

namespace tdxvirt::kubevirt {

// Our annotation prefix. Every supported KubeVirt release prunes keys under `tdx` before any
// webhook sees the object (1.6 prunes `tdx` itself), so per-VM settings travel as annotations.
inline constexpr char kAnnotationPrefix[] = "tdx.tdxvirt.io/";
inline constexpr char kAnnotationEnabled[] = "tdx.tdxvirt.io/enabled";  // "true": TDX on 1.6
inline constexpr char kAnnotationQgs[] = "tdx.tdxvirt.io/qgs";
inline constexpr char kAnnotationMrConfigId[] = "tdx.tdxvirt.io/mrconfigid";
inline constexpr char kAnnotationMrOwner[] = "tdx.tdxvirt.io/mrowner";
inline constexpr char kAnnotationMrOwnerConfig[] = "tdx.tdxvirt.io/mrownerconfig";
inline constexpr char kAnnotationPolicy[] = "tdx.tdxvirt.io/policy";
inline constexpr char kHookSidecarsAnnotation[] = "hooks.kubevirt.io/hookSidecars";

// TD ATTRIBUTES bits (TD_PARAMS.ATTRIBUTES, libvirt <policy>).
inline constexpr uint64_t kTdAttrDebug = 1ull << 0;
inline constexpr uint64_t kTdAttrSeptVeDisable = 1ull << 28;
inline constexpr uint64_t kTdAttrPks = 1ull << 30;
inline constexpr uint64_t kTdAttrPerfmon = 1ull << 63;
// QEMU's TDX_SUPPORTED_TD_ATTRS: anything else is refused at start.
inline constexpr uint64_t kTdAttrSupported = kTdAttrSeptVeDisable | kTdAttrPks | kTdAttrPerfmon;
inline constexpr uint64_t kDefaultPolicy = kTdAttrSeptVeDisable;  // debug off, SEPT_VE_DISABLE

// A QEMU socket address for the Quote Generation Service.
struct QgsAddress {
  enum class Kind { kUnix, kVsock, kTcp } kind = Kind::kUnix;
  std::string path;  // unix
  uint32_t cid = 0;  // vsock
  uint32_t port = 0;  // vsock, tcp
  std::string host;  // tcp
  std::string text;  // canonical form: unix:PATH, vsock:CID:PORT, HOST:PORT
};
// "unix:/abs/path", "vsock:CID:PORT", "HOST:PORT" ([v6]:PORT too). Errors say what was expected.
Result<QgsAddress> ParseQgs(std::string_view text);

// A SHA-384 measurement register value: 96 hex digits or base64 of 48 bytes.
Result<ByteArray<48>> ParseMeasurement(std::string_view text);
// TD attributes: "0x10000000" (hex) or a JSON number.
Result<uint64_t> ParsePolicy(const Json& value);
// TD attributes as libvirt's <policy> and our annotation write them: "0x10000000".
std::string PolicyText(uint64_t policy);

// The effective TDX settings of one VM.
struct TdxSettings {
  std::optional<QgsAddress> qgs;  // nullopt: no Quote Generation Service wired in
  bool qgs_per_vm = false;        // the VM names its own QGS (else the cluster's socket)
  std::optional<ByteArray<48>> mr_config_id;
  std::optional<ByteArray<48>> mr_owner;
  std::optional<ByteArray<48>> mr_owner_config;
  uint64_t policy = kDefaultPolicy;  // QEMU's tdx-guest default too (SEPT_VE_DISABLE only)
  bool vsock = false;        // add a vsock device (autoattachVSOCK, vsock-mode attestation)
  bool secure_boot = false;  // use the Secure Boot TDVF
  std::string firmware = kDefaultTdvf;  // TDVF path
};

// One admission finding: `field` is the full path ("spec.template.spec.domain.features.smm").
struct Finding {
  std::string field;
  std::string message;  // what is wrong and how to fix it
  bool value_error = false;  // a setting that does not parse: the hook and render stop on these
  std::string Text() const { return field + ": " + message; }
};

// What a VMI spec (+ its annotations) asks for.
struct TdxRequest {
  bool requested = false;  // launchSecurity.tdx present, or tdx.tdxvirt.io/enabled: "true"
  bool by_spec = false;    // launchSecurity.tdx present (what upstream KubeVirt >= 1.7 acts on)
  bool init_data_ref = false;  // tdx.initDataRef (VEP 340): upstream sets MRCONFIGID itself
  TdxSettings settings;
  std::vector<Finding> denials;
  std::vector<Finding> warnings;
};

// The cluster's QGS socket: on 1.9+ upstream's (the KubeVirt CR's qgsSocketPath when known),
// else the settings' qgsSocketPath.
std::string ClusterQgsPath(const ClusterSettings& cluster, const kube::KubevirtVersion& kv);

// Reads the TDX request of a VMI spec for KubeVirt release `kv`. `spec_path` is where `vmi_spec`
// sits in the object ("spec" or "spec.template.spec"), `annotations_path` likewise, for messages.
TdxRequest ExtractTdx(const Json& vmi_spec, const Json& annotations, const std::string& spec_path,
                      const std::string& annotations_path, const ClusterSettings& cluster,
                      const kube::KubevirtVersion& kv);

// The settings the hook applies for a VMI object (as virt-launcher sends it). Errors when the VMI
// asks for TDX with settings that do not parse.
Result<std::optional<TdxSettings>> TdxSettingsForVmi(const Json& vmi, const ClusterSettings& cluster,
                                                     const kube::KubevirtVersion& kv);

}  // namespace tdxvirt::kubevirt
