#include "kubevirt/admission.h"


#include "kubevirt/prune.h"

namespace tdxvirt::kubevirt {

namespace {

// Walks to (creating mappings as needed) a nested mapping; replaces a null on the way.
Json& Ensure(Json& j, std::initializer_list<std::string_view> keys) {
  Json* cur = &j;
  for (auto k : keys) {
    Json& next = (*cur)[std::string(k)];
    if (!next.is_object()) next = Json::object();
    cur = &next;
  }
  return *cur;
}

// Where the VMI spec and its annotations sit in one object.
struct Layout {
  bool vm = false;
  std::string spec_path, annotations_path;
};

std::string QuantityText(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();
  return "";
}

// The admission rules beyond the TDX settings themselves, for KubeVirt release `kv`. Where
// upstream has the same rule (1.7+) the outcome is the same; sources are in docs/kubevirt.md.
void ValidateSpec(const Json& spec, const Layout& l, const TdxRequest& req,
                  const ClusterSettings& cs, const kube::KubevirtVersion& kv,
                  std::vector<Finding>& deny, std::vector<Finding>& warn) {
  const kube::UpstreamTdx up = kube::UpstreamTdxFor(kv);
  const std::string& sp = l.spec_path;
  const std::string ls = sp + ".domain.launchSecurity";
  auto d = [&](std::string f, std::string m) { deny.push_back({std::move(f), std::move(m)}); };
  auto w = [&](std::string f, std::string m) { warn.push_back({std::move(f), std::move(m)}); };

  if (!cs.feature_gate)
    d(ls + ".tdx", "the TDX feature gate is off in the tdxvirt cluster settings; an "
                   "administrator must set featureGate: true (and KubeVirt's "
                   "WorkloadEncryptionTDX) before TDX VMs are admitted");
  if (const Json* lsj = Path(spec, {"domain", "launchSecurity"}); lsj && lsj->is_object()) {
    for (const char* other : {"sev", "snp"})
      if (const Json* o = Get(*lsj, other); o && !o->is_null())
        d(ls + "." + other, "one and only one launchSecurity type can be set; remove " +
                                std::string(other) + " to run as a TDX trust domain");
  }
  if (const Json* smm = Path(spec, {"domain", "features", "smm"}); smm && !smm->is_null()) {
    const Json* en = Get(*smm, "enabled");
    if (!(en && en->is_boolean() && !en->get<bool>()))
      d(sp + ".domain.features.smm", "TDX does not work along with SMM (QEMU: \"TDX VM doesn't "
                                     "support SMM\"); remove features.smm or set enabled: false");
  }
  const Json* bl = Path(spec, {"domain", "firmware", "bootloader"});
  const Json* efi = bl ? Get(*bl, "efi") : nullptr;
  if (bl && Get(*bl, "bios"))
    d(sp + ".domain.firmware.bootloader.bios", "TDX requires OVMF (UEFI): TDVF is the only TD "
                                               "firmware; replace bios with efi: {secureBoot: false}");
  else if (!efi || efi->is_null())
    d(sp + ".domain.firmware.bootloader", "TDX requires OVMF (UEFI); set bootloader: {efi: "
                                          "{secureBoot: false}} (the tdxvirt mutating webhook adds it)");
  if (efi && efi->is_object()) {
    if (const Json* p = Get(*efi, "persistent"); p && p->is_boolean() && p->get<bool>())
      d(sp + ".domain.firmware.bootloader.efi.persistent",
        "TDX does not work along with persistent EFI variables: TDVF is stateless (no NVRAM); "
        "remove persistent or set it to false");
    // Up to 1.8 KubeVirt counts an unset secureBoot as on and denies Secure Boot without SMM,
    // which a TD cannot have; 1.9 exempts TDX and boots the Secure Boot TDVF.
    if (req.settings.secure_boot && !up.secure_boot)
      d(sp + ".domain.firmware.bootloader.efi.secureBoot",
        "Secure Boot is " + std::string(Get(*efi, "secureBoot") ? "on" : "unset, which KubeVirt "
        "counts as on") + "; KubeVirt " + kv.Text() + " requires SMM for Secure Boot and a TD "
        "cannot have SMM; set secureBoot: false (KubeVirt 1.9 allows Secure Boot TDs)");
  }
  if (const Json* ifs = Path(spec, {"domain", "devices", "interfaces"}); ifs && ifs->is_array()) {
    for (size_t i = 0; i < ifs->size(); ++i) {
      const Json& n = (*ifs)[i];
      if (Get(n, "bootOrder"))
        d(sp + ".domain.devices.interfaces[" + std::to_string(i) + "].bootOrder",
          "TDX does not work with bootable NICs: " + (StringField(n, "name").empty() ? std::string("?") : StringField(n, "name")) +
              " (TDVF has no network boot); remove bootOrder");
    }
  }
  if (const Json* a = Get(spec, "architecture"); a && a->is_string() && *a != "amd64")
    d(sp + ".architecture", "TDX needs an amd64 (x86_64) Intel host, not " + a->get<std::string>() +
                                "; remove architecture or set amd64");
  if (const Json* a = Path(spec, {"nodeSelector", "kubernetes.io/arch"});
      a && a->is_string() && *a != "amd64")
    d(sp + ".nodeSelector[kubernetes.io/arch]",
      "TDX needs amd64 nodes, not " + a->get<std::string>() + "; select amd64 or remove it");
  // host-model (upstream's default) and host-passthrough pass; a named model is what QEMU refuses.
  if (const Json* m = Path(spec, {"domain", "cpu", "model"});
      m && m->is_string() && *m != "host-passthrough" && *m != "host-model")
    d(sp + ".domain.cpu.model",
      "QEMU refuses a named CPU model for a TD (target/i386/kvm/tdx.c, tdx_cpu_instance_init: "
      "\"Named cpu model is not supported for TDX yet!\", QEMU 10.1), and " +
          m->get<std::string>() + " is one; remove model (KubeVirt's default host-model) or use "
          "host-passthrough");
  if (const Json* m = Path(spec, {"domain", "machine", "type"});
      m && m->is_string() && !m->get<std::string>().empty() &&
      m->get<std::string>().find("q35") == std::string::npos)
    d(sp + ".domain.machine.type", "TDX trust domains need the q35 machine, not " +
                                       m->get<std::string>() + "; remove machine.type or use q35");
  for (const char* list : {"requests", "limits"}) {
    const Json* q = Path(spec, {"domain", "resources", list});
    const Json* v = q ? Get(*q, cs.key_resource) : nullptr;
    if (!v) continue;
    const std::string field = sp + ".domain.resources." + list + "[" + cs.key_resource + "]";
    if (up.key_resource)
      d(field, "KubeVirt " + kv.Text() + " requests " + kube::kUpstreamKeyResource +
                   " for every TD itself and the tdxvirt agent runs no key device plugin there; "
                   "remove it");
    else if (QuantityText(*v) != "1")
      d(field, "a trust domain uses exactly one TDX key; set it to \"1\" or remove it (the "
               "webhook adds it)");
  }
  if (const Json* e = Get(spec, "evictionStrategy"); e && *e == "LiveMigrate")
    d(sp + ".evictionStrategy", "TDX trust domains cannot be live-migrated (KubeVirt marks them "
                                "TDXNotLiveMigratable), so LiveMigrate would block node drains; "
                                "use None or LiveMigrateIfPossible");
  for (const char* dev : {"gpus", "hostDevices"})
    if (const Json* g = Path(spec, {"domain", "devices", dev}); g && g->is_array() && !g->empty())
      w(sp + ".domain.devices." + dev, "assigned host devices are outside the TD's trust "
                                       "boundary and see only shared memory");
  if (const Json* t = Path(spec, {"domain", "devices", "tpm"}); t && !t->is_null())
    w(sp + ".domain.devices.tpm", "the vTPM is emulated by the untrusted host; attest with the "
                                  "TD quote (MRTD, RTMRs) instead");
}

}  // namespace

bool SidecarNeeded(const TdxSettings& t, const kube::KubevirtVersion& kv,
                   const ClusterSettings& cs) {
  // Up to 1.8 upstream renders no QGS element (and up to 1.6 no TD at all).
  if (!kube::UpstreamTdxFor(kv).qgs) return true;
  const bool own_qgs = t.qgs_per_vm && t.qgs && t.qgs->kind == QgsAddress::Kind::kUnix &&
                       t.qgs->path != ClusterQgsPath(cs, kv);
  return t.mr_config_id || t.mr_owner || t.mr_owner_config || t.policy != kDefaultPolicy ||
         own_qgs;
}

namespace {

// What tdxvirt adds to a TDX VM for release `kv`: only what upstream lacks there (the table in
// docs/kubevirt.md, "Division of labour").
// With `settings_ok` false (an annotation that does not parse) only the spec is completed, so the
// validating webhook reports that annotation alone.
void Mutate(Json& obj, const Layout& l, const TdxRequest& req, const ClusterSettings& cs,
            const kube::KubevirtVersion& kv, bool settings_ok) {
  const kube::UpstreamTdx up = kube::UpstreamTdxFor(kv);
  Json& spec = l.vm ? Ensure(obj, {"spec", "template", "spec"}) : Ensure(obj, {"spec"});
  // One TDX key, requests and limits (extended resources need both); from 1.9 upstream's own.
  if (!up.key_resource) {
    for (const char* list : {"requests", "limits"}) {
      Json& q = Ensure(spec, {"domain", "resources", list});
      if (!q.contains(cs.key_resource)) q[cs.key_resource] = "1";
    }
  }
  // From 1.7 virt-controller adds kubevirt.io/tdx=true to the launcher pod itself.
  if (!up.node_selector) {
    Json& sel = Ensure(spec, {"nodeSelector"});
    if (!sel.contains(cs.node_label)) sel[cs.node_label] = cs.node_label_value;
  }
  Json& fw = Ensure(spec, {"domain", "firmware"});
  if (!fw.contains("bootloader") || fw["bootloader"].is_null())
    fw["bootloader"] = {{"efi", {{"secureBoot", false}}}};
  if (!spec.contains("evictionStrategy")) spec["evictionStrategy"] = "None";

  const TdxSettings& t = req.settings;
  if (!settings_ok || !SidecarNeeded(t, kv, cs)) return;
  // The hook reads these from the VMI (VM: the template's annotations become the VMI's). A value
  // the user wrote stays as written (the hook reads hex and base64 alike; no drift for GitOps);
  // the defaults are written because the sidecar does not see the cluster settings.
  Json& ann = l.vm ? Ensure(obj, {"spec", "template", "metadata", "annotations"})
                   : Ensure(obj, {"metadata", "annotations"});
  auto add = [&](const char* key, const std::string& value) {
    if (!ann.contains(key)) ann[key] = value;
  };
  if (t.qgs) add(kAnnotationQgs, t.qgs->text);
  add(kAnnotationPolicy, PolicyText(t.policy));

  if (!cs.sidecar_image.empty()) {
    Json list = Json::array();
    if (ann.contains(kHookSidecarsAnnotation) && ann[kHookSidecarsAnnotation].is_string()) {
      list = Json::parse(ann[kHookSidecarsAnnotation].get<std::string>(), nullptr, false);
      if (!list.is_array()) return;  // validation reports it
    }
    for (const Json& s : list)
      if (StringField(s, "image") == cs.sidecar_image) return;
    // The sidecar gets no ConfigMap: the release and non-default TDVF paths are its arguments.
    // The release whose behaviour applies (a newer one acts as 1.9): what the hook accepts.
    const kube::KubevirtVersion profile{.major = 1, .minor = kv.profile_minor()};
    Json args = {"--version", cs.hook_version, "--kubevirt-version", profile.Text()};
    if (!up.renders_domain && cs.tdvf != kDefaultTdvf) args.insert(args.end(), {"--tdvf", cs.tdvf});
    list.push_back({{"image", cs.sidecar_image}, {"imagePullPolicy", "IfNotPresent"}, {"args", args}});
    ann[kHookSidecarsAnnotation] = list.dump();
  }
}

Json ResponseFor(const ReviewResult& r, const std::string& uid) {
  Json resp = {{"uid", uid}, {"allowed", r.allowed}};
  if (!r.allowed) {
    std::string msg;
    for (const std::string& d : r.denials) msg += (msg.empty() ? "" : "\n") + d;
    resp["status"] = {{"code", 403}, {"reason", "Forbidden"}, {"message", msg}};
  } else if (!r.patch.empty()) {
    resp["patchType"] = "JSONPatch";
    resp["patch"] = Base64Encode(AsBytes(r.patch.dump()));
  }
  if (!r.warnings.empty()) resp["warnings"] = r.warnings;
  return {{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"response", resp}};
}

}  // namespace

Result<ReviewKind> ParseReviewKind(std::string_view text) {
  if (text == "validate") return ReviewKind::kValidate;
  if (text == "mutate") return ReviewKind::kMutate;
  if (text == "both") return ReviewKind::kBoth;
  return Error{"review kind \"" + std::string(text) + "\": use validate, mutate or both"};
}

ReviewResult ReviewObject(const Json& object, const ClusterSettings& cs, ReviewKind kind,
                          const std::string& uid, const std::string& operation) {
  ReviewResult r;
  r.mutated = object;
  std::string k = StringField(object, "kind");
  Layout l;
  if (k == "VirtualMachine") {
    l = {true, "spec.template.spec", "spec.template.metadata.annotations"};
  } else if (k == "VirtualMachineInstance") {
    l = {false, "spec", "metadata.annotations"};
  } else {
    r.warnings.push_back("kind " + (k.empty() ? std::string("(none)") : k) +
                         " is not a VirtualMachine or VirtualMachineInstance; nothing to check");
    r.response = ResponseFor(r, uid);
    return r;
  }
  // A VMI's spec is fixed once created: KubeVirt refuses any later spec change by others
  // ("update of VMI object is restricted"), and virt-handler's status updates must pass.
  if (!l.vm && operation == "UPDATE") {
    r.response = ResponseFor(r, uid);
    return r;
  }
  auto extract = [&](const Json& obj) {
    const Json* spec = l.vm ? Path(obj, {"spec", "template", "spec"}) : Path(obj, {"spec"});
    const Json* ann = l.vm ? Path(obj, {"spec", "template", "metadata", "annotations"})
                           : Path(obj, {"metadata", "annotations"});
    static const Json kEmpty = Json::object();
    return std::pair{spec ? spec : &kEmpty, ann ? ann : &kEmpty};
  };

  auto kv = EffectiveKubevirtVersion(cs);
  auto [spec0, ann0] = extract(object);
  // Without a version the request is still read (with the newest rules) to tell TDX from not.
  TdxRequest req = ExtractTdx(*spec0, *ann0, l.spec_path, l.annotations_path, cs,
                              kv.ok() ? *kv : kube::KubevirtVersion{});
  r.is_tdx = req.requested;
  if (kv.ok()) r.kubevirt_version = kv->Text();
  if (!req.requested) {
    for (const Finding& f : req.denials) r.denials.push_back(f.Text());
    r.allowed = r.denials.empty() || kind == ReviewKind::kMutate;
    r.response = ResponseFor(r, uid);
    return r;
  }
  if (!kv.ok()) {  // a TD's division of labour depends on the release: fail closed
    r.denials.push_back(l.spec_path + ".domain.launchSecurity.tdx: " + kv.error());
    r.allowed = kind == ReviewKind::kMutate;
    r.response = ResponseFor(r, uid);
    return r;
  }
  if (kind != ReviewKind::kValidate) {
    Mutate(r.mutated, l, req, cs, *kv, req.denials.empty());
    r.patch = Json::diff(object, r.mutated);
  }
  std::vector<Finding> deny, warn;
  if (kind == ReviewKind::kMutate) {
    warn = req.warnings;
  } else {
    auto [spec, ann] = extract(r.mutated);
    TdxRequest again = ExtractTdx(*spec, *ann, l.spec_path, l.annotations_path, cs, *kv);
    deny = again.denials;
    warn = req.warnings;
    for (const Finding& f : again.warnings) {
      bool seen = false;
      for (const Finding& g : warn) seen = seen || g.Text() == f.Text();
      if (!seen) warn.push_back(f);
    }
    ValidateSpec(*spec, l, again, cs, *kv, deny, warn);
    if (const Json* h = Get(*ann, kHookSidecarsAnnotation)) {
      Json parsed = h->is_string() ? Json::parse(h->get<std::string>(), nullptr, false) : Json();
      if (!parsed.is_array())
        deny.push_back({l.annotations_path + "[" + kHookSidecarsAnnotation + "]",
                        "is not a JSON array of sidecars; fix its JSON"});
    }
    req.settings = again.settings;
  }
  r.tdx = req.settings;
  r.sidecar = SidecarNeeded(req.settings, *kv, cs);
  for (const Finding& f : deny) r.denials.push_back(f.Text());
  for (const Finding& f : warn) r.warnings.push_back(f.Text());
  r.allowed = r.denials.empty();
  if (!r.allowed) r.mutated = object;
  r.response = ResponseFor(r, uid);
  return r;
}

Result<ReviewResult> PruneAndReview(const Json& object, const ClusterSettings& cs, ReviewKind kind,
                                    const std::string& uid, const std::string& operation) {
  std::vector<std::string> pruned;
  Json kept = object;
  if (auto kv = EffectiveKubevirtVersion(cs); kv.ok()) {
    auto p = PruneForKubevirt(object, *kv, &pruned);
    if (!p.ok()) return Error{p.error()};
    kept = std::move(*p);
  }
  ReviewResult r = ReviewObject(kept, cs, kind, uid, operation);
  for (const std::string& path : pruned)
    r.warnings.push_back(path + ": KubeVirt " + r.kubevirt_version + "'s schema has no such "
                         "field; the API server drops it before any webhook sees it (kubectl's "
                         "strict validation refuses the object)");
  r.pruned = std::move(pruned);
  return r;
}

Result<ReviewResult> Review(std::string_view text, const ClusterSettings& cs, ReviewKind kind) {
  auto doc = ParseDocument(text, "manifest");
  if (!doc.ok()) return Error{doc.error()};
  if (!doc->is_object()) return Error{"manifest: expected a mapping with apiVersion and kind"};
  if (StringField(*doc, "kind") != "AdmissionReview")
    return PruneAndReview(*doc, cs, kind, "", "CREATE");
  if (StringField(*doc, "apiVersion") != "admission.k8s.io/v1")
    return Error{"AdmissionReview: apiVersion must be admission.k8s.io/v1, got \"" +
                 (*doc)["apiVersion"].dump() + "\""};
  const Json* req = Get(*doc, "request");
  if (!req || !req->is_object()) return Error{"AdmissionReview: request is missing"};
  const Json* uid = Get(*req, "uid");
  if (!uid || !uid->is_string() || uid->get<std::string>().empty())
    return Error{"AdmissionReview: request.uid must be a non-empty string"};
  const Json* obj = Get(*req, "object");
  std::string op = StringField(*req, "operation");
  if (op == "DELETE" || op == "CONNECT" || !obj || obj->is_null()) {
    ReviewResult r;
    r.response = ResponseFor(r, uid->get<std::string>());
    return r;
  }
  if (!obj->is_object()) return Error{"AdmissionReview: request.object must be an object"};
  return PruneAndReview(*obj, cs, kind, uid->get<std::string>(), op);
}

}  // namespace tdxvirt::kubevirt
