#include "kubevirt/tdx_spec.h"

#include <cctype>
#include <charconv>
#include <cstdio>

#include "common/hex.h"

namespace tdxvirt::kubevirt {

namespace {

const char kQgsForms[] = "use unix:/var/run/tdx-qgs/qgs.socket, vsock:2:4050 or HOST:PORT";

bool ParseU32(std::string_view s, uint32_t& out) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  if (v > 0xffffffffull) return false;
  out = uint32_t(v);
  return true;
}

bool ValidHost(std::string_view h) {
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    for (char c : h.substr(1, h.size() - 2))
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    return h.size() > 2;
  }
  if (h.empty() || h.size() > 253) return false;
  for (char c : h)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  return h.front() != '-' && h.front() != '.';
}

bool IsTrue(const Json* v) { return v && v->is_boolean() && v->get<bool>(); }

std::string Describe(const Json& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return "\"" + s + "\"";
}

}  // namespace

Result<QgsAddress> ParseQgs(std::string_view text) {
  QgsAddress a;
  if (text.empty()) return Error{std::string("empty address; ") + kQgsForms};
  if (text.starts_with("unix:")) {
    a.kind = QgsAddress::Kind::kUnix;
    a.path = std::string(text.substr(5));
    if (a.path.empty() || a.path[0] != '/')
      return Error{"unix socket path \"" + a.path + "\" is not absolute; use unix:/ABSOLUTE/PATH"};
    if (a.path.size() > 107)
      return Error{"unix socket path is " + std::to_string(a.path.size()) +
                   " bytes, over the 107-byte limit of a socket address"};
    for (char c : a.path)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        return Error{"unix socket path has a control character"};
    if (a.path.find("/../") != std::string::npos || a.path.ends_with("/.."))
      return Error{"unix socket path must not contain \"..\""};
    a.text = "unix:" + a.path;
    return a;
  }
  if (text.starts_with("vsock:")) {
    a.kind = QgsAddress::Kind::kVsock;
    std::string_view rest = text.substr(6);
    size_t colon = rest.find(':');
    if (colon == std::string_view::npos || !ParseU32(rest.substr(0, colon), a.cid) ||
        !ParseU32(rest.substr(colon + 1), a.port))
      return Error{"\"" + std::string(text) + "\" is not vsock:CID:PORT with decimal numbers"};
    if (a.cid < 1 || a.cid == 0xffffffffu)
      return Error{"vsock CID " + std::to_string(a.cid) + " is reserved; the host is CID 2"};
    if (a.port == 0xffffffffu) return Error{"vsock port 4294967295 is VMADDR_PORT_ANY"};
    a.text = "vsock:" + std::to_string(a.cid) + ":" + std::to_string(a.port);
    return a;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return Error{"\"" + std::string(text) + "\" is not a QEMU socket address; " + kQgsForms};
  std::string_view host = text.substr(0, colon);
  if (host.find(':') != std::string_view::npos && !(host.starts_with("[") && host.ends_with("]")))
    return Error{"IPv6 host \"" + std::string(host) + "\" must be bracketed: [ADDR]:PORT"};
  if (!ValidHost(host))
    return Error{"\"" + std::string(host) + "\" is not a host name or address; " + kQgsForms};
  if (!ParseU32(text.substr(colon + 1), a.port) || a.port == 0 || a.port > 65535)
    return Error{"port \"" + std::string(text.substr(colon + 1)) + "\" is not in 1..65535"};
  a.kind = QgsAddress::Kind::kTcp;
  a.host = std::string(host);
  a.text = a.host + ":" + std::to_string(a.port);
  return a;
}

Result<ByteArray<48>> ParseMeasurement(std::string_view text) {
  ByteArray<48> out;
  bool all_hex = !text.empty();
  for (char c : text)
    if (!std::isxdigit(static_cast<unsigned char>(c))) all_hex = false;
  if (all_hex && text.size() == 96) {
    auto b = FromHexFixed<48>(text, "value");
    if (!b.ok()) return Error{b.error()};
    return *b;
  }
  auto b = Base64Decode(text, "base64");
  if (all_hex && (!b.ok() || b->size() != 48))  // hex-looking text is most likely meant as hex
    return Error{"has " + std::to_string(text.size()) +
                 " hex digits; a SHA-384 value is 96 hex digits or 64 base64 characters"};
  if (!b.ok()) {
    if (all_hex)
      return Error{"has " + std::to_string(text.size()) +
                   " hex digits; a SHA-384 value is 96 hex digits or 64 base64 characters"};
    // "base64: not standard base64 (WHY)" -> WHY
    std::string why = b.error();
    if (auto open = why.find('('); open != std::string::npos && why.back() == ')')
      why = why.substr(open + 1, why.size() - open - 2);
    return Error{"is neither 96 hex digits nor base64 (" + why +
                 "); give the SHA-384 value as 96 hex digits or base64 of 48 bytes"};
  }
  if (b->size() != 48)
    return Error{"decodes to " + std::to_string(b->size()) +
                 " bytes; a SHA-384 value is 48 bytes (96 hex digits or 64 base64 characters)"};
  std::copy(b->begin(), b->end(), out.begin());
  return out;
}

Result<uint64_t> ParsePolicy(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    if (v.get<int64_t>() < 0) return Error{"must not be negative"};
    return uint64_t(v.get<int64_t>());
  }
  if (!v.is_string()) return Error{"must be a hex string such as \"0x10000000\""};
  std::string s = v.get<std::string>();
  if (!(s.starts_with("0x") || s.starts_with("0X")) || s.size() < 3 || s.size() > 18)
    return Error{"\"" + s + "\" is not hex such as 0x10000000"};
  uint64_t out = 0;
  auto [p, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), out, 16);
  if (ec != std::errc() || p != s.data() + s.size())
    return Error{"\"" + s + "\" is not hex such as 0x10000000"};
  return out;
}

std::string ClusterQgsPath(const ClusterSettings& cluster, const kube::KubevirtVersion& kv) {
  if (kube::UpstreamTdxFor(kv).qgs && cluster.observed_qgs_socket_path)
    return *cluster.observed_qgs_socket_path;
  return cluster.qgs_socket_path;
}

std::string PolicyText(uint64_t policy) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%08llx", static_cast<unsigned long long>(policy));
  return buf;
}

TdxRequest ExtractTdx(const Json& spec, const Json& annotations, const std::string& sp,
                      const std::string& ap, const ClusterSettings& cluster,
                      const kube::KubevirtVersion& kv) {
  TdxRequest r;
  const kube::UpstreamTdx up = kube::UpstreamTdxFor(kv);
  const std::string ls_path = sp + ".domain.launchSecurity";
  const std::string tdx_path = ls_path + ".tdx";
  const Json* ls = Path(spec, {"domain", "launchSecurity"});
  const Json* tdx = ls ? Get(*ls, "tdx") : nullptr;
  auto ann = [&](const char* key) -> const Json* {
    const Json* a = Get(annotations, key);
    return a && a->is_string() ? a : nullptr;  // non-strings are reported below
  };
  auto deny = [&](std::string field, std::string msg) {
    r.denials.push_back({std::move(field), std::move(msg)});
  };
  auto bad_value = [&](std::string field, std::string msg) {
    r.denials.push_back({std::move(field), std::move(msg), true});
  };
  auto warn = [&](std::string field, std::string msg) {
    r.warnings.push_back({std::move(field), std::move(msg)});
  };
  auto ann_field = [&](const char* key) { return ap + "[" + key + "]"; };

  bool by_annotation = false;
  if (const Json* e = Get(annotations, kAnnotationEnabled)) {
    if (*e == "true") by_annotation = true;
    else if (*e != "false")
      bad_value(ann_field(kAnnotationEnabled), "must be \"true\" or \"false\", got " + Describe(*e));
  }
  r.by_spec = tdx && !tdx->is_null();
  r.requested = r.by_spec || by_annotation;
  const std::string how = up.tdx_field ? ls_path + ".tdx: {}"
                                       : std::string("annotation ") + kAnnotationEnabled + ": \"true\"";

  // Our annotations on a VM that does not ask for TDX are a mistake the user should hear about.
  if (annotations.is_object()) {
    for (const auto& [k, v] : annotations.items()) {
      if (!k.starts_with(kAnnotationPrefix)) continue;
      if (k != kAnnotationEnabled && k != kAnnotationQgs && k != kAnnotationMrConfigId &&
          k != kAnnotationMrOwner && k != kAnnotationMrOwnerConfig && k != kAnnotationPolicy)
        bad_value(ann_field(k.c_str()),
             "unknown TDX annotation; known: enabled, qgs, mrconfigid, mrowner, mrownerconfig, "
             "policy (prefix " + std::string(kAnnotationPrefix) + ")");
      else if (!v.is_string())
        bad_value(ann_field(k.c_str()), "annotation values are strings; quote the value");
      else if (!r.requested && k != kAnnotationEnabled)
        deny(ann_field(k.c_str()), "TDX settings given but the VM does not ask for TDX; add " + how);
    }
  }
  if (!r.requested) return r;

  // From 1.7 upstream acts on launchSecurity.tdx alone (node selection, the TD domain); a VM that
  // asks only by annotation would get neither.
  if (up.tdx_field && !r.by_spec)
    deny(ann_field(kAnnotationEnabled),
         "KubeVirt " + kv.Text() + " asks for TDX with " + ls_path + ".tdx: {} (it then selects "
         "TDX nodes and renders the trust domain); the annotation is for KubeVirt 1.6, which has "
         "no tdx field; add tdx: {} and remove the annotation");

  // Keys under tdx: every known release prunes them before we see them; a newer one may keep its
  // own fields (VEP 340's initDataRef). They are KubeVirt's, never ours to refuse.
  if (tdx && tdx->is_object()) {
    for (const auto& [k, v] : tdx->items()) {
      if (k == "initDataRef") r.init_data_ref = true;
      else
        warn(tdx_path + "." + k, "not read by tdxvirt (a KubeVirt field); tdxvirt's settings are "
                                 "annotations with the prefix " + std::string(kAnnotationPrefix));
    }
  }

  TdxSettings& t = r.settings;
  const std::string cluster_qgs = ClusterQgsPath(cluster, kv);
  // QGS: unset means the cluster's socket (as upstream KubeVirt does for every TDX VMI).
  if (const Json* q = ann(kAnnotationQgs)) {
    const std::string where = ann_field(kAnnotationQgs);
    if (auto a = ParseQgs(q->get<std::string>()); !a.ok()) {
      bad_value(where, a.error());
    } else {
      t.qgs = *a;
      t.qgs_per_vm = true;
      // The launcher pod gets one QGS mount: the directory of the cluster's socket (the tdxvirt
      // agent's device plugin up to 1.8, KubeVirt's from 1.9).
      std::string dir = cluster_qgs.substr(0, cluster_qgs.rfind('/'));
      if (a->kind == QgsAddress::Kind::kUnix &&
          !(a->path.starts_with(dir + "/") && a->path.size() > dir.size() + 1))
        deny(where, "unix socket " + a->path + " is outside " + (dir.empty() ? "/" : dir) +
                        ", the only QGS directory a launcher pod gets (the directory of the "
                        "cluster's QGS socket " + cluster_qgs + ", mounted by " +
                        (up.qgs ? "KubeVirt's device plugin" : "the tdxvirt node agent") +
                        "); put the socket there or remove the annotation");
    }
  } else {
    t.qgs = QgsAddress{.kind = QgsAddress::Kind::kUnix, .path = cluster_qgs,
                       .text = "unix:" + cluster_qgs};
  }
  struct Mr {
    const char* annotation;
    std::optional<ByteArray<48>>* value;
  };
  const Mr mrs[] = {{kAnnotationMrConfigId, &t.mr_config_id},
                    {kAnnotationMrOwner, &t.mr_owner},
                    {kAnnotationMrOwnerConfig, &t.mr_owner_config}};
  for (const Mr& m : mrs) {
    const Json* v = ann(m.annotation);
    if (!v) continue;
    auto parsed = ParseMeasurement(v->get<std::string>());
    if (!parsed.ok()) bad_value(ann_field(m.annotation), parsed.error());
    else *m.value = *parsed;
  }
  if (r.init_data_ref && t.mr_config_id)
    deny(ann_field(kAnnotationMrConfigId),
         tdx_path + ".initDataRef names an InitData object that sets MRCONFIGID (KubeVirt VEP "
         "340); two sources for one value; remove the annotation");
  if (const Json* p = ann(kAnnotationPolicy)) {
    const std::string where = ann_field(kAnnotationPolicy);
    auto pol = ParsePolicy(*p);
    if (!pol.ok()) {
      bad_value(where, pol.error());
    } else if (*pol & kTdAttrDebug) {
      bad_value(where, "debug bit 0 is set: a debug TD lets the host read and write its memory, and "
                  "QEMU refuses it; clear bit 0 (use 0x10000000)");
    } else if (*pol & ~kTdAttrSupported) {
      char bits[24];
      std::snprintf(bits, sizeof(bits), "0x%llx", (unsigned long long)(*pol & ~kTdAttrSupported));
      bad_value(where, std::string("sets TD attribute bits QEMU does not support (") + bits +
                      "); allowed: bit 28 SEPT_VE_DISABLE, 30 PKS, 63 PERFMON");
    } else {
      if (!(*pol & kTdAttrSeptVeDisable))
        warn(where, "bit 28 SEPT_VE_DISABLE is clear: the guest must handle #VE on pending pages");
      t.policy = *pol;
    }
  }

  t.vsock = IsTrue(Path(spec, {"domain", "devices", "autoattachVSOCK"}));
  if (t.qgs && t.qgs->kind == QgsAddress::Kind::kVsock && !t.vsock)
    deny(sp + ".domain.devices.autoattachVSOCK",
         "QGS " + t.qgs->text + " is a vsock address (vsock-mode attestation) but the VM has no "
         "vsock device; set autoattachVSOCK: true (KubeVirt feature gate VSOCK)");
  if (t.qgs && t.qgs->kind == QgsAddress::Kind::kTcp)
    warn(ann_field(kAnnotationQgs),
         "QGS " + t.qgs->text + " is a TCP address: libvirt wires only UNIX sockets into QEMU, so "
         "only a guest agent that connects to it itself can get quotes");

  const Json* efi = Path(spec, {"domain", "firmware", "bootloader", "efi"});
  const Json* sb = efi ? Get(*efi, "secureBoot") : nullptr;
  t.secure_boot = efi && !(sb && sb->is_boolean() && !sb->get<bool>());  // KubeVirt default: on
  t.firmware = t.secure_boot ? cluster.tdvf_secure_boot : cluster.tdvf;
  return r;
}

Result<std::optional<TdxSettings>> TdxSettingsForVmi(const Json& vmi, const ClusterSettings& cluster,
                                                     const kube::KubevirtVersion& kv) {
  if (!vmi.is_object()) return Error{"vmi: expected a VirtualMachineInstance JSON object"};
  const Json* spec = Get(vmi, "spec");
  const Json* ann = Path(vmi, {"metadata", "annotations"});
  TdxRequest r = ExtractTdx(spec ? *spec : Json::object(), ann ? *ann : Json::object(), "spec",
                            "metadata.annotations", cluster, kv);
  if (!r.requested) return std::optional<TdxSettings>{};
  // Only settings that do not parse stop the hook; the rest is admission's business.
  for (const Finding& d : r.denials)
    if (d.value_error) return Error{d.Text()};
  return std::optional<TdxSettings>(r.settings);
}

}  // namespace tdxvirt::kubevirt
