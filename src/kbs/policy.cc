#include "kbs/policy.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "verify/tcb_info.h"

namespace tdxvirt::kbs {
namespace {

using nlohmann::json;

// Raised by the helpers below and caught at the public boundaries, so each check is one line.
class FieldError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
[[noreturn]] void Fail(const std::string& path, const std::string& problem) {
  throw FieldError(path + ": " + problem);
}

std::string Lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Intel's ValidateSha384HexString: ^[a-fA-F0-9]{96}$.
bool IsHex96(const std::string& s) {
  return s.size() == 96 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// 8-4-4-4-12 hex digits (Intel's uuid.UUID in JSON).
bool IsUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// A short, bounded rendering of a JSON value for messages. Containers are named, not dumped:
// dump() recurses, and a deeply nested value must not exhaust the stack.
std::string Shown(const json& v) {
  if (v.is_object()) return "an object";
  if (v.is_array()) return "a list";
  std::string d = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return d.size() > 120 ? d.substr(0, 117) + "..." : d;
}

void RefuseUnknown(const json& obj, const std::string& path, std::initializer_list<const char*> known) {
  for (const auto& [k, v] : obj.items()) {
    if (std::none_of(known.begin(), known.end(), [&](const char* n) { return k == n; })) {
      std::string list;
      for (const char* n : known) list += (list.empty() ? "" : ", ") + std::string(n);
      Fail(path.empty() ? "key transfer policy" : path,
           "unknown field \"" + k + "\" (allowed: " + list + ")");
    }
  }
}

std::string Join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

std::string Hex96(const json& v, const std::string& path) {
  if (!v.is_string() || !IsHex96(v.get<std::string>()))
    Fail(path, "expected 96 hex digits (a SHA-384 measurement), got " + Shown(v));
  return v.get<std::string>();
}

std::vector<std::string> Hex96List(const json& v, const std::string& path) {
  if (!v.is_array()) Fail(path, "expected a list of 96-hex-digit measurements, got " + Shown(v));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) out.push_back(Hex96(v[i], path + "[" + std::to_string(i) + "]"));
  return out;
}

bool Bool(const json& v, const std::string& path) {
  if (!v.is_boolean()) Fail(path, "expected true or false, got " + Shown(v));
  return v.get<bool>();
}

bool KnownTcbStatus(const std::string& s) { return s == "OK" || verify::ParseTcbStatus(s).ok(); }

json ParseMeasuredBoot(const json& v, const std::string& path) {
  if (!v.is_object()) Fail(path, "expected an object of pins, got " + Shown(v));
  RefuseUnknown(v, path, {"kernel_digest", "initrd_digest", "cmdline_digest", "secure_boot", "rtmr_verdicts"});
  json out = json::object();
  for (const char* k : {"kernel_digest", "initrd_digest", "cmdline_digest"}) {
    if (!v.contains(k) || v[k].is_null()) continue;
    auto list = Hex96List(v[k], Join(path, k));
    if (list.empty()) Fail(Join(path, k), "empty list would never match; omit the key instead");
    for (auto& d : list) d = Lower(d);  // the claim's digests are lower case
    out[k] = list;
  }
  if (v.contains("secure_boot") && !v["secure_boot"].is_null())
    out["secure_boot"] = Bool(v["secure_boot"], Join(path, "secure_boot"));
  if (v.contains("rtmr_verdicts") && !v["rtmr_verdicts"].is_null()) {
    const json& r = v["rtmr_verdicts"];
    std::string rp = Join(path, "rtmr_verdicts");
    if (!r.is_object() || r.empty())
      Fail(rp, "expected a mapping of rtmr0..rtmr3 to match, match_or_unexplained or any, e.g. {\"rtmr3\": \"match\"}");
    RefuseUnknown(r, rp, {"rtmr0", "rtmr1", "rtmr2", "rtmr3"});
    for (const auto& [reg, want] : r.items()) {
      if (!want.is_string() || (want != "match" && want != "match_or_unexplained" && want != "any"))
        Fail(rp + "." + reg, "expected match, match_or_unexplained or any, got " + Shown(want));
    }
    out["rtmr_verdicts"] = r;
  }
  return out;
}

TdxAttributes ParseAttributes(const json& a, const std::string& path) {
  if (!a.is_object()) Fail(path, "expected an object, got " + Shown(a));
  RefuseUnknown(a, path,
                {"mrsignerseam", "mrseam", "seamsvn", "mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3",
                 "enforce_tcb_upto_date", "mrconfigid", "allow_debug", "tcb_status", "measured_boot"});
  TdxAttributes t;
  auto has = [&](const char* k) { return a.contains(k) && !a[k].is_null(); };  // null = absent, as Go reads it
  if (has("mrsignerseam")) t.mrsignerseam = Hex96List(a["mrsignerseam"], Join(path, "mrsignerseam"));
  if (has("mrseam")) t.mrseam = Hex96List(a["mrseam"], Join(path, "mrseam"));
  if (has("mrtd")) t.mrtd = Hex96List(a["mrtd"], Join(path, "mrtd"));
  if (has("seamsvn")) {
    const json& v = a["seamsvn"];
    bool ok = (v.is_number_unsigned() || v.is_number_integer()) && v.get<int64_t>() >= 0 && v.get<int64_t>() <= 65535;
    if (!ok)
      Fail(Join(path, "seamsvn"), "expected a number 0..65535 (major * 256 + minor, e.g. 258), got " + Shown(v));
    t.seamsvn = uint16_t(v.get<int64_t>());
  }
  for (int i = 0; i < 4; ++i) {
    std::string k = "rtmr" + std::to_string(i);
    // Intel's RTMRn is a string where "" means "not checked".
    if (has(k.c_str()) && !(a[k].is_string() && a[k].get<std::string>().empty()))
      t.rtmr[size_t(i)] = Hex96(a[k], Join(path, k));
  }
  if (has("enforce_tcb_upto_date"))
    t.enforce_tcb_upto_date = Bool(a["enforce_tcb_upto_date"], Join(path, "enforce_tcb_upto_date"));
  if (has("mrconfigid")) t.mrconfigid = Hex96List(a["mrconfigid"], Join(path, "mrconfigid"));
  if (has("allow_debug")) t.allow_debug = Bool(a["allow_debug"], Join(path, "allow_debug"));
  if (has("tcb_status")) {
    const json& v = a["tcb_status"];
    std::string p = Join(path, "tcb_status");
    if (!v.is_array()) Fail(p, "expected a list of TCB statuses, got " + Shown(v));
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string() || !KnownTcbStatus(v[i].get<std::string>()))
        Fail(p + "[" + std::to_string(i) + "]",
             Shown(v[i]) + " is not a TCB status (UpToDate, SWHardeningNeeded, ConfigurationNeeded, "
                           "ConfigurationAndSWHardeningNeeded, OutOfDate, ...)");
      t.tcb_status.push_back(v[i].get<std::string>());
    }
  }
  if (has("measured_boot")) t.measured_boot = ParseMeasuredBoot(a["measured_boot"], Join(path, "measured_boot"));
  return t;
}

KeyTransferPolicy ParsePolicyJson(const json& j) {
  if (!j.is_object()) Fail("key transfer policy", "expected a JSON object");
  RefuseUnknown(j, "", {"id", "created_at", "attestation_type", "sgx", "tdx"});
  KeyTransferPolicy p;
  if (j.contains("id") && !j["id"].is_null()) {
    if (!j["id"].is_string() || !IsUuid(j["id"].get<std::string>()))
      Fail("id", "expected a UUID (8-4-4-4-12 hex digits), got " + Shown(j["id"]));
    p.id = Lower(j["id"].get<std::string>());
  }
  if (j.contains("created_at") && !j["created_at"].is_null()) {
    if (!j["created_at"].is_string() || j["created_at"].get<std::string>().empty())
      Fail("created_at", "expected an RFC 3339 time, got " + Shown(j["created_at"]));
    p.created_at = j["created_at"].get<std::string>();
  }
  if (!j.contains("attestation_type") || j["attestation_type"].is_null() ||
      (j["attestation_type"].is_string() && j["attestation_type"].get<std::string>().empty()))
    Fail("attestation_type", "must be specified; set \"TDX\"");
  const json& at = j["attestation_type"];
  if (!at.is_string()) Fail("attestation_type", "expected a string, got " + Shown(at));
  if (at == "SGX")
    Fail("attestation_type", "SGX policies are not served here: this key broker releases keys to TDX TDs "
                             "only; set \"TDX\" and a \"tdx\" object");
  if (at != "TDX") Fail("attestation_type", Shown(at) + " is not an attestation type; set \"TDX\"");
  if (j.contains("sgx") && !j["sgx"].is_null())
    Fail("sgx", "only TDX is served; remove the sgx object and use \"tdx\"");
  if (!j.contains("tdx") || j["tdx"].is_null())
    Fail("tdx", "missing; a TDX policy needs \"tdx\": {\"attributes\": {...}} and/or {\"policy_ids\": [...]}");
  const json& tdx = j["tdx"];
  if (!tdx.is_object()) Fail("tdx", "expected an object, got " + Shown(tdx));
  RefuseUnknown(tdx, "tdx", {"attributes", "policy_ids"});
  if (tdx.contains("attributes") && !tdx["attributes"].is_null())
    p.attributes = ParseAttributes(tdx["attributes"], "tdx.attributes");
  if (tdx.contains("policy_ids") && !tdx["policy_ids"].is_null()) {
    const json& ids = tdx["policy_ids"];
    if (!ids.is_array()) Fail("tdx.policy_ids", "expected a list of Trust Authority policy UUIDs, got " + Shown(ids));
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!ids[i].is_string() || !IsUuid(ids[i].get<std::string>()))
        Fail("tdx.policy_ids[" + std::to_string(i) + "]",
             "expected a UUID (8-4-4-4-12 hex digits), got " + Shown(ids[i]));
      p.policy_ids.push_back(Lower(ids[i].get<std::string>()));
    }
  }
  return p;
}

// ---- token claims ----

const json* Find(const json& c, const char* k) {
  auto it = c.find(k);
  return it == c.end() || it->is_null() ? nullptr : &*it;
}
std::string ClaimString(const json& c, const char* k) {
  const json* v = Find(c, k);
  if (!v) return "";
  if (!v->is_string()) Fail(k, "expected a string claim, got " + Shown(*v));
  return v->get<std::string>();
}
bool ClaimBool(const json& c, const char* k) {
  const json* v = Find(c, k);
  if (!v) return false;
  if (!v->is_boolean()) Fail(k, "expected a boolean claim, got " + Shown(*v));
  return v->get<bool>();
}
int64_t ClaimInt(const json& c, const char* k) {
  const json* v = Find(c, k);
  if (!v) return 0;
  if (!v->is_number_integer()) Fail(k, "expected an integer claim, got " + Shown(*v));
  return v->get<int64_t>();
}

// ---- evaluation ----

std::string ListText(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s + "]";
}
bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}
void CheckList(std::vector<std::string>& r, const char* name, const std::string& token_value,
               const std::vector<std::string>& allowed) {
  if (allowed.empty() || Contains(allowed, token_value)) return;
  r.push_back(std::string(name) + ": the TD has " + (token_value.empty() ? "none" : token_value) +
              ", the policy allows " + ListText(allowed));
}

std::string Verdict(const json& mb, const std::string& reg) {
  const json* rtmrs = Find(mb, "rtmrs");
  if (!rtmrs || !rtmrs->is_object()) return "absent";
  auto it = rtmrs->find(reg);
  return it != rtmrs->end() && it->is_string() ? it->get<std::string>() : "absent";
}

// A pinned value counts only from a register the quote confirms ("match").
bool Confirmed(std::vector<std::string>& r, const json& mb, const std::string& pin,
               std::initializer_list<const char*> regs) {
  for (const char* reg : regs) {
    std::string v = Verdict(mb, reg);
    if (v != "match") {
      r.push_back("measured_boot." + pin + ": " + reg + " is \"" + v +
                  "\" in the token, so its events prove nothing; a pinned value counts only from a "
                  "register that matches");
      return false;
    }
  }
  return true;
}

void CheckMeasuredBoot(std::vector<std::string>& r, const json& pins, const json& mb) {
  if (!pins.is_object() || pins.empty()) return;
  if (!mb.is_object()) {
    r.push_back("measured_boot: the token has no tdx_measured_boot claim (the TD sent no event log); "
                "attest with the event log");
    return;
  }
  if (const json* rv = Find(pins, "rtmr_verdicts")) {
    for (const auto& [reg, want_j] : rv->items()) {
      std::string want = want_j.get<std::string>(), got = Verdict(mb, reg);
      bool ok = want == "any" || got == "match" || (want == "match_or_unexplained" && got == "unexplained");
      if (!ok)
        r.push_back("measured_boot.rtmr_verdicts: " + reg + " is \"" + got + "\", the policy requires " + want);
    }
  }
  // The kernel, initrd and command line events land in rtmr1 or rtmr2 depending on the loader
  // (EFI stub, GRUB, UKI, td-shim); the claim does not say which, so both must match.
  static const std::pair<const char*, const char*> kItems[] = {
      {"kernel_digest", "kernel"}, {"initrd_digest", "initrd"}, {"cmdline_digest", "cmdline"}};
  for (const auto& [pin, item] : kItems) {
    const json* want = Find(pins, pin);
    if (!want) continue;
    const json* got = Find(mb, item);
    if (!got || !got->is_object() || !got->contains("digest") || !(*got)["digest"].is_string()) {
      r.push_back(std::string("measured_boot.") + pin + ": the event log measures no " + item);
      continue;
    }
    if (!Confirmed(r, mb, pin, {"rtmr1", "rtmr2"})) continue;
    std::string digest = Lower((*got)["digest"].get<std::string>());
    auto allowed = want->get<std::vector<std::string>>();
    if (!Contains(allowed, digest))
      r.push_back(std::string("measured_boot.") + pin + ": the TD booted " + item + " " + digest +
                  ", the policy allows " + ListText(allowed));
  }
  if (const json* sb = Find(pins, "secure_boot")) {
    const json* got = Find(mb, "secure_boot");
    if (!got || !got->is_boolean()) {
      r.push_back("measured_boot.secure_boot: the event log does not measure the SecureBoot variable");
    } else if (Confirmed(r, mb, "secure_boot", {"rtmr0"}) && got->get<bool>() != sb->get<bool>()) {
      r.push_back(std::string("measured_boot.secure_boot: the TD booted with Secure Boot ") +
                  (got->get<bool>() ? "enabled" : "disabled") + ", the policy requires " +
                  (sb->get<bool>() ? "enabled" : "disabled"));
    }
  }
}

}  // namespace

Result<KeyTransferPolicy> ParseKeyTransferPolicy(std::string_view json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error{"key transfer policy: not valid JSON"};
  try {
    return ParsePolicyJson(j);
  } catch (const FieldError& e) {
    return Error{e.what()};
  } catch (const json::exception& e) {
    return Error{std::string("key transfer policy: ") + e.what()};
  }
}

json KeyTransferPolicyToJson(const KeyTransferPolicy& p) {
  json j = json::object();
  if (!p.id.empty()) j["id"] = p.id;
  if (!p.created_at.empty()) j["created_at"] = p.created_at;
  j["attestation_type"] = p.attestation_type;
  const TdxAttributes& t = p.attributes;
  json a = json::object();
  if (!t.mrsignerseam.empty()) a["mrsignerseam"] = t.mrsignerseam;
  if (!t.mrseam.empty()) a["mrseam"] = t.mrseam;
  if (t.seamsvn) a["seamsvn"] = *t.seamsvn;
  if (!t.mrtd.empty()) a["mrtd"] = t.mrtd;
  for (size_t i = 0; i < 4; ++i)
    if (t.rtmr[i]) a["rtmr" + std::to_string(i)] = *t.rtmr[i];
  if (t.enforce_tcb_upto_date) a["enforce_tcb_upto_date"] = *t.enforce_tcb_upto_date;
  if (!t.mrconfigid.empty()) a["mrconfigid"] = t.mrconfigid;
  if (t.allow_debug) a["allow_debug"] = true;
  if (!t.tcb_status.empty()) a["tcb_status"] = t.tcb_status;
  if (t.measured_boot.is_object() && !t.measured_boot.empty()) a["measured_boot"] = t.measured_boot;
  json tdx = json::object();
  if (!a.empty()) tdx["attributes"] = a;
  if (!p.policy_ids.empty()) tdx["policy_ids"] = p.policy_ids;
  j["tdx"] = tdx;
  return j;
}

Result<TokenClaims> ClaimsFromToken(const json& claims) {
  if (!claims.is_object()) return Error{"token claims: expected a JSON object"};
  try {
    // v2 carries the TDX claims under "tdx"; lift them (top-level values win, as for jti/exp).
    json c = claims;
    if (const json* tdx = Find(claims, "tdx")) {
      if (!tdx->is_object()) Fail("tdx", "expected an object of TDX claims, got " + Shown(*tdx));
      for (const auto& [k, v] : tdx->items())
        if (!c.contains(k)) c[k] = v;
      c.erase("tdx");
    }
    TokenClaims t;
    t.attester_type = ClaimString(c, "attester_type");
    t.tdx_mrsignerseam = ClaimString(c, "tdx_mrsignerseam");
    t.tdx_mrseam = ClaimString(c, "tdx_mrseam");
    t.tdx_mrtd = ClaimString(c, "tdx_mrtd");
    t.tdx_mrconfigid = ClaimString(c, "tdx_mrconfigid");
    for (size_t i = 0; i < 4; ++i) {
      std::string k = "tdx_rtmr" + std::to_string(i);
      t.tdx_rtmr[i] = ClaimString(c, k.c_str());
    }
    if (const json* s = Find(c, "tdx_seamsvn")) {
      if (!s->is_number_integer() || s->get<int64_t>() < 0 || s->get<int64_t>() > 65535)
        Fail("tdx_seamsvn", "expected an integer 0..65535, got " + Shown(*s));
      t.tdx_seamsvn = uint16_t(s->get<int64_t>());
    }
    t.attester_tcb_status = ClaimString(c, "attester_tcb_status");
    // Debug from every claim that can say it: the two booleans, the EAT dbgstat and the
    // TDATTRIBUTES DEBUG bit (bit 0 of the first byte of tdx_td_attributes).
    bool debug = ClaimBool(c, "tdx_td_attributes_debug") || ClaimBool(c, "tdx_is_debuggable");
    std::string dbgstat = ClaimString(c, "dbgstat");
    if (!dbgstat.empty() && dbgstat != "disabled") debug = true;
    std::string attrs = ClaimString(c, "tdx_td_attributes");
    if (attrs.size() >= 2 && std::isxdigit(static_cast<unsigned char>(attrs[1])) &&
        (std::stoi(attrs.substr(1, 1), nullptr, 16) & 1))
      debug = true;
    t.debug = debug;
    if (const json* m = Find(c, "policy_ids_matched")) {
      if (!m->is_array()) Fail("policy_ids_matched", "expected a list of {id, version}, got " + Shown(*m));
      t.has_policy_ids_matched = true;
      for (size_t i = 0; i < m->size(); ++i) {
        const json& e = (*m)[i];
        std::string path = "policy_ids_matched[" + std::to_string(i) + "].id";
        if (!e.is_object() || !e.contains("id") || !e["id"].is_string())
          Fail(path, "expected a UUID string, got " + Shown(e.is_object() && e.contains("id") ? e["id"] : e));
        t.policy_ids_matched.push_back(Lower(e["id"].get<std::string>()));
      }
    }
    t.attester_held_data = ClaimString(c, "attester_held_data");
    if (const json* mb = Find(c, "tdx_measured_boot")) {
      if (!mb->is_object()) Fail("tdx_measured_boot", "expected an object, got " + Shown(*mb));
      t.measured_boot = *mb;
    }
    t.jti = ClaimString(c, "jti");
    t.exp = ClaimInt(c, "exp");
    t.iat = ClaimInt(c, "iat");
    return t;
  } catch (const FieldError& e) {
    return Error{std::string("token claim ") + e.what()};
  } catch (const json::exception& e) {
    return Error{std::string("token claims: ") + e.what()};
  }
}

PolicyDecision EvaluatePolicy(const KeyTransferPolicy& p, const TokenClaims& c) {
  PolicyDecision d;
  auto& r = d.reasons;
  const TdxAttributes& a = p.attributes;

  // Intel's rule (service/validation.go): when the token lists matched Trust Authority policies and
  // the key's policy names some, that intersection alone decides Intel's part.
  bool intel_attributes = true;
  if (c.has_policy_ids_matched && !p.policy_ids.empty()) {
    intel_attributes = false;
    for (const auto& id : c.policy_ids_matched)
      if (Contains(p.policy_ids, Lower(id))) d.by_policy_ids = true;
    if (!d.by_policy_ids)
      r.push_back("policy_ids: none of the token's policy_ids_matched " + ListText(c.policy_ids_matched) +
                  " is among the policy's policy_ids " + ListText(p.policy_ids));
  }
  if (intel_attributes) {
    CheckList(r, "mrsignerseam", c.tdx_mrsignerseam, a.mrsignerseam);
    CheckList(r, "mrseam", c.tdx_mrseam, a.mrseam);
    if (a.seamsvn && c.tdx_seamsvn != a.seamsvn)
      r.push_back("seamsvn: the TD has " + (c.tdx_seamsvn ? std::to_string(*c.tdx_seamsvn) : std::string("none")) +
                  ", the policy requires " + std::to_string(*a.seamsvn));
    CheckList(r, "mrtd", c.tdx_mrtd, a.mrtd);
    for (size_t i = 0; i < 4; ++i) {
      if (a.rtmr[i] && c.tdx_rtmr[i] != *a.rtmr[i])
        r.push_back("rtmr" + std::to_string(i) + ": the TD has " + (c.tdx_rtmr[i].empty() ? "none" : c.tdx_rtmr[i]) +
                    ", the policy requires " + *a.rtmr[i]);
    }
    if (a.enforce_tcb_upto_date.value_or(false) && c.attester_tcb_status != "UpToDate" &&
        c.attester_tcb_status != "OK")
      r.push_back("enforce_tcb_upto_date: the TD's attester_tcb_status is \"" + c.attester_tcb_status +
                  "\", the policy requires \"UpToDate\"");
  }

  // tdxvirt's checks apply however Intel's part was decided.
  CheckList(r, "mrconfigid", c.tdx_mrconfigid, a.mrconfigid);
  if (c.debug && !a.allow_debug)
    r.push_back("debug: the TD is a debug TD (the host can read its memory); the policy refuses it "
                "unless allow_debug is true");
  if (!a.tcb_status.empty() && !Contains(a.tcb_status, c.attester_tcb_status))
    r.push_back("tcb_status: the TD's attester_tcb_status is \"" + c.attester_tcb_status +
                "\", the policy allows " + ListText(a.tcb_status));
  CheckMeasuredBoot(r, a.measured_boot, c.measured_boot);

  d.allowed = r.empty();
  return d;
}

}  // namespace tdxvirt::kbs
