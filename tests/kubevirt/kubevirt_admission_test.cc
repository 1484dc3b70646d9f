// Admission: TDX settings extraction, every validation rule (exact messages), the mutation patch,
// the AdmissionReview envelope, the settings file, and `tdxvirt admission review`.
#include <gtest/gtest.h>

#include "kubevirt/admission.h"
#include "kv_test_util.h"

namespace tdxvirt::kubevirt {
namespace {

using testing::GateOn;

Json BaseVmi() {
  return Json::parse(R"({
    "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
    "metadata": {"name": "td", "namespace": "ns"},
    "spec": {"domain": {"launchSecurity": {"tdx": {}},
                        "firmware": {"bootloader": {"efi": {"secureBoot": false}}},
                        "memory": {"guest": "1Gi"},
                        "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                                    "interfaces": [{"name": "default", "masquerade": {}}]}},
             "networks": [{"name": "default", "pod": {}}],
             "volumes": [{"name": "root", "containerDisk": {"image": "x"}}]}})");
}

ReviewResult Validate(const Json& obj, ClusterSettings s = GateOn()) {
  return ReviewObject(obj, s, ReviewKind::kValidate);
}

// Each rule: one change to a valid VMI and the exact denial it must produce.
struct Rule {
  const char* name;
  std::function<void(Json&)> change;
  std::string denial;
};

TEST(AdmissionRules, BaseVmiIsAllowed) {
  ReviewResult r = Validate(BaseVmi());
  EXPECT_TRUE(r.allowed) << ::testing::PrintToString(r.denials);
  EXPECT_TRUE(r.is_tdx);
}

TEST(AdmissionRules, EachRuleHasItsOwnMessage) {
  const std::vector<Rule> rules = {
      {"smm", [](Json& j) { j["spec"]["domain"]["features"]["smm"] = Json::object(); },
       "spec.domain.features.smm: TDX does not work along with SMM (QEMU: \"TDX VM doesn't "
       "support SMM\"); remove features.smm or set enabled: false"},
      {"bios", [](Json& j) { j["spec"]["domain"]["firmware"]["bootloader"] = {{"bios", Json::object()}}; },
       "spec.domain.firmware.bootloader.bios: TDX requires OVMF (UEFI): TDVF is the only TD "
       "firmware; replace bios with efi: {secureBoot: false}"},
      {"no-bootloader", [](Json& j) { j["spec"]["domain"].erase("firmware"); },
       "spec.domain.firmware.bootloader: TDX requires OVMF (UEFI); set bootloader: {efi: "
       "{secureBoot: false}} (the tdxvirt mutating webhook adds it)"},
      {"persistent-efi",
       [](Json& j) { j["spec"]["domain"]["firmware"]["bootloader"]["efi"]["persistent"] = true; },
       "spec.domain.firmware.bootloader.efi.persistent: TDX does not work along with persistent "
       "EFI variables: TDVF is stateless (no NVRAM); remove persistent or set it to false"},
      {"bootable-nic",
       [](Json& j) { j["spec"]["domain"]["devices"]["interfaces"][0]["bootOrder"] = 1; },
       "spec.domain.devices.interfaces[0].bootOrder: TDX does not work with bootable NICs: "
       "default (TDVF has no network boot); remove bootOrder"},
      {"sev-too", [](Json& j) { j["spec"]["domain"]["launchSecurity"]["sev"] = Json::object(); },
       "spec.domain.launchSecurity.sev: one and only one launchSecurity type can be set; remove "
       "sev to run as a TDX trust domain"},
      {"arch", [](Json& j) { j["spec"]["architecture"] = "arm64"; },
       "spec.architecture: TDX needs an amd64 (x86_64) Intel host, not arm64; remove "
       "architecture or set amd64"},
      {"arch-selector", [](Json& j) { j["spec"]["nodeSelector"]["kubernetes.io/arch"] = "s390x"; },
       "spec.nodeSelector[kubernetes.io/arch]: TDX needs amd64 nodes, not s390x; select amd64 or "
       "remove it"},
      {"named-cpu", [](Json& j) { j["spec"]["domain"]["cpu"]["model"] = "Skylake-Server"; },
       "spec.domain.cpu.model: QEMU refuses a named CPU model for a TD (target/i386/kvm/tdx.c, "
       "tdx_cpu_instance_init: \"Named cpu model is not supported for TDX yet!\", QEMU 10.1), and "
       "Skylake-Server is one; remove model (KubeVirt's default host-model) or use "
       "host-passthrough"},
      {"secure-boot-unset",
       [](Json& j) { j["spec"]["domain"]["firmware"]["bootloader"]["efi"] = Json::object(); },
       "spec.domain.firmware.bootloader.efi.secureBoot: Secure Boot is unset, which KubeVirt "
       "counts as on; KubeVirt 1.8 requires SMM for Secure Boot and a TD cannot have SMM; set "
       "secureBoot: false (KubeVirt 1.9 allows Secure Boot TDs)"},
      {"annotation-only",
       [](Json& j) {
         j["spec"]["domain"].erase("launchSecurity");
         j["metadata"]["annotations"]["tdx.tdxvirt.io/enabled"] = "true";
       },
       "metadata.annotations[tdx.tdxvirt.io/enabled]: KubeVirt 1.8 asks for TDX with "
       "spec.domain.launchSecurity.tdx: {} (it then selects TDX nodes and renders the trust "
       "domain); the annotation is for KubeVirt 1.6, which has no tdx field; add tdx: {} and "
       "remove the annotation"},
      {"qgs-outside-the-mounted-directory",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/qgs"] = "unix:/run/qgs.sock"; },
       "metadata.annotations[tdx.tdxvirt.io/qgs]: unix socket /run/qgs.sock is outside "
       "/var/run/tdx-qgs, the only QGS directory a launcher pod gets (the directory of the "
       "cluster's QGS socket /var/run/tdx-qgs/qgs.socket, mounted by the tdxvirt node agent); put "
       "the socket there or remove the annotation"},
      {"initdataref-and-mrconfigid",
       [](Json& j) {
         j["spec"]["domain"]["launchSecurity"]["tdx"]["initDataRef"] = "my-initdata";
         j["metadata"]["annotations"]["tdx.tdxvirt.io/mrconfigid"] = std::string(96, 'a');
       },
       "metadata.annotations[tdx.tdxvirt.io/mrconfigid]: spec.domain.launchSecurity.tdx."
       "initDataRef names an InitData object that sets MRCONFIGID (KubeVirt VEP 340); two sources "
       "for one value; remove the annotation"},
      {"machine", [](Json& j) { j["spec"]["domain"]["machine"]["type"] = "pc-i440fx-rhel7.6.0"; },
       "spec.domain.machine.type: TDX trust domains need the q35 machine, not "
       "pc-i440fx-rhel7.6.0; remove machine.type or use q35"},
      {"two-keys",
       [](Json& j) { j["spec"]["domain"]["resources"]["requests"]["tdxvirt.io/tdx-key"] = "2"; },
       "spec.domain.resources.requests[tdxvirt.io/tdx-key]: a trust domain uses exactly one TDX "
       "key; set it to \"1\" or remove it (the webhook adds it)"},
      {"live-migrate", [](Json& j) { j["spec"]["evictionStrategy"] = "LiveMigrate"; },
       "spec.evictionStrategy: TDX trust domains cannot be live-migrated (KubeVirt marks them "
       "TDXNotLiveMigratable), so LiveMigrate would block node drains; use None or "
       "LiveMigrateIfPossible"},
      {"qgs-syntax",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/qgs"] = "qgs.example"; },
       "metadata.annotations[tdx.tdxvirt.io/qgs]: \"qgs.example\" is not a QEMU socket address; use "
       "unix:/var/run/tdx-qgs/qgs.socket, vsock:2:4050 or HOST:PORT"},
      {"qgs-relative-unix",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/qgs"] = "unix:qgs.sock"; },
       "metadata.annotations[tdx.tdxvirt.io/qgs]: unix socket path \"qgs.sock\" is not absolute; use "
       "unix:/ABSOLUTE/PATH"},
      {"qgs-port",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/qgs"] = "qgs.local:70000"; },
       "metadata.annotations[tdx.tdxvirt.io/qgs]: port \"70000\" is not in 1..65535"},
      {"qgs-vsock-syntax",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/qgs"] = "vsock:host:4050"; },
       "metadata.annotations[tdx.tdxvirt.io/qgs]: \"vsock:host:4050\" is not vsock:CID:PORT with "
       "decimal numbers"},
      {"qgs-vsock-without-device",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/qgs"] = "vsock:2:4050"; },
       "spec.domain.devices.autoattachVSOCK: QGS vsock:2:4050 is a vsock address (vsock-mode "
       "attestation) but the VM has no vsock device; set autoattachVSOCK: true (KubeVirt feature "
       "gate VSOCK)"},
      {"mrconfigid-short-hex",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/mrconfigid"] = "abcd"; },
       "metadata.annotations[tdx.tdxvirt.io/mrconfigid]: has 4 hex digits; a SHA-384 value is 96 hex "
       "digits or 64 base64 characters"},
      {"mrconfigid-sha256-base64",
       [](Json& j) {
         j["metadata"]["annotations"]["tdx.tdxvirt.io/mrconfigid"] =
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
       },
       "metadata.annotations[tdx.tdxvirt.io/mrconfigid]: decodes to 32 bytes; a SHA-384 value is 48 "
       "bytes (96 hex digits or 64 base64 characters)"},
      {"mrconfigid-garbage",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/mrconfigid"] = "not base64!"; },
       "metadata.annotations[tdx.tdxvirt.io/mrconfigid]: is neither 96 hex digits nor base64 (length 11 "
       "is not a multiple of 4); give the SHA-384 value as 96 hex digits or base64 of "
       "48 bytes"},
      {"debug-policy",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/policy"] = "0x10000001"; },
       "metadata.annotations[tdx.tdxvirt.io/policy]: debug bit 0 is set: a debug TD lets the host read "
       "and write its memory, and QEMU refuses it; clear bit 0 (use 0x10000000)"},
      {"reserved-policy",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/policy"] = "0x10000100"; },
       "metadata.annotations[tdx.tdxvirt.io/policy]: sets TD attribute bits QEMU does not support "
       "(0x100); allowed: bit 28 SEPT_VE_DISABLE, 30 PKS, 63 PERFMON"},
      {"policy-syntax",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/policy"] = "debug"; },
       "metadata.annotations[tdx.tdxvirt.io/policy]: \"debug\" is not hex such as 0x10000000"},
      {"unknown-annotation",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/qsg"] = "x"; },
       "metadata.annotations[tdx.tdxvirt.io/qsg]: unknown TDX annotation; known: enabled, qgs, "
       "mrconfigid, mrowner, mrownerconfig, policy (prefix tdx.tdxvirt.io/)"},
      {"annotation-qgs-bad",
       [](Json& j) { j["metadata"]["annotations"]["tdx.tdxvirt.io/qgs"] = "vsock:1"; },
       "metadata.annotations[tdx.tdxvirt.io/qgs]: \"vsock:1\" is not vsock:CID:PORT with decimal "
       "numbers"},
      {"bad-sidecars-annotation",
       [](Json& j) { j["metadata"]["annotations"]["hooks.kubevirt.io/hookSidecars"] = "[{"; },
       "metadata.annotations[hooks.kubevirt.io/hookSidecars]: is not a JSON array of sidecars; "
       "fix its JSON"},
  };
  for (const Rule& rule : rules) {
    Json vmi = BaseVmi();
    rule.change(vmi);
    ReviewResult r = Validate(vmi);
    EXPECT_FALSE(r.allowed) << rule.name;
    ASSERT_EQ(r.denials.size(), 1u) << rule.name << ": " << ::testing::PrintToString(r.denials);
    EXPECT_EQ(r.denials[0], rule.denial) << rule.name;
    EXPECT_EQ(r.response["response"]["status"]["message"], rule.denial) << rule.name;
    EXPECT_EQ(r.response["response"]["status"]["code"], 403) << rule.name;
  }
}

// A manifest byte that is not UTF-8 is refused where it is read (its dump() in the response used
// to throw and abort `admission review`).
TEST(AdmissionRules, NonUtf8ManifestIsAnErrorWithItsLine) {
  const std::string manifest =
      "apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata:\n  name: x\n"
      "  annotations:\n    tdx.tdxvirt.io/qgs: \"vsock:\x9e\"\nspec:\n  domain: {}\n";
  auto r = Review(manifest, testing::GateOn(), ReviewKind::kBoth);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("line 6"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("not valid UTF-8"), std::string::npos) << r.error();
}

TEST(AdmissionRules, FeatureGateOffDenies) {
  ClusterSettings off;
  off.kubevirt_version = "1.9";
  ReviewResult r = Validate(BaseVmi(), off);
  ASSERT_EQ(r.denials.size(), 1u);
  EXPECT_EQ(r.denials[0],
            "spec.domain.launchSecurity.tdx: the TDX feature gate is off in the tdxvirt cluster "
            "settings; an administrator must set featureGate: true (and KubeVirt's "
            "WorkloadEncryptionTDX) before TDX VMs are admitted");
}

// Up to 1.8 KubeVirt denies Secure Boot without SMM (a TD has none); 1.9 exempts TDX.
TEST(AdmissionRules, SecureBootIsAllowedFromKubevirt19Only) {
  Json vmi = BaseVmi();
  vmi["spec"]["domain"]["firmware"]["bootloader"]["efi"]["secureBoot"] = true;
  for (const char* v : {"1.6", "1.7", "1.8"}) {
    ReviewResult r = Validate(vmi, GateOn(v));
    ASSERT_EQ(r.denials.size(), 1u) << v;
    EXPECT_EQ(r.denials[0], "spec.domain.firmware.bootloader.efi.secureBoot: Secure Boot is on; "
                            "KubeVirt " + std::string(v) + " requires SMM for Secure Boot and a "
                            "TD cannot have SMM; set secureBoot: false (KubeVirt 1.9 allows "
                            "Secure Boot TDs)");
  }
  EXPECT_TRUE(Validate(vmi, GateOn("1.9")).allowed);
}

// Upstream's default CPU model passes; only named models, which QEMU refuses for a TD, are denied.
TEST(AdmissionRules, CpuModelsUpstreamAdmitsPass) {
  for (const char* model : {"host-model", "host-passthrough"}) {
    Json vmi = BaseVmi();
    vmi["spec"]["domain"]["cpu"]["model"] = model;
    EXPECT_TRUE(Validate(vmi).allowed) << model;
  }
}

// Keys under tdx are KubeVirt's: a newer release's field (VEP 340's initDataRef) is not refused.
TEST(AdmissionRules, KeysUnderTdxAreNeverDenied) {
  Json vmi = BaseVmi();
  vmi["spec"]["domain"]["launchSecurity"]["tdx"] = {{"initDataRef", "my-initdata"},
                                                    {"futureField", 1}};
  ReviewResult r = Validate(vmi);
  EXPECT_TRUE(r.allowed) << ::testing::PrintToString(r.denials);
  ASSERT_EQ(r.warnings.size(), 1u) << ::testing::PrintToString(r.warnings);
  EXPECT_EQ(r.warnings[0], "spec.domain.launchSecurity.tdx.futureField: not read by tdxvirt (a "
                           "KubeVirt field); tdxvirt's settings are annotations with the prefix "
                           "tdx.tdxvirt.io/");
}

// On 1.9 upstream requests devices.kubevirt.io/tdx; our resource would never be offered.
TEST(AdmissionRules, OurKeyResourceIsRefusedOnKubevirt19) {
  Json vmi = BaseVmi();
  vmi["spec"]["domain"]["resources"]["limits"]["tdxvirt.io/tdx-key"] = "1";
  EXPECT_TRUE(Validate(vmi).allowed);
  ReviewResult r = Validate(vmi, GateOn("1.9"));
  ASSERT_EQ(r.denials.size(), 1u);
  EXPECT_EQ(r.denials[0], "spec.domain.resources.limits[tdxvirt.io/tdx-key]: KubeVirt 1.9 "
                          "requests devices.kubevirt.io/tdx for every TD itself and the tdxvirt "
                          "agent runs no key device plugin there; remove it");
}

// Live, with kubevirtVersion auto and no answer from the cluster yet, TDX objects are refused.
TEST(AdmissionRules, UnknownReleaseFailsClosedForTdxOnly) {
  ClusterSettings s = GateOn("auto");
  ReviewResult r = Validate(BaseVmi(), s);
  ASSERT_EQ(r.denials.size(), 1u);
  EXPECT_TRUE(r.denials[0].starts_with("spec.domain.launchSecurity.tdx: kubevirtVersion is auto "
                                       "and the KubeVirt version is not known yet"))
      << r.denials[0];
  Json plain = BaseVmi();
  plain["spec"]["domain"].erase("launchSecurity");
  EXPECT_TRUE(Validate(plain, s).allowed);
  s.observed_version = kube::KubevirtVersion{.major = 1, .minor = 8};
  EXPECT_TRUE(Validate(BaseVmi(), s).allowed);
  // A release newer than tdxvirt knows acts as 1.9, and the sidecar is told so (its
  // --kubevirt-version takes 1.6..1.9 only).
  s.observed_version = kube::KubevirtVersion{.major = 1, .minor = 11};
  Json vmi = BaseVmi();
  vmi["metadata"]["annotations"]["tdx.tdxvirt.io/mrowner"] = std::string(96, '0');
  ReviewResult r11 = ReviewObject(vmi, s, ReviewKind::kBoth);
  ASSERT_TRUE(r11.allowed) << ::testing::PrintToString(r11.denials);
  EXPECT_EQ(r11.kubevirt_version, "1.11");
  Json sidecars = Json::parse(
      r11.mutated["metadata"]["annotations"]["hooks.kubevirt.io/hookSidecars"].get<std::string>());
  EXPECT_EQ(sidecars[0]["args"],
            Json::parse(R"(["--version","v1alpha3","--kubevirt-version","1.9"])"));
}

TEST(AdmissionRules, VmPathsNameTheTemplate) {
  Json vm = {{"apiVersion", "kubevirt.io/v1"},
             {"kind", "VirtualMachine"},
             {"metadata", {{"name", "vm"}}},
             {"spec", {{"template", {{"spec", BaseVmi()["spec"]}}}}}};
  vm["spec"]["template"]["spec"]["domain"]["features"]["smm"] = {{"enabled", true}};
  ReviewResult r = Validate(vm);
  ASSERT_EQ(r.denials.size(), 1u);
  EXPECT_TRUE(r.denials[0].starts_with("spec.template.spec.domain.features.smm: ")) << r.denials[0];
}

TEST(AdmissionRules, SeveralProblemsAreAllReported) {
  Json vmi = BaseVmi();
  vmi["spec"]["domain"]["features"]["smm"] = Json::object();
  vmi["spec"]["domain"]["cpu"]["model"] = "Haswell";
  vmi["metadata"]["annotations"]["tdx.tdxvirt.io/mrconfigid"] = "00";
  EXPECT_EQ(Validate(vmi).denials.size(), 3u);
}

TEST(TdxSettings, MeasurementHexAndBase64AreTheSame) {
  auto hex = ParseMeasurement(std::string(96, 'a'));
  ASSERT_TRUE(hex.ok()) << hex.error();
  auto b64 = ParseMeasurement(Base64Encode(*hex));
  ASSERT_TRUE(b64.ok()) << b64.error();
  EXPECT_EQ(*hex, *b64);
  EXPECT_FALSE(ParseMeasurement(std::string(95, 'a')).ok());
  EXPECT_FALSE(ParseMeasurement("").ok());
}

TEST(TdxSettings, QgsForms) {
  auto u = ParseQgs("unix:/var/run/tdx-qgs/qgs.socket");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->kind, QgsAddress::Kind::kUnix);
  auto v = ParseQgs("vsock:2:4050");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->cid, 2u);
  EXPECT_EQ(v->port, 4050u);
  auto t = ParseQgs("[::1]:4050");
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->kind, QgsAddress::Kind::kTcp);
  EXPECT_FALSE(ParseQgs("::1:4050").ok());
  EXPECT_FALSE(ParseQgs("vsock:0:1").ok());
  EXPECT_FALSE(ParseQgs("unix:/a/../b").ok());
  EXPECT_FALSE(ParseQgs("").ok());
}

// KubeVirt 1.6 has no tdx field (its CRD prunes it): the annotation asks for TDX there.
TEST(TdxSettings, AnnotationsAloneAskForTdxOnKubevirt16) {
  Json vmi = BaseVmi();
  vmi["spec"]["domain"].erase("launchSecurity");
  ReviewResult plain = Validate(vmi, GateOn("1.6"));
  EXPECT_FALSE(plain.is_tdx);
  vmi["metadata"]["annotations"] = {{"tdx.tdxvirt.io/enabled", "true"},
                                    {"tdx.tdxvirt.io/mrconfigid", std::string(96, '1')}};
  ReviewResult r = Validate(vmi, GateOn("1.6"));
  EXPECT_TRUE(r.is_tdx);
  EXPECT_TRUE(r.allowed) << ::testing::PrintToString(r.denials);
  ASSERT_TRUE(r.tdx.mr_config_id.has_value());
  EXPECT_EQ((*r.tdx.mr_config_id)[0], 0x11);
}

TEST(TdxSettings, TdxAnnotationOnANonTdxVmIsDenied) {
  Json vmi = BaseVmi();
  vmi["spec"]["domain"].erase("launchSecurity");
  vmi["metadata"]["annotations"]["tdx.tdxvirt.io/qgs"] = "vsock:2:4050";
  ReviewResult r = Validate(vmi);
  ASSERT_EQ(r.denials.size(), 1u);
  EXPECT_EQ(r.denials[0],
            "metadata.annotations[tdx.tdxvirt.io/qgs]: TDX settings given but the VM does not ask "
            "for TDX; add spec.domain.launchSecurity.tdx: {}");
  EXPECT_EQ(Validate(vmi, GateOn("1.6")).denials[0],
            "metadata.annotations[tdx.tdxvirt.io/qgs]: TDX settings given but the VM does not ask "
            "for TDX; add annotation tdx.tdxvirt.io/enabled: \"true\"");
}

TEST(Mutation, PatchCompletesATdxVm) {
  Json vmi = BaseVmi();
  vmi["spec"]["domain"].erase("firmware");
  vmi["metadata"]["annotations"]["tdx.tdxvirt.io/mrconfigid"] = std::string(96, 'f');
  ReviewResult r = ReviewObject(vmi, GateOn(), ReviewKind::kBoth, "uid-1");
  ASSERT_TRUE(r.allowed) << ::testing::PrintToString(r.denials);
  // Applying the patch to the original gives the mutated object.
  EXPECT_EQ(vmi.patch(r.patch), r.mutated);
  const Json& spec = r.mutated["spec"];
  EXPECT_EQ(spec["domain"]["resources"]["requests"]["tdxvirt.io/tdx-key"], "1");
  EXPECT_EQ(spec["domain"]["resources"]["limits"]["tdxvirt.io/tdx-key"], "1");
  // KubeVirt 1.8 selects kubevirt.io/tdx nodes itself and defaults the CPU model (host-model).
  EXPECT_FALSE(spec.contains("nodeSelector"));
  EXPECT_FALSE(spec["domain"].contains("cpu"));
  EXPECT_EQ(spec["domain"]["firmware"]["bootloader"], Json::parse(R"({"efi":{"secureBoot":false}})"));
  EXPECT_EQ(spec["evictionStrategy"], "None");
  const Json& ann = r.mutated["metadata"]["annotations"];
  EXPECT_EQ(ann["tdx.tdxvirt.io/qgs"], "unix:/var/run/tdx-qgs/qgs.socket");
  EXPECT_FALSE(ann.contains("kubevirt.io/qgs-socket-path"));  // virt-api's on 1.9, unread before
  EXPECT_EQ(ann["tdx.tdxvirt.io/mrconfigid"], std::string(96, 'f'));  // as the user wrote it
  EXPECT_EQ(ann["tdx.tdxvirt.io/policy"], "0x10000000");
  Json sidecars = Json::parse(ann["hooks.kubevirt.io/hookSidecars"].get<std::string>());
  ASSERT_EQ(sidecars.size(), 1u);
  EXPECT_EQ(sidecars[0]["image"], "tdxvirt/tdxvirt:0.1.0");
  EXPECT_EQ(sidecars[0]["args"],
            Json::parse(R"(["--version","v1alpha3","--kubevirt-version","1.8"])"));
  // The envelope: uid echoed, patch base64 of the JSON Patch.
  EXPECT_EQ(r.response["apiVersion"], "admission.k8s.io/v1");
  EXPECT_EQ(r.response["response"]["uid"], "uid-1");
  EXPECT_EQ(r.response["response"]["patchType"], "JSONPatch");
  auto decoded = Base64Decode(r.response["response"]["patch"].get<std::string>(), "patch");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(Json::parse(std::string(decoded->begin(), decoded->end())), r.patch);
}

// A bad annotation does not stop the spec from being completed, so the live validating webhook
// (which sees the patched object) names that annotation alone, not a missing bootloader too.
TEST(Mutation, ABadAnnotationIsTheOnlyDenial) {
  Json vmi = BaseVmi();
  vmi["spec"]["domain"].erase("firmware");
  vmi["metadata"]["annotations"]["tdx.tdxvirt.io/mrconfigid"] = "abcd";
  ReviewResult r = ReviewObject(vmi, GateOn(), ReviewKind::kBoth);
  ASSERT_EQ(r.denials.size(), 1u) << ::testing::PrintToString(r.denials);
  EXPECT_EQ(r.denials[0], "metadata.annotations[tdx.tdxvirt.io/mrconfigid]: has 4 hex digits; a "
                          "SHA-384 value is 96 hex digits or 64 base64 characters");
  ReviewResult m = ReviewObject(vmi, GateOn(), ReviewKind::kMutate);
  EXPECT_EQ(m.mutated["spec"]["domain"]["firmware"]["bootloader"],
            Json::parse(R"({"efi":{"secureBoot":false}})"));
  EXPECT_FALSE(m.mutated["metadata"]["annotations"].contains("hooks.kubevirt.io/hookSidecars"));
}

TEST(Mutation, IsIdempotentAndKeepsOtherSidecars) {
  Json vmi = BaseVmi();
  vmi["metadata"]["annotations"]["hooks.kubevirt.io/hookSidecars"] =
      R"([{"args":["--version","v1alpha2"],"image":"example/other:1"}])";
  ReviewResult once = ReviewObject(vmi, GateOn(), ReviewKind::kMutate);
  Json sidecars = Json::parse(
      once.mutated["metadata"]["annotations"]["hooks.kubevirt.io/hookSidecars"].get<std::string>());
  ASSERT_EQ(sidecars.size(), 2u);
  EXPECT_EQ(sidecars[0]["image"], "example/other:1");
  ReviewResult twice = ReviewObject(once.mutated, GateOn(), ReviewKind::kMutate);
  EXPECT_TRUE(twice.patch.empty()) << twice.patch.dump();
}

TEST(Mutation, NonTdxObjectsAreLeftAlone) {
  Json vmi = BaseVmi();
  vmi["spec"]["domain"].erase("launchSecurity");
  ReviewResult r = ReviewObject(vmi, GateOn(), ReviewKind::kBoth);
  EXPECT_TRUE(r.allowed);
  EXPECT_FALSE(r.is_tdx);
  EXPECT_TRUE(r.patch.empty());
  EXPECT_FALSE(r.response["response"].contains("patch"));
}

TEST(Examples, EveryVmAndVmiWithTdxIsAdmittedWithThePatchOrDeniedForItsReason) {
  // The examples whose own settings cannot be a TD, and why.
  const std::map<std::string, std::string> denied = {
      {"vmi-windows.yaml",
       "spec.domain.features.smm: TDX does not work along with SMM (QEMU: \"TDX VM doesn't "
       "support SMM\"); remove features.smm or set enabled: false"},
  };
  auto examples = testing::VmAndVmiExamples();
  ASSERT_GE(examples.size(), 25u);
  for (const std::string& name : examples) {
    Json m = testing::WithTdx(testing::ReadManifest("kubevirt/examples/" + name));
    ReviewResult r = ReviewObject(m, GateOn(), ReviewKind::kBoth);
    EXPECT_TRUE(r.is_tdx) << name;
    auto it = denied.find(name);
    if (it != denied.end()) {
      EXPECT_FALSE(r.allowed) << name;
      ASSERT_EQ(r.denials.size(), 1u) << name;
      EXPECT_EQ(r.denials[0], it->second) << name;
      continue;
    }
    EXPECT_TRUE(r.allowed) << name << ": " << ::testing::PrintToString(r.denials);
    EXPECT_EQ(m.patch(r.patch), r.mutated) << name;
    bool vm = m["kind"] == "VirtualMachine";
    const Json& spec = vm ? r.mutated["spec"]["template"]["spec"] : r.mutated["spec"];
    const Json& ann = vm ? r.mutated["spec"]["template"]["metadata"]["annotations"]
                         : r.mutated["metadata"]["annotations"];
    EXPECT_EQ(spec["domain"]["resources"]["requests"]["tdxvirt.io/tdx-key"], "1") << name;
    EXPECT_FALSE(spec.contains("nodeSelector") && spec["nodeSelector"].contains("tdxvirt.io/tdx"))
        << name;
    EXPECT_NE(ann["hooks.kubevirt.io/hookSidecars"].get<std::string>().find("tdxvirt/tdxvirt"),
              std::string::npos)
        << name;
    EXPECT_FALSE(ann.contains("kubevirt.io/qgs-socket-path")) << name;
  }
}

TEST(Examples, WithoutTdxTheyPassUntouched) {
  for (const std::string& name : testing::VmAndVmiExamples()) {
    Json m = testing::ReadManifest("kubevirt/examples/" + name);
    ReviewResult r = ReviewObject(m, GateOn(), ReviewKind::kBoth);
    EXPECT_TRUE(r.allowed) << name;
    EXPECT_TRUE(r.patch.empty()) << name;
  }
}

TEST(Review, AdmissionReviewEnvelope) {
  Json review = {{"apiVersion", "admission.k8s.io/v1"},
                 {"kind", "AdmissionReview"},
                 {"request", {{"uid", "705ab4f5-6393-11e8-b7cc-42010a800002"},
                              {"operation", "CREATE"},
                              {"object", BaseVmi()}}}};
  auto r = Review(review.dump(), GateOn(), ReviewKind::kValidate);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r->allowed);
  EXPECT_EQ(r->response["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
  review["request"]["operation"] = "DELETE";
  review["request"]["object"] = nullptr;
  r = Review(review.dump(), GateOn(), ReviewKind::kValidate);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->allowed);
  review["request"].erase("uid");
  r = Review(review.dump(), GateOn(), ReviewKind::kValidate);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "AdmissionReview: request.uid must be a non-empty string");
  review["apiVersion"] = "admission.k8s.io/v1beta1";
  EXPECT_FALSE(Review(review.dump(), GateOn(), ReviewKind::kValidate).ok());
}

TEST(Review, BadInputIsAnErrorNotACrash) {
  EXPECT_FALSE(Review("", GateOn(), ReviewKind::kBoth).ok());
  EXPECT_FALSE(Review("{\"kind\": ", GateOn(), ReviewKind::kBoth).ok());
  EXPECT_FALSE(Review("a: [b", GateOn(), ReviewKind::kBoth).ok());
  EXPECT_FALSE(Review(std::string(5000, '['), GateOn(), ReviewKind::kBoth).ok());
  EXPECT_FALSE(Review("a: 1\n---\nb: 2\n", GateOn(), ReviewKind::kBoth).ok());
  // Alias expansion is bounded.
  std::string laughs = "a: &a [x,x,x,x,x,x,x,x,x,x]\n";
  for (char c = 'b'; c <= 'j'; ++c)
    laughs += std::string(1, c) + ": &" + c + " [*" + char(c - 1) + ",*" + char(c - 1) + ",*" +
              char(c - 1) + ",*" + char(c - 1) + ",*" + char(c - 1) + ",*" + char(c - 1) + "]\n";
  auto r = Review(laughs, GateOn(), ReviewKind::kBoth);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("nodes"), std::string::npos) << r.error();
}

TEST(Settings, ParseFileAndConfigMap) {
  auto a = ParseClusterSettings("featureGate: true\nnodeLabel: kubevirt.io/tdx\n"
                                "tdvf: {plain: /fw/TDVF.fd, secureBoot: \"\"}\n");
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_TRUE(a->feature_gate);
  EXPECT_EQ(a->node_label, "kubevirt.io/tdx");
  EXPECT_EQ(a->tdvf, "/fw/TDVF.fd");
  EXPECT_EQ(a->tdvf_secure_boot, "");
  EXPECT_EQ(a->key_resource, "tdxvirt.io/tdx-key");
  auto cm = ParseClusterSettings(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tdxvirt}\n"
      "data:\n  settings.yaml: |\n    featureGate: true\n    qgsEnforced: true\n");
  ASSERT_TRUE(cm.ok()) << cm.error();
  EXPECT_TRUE(cm->qgs_enforced);
  auto flat = ParseClusterSettings("kind: ConfigMap\ndata:\n  featureGate: \"true\"\n");
  ASSERT_TRUE(flat.ok()) << flat.error();
  EXPECT_TRUE(flat->feature_gate);
  auto typo = ParseClusterSettings("featureGates: true\n");
  ASSERT_FALSE(typo.ok());
  EXPECT_TRUE(typo.error().starts_with("settings: unknown key \"featureGates\"")) << typo.error();
  EXPECT_FALSE(ParseClusterSettings("featureGate: yes-please\n").ok());
  EXPECT_FALSE(ParseClusterSettings("qgsSocketPath: relative.sock\n").ok());
  EXPECT_FALSE(ParseClusterSettings("keyResourceName: tdx\n").ok());
  // The release: exactly the key kubevirtVersion, one of 1.6..1.9 or auto.
  EXPECT_EQ(ParseClusterSettings("featureGate: true\n")->kubevirt_version, "auto");
  EXPECT_EQ(ParseClusterSettings("kubevirtVersion: \"1.7\"\n")->kubevirt_version, "1.7");
  for (const char* bad : {"kubevirtVersion: \"1.10\"\n", "kubevirtVersion: \"v1.9\"\n",
                          "kubevirtVersion: \"1.5\"\n", "kubevirtVersion: latest\n"}) {
    auto r = ParseClusterSettings(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(r.error().starts_with("settings: kubevirtVersion must be \"1.6\", \"1.7\", \"1.8\", "
                                      "\"1.9\" or \"auto\"")) << r.error();
  }
  EXPECT_FALSE(ParseClusterSettings("kubeVirtVersion: \"1.9\"\n").ok());
}

// A VMI's spec cannot change after creation: an UPDATE gets no patch and no denial.
TEST(Review, VmiUpdateIsNeverPatched) {
  Json review = {{"apiVersion", "admission.k8s.io/v1"},
                 {"kind", "AdmissionReview"},
                 {"request", {{"uid", "u"}, {"operation", "UPDATE"}, {"object", BaseVmi()}}}};
  auto r = Review(review.dump(), GateOn(), ReviewKind::kBoth);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r->allowed);
  EXPECT_TRUE(r->patch.empty());
  EXPECT_FALSE(r->response["response"].contains("patch"));
  review["request"]["operation"] = "CREATE";
  r = Review(review.dump(), GateOn(), ReviewKind::kBoth);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->patch.empty());
}

}  // namespace
}  // namespace tdxvirt::kubevirt
