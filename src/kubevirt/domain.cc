#include "kubevirt/domain.h"

#include "kubevirt/admission.h"
#include "kubevirt/prune.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <pugixml.hpp>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

namespace tdxvirt::kubevirt {

namespace {

pugi::xml_node Child(pugi::xml_node parent, const char* name) {
  pugi::xml_node n = parent.child(name);
  return n ? n : parent.append_child(name);
}

void SetAttr(pugi::xml_node n, const char* name, const std::string& value) {
  pugi::xml_attribute a = n.attribute(name);
  if (!a) a = n.append_attribute(name);
  a.set_value(value.c_str());
}

std::string Save(const pugi::xml_document& doc) {
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration, pugi::encoding_utf8);
  return out.str();
}


// <launchSecurity type='tdx'> children upstream does not write: policy, MR values (KubeVirt's
// DomainSpec drops these three on re-parse; the raw XML libvirt defines keeps them) and the QGS.
void AddLaunchSecurityChildren(pugi::xml_node ls, const TdxSettings& t) {
  if (!ls.child("policy")) ls.append_child("policy").text().set(PolicyText(t.policy).c_str());
  auto mr = [&](const char* name, const std::optional<ByteArray<48>>& v) {
    if (v && !ls.child(name)) ls.append_child(name).text().set(Base64Encode(*v).c_str());
  };
  mr("mrConfigId", t.mr_config_id);
  mr("mrOwner", t.mr_owner);
  mr("mrOwnerConfig", t.mr_owner_config);
  if (!t.qgs || t.qgs->kind != QgsAddress::Kind::kUnix) return;
  pugi::xml_node q = ls.child("quoteGenerationService");
  if (!q) SetAttr(ls.append_child("quoteGenerationService"), "path", t.qgs->path);
  else if (t.qgs_per_vm) SetAttr(q, "path", t.qgs->path);  // the VM's own socket over upstream's
}

// The whole TD, for a release that renders none of it (1.6).
void ApplyFullTd(pugi::xml_node dom, const TdxSettings& t) {
  SetAttr(dom, "type", "kvm");  // a TD needs KVM; TCG cannot emulate TDX

  pugi::xml_node os = Child(dom, "os");
  pugi::xml_node type = os.child("type");
  if (!type) {
    type = os.prepend_child("type");
    type.text().set("hvm");
  }
  SetAttr(type, "arch", "x86_64");
  if (!type.attribute("machine")) SetAttr(type, "machine", "q35");
  os.remove_attribute("firmware");  // autoselection would pick pflash firmware
  while (os.child("firmware")) os.remove_child("firmware");
  while (os.child("nvram")) os.remove_child("nvram");  // TDVF is stateless
  pugi::xml_node loader = os.child("loader");
  if (!loader || std::string(loader.attribute("type").value()) != "rom") {
    if (loader) os.remove_child(loader);
    loader = os.insert_child_after("loader", type);
    loader.text().set(t.firmware.c_str());
  }
  // TDVF is loaded with -bios (no read-only memslots in a TD); secure='yes' would imply SMM.
  SetAttr(loader, "readonly", "yes");
  SetAttr(loader, "secure", "no");
  SetAttr(loader, "type", "rom");

  pugi::xml_node features = Child(dom, "features");
  // SMM off by leaving it out: KubeVirt's DomainSpec reads any <smm> (state too) as SMM on.
  while (pugi::xml_node smm = features.child("smm")) features.remove_child(smm);
  SetAttr(Child(features, "pmu"), "state", "off");
  // Split irqchip. DomainSpec has no ioapic and drops it on re-parse, which does no harm: QEMU
  // makes a TD's irqchip split by itself.
  SetAttr(Child(features, "ioapic"), "driver", "qemu");

  pugi::xml_node cpu = Child(dom, "cpu");
  SetAttr(cpu, "mode", "host-passthrough");  // QEMU refuses named CPU models for TDs
  cpu.remove_attribute("match");
  while (cpu.child("model")) cpu.remove_child("model");
  while (cpu.child("vendor")) cpu.remove_child("vendor");

  pugi::xml_node clock = dom.child("clock");
  if (!clock) {
    clock = dom.append_child("clock");
    SetAttr(clock, "offset", "utc");
  }
  pugi::xml_node hpet = clock.find_child_by_attribute("timer", "name", "hpet");
  if (!hpet) {
    hpet = clock.append_child("timer");
    SetAttr(hpet, "name", "hpet");
  }
  SetAttr(hpet, "present", "no");

  pugi::xml_node devices = Child(dom, "devices");
  if (t.vsock && !devices.child("vsock")) {
    pugi::xml_node v = devices.append_child("vsock");
    SetAttr(v, "model", "virtio-non-transitional");
    SetAttr(v.append_child("cid"), "auto", "yes");
  }

  pugi::xml_node ls = dom.child("launchSecurity");
  if (!ls) {
    ls = dom.append_child("launchSecurity");
    SetAttr(ls, "type", "tdx");
  }
  AddLaunchSecurityChildren(ls, t);
}

}  // namespace

Result<std::string> ApplyTdx(std::string_view xml, const TdxSettings& t, HookScope scope) {
  if (xml.size() > kMaxDomainXmlBytes)
    return Error{"domain XML: " + std::to_string(xml.size()) + " bytes, over the limit of " +
                 std::to_string(kMaxDomainXmlBytes)};
  pugi::xml_document doc;
  pugi::xml_parse_result res =
      doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!res)
    return Error{std::string("domain XML: ") + res.description() + " at byte " +
                 std::to_string(res.offset)};
  pugi::xml_node dom = doc.document_element();
  if (std::string(dom.name()) != "domain")
    return Error{"domain XML: the root element is <" + std::string(dom.name()) + ">, not <domain>"};
  if (pugi::xml_node ls = dom.child("launchSecurity")) {
    std::string type = ls.attribute("type").value();
    if (type != "tdx")
      return Error{"domain XML: it already has <launchSecurity type='" + type +
                   "'>; a domain has one launchSecurity type"};
  }
  if (pugi::xml_node type = dom.child("os").child("type")) {
    std::string arch = type.attribute("arch").value();
    std::string machine = type.attribute("machine").value();
    if (!arch.empty() && arch != "x86_64")
      return Error{"domain XML: os/type arch is " + arch + "; TDX needs x86_64"};
    if (!machine.empty() && machine.find("q35") == std::string::npos)
      return Error{"domain XML: os/type machine is " + machine + "; TDX needs q35"};
  }
  if (scope == HookScope::kLaunchSecurity) {
    pugi::xml_node ls = dom.child("launchSecurity");
    if (!ls)
      return Error{"domain XML: KubeVirt rendered no <launchSecurity type='tdx'>, which it does "
                   "for a VMI with spec.domain.launchSecurity.tdx from 1.7; check the VMI and "
                   "the kubevirtVersion setting"};
    AddLaunchSecurityChildren(ls, t);
    return Save(doc);
  }
  if (t.firmware.empty() || t.firmware[0] != '/')
    return Error{"TDVF firmware path \"" + t.firmware + "\" is not absolute"};
  ApplyFullTd(dom, t);
  return Save(doc);
}

HookScope HookScopeFor(const kube::KubevirtVersion& kv) {
  return kube::UpstreamTdxFor(kv).renders_domain ? HookScope::kLaunchSecurity : HookScope::kFull;
}

namespace {

// KubeVirt's own TDVF (1.7+): its folder moved to edk2/ovmf in 1.9.
std::string UpstreamTdvf(const kube::UpstreamTdx& up, bool secure_boot) {
  return std::string(up.qgs ? "/usr/share/edk2/ovmf/" : "/usr/share/OVMF/") +
         (secure_boot ? "OVMF.inteltdx.secboot.fd" : "OVMF.inteltdx.fd");
}

}  // namespace

std::string TdvfPath(const ClusterSettings& cs, const kube::KubevirtVersion& kv, bool secure_boot) {
  const kube::UpstreamTdx up = kube::UpstreamTdxFor(kv);
  if (!up.renders_domain) return secure_boot ? cs.tdvf_secure_boot : cs.tdvf;
  return UpstreamTdvf(up, secure_boot);
}

namespace {

void UpstreamTdxTo(pugi::xml_node dom, const kube::KubevirtVersion& kv, bool secure_boot,
                   const std::string& qgs_path) {
  const kube::UpstreamTdx up = kube::UpstreamTdxFor(kv);
  if (!up.renders_domain) return;
  pugi::xml_node os = Child(dom, "os");
  while (os.child("nvram")) os.remove_child("nvram");
  while (os.child("loader")) os.remove_child("loader");
  pugi::xml_node loader = os.child("type") ? os.insert_child_after("loader", os.child("type"))
                                           : os.append_child("loader");
  loader.text().set(UpstreamTdvf(up, secure_boot).c_str());
  SetAttr(loader, "readonly", "yes");
  // 1.7/1.8: secure follows secureBoot; 1.9 always writes "no" for TDX.
  SetAttr(loader, "secure", secure_boot && !up.secure_boot ? "yes" : "no");
  SetAttr(loader, "type", "rom");
  SetAttr(Child(Child(dom, "features"), "pmu"), "state", "off");
  pugi::xml_node ls = dom.child("launchSecurity");
  if (!ls) ls = dom.append_child("launchSecurity");
  SetAttr(ls, "type", "tdx");
  if (up.qgs && !ls.child("quoteGenerationService"))
    SetAttr(ls.append_child("quoteGenerationService"), "path", qgs_path);
}

}  // namespace

Result<std::string> ApplyUpstreamTdx(std::string_view xml, const kube::KubevirtVersion& kv,
                                     bool secure_boot, const std::string& qgs_path) {
  if (xml.size() > kMaxDomainXmlBytes) return Error{"domain XML: over the size limit"};
  pugi::xml_document doc;
  pugi::xml_parse_result res =
      doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!res) return Error{std::string("domain XML: ") + res.description()};
  if (std::string(doc.document_element().name()) != "domain")
    return Error{"domain XML: the root element is not <domain>"};
  UpstreamTdxTo(doc.document_element(), kv, secure_boot, qgs_path);
  return Save(doc);
}

Result<uint64_t> ParseQuantity(std::string_view text) {
  static const std::pair<const char*, double> kSuffixes[] = {
      {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
      {"k", 1e3},     {"M", 1e6},        {"G", 1e9},           {"T", 1e12}, {"", 1.0}};
  std::string s(text);
  for (auto [suffix, mult] : kSuffixes) {
    std::string suf = suffix;
    if (s.size() <= suf.size() || !s.ends_with(suf)) continue;
    std::string num = s.substr(0, s.size() - suf.size());
    if (num.find_first_not_of("0123456789.") != std::string::npos || num.front() == '.' ||
        std::count(num.begin(), num.end(), '.') > 1 || num.size() > 20)
      continue;
    double v = std::stod(num) * mult;
    if (!std::isfinite(v) || v > 1.8e19) break;
    return uint64_t(std::ceil(v));
  }
  return Error{"\"" + s + "\" is not a quantity such as 1Gi, 512Mi or 1024M"};
}

namespace {

std::string Str(const Json* v, const std::string& fallback = "") {
  return v && v->is_string() ? v->get<std::string>() : fallback;
}

bool Bool(const Json* v, bool fallback) { return v && v->is_boolean() ? v->get<bool>() : fallback; }

// A positive JSON integer (YAML gives signed ones) up to `max`, else `fallback`.
uint64_t Count(const Json* v, uint64_t fallback, uint64_t max = 1024) {
  if (!v || !v->is_number_integer()) return fallback;
  int64_t n = v->get<int64_t>();
  return n > 0 && uint64_t(n) <= max ? uint64_t(n) : fallback;
}

std::string DevName(const std::string& prefix, size_t index) {
  std::string suffix;
  size_t i = index;
  do {
    suffix.insert(suffix.begin(), char('a' + i % 26));
    i = i / 26;
  } while (i-- > 0);
  return prefix + suffix;
}

const char* OnOff(bool b) { return b ? "on" : "off"; }

std::string LibvirtModel(const std::string& kubevirt_model) {
  return kubevirt_model.empty() || kubevirt_model == "virtio" ? "virtio-non-transitional"
                                                              : kubevirt_model;
}

const Json* FindResource(const RenderOptions& o, const std::vector<std::string>& kinds,
                         const std::string& name) {
  for (const Json& r : o.resources) {
    std::string k = StringField(r, "kind");
    if (Str(Path(r, {"metadata", "name"})) != name) continue;
    for (const std::string& want : kinds)
      if (k == want) return &r;
  }
  return nullptr;
}

struct Render {
  const RenderOptions& opts;
  std::vector<std::string>& warnings;
  std::string sp;  // spec path for messages

  void Disk(pugi::xml_node devices, const Json& disk, const Json* volume, std::string bus_default,
            std::map<std::string, size_t>& used, const std::string& ns, const std::string& vm) {
    std::string name = Str(Get(disk, "name"));
    std::string device = "disk", bus = bus_default;
    if (const Json* c = Get(disk, "cdrom")) {
      device = "cdrom";
      bus = Str(Get(*c, "bus"), "sata");
    } else if (const Json* l = Get(disk, "lun")) {
      device = "lun";
      bus = Str(Get(*l, "bus"), "scsi");
    } else if (const Json* d = Get(disk, "disk")) {
      bus = Str(Get(*d, "bus"), bus_default);
    }
    std::string file, format = "raw", type = "file";
    if (!volume) {
      file = "/var/run/kubevirt-private/vmi-disks/" + name + "/disk.img";
    } else if (Get(*volume, "containerDisk") || Get(*volume, "ephemeral")) {
      file = "/var/run/kubevirt-ephemeral-disks/disk-data/" + name + "/disk.qcow2";
      format = "qcow2";
    } else if (Get(*volume, "cloudInitNoCloud")) {
      file = "/var/run/kubevirt-ephemeral-disks/cloud-init-data/" + ns + "/" + vm + "/noCloud.iso";
    } else if (Get(*volume, "cloudInitConfigDrive")) {
      file = "/var/run/kubevirt-ephemeral-disks/cloud-init-data/" + ns + "/" + vm +
             "/configdrive.iso";
    } else if (Get(*volume, "emptyDisk")) {
      file = "/var/run/libvirt/empty-disks/" + name + ".qcow2";
      format = "qcow2";
    } else if (const Json* h = Get(*volume, "hostDisk")) {
      file = Str(Get(*h, "path"), "/var/run/kubevirt-private/vmi-disks/" + name + "/disk.img");
    } else if (Get(*volume, "configMap")) {
      file = "/var/run/kubevirt-private/config-map-disks/" + name + ".iso";
    } else if (Get(*volume, "secret")) {
      file = "/var/run/kubevirt-private/secret-disks/" + name + ".iso";
    } else if (Get(*volume, "serviceAccount")) {
      file = "/var/run/kubevirt-private/service-account-disk/service-account.iso";
    } else if (Get(*volume, "sysprep")) {
      file = "/var/run/kubevirt-private/sysprep-disks/" + name + ".iso";
    } else if (Get(*volume, "downwardAPI")) {
      file = "/var/run/kubevirt-private/downwardapi-disks/" + name + ".iso";
    } else {  // persistentVolumeClaim, dataVolume: filesystem mode
      file = "/var/run/kubevirt-private/vmi-disks/" + name + "/disk.img";
    }
    pugi::xml_node d = devices.append_child("disk");
    SetAttr(d, "device", device);
    SetAttr(d, "type", type);
    if (bus == "virtio") SetAttr(d, "model", "virtio-non-transitional");
    pugi::xml_node drv = d.append_child("driver");
    SetAttr(drv, "name", "qemu");
    SetAttr(drv, "type", format);
    SetAttr(drv, "error_policy", "stop");
    if (device != "cdrom") SetAttr(drv, "discard", "unmap");
    SetAttr(d.append_child("source"), "file", file);
    pugi::xml_node target = d.append_child("target");
    std::string prefix = bus == "virtio" ? "vd" : "sd";
    SetAttr(target, "bus", bus);
    SetAttr(target, "dev", DevName(prefix, used[prefix]++));
    if (device == "cdrom") d.append_child("readonly");
    if (const Json* s = Get(disk, "serial"); s && s->is_string())
      d.append_child("serial").text().set(s->get<std::string>().c_str());
    if (uint64_t order = Count(Get(disk, "bootOrder"), 0, 65535))
      SetAttr(d.append_child("boot"), "order", std::to_string(order));
    SetAttr(d.append_child("alias"), "name", "ua-" + name);
  }
};

}  // namespace

Result<RenderResult> RenderDomain(const Json& manifest, const ClusterSettings& cs,
                                  const RenderOptions& opts) {
  RenderResult out;
  auto kv = EffectiveKubevirtVersion(cs);
  if (!kv.ok()) return Error{"render: " + kv.error()};
  // As in a cluster: the object the API server keeps, completed by the mutating webhook.
  // The gate is the administrator's business; every other denial means no TD would start.
  ClusterSettings gate_on = cs;
  gate_on.feature_gate = true;
  auto reviewed = PruneAndReview(manifest, gate_on, ReviewKind::kBoth);
  if (!reviewed.ok()) return Error{"render: " + reviewed.error()};
  const ReviewResult& admitted = *reviewed;
  if (!admitted.allowed) {
    std::string why;
    for (const std::string& d : admitted.denials) why += (why.empty() ? "" : "; ") + d;
    return Error{"render: admission would deny it: " + why};
  }
  for (const std::string& p : admitted.pruned)
    out.warnings.push_back(p + ": not in KubeVirt " + kv->Text() + "'s schema; left out, as the "
                           "API server would");
  const Json& m = admitted.mutated;
  std::string kind = StringField(m, "kind");
  const Json* spec = nullptr;
  std::string sp;
  const Json* annotations = nullptr;
  if (kind == "VirtualMachine") {
    spec = Path(m, {"spec", "template", "spec"});
    annotations = Path(m, {"spec", "template", "metadata", "annotations"});
    sp = "spec.template.spec";
  } else if (kind == "VirtualMachineInstance") {
    spec = Path(m, {"spec"});
    annotations = Path(m, {"metadata", "annotations"});
    sp = "spec";
  } else {
    return Error{"render: kind \"" + kind + "\" is not VirtualMachine or VirtualMachineInstance"};
  }
  if (!spec || !spec->is_object()) return Error{"render: " + sp + " is missing"};
  static const Json kEmpty = Json::object();
  const Json& domain = Get(*spec, "domain") ? *Get(*spec, "domain") : kEmpty;
  std::string name = Str(Path(m, {"metadata", "name"}), "");
  if (name.empty()) return Error{"render: metadata.name is missing"};
  std::string ns = Str(Path(m, {"metadata", "namespace"}), "default");

  // Instancetype and preference (given with RenderOptions::resources).
  uint64_t it_cpus = 0, it_mem = 0;
  std::string pref_disk_bus = "virtio", pref_nic_model, pref_topology = "sockets";
  if (kind == "VirtualMachine") {
    if (const Json* it = Path(m, {"spec", "instancetype"})) {
      std::string itn = Str(Get(*it, "name"));
      std::string itk = Str(Get(*it, "kind"), "VirtualMachineClusterInstancetype");
      const Json* r = FindResource(opts, {itk}, itn);
      if (!r)
        return Error{"render: spec.instancetype: " + itk + " " + itn +
                     " is not given; pass its manifest (render --with FILE)"};
      it_cpus = Count(Path(*r, {"spec", "cpu", "guest"}), 0);
      if (const Json* mem = Path(*r, {"spec", "memory", "guest"})) {
        auto q = ParseQuantity(mem->is_string() ? mem->get<std::string>() : mem->dump());
        if (!q.ok()) return Error{"render: instancetype " + itn + " memory.guest: " + q.error()};
        it_mem = *q;
      }
    }
    if (const Json* pf = Path(m, {"spec", "preference"})) {
      std::string pn = Str(Get(*pf, "name"));
      std::string pk = Str(Get(*pf, "kind"), "VirtualMachineClusterPreference");
      const Json* r = FindResource(opts, {pk}, pn);
      if (!r)
        return Error{"render: spec.preference: " + pk + " " + pn +
                     " is not given; pass its manifest (render --with FILE)"};
      pref_disk_bus = Str(Path(*r, {"spec", "devices", "preferredDiskBus"}), "virtio");
      pref_nic_model = Str(Path(*r, {"spec", "devices", "preferredInterfaceModel"}));
      pref_topology = Str(Path(*r, {"spec", "cpu", "preferredCPUTopology"}), "sockets");
      out.warnings.push_back("preference " + pn +
                             ": only the disk bus, interface model and CPU topology are applied "
                             "offline");
    }
  }

  pugi::xml_document doc;
  pugi::xml_node dom = doc.append_child("domain");
  SetAttr(dom, "type", "kvm");
  dom.append_child("name").text().set((ns + "_" + name).c_str());
  if (const Json* u = Path(domain, {"firmware", "uuid"}); u && u->is_string())
    dom.append_child("uuid").text().set(u->get<std::string>().c_str());

  // Memory: memory.guest, else resources.requests.memory, else the instancetype's.
  uint64_t mem = it_mem;
  for (const Json* q : {Path(domain, {"memory", "guest"}),
                        Path(domain, {"resources", "requests", "memory"}),
                        Path(domain, {"resources", "limits", "memory"})}) {
    if (!q || mem) continue;
    auto v = ParseQuantity(q->is_string() ? q->get<std::string>() : q->dump());
    if (!v.ok()) return Error{"render: " + sp + ".domain.memory.guest: " + v.error()};
    mem = *v;
  }
  if (!mem) return Error{"render: " + sp + ".domain.memory.guest is not set; set it (e.g. 1Gi)"};
  pugi::xml_node memory = dom.append_child("memory");
  SetAttr(memory, "unit", "b");
  memory.text().set(std::to_string(mem).c_str());

  // CPU topology.
  const Json* cpuj = Get(domain, "cpu");
  uint64_t sockets = 1, cores = 1, threads = 1;
  if (it_cpus) {
    (pref_topology == "cores" ? cores : pref_topology == "threads" ? threads : sockets) = it_cpus;
  }
  if (cpuj) {
    sockets = Count(Get(*cpuj, "sockets"), sockets);
    cores = Count(Get(*cpuj, "cores"), cores);
    threads = Count(Get(*cpuj, "threads"), threads);
    if (Bool(Get(*cpuj, "dedicatedCpuPlacement"), false))
      out.warnings.push_back(sp + ".domain.cpu.dedicatedCpuPlacement: CPU pinning is chosen on "
                                  "the node and is not rendered");
  }
  pugi::xml_node vcpu = dom.append_child("vcpu");
  SetAttr(vcpu, "placement", "static");
  vcpu.text().set(std::to_string(sockets * cores * threads).c_str());

  // OS and firmware.
  pugi::xml_node os = dom.append_child("os");
  pugi::xml_node type = os.append_child("type");
  SetAttr(type, "arch", "x86_64");
  SetAttr(type, "machine", Str(Path(domain, {"machine", "type"}), "q35"));
  type.text().set("hvm");
  if (const Json* efi = Path(domain, {"firmware", "bootloader", "efi"})) {
    bool sb = Bool(Get(*efi, "secureBoot"), true);
    pugi::xml_node loader = os.append_child("loader");
    SetAttr(loader, "readonly", "yes");
    SetAttr(loader, "secure", sb ? "yes" : "no");
    SetAttr(loader, "type", "pflash");
    loader.text().set(sb ? "/usr/share/OVMF/OVMF_CODE.secboot.fd" : "/usr/share/OVMF/OVMF_CODE.fd");
    os.append_child("nvram").text().set(
        ("/var/run/kubevirt-private/libvirt/qemu/nvram/" + name + "_VARS.fd").c_str());
  }
  if (const Json* kb = Path(domain, {"firmware", "kernelBoot"})) {
    const std::string base = "/var/run/kubevirt-ephemeral-disks/kernel-boot/";
    const Json* c = Get(*kb, "container");
    if (c && Get(*c, "kernelPath")) os.append_child("kernel").text().set((base + "kernel").c_str());
    if (c && Get(*c, "initrdPath")) os.append_child("initrd").text().set((base + "initrd").c_str());
    if (const Json* a = Get(*kb, "kernelArgs"); a && a->is_string())
      os.append_child("cmdline").text().set(a->get<std::string>().c_str());
  }

  // Features.
  const Json& f = Get(domain, "features") ? *Get(domain, "features") : kEmpty;
  pugi::xml_node features = dom.append_child("features");
  auto enabled = [&](const char* key, bool dflt) {
    const Json* v = Get(f, key);
    if (!v) return dflt;
    return Bool(Get(*v, "enabled"), true);
  };
  if (enabled("acpi", true)) features.append_child("acpi");
  if (enabled("apic", true)) features.append_child("apic");
  if (const Json* hv = Get(f, "hyperv"); hv && hv->is_object()) {
    pugi::xml_node h = features.append_child("hyperv");
    SetAttr(h, "mode", "custom");
    static const std::pair<const char*, const char*> kHv[] = {
        {"relaxed", "relaxed"}, {"vapic", "vapic"},     {"spinlocks", "spinlocks"},
        {"vpindex", "vpindex"}, {"runtime", "runtime"}, {"synic", "synic"},
        {"synictimer", "stimer"}, {"reset", "reset"},   {"frequencies", "frequencies"},
        {"reenlightenment", "reenlightenment"}, {"tlbflush", "tlbflush"}, {"ipi", "ipi"},
        {"evmcs", "evmcs"}};
    for (auto [key, element] : kHv) {
      const Json* v = Get(*hv, key);
      if (!v) continue;
      pugi::xml_node e = h.append_child(element);
      bool on = Bool(Get(*v, "enabled"), true);
      SetAttr(e, "state", OnOff(on));
      if (std::string(key) == "spinlocks" && on)
        SetAttr(e, "retries", std::to_string(Count(Get(*v, "spinlocks"), 4096, 1u << 30)));
    }
    if (const Json* v = Get(*hv, "vendorid"); v && Get(*v, "vendorid")) {
      pugi::xml_node e = h.append_child("vendor_id");
      SetAttr(e, "state", "on");
      SetAttr(e, "value", Str(Get(*v, "vendorid")));
    }
  }
  if (const Json* k = Get(f, "kvm"); k && Bool(Get(*k, "hidden"), false))
    SetAttr(features.append_child("kvm").append_child("hidden"), "state", "on");
  if (const Json* p = Get(f, "pvspinlock"))
    SetAttr(features.append_child("pvspinlock"), "state", OnOff(Bool(Get(*p, "enabled"), true)));
  // KubeVirt writes <smm/> when SMM is on and nothing when it is off (never a state).
  if (Get(f, "smm") && enabled("smm", true)) features.append_child("smm");

  // CPU model.
  pugi::xml_node cpu = dom.append_child("cpu");
  std::string model = cpuj ? Str(Get(*cpuj, "model"), "host-model") : "host-model";
  if (model == "host-model" || model == "host-passthrough") {
    SetAttr(cpu, "mode", model);
  } else {
    SetAttr(cpu, "mode", "custom");
    SetAttr(cpu, "match", "exact");
    cpu.append_child("model").text().set(model.c_str());
  }
  pugi::xml_node topo = cpu.append_child("topology");
  SetAttr(topo, "sockets", std::to_string(sockets));
  SetAttr(topo, "cores", std::to_string(cores));
  SetAttr(topo, "threads", std::to_string(threads));

  // Clock and timers.
  pugi::xml_node clock = dom.append_child("clock");
  const Json* cl = Get(domain, "clock");
  if (const Json* tz = cl ? Get(*cl, "timezone") : nullptr; tz && tz->is_string()) {
    SetAttr(clock, "offset", "timezone");
    SetAttr(clock, "timezone", tz->get<std::string>());
  } else {
    SetAttr(clock, "offset", "utc");
  }
  if (const Json* timers = cl ? Get(*cl, "timer") : nullptr; timers && timers->is_object()) {
    static const std::pair<const char*, const char*> kTimers[] = {
        {"hpet", "hpet"}, {"pit", "pit"}, {"rtc", "rtc"}, {"kvm", "kvmclock"},
        {"hyperv", "hypervclock"}};
    for (auto [key, element] : kTimers) {
      const Json* v = Get(*timers, key);
      if (!v) continue;
      pugi::xml_node t = clock.append_child("timer");
      SetAttr(t, "name", element);
      std::string tp = Str(Get(*v, "tickPolicy"));
      if (!tp.empty() && std::string(key) != "kvm" && std::string(key) != "hyperv")
        SetAttr(t, "tickpolicy", tp);
      SetAttr(t, "present", Bool(Get(*v, "present"), true) ? "yes" : "no");
    }
  }

  // Devices.
  pugi::xml_node devices = dom.append_child("devices");
  const Json& dv = Get(domain, "devices") ? *Get(domain, "devices") : kEmpty;
  std::map<std::string, const Json*> volumes;
  if (const Json* vs = Get(*spec, "volumes"); vs && vs->is_array())
    for (const Json& v : *vs) volumes[Str(Get(v, "name"))] = &v;
  Render r{opts, out.warnings, sp};
  std::map<std::string, size_t> used;
  std::set<std::string> disked;
  bool scsi = false;
  if (const Json* disks = Get(dv, "disks"); disks && disks->is_array()) {
    for (const Json& d : *disks) {
      std::string dn = Str(Get(d, "name"));
      auto it = volumes.find(dn);
      if (it == volumes.end())
        return Error{"render: " + sp + ".domain.devices.disks: disk \"" + dn +
                     "\" has no volume of that name in " + sp + ".volumes"};
      disked.insert(dn);
      r.Disk(devices, d, it->second, pref_disk_bus, used, ns, name);
      scsi = scsi || devices.last_child().child("target").attribute("bus").value() ==
                         std::string("scsi");
    }
  }
  for (const auto& [vn, v] : volumes)  // KubeVirt gives every volume without a disk one
    if (!disked.count(vn)) r.Disk(devices, Json{{"name", vn}}, v, pref_disk_bus, used, ns, name);
  if (scsi) {
    pugi::xml_node c = devices.append_child("controller");
    SetAttr(c, "type", "scsi");
    SetAttr(c, "index", "0");
    SetAttr(c, "model", "virtio-non-transitional");
  }
  pugi::xml_node usb = devices.append_child("controller");
  SetAttr(usb, "type", "usb");
  SetAttr(usb, "index", "0");
  SetAttr(usb, "model", "none");

  Json ifaces = Get(dv, "interfaces") ? *Get(dv, "interfaces") : Json::array();
  if (ifaces.empty() && !Get(*spec, "networks") && Bool(Get(dv, "autoattachPodInterface"), true))
    ifaces.push_back({{"name", "default"}, {"masquerade", Json::object()}});
  size_t tap = 0;
  for (const Json& i : ifaces) {
    std::string in = Str(Get(i, "name"));
    if (Get(i, "sriov")) {
      out.warnings.push_back(sp + ".domain.devices.interfaces " + in +
                             ": SR-IOV VFs are chosen on the node and are not rendered");
      continue;
    }
    pugi::xml_node n = devices.append_child("interface");
    SetAttr(n, "type", "ethernet");
    if (const Json* mac = Get(i, "macAddress"); mac && mac->is_string())
      SetAttr(n.append_child("mac"), "address", mac->get<std::string>());
    pugi::xml_node t = n.append_child("target");
    SetAttr(t, "dev", "tap" + std::to_string(tap++));
    SetAttr(t, "managed", "no");
    SetAttr(n.append_child("model"), "type", LibvirtModel(Str(Get(i, "model"), pref_nic_model)));
    if (uint64_t order = Count(Get(i, "bootOrder"), 0, 65535))
      SetAttr(n.append_child("boot"), "order", std::to_string(order));
    SetAttr(n.append_child("alias"), "name", "ua-" + in);
    SetAttr(n.append_child("rom"), "enabled", "no");
  }
  for (const char* k : {"gpus", "hostDevices"})
    if (const Json* g = Get(dv, k); g && g->is_array() && !g->empty())
      out.warnings.push_back(sp + ".domain.devices." + k +
                             ": host devices are chosen on the node and are not rendered");

  pugi::xml_node channel = devices.append_child("channel");
  SetAttr(channel, "type", "unix");
  pugi::xml_node ct = channel.append_child("target");
  SetAttr(ct, "type", "virtio");
  SetAttr(ct, "name", "org.qemu.guest_agent.0");

  const std::string priv = "/var/run/kubevirt-private/" + opts.uid + "/";
  if (Bool(Get(dv, "autoattachSerialConsole"), true)) {
    pugi::xml_node serial = devices.append_child("serial");
    SetAttr(serial, "type", "unix");
    SetAttr(serial.append_child("target"), "port", "0");
    pugi::xml_node src = serial.append_child("source");
    SetAttr(src, "mode", "bind");
    SetAttr(src, "path", priv + "virt-serial0");
    pugi::xml_node console = devices.append_child("console");
    SetAttr(console, "type", "pty");
    pugi::xml_node t = console.append_child("target");
    SetAttr(t, "type", "serial");
    SetAttr(t, "port", "0");
  }
  if (Bool(Get(dv, "autoattachGraphicsDevice"), true)) {
    pugi::xml_node g = devices.append_child("graphics");
    SetAttr(g, "type", "vnc");
    pugi::xml_node l = g.append_child("listen");
    SetAttr(l, "type", "socket");
    SetAttr(l, "socket", priv + "virt-vnc");
    pugi::xml_node vm = devices.append_child("video").append_child("model");
    SetAttr(vm, "type", "vga");
    SetAttr(vm, "heads", "1");
    SetAttr(vm, "vram", "16384");
  }
  if (Get(dv, "rng")) {
    pugi::xml_node rng = devices.append_child("rng");
    SetAttr(rng, "model", "virtio-non-transitional");
    pugi::xml_node b = rng.append_child("backend");
    SetAttr(b, "model", "random");
    b.text().set("/dev/urandom");
  }
  if (const Json* tpm = Get(dv, "tpm"); tpm && !tpm->is_null()) {
    pugi::xml_node t = devices.append_child("tpm");
    SetAttr(t, "model", "tpm-crb");
    pugi::xml_node b = t.append_child("backend");
    SetAttr(b, "type", "emulator");
    SetAttr(b, "version", "2.0");
  }
  if (Bool(Get(dv, "autoattachVSOCK"), false)) {
    pugi::xml_node v = devices.append_child("vsock");
    SetAttr(v, "model", "virtio-non-transitional");
    SetAttr(v.append_child("cid"), "auto", "yes");  // virt-controller assigns the CID
  }
  pugi::xml_node balloon = devices.append_child("memballoon");
  if (Bool(Get(dv, "autoattachMemBalloon"), true)) {
    SetAttr(balloon, "model", "virtio-non-transitional");
    SetAttr(balloon.append_child("stats"), "period", "10");
  } else {
    SetAttr(balloon, "model", "none");
  }

  TdxRequest req = ExtractTdx(*spec, annotations ? *annotations : kEmpty, sp,
                              kind == "VirtualMachine" ? "spec.template.metadata.annotations"
                                                       : "metadata.annotations",
                              cs, *kv);
  if (!req.requested) {
    out.xml = Save(doc);
    return out;
  }
  for (const Finding& d : req.denials)
    if (d.value_error) return Error{"render: " + d.Text()};
  out.is_tdx = true;
  // Upstream's part (1.7+, for launchSecurity.tdx), then the hook's when the sidecar is attached.
  if (req.by_spec)
    UpstreamTdxTo(dom, *kv, req.settings.secure_boot, ClusterQgsPath(cs, *kv));
  std::string xml = Save(doc);
  out.sidecar = admitted.sidecar && !cs.sidecar_image.empty();
  if (out.sidecar) {
    auto td = ApplyTdx(xml, req.settings, HookScopeFor(*kv));
    if (!td.ok()) return Error{"render: " + td.error()};
    xml = std::move(*td);
  }
  out.xml = std::move(xml);
  return out;
}

SchemaCheck ValidateDomainXml(std::string_view xml, const std::string& schema_dir) {
  SchemaCheck c;
  std::string xmllint;
  for (const char* dir : {"/usr/bin/", "/usr/local/bin/", "/bin/"})
    if (access((std::string(dir) + "xmllint").c_str(), X_OK) == 0) {
      xmllint = std::string(dir) + "xmllint";
      break;
    }
  if (xmllint.empty()) {
    c.message = "skipped: xmllint not found (Debian package libxml2-utils)";
    return c;
  }
  std::string rng = schema_dir + "/domain.rng";
  if (access(rng.c_str(), R_OK) != 0) {
    c.message = "skipped: no libvirt schema at " + rng;
    return c;
  }
  char tmpl[] = "/tmp/tdxvirt-domain-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) {
    c.message = "skipped: cannot create a temporary file";
    return c;
  }
  {
    size_t off = 0;
    while (off < xml.size()) {
      ssize_t n = write(fd, xml.data() + off, xml.size() - off);
      if (n <= 0) break;
      off += size_t(n);
    }
    close(fd);
  }
  int pipefd[2];
  if (pipe(pipefd) != 0) {
    unlink(tmpl);
    c.message = "skipped: pipe failed";
    return c;
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    close(pipefd[1]);
    execl(xmllint.c_str(), "xmllint", "--noout", "--relaxng", rng.c_str(), tmpl,
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipefd[1]);
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0)
    if (output.size() < (64 << 10)) output.append(buf, size_t(n));
  close(pipefd[0]);
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  unlink(tmpl);
  c.ran = pid > 0;
  c.valid = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  // Name the input as "domain XML" rather than the temporary file.
  for (size_t p; (p = output.find(tmpl)) != std::string::npos;)
    output.replace(p, std::strlen(tmpl), "domain.xml");
  c.message = output;
  return c;
}

}  // namespace tdxvirt::kubevirt
