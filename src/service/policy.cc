#include "service/policy.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <cctype>

#include "common/document.h"
#include "common/file.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "eventlog/builder.h"
#include "verify/tcb_info.h"

namespace tdxvirt::service {

namespace {

// Unquoted YAML scalars: booleans and short decimal integers become those, the rest strings, so a
// digest such as 0000000000000001 or 1e05... stays the hex text it is.
nlohmann::json ResolvePolicyScalar(const std::string& s) {
  if (s == "true" || s == "True" || s == "TRUE") return nlohmann::json(true);
  if (s == "false" || s == "False" || s == "FALSE") return nlohmann::json(false);
  if (!s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos)
    return nlohmann::json(uint64_t(std::stoull(s)));
  return nlohmann::json(s);
}

template <size_t N>
Result<std::vector<ByteArray<N>>> HexList(const nlohmann::json& v, const std::string& field) {
  std::vector<ByteArray<N>> out;
  std::vector<nlohmann::json> items;
  if (v.is_string()) items.push_back(v);
  else if (v.is_array()) items.assign(v.begin(), v.end());
  else return Error{field + ": expected " + std::to_string(2 * N) + " hex digits or a list of them"};
  if (items.empty()) return Error{field + ": empty list (omit the key to allow any value)"};
  for (const auto& i : items) {
    if (!i.is_string()) return Error{field + ": entries must be hex strings"};
    auto b = FromHexFixed<N>(i.get<std::string>(), field);
    if (!b.ok()) return Error{b.error()};
    out.push_back(*b);
  }
  return out;
}

template <size_t N>
std::string AllowedList(const std::vector<ByteArray<N>>& v) {
  std::string s;
  for (const auto& a : v) s += (s.empty() ? "" : ", ") + ToHex(a);
  return s;
}

template <size_t N>
void CheckValue(std::vector<std::string>& reasons, const char* field, const ByteArray<N>& have,
                const std::vector<ByteArray<N>>& allowed) {
  if (allowed.empty() || std::find(allowed.begin(), allowed.end(), have) != allowed.end()) return;
  reasons.push_back(std::string(field) + ": " + ToHex(have) + " is not an allowed value (" +
                    AllowedList(allowed) + ")");
}

}  // namespace

Result<std::string> ParsePolicyId(std::string_view id) {
  bool ok = id.size() == 36;
  for (size_t i = 0; ok && i < id.size(); ++i)
    ok = (i == 8 || i == 13 || i == 18 || i == 23) ? id[i] == '-'
                                                   : std::isxdigit(static_cast<unsigned char>(id[i])) != 0;
  if (!ok)
    return Error{"\"" + std::string(id.substr(0, 64)) + (id.size() > 64 ? "..." : "") +
                 "\" is not a UUID (8-4-4-4-12 hex digits, e.g. "
                 "\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"), as Trust Authority policy ids are"};
  std::string canon(id);
  for (char& c : canon) c = char(std::tolower(static_cast<unsigned char>(c)));
  return canon;
}

uint32_t SeamSvn(const evidence::TeeTcbSvn& svn) { return uint32_t(svn[1]) << 8 | svn[0]; }

Result<Policy> ParsePolicy(std::string_view text, std::string_view source) {
  std::string src(source);
  auto fail = [&](const std::string& m) { return Error{src + ": " + m}; };
  if (text.size() > (1 << 20)) return fail("larger than 1 MiB");
  // The bounds of every outside document (nesting, node count, alias expansion): a few hundred
  // bytes of YAML aliases must not expand to gigabytes.
  auto doc = ParseBoundedDocument(text, src, ResolvePolicyScalar);
  if (!doc.ok()) return Error{doc.error()};
  nlohmann::json j = std::move(*doc);
  if (!j.is_object()) return fail("expected a mapping with at least \"id\"");
  Policy p;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const auto& v = it.value();
    std::string field = k;
    auto want_string = [&]() -> Result<std::string> {
      if (!v.is_string()) return Error{src + ": " + field + ": expected a string"};
      return v.get<std::string>();
    };
    if (k == "id") {
      auto s = want_string();
      if (!s.ok()) return Error{s.error()};
      auto id = ParsePolicyId(*s);
      if (!id.ok()) return fail("id: " + id.error() + "; put a human name in \"name\"");
      p.id = *id;
    } else if (k == "name") {
      auto s = want_string();
      if (!s.ok()) return Error{s.error()};
      if (s->size() > 256) return fail("name: longer than 256 characters");
      p.name = *s;
    } else if (k == "version") {
      auto s = want_string();
      if (!s.ok()) return Error{s.error()};
      p.version = *s;
    } else if (k == "description") {
      auto s = want_string();
      if (!s.ok()) return Error{s.error()};
      p.description = *s;
    } else if (k == "tcb_status") {
      std::vector<nlohmann::json> items;
      if (v.is_string()) items.push_back(v);
      else if (v.is_array()) items.assign(v.begin(), v.end());
      else return fail("tcb_status: expected a status name or a list of them");
      if (items.empty()) return fail("tcb_status: empty list would never match");
      p.tcb_status.clear();
      for (const auto& i : items) {
        if (!i.is_string() || !verify::ParseTcbStatus(i.get<std::string>()).ok())
          return fail("tcb_status: " + i.dump() +
                      " is not a TCB status (UpToDate, SWHardeningNeeded, ConfigurationNeeded, "
                      "ConfigurationAndSWHardeningNeeded, OutOfDate, ...)");
        p.tcb_status.push_back(i.get<std::string>());
      }
    } else if (k == "mrtd" || k == "mrconfigid" || k == "mrowner" || k == "mrownerconfig" ||
               k == "rtmr0" || k == "rtmr1" || k == "rtmr2" || k == "rtmr3") {
      auto l = HexList<48>(v, src + ": " + k);
      if (!l.ok()) return Error{l.error()};
      if (k == "mrtd") p.mrtd = *l;
      else if (k == "mrconfigid") p.mrconfigid = *l;
      else if (k == "mrowner") p.mrowner = *l;
      else if (k == "mrownerconfig") p.mrownerconfig = *l;
      else p.rtmr[k[4] - '0'] = *l;
    } else if (k == "xfam" || k == "td_attributes") {
      auto l = HexList<8>(v, src + ": " + k);
      if (!l.ok()) return Error{l.error()};
      (k == "xfam" ? p.xfam : p.td_attributes) = *l;
    } else if (k == "allow_debug") {
      if (!v.is_boolean()) return fail("allow_debug: expected true or false");
      p.allow_debug = v.get<bool>();
    } else if (k == "min_tee_tcb_svn") {
      auto s = want_string();
      if (!s.ok()) return Error{s.error()};
      auto b = FromHexFixed<16>(*s, src + ": min_tee_tcb_svn");
      if (!b.ok()) return Error{b.error()};
      p.min_tee_tcb_svn = *b;
    } else if (k == "min_seam_svn") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 0xffff)
        return fail("min_seam_svn: expected an integer 0..65535 (major << 8 | minor)");
      p.min_seam_svn = uint32_t(v.get<int64_t>());
    } else if (k == "kernel_digest" || k == "initrd_digest" || k == "cmdline_digest") {
      auto l = HexList<48>(v, src + ": " + k);
      if (!l.ok()) return Error{l.error()};
      (k == "kernel_digest" ? p.kernel_digest : k == "initrd_digest" ? p.initrd_digest : p.cmdline_digest) = *l;
    } else if (k == "cmdline") {
      std::vector<nlohmann::json> items;
      if (v.is_string()) items.push_back(v);
      else if (v.is_array()) items.assign(v.begin(), v.end());
      else return fail("cmdline: expected the command line text or a list of them (quote a value YAML "
                       "would read as a number or true/false)");
      if (items.empty()) return fail("cmdline: empty list (omit the key to allow any command line)");
      for (const auto& i : items) {
        if (!i.is_string())
          return fail("cmdline: entries must be text (quote a value YAML would read as a number or "
                      "true/false)");
        p.cmdline.push_back(i.get<std::string>());
      }
    } else if (k == "secure_boot") {
      if (!v.is_boolean()) return fail("secure_boot: expected true or false");
      p.secure_boot = v.get<bool>();
    } else if (k == "rtmr_verdicts") {
      static const char* kWant =
          "a mapping of rtmr0..rtmr3 to match, match_or_unexplained or any, e.g. {rtmr3: any}";
      if (!v.is_object()) return fail(std::string("rtmr_verdicts: expected ") + kWant);
      if (v.empty())
        return fail("rtmr_verdicts: empty mapping (omit the key for the default: match for "
                    "rtmr0..rtmr2, match_or_unexplained for rtmr3)");
      for (auto r = v.begin(); r != v.end(); ++r) {
        const std::string& reg = r.key();
        if (reg.size() != 5 || reg.compare(0, 4, "rtmr") != 0 || reg[4] < '0' || reg[4] > '3')
          return fail("rtmr_verdicts: unknown register \"" + reg + "\" (rtmr0..rtmr3)");
        std::optional<RtmrRequirement> want;
        if (r.value().is_string()) {
          const auto& w = r.value().get_ref<const std::string&>();
          for (auto q : {RtmrRequirement::kMatch, RtmrRequirement::kMatchOrUnexplained, RtmrRequirement::kAny})
            if (w == RtmrRequirementName(q)) want = q;
        }
        if (!want)
          return fail("rtmr_verdicts." + reg + ": " +
                      (r.value().is_string() ? r.value().dump() : std::string(r.value().type_name())) +
                      " is not a requirement (match, match_or_unexplained, any)");
        p.rtmr_verdicts[reg[4] - '0'] = *want;
      }
    } else {
      return fail("unknown key \"" + k +
                  "\" (known: id, name, version, description, tcb_status, mrtd, rtmr0..rtmr3, "
                  "mrconfigid, mrowner, mrownerconfig, xfam, td_attributes, allow_debug, "
                  "min_tee_tcb_svn, min_seam_svn, kernel_digest, initrd_digest, cmdline, "
                  "cmdline_digest, secure_boot, rtmr_verdicts)");
    }
  }
  if (p.id.empty()) return fail("id: missing; every policy needs the id that policy_ids name");
  p.hash = ToHex(ossl::Sha384(AsBytes(text)));
  return p;
}

nlohmann::ordered_json PolicyToJson(const Policy& p) {
  nlohmann::ordered_json j;
  j["id"] = p.id;
  if (!p.name.empty()) j["name"] = p.name;
  j["version"] = p.version;
  if (!p.description.empty()) j["description"] = p.description;
  j["tcb_status"] = p.tcb_status;
  auto list = [&](const char* k, const auto& v) {
    if (v.empty()) return;
    auto& a = j[k] = nlohmann::ordered_json::array();
    for (const auto& x : v) a.push_back(ToHex(x));
  };
  list("mrtd", p.mrtd);
  for (int i = 0; i < 4; ++i) list(("rtmr" + std::to_string(i)).c_str(), p.rtmr[i]);
  list("mrconfigid", p.mrconfigid);
  list("mrowner", p.mrowner);
  list("mrownerconfig", p.mrownerconfig);
  list("xfam", p.xfam);
  list("td_attributes", p.td_attributes);
  j["allow_debug"] = p.allow_debug;
  if (p.min_tee_tcb_svn) j["min_tee_tcb_svn"] = ToHex(*p.min_tee_tcb_svn);
  if (p.min_seam_svn) j["min_seam_svn"] = *p.min_seam_svn;
  list("kernel_digest", p.kernel_digest);
  list("initrd_digest", p.initrd_digest);
  if (!p.cmdline.empty()) j["cmdline"] = p.cmdline;
  list("cmdline_digest", p.cmdline_digest);
  if (p.secure_boot) j["secure_boot"] = *p.secure_boot;
  nlohmann::ordered_json verdicts = nlohmann::ordered_json::object();
  for (int i = 0; i < 4; ++i)
    if (p.rtmr_verdicts[i])
      verdicts["rtmr" + std::to_string(i)] = std::string(RtmrRequirementName(*p.rtmr_verdicts[i]));
  if (!verdicts.empty()) j["rtmr_verdicts"] = verdicts;
  return j;
}

std::string_view RtmrRequirementName(RtmrRequirement r) {
  switch (r) {
    case RtmrRequirement::kMatch: return "match";
    case RtmrRequirement::kMatchOrUnexplained: return "match_or_unexplained";
    case RtmrRequirement::kAny: return "any";
  }
  return "";
}

namespace {

// The measured-boot keys a policy uses, in the order documented.
std::vector<std::string> MeasuredBootKeys(const Policy& p) {
  std::vector<std::string> k;
  if (!p.kernel_digest.empty()) k.push_back("kernel_digest");
  if (!p.initrd_digest.empty()) k.push_back("initrd_digest");
  if (!p.cmdline.empty()) k.push_back("cmdline");
  if (!p.cmdline_digest.empty()) k.push_back("cmdline_digest");
  if (p.secure_boot) k.push_back("secure_boot");
  for (const auto& v : p.rtmr_verdicts)
    if (v) {
      k.push_back("rtmr_verdicts");
      break;
    }
  return k;
}

std::string RegisterName(int i) { return "rtmr" + std::to_string(i); }

// A text pin names the command line the TD was started with. OVMF's direct boot (QEMU -kernel
// -initrd) passes the kernel that text plus " initrd=initrd", and the stub measures the result, so
// for the stub's LoadOptions either form matches.
bool CmdlineMatches(const eventlog::MeasuredItem& c, const std::string& want) {
  if (*c.text == want) return true;
  static const std::string kDirectBootInitrd = " initrd=initrd";
  return c.source == "efi-stub" && c.text->size() == want.size() + kDirectBootInitrd.size() &&
         c.text->compare(0, want.size(), want) == 0 &&
         c.text->compare(want.size(), std::string::npos, kDirectBootInitrd) == 0;
}

// True when `digest` is the Linux stub's measurement of `want` as load options: UTF-16LE with a
// NUL, as given, or as OVMF passes a direct boot with an initrd (+ " initrd=initrd").
bool StubDigestMatches(const evidence::Sha384Digest& digest, const std::string& want) {
  for (bool initrd : {false, true}) {
    auto options = eventlog::DirectBootLoadOptions(want, initrd);
    if (options.ok() && ossl::Sha384(*options) == digest) return true;
  }
  return false;
}

// True when the register event `n` extends is confirmed by the quote (verdict match); otherwise
// adds why a value measured by that event cannot count.
bool Confirmed(const MeasuredBoot& mb, size_t n, const std::string& key, std::vector<std::string>& r) {
  int reg = mb.RegisterOf(n);
  if (reg >= 0 && mb.verdicts[reg].verdict == eventlog::Verdict::kMatch) return true;
  r.push_back(key + ": " + mb.Describe(n) + " is not confirmed by the quote (" +
              (reg < 0 ? std::string("it extends no RTMR")
                       : RegisterName(reg) + ": " + std::string(eventlog::VerdictName(mb.verdicts[reg].verdict))) +
              "); a pinned value counts only from a register that matches");
  return false;
}

void CheckItemDigest(std::vector<std::string>& r, const MeasuredBoot& mb, const std::string& key,
                     const char* what, const std::optional<eventlog::MeasuredItem>& item,
                     const std::vector<evidence::Sha384Digest>& allowed) {
  if (allowed.empty()) return;
  if (!item) {
    r.push_back(key + ": the event log measures no " + what);
    return;
  }
  if (!Confirmed(mb, item->event, key, r)) return;
  if (std::find(allowed.begin(), allowed.end(), item->digest) != allowed.end()) return;
  r.push_back(key + ": " + mb.Describe(item->event) + " measured " + ToHex(item->digest) +
              ", not an allowed value");
}

void EvaluateMeasuredBoot(const Policy& p, const MeasuredBoot* mb, std::vector<std::string>& r) {
  auto keys = MeasuredBootKeys(p);
  if (keys.empty()) return;
  if (!mb) {
    std::string names;
    for (const auto& k : keys) names += (names.empty() ? "" : ", ") + k;
    r.push_back("event_log: this policy pins measured boot (" + names +
                "); send the TD's event log (tdx.event_log, from /sys/firmware/acpi/tables/data/CCEL)");
    return;
  }
  for (int i = 0; i < 4; ++i) {
    const auto& v = mb->verdicts[i];
    RtmrRequirement want = EffectiveRtmrRequirement(p, i);
    bool ok = v.verdict == eventlog::Verdict::kMatch || want == RtmrRequirement::kAny ||
              (v.verdict == eventlog::Verdict::kUnexplained && want == RtmrRequirement::kMatchOrUnexplained);
    if (ok) continue;
    if (v.verdict == eventlog::Verdict::kMismatch)
      r.push_back(RegisterName(i) + ": mismatch: the event log replays to " + ToHex(v.replayed) +
                  ", the quote has " + ToHex(mb->quote_rtmrs[i]));
    else
      r.push_back(RegisterName(i) + ": unexplained: the event log has no event for it and the quote has " +
                  ToHex(mb->quote_rtmrs[i]) + "; the policy requires " +
                  std::string(RtmrRequirementName(want)) + " (rtmr_verdicts)");
  }
  const auto& s = mb->summary;
  CheckItemDigest(r, *mb, "kernel_digest", "kernel", s.kernel, p.kernel_digest);
  CheckItemDigest(r, *mb, "initrd_digest", "initrd", s.initrd, p.initrd_digest);
  CheckItemDigest(r, *mb, "cmdline_digest", "command line", s.cmdline, p.cmdline_digest);
  if (!p.cmdline.empty()) {
    if (!s.cmdline) {
      r.push_back("cmdline: the event log measures no command line");
    } else if (Confirmed(*mb, s.cmdline->event, "cmdline", r)) {
      const auto& c = *s.cmdline;
      if ((c.binding != eventlog::Binding::kBound || !c.text) && c.source == "efi-stub") {
        // Linux's stub logs only the tag's name; its digest covers the load options, so a pinned
        // text is checked by hashing it as the stub would have seen it.
        if (std::none_of(p.cmdline.begin(), p.cmdline.end(), [&](const std::string& want) {
              return StubDigestMatches(c.digest, want);
            })) {
          r.push_back("cmdline: " + mb->Describe(c.event) + " measured " + ToHex(c.digest) +
                      ", the digest of none of the allowed command lines (as UTF-16LE load options, "
                      "with or without \" initrd=initrd\")");
        }
      } else if (c.binding != eventlog::Binding::kBound || !c.text) {
        r.push_back("cmdline: " + mb->Describe(c.event) + " measured the command line as an opaque digest " +
                    ToHex(c.digest) + ", which no text can be checked against; pin cmdline_digest instead");
      } else if (std::none_of(p.cmdline.begin(), p.cmdline.end(), [&](const std::string& want) {
                   return CmdlineMatches(c, want);
                 })) {
        r.push_back("cmdline: " + mb->Describe(c.event) + " measured \"" + PrintableText(*c.text) +
                    "\", not an allowed value");
      }
    }
  }
  if (p.secure_boot) {
    if (!s.secure_boot) {
      r.push_back("secure_boot: the event log does not measure the SecureBoot variable");
    } else if (mb->verdicts[0].verdict != eventlog::Verdict::kMatch) {
      r.push_back(std::string("secure_boot: the SecureBoot variable is measured into rtmr0, which the quote "
                              "does not confirm (") +
                  std::string(eventlog::VerdictName(mb->verdicts[0].verdict)) +
                  "); a pinned value counts only from a register that matches");
    } else if (*s.secure_boot != *p.secure_boot) {
      r.push_back(std::string("secure_boot: the event log measured Secure Boot ") +
                  (*s.secure_boot ? "enabled" : "disabled") + ", the policy requires " +
                  (*p.secure_boot ? "enabled" : "disabled"));
    }
  }
}

}  // namespace

bool PolicyNeedsEventLog(const Policy& p) { return !MeasuredBootKeys(p).empty(); }

RtmrRequirement EffectiveRtmrRequirement(const Policy& p, int i) {
  if (p.rtmr_verdicts[i]) return *p.rtmr_verdicts[i];
  return i == 3 ? RtmrRequirement::kMatchOrUnexplained : RtmrRequirement::kMatch;
}

std::vector<std::string> EvaluatePolicy(const Policy& p, const evidence::TdQuoteBody& body,
                                        std::string_view tcb_status, const MeasuredBoot* measured_boot) {
  std::vector<std::string> r;
  if (std::find(p.tcb_status.begin(), p.tcb_status.end(), tcb_status) == p.tcb_status.end()) {
    std::string allowed;
    for (const auto& s : p.tcb_status) allowed += (allowed.empty() ? "" : ", ") + s;
    r.push_back("tcb_status: " + std::string(tcb_status) + " is not allowed (" + allowed + ")");
  }
  if (body.td.debug() && !p.allow_debug)
    r.push_back("td_attributes: the TD is debuggable (bit 0 set) and allow_debug is false");
  CheckValue(r, "mrtd", body.td.mr_td, p.mrtd);
  for (int i = 0; i < 4; ++i) {
    static const char* kNames[] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3"};
    CheckValue(r, kNames[i], body.td.rtmr[i], p.rtmr[i]);
  }
  CheckValue(r, "mrconfigid", body.td.mr_config_id, p.mrconfigid);
  CheckValue(r, "mrowner", body.td.mr_owner, p.mrowner);
  CheckValue(r, "mrownerconfig", body.td.mr_owner_config, p.mrownerconfig);
  CheckValue(r, "xfam", body.td.xfam, p.xfam);
  CheckValue(r, "td_attributes", body.td.td_attributes, p.td_attributes);
  if (p.min_tee_tcb_svn) {
    for (size_t i = 0; i < 16; ++i)
      if (body.tee_tcb_svn[i] < (*p.min_tee_tcb_svn)[i]) {
        r.push_back("tee_tcb_svn: " + ToHex(body.tee_tcb_svn) + " is below the minimum " +
                    ToHex(*p.min_tee_tcb_svn) + " at byte " + std::to_string(i));
        break;
      }
  }
  if (p.min_seam_svn && SeamSvn(body.tee_tcb_svn) < *p.min_seam_svn)
    r.push_back("tdx_seamsvn: " + std::to_string(SeamSvn(body.tee_tcb_svn)) +
                " is below the minimum " + std::to_string(*p.min_seam_svn));
  EvaluateMeasuredBoot(p, measured_boot, r);
  return r;
}

namespace {

struct DirFile {
  std::string name;
  std::string text;
};

Result<std::vector<DirFile>> ReadPolicyFiles(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return Error{"policy directory " + dir + ": " + ec.message()};
  std::vector<DirFile> files;
  for (const auto& e : it) {
    std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::string ext = e.path().extension().string();
    if (ext != ".json" && ext != ".yaml" && ext != ".yml") continue;
    if (!e.is_regular_file(ec)) continue;
    if (files.size() >= 1000) return Error{"policy directory " + dir + ": more than 1000 policies"};
    // A regular file only (a ConfigMap's symlinks are followed): a FIFO must not hang the reload.
    auto text = ReadRegularFile(e.path().string(), 1 << 20);
    if (!text.ok()) return Error{"policy " + name + ": " + text.error()};
    files.push_back({name, std::string(AsString(*text))});
  }
  std::sort(files.begin(), files.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return files;
}

Result<PolicySet> ParseFiles(const std::vector<DirFile>& files) {
  PolicySet set;
  std::map<std::string, std::string> where;
  for (const auto& f : files) {
    auto p = ParsePolicy(f.text, f.name);
    if (!p.ok()) return Error{p.error()};
    if (where.count(p->id))
      return Error{f.name + ": id " + p->id + " is also the id of " + where[p->id] +
                   "; policy ids must be unique"};
    where[p->id] = f.name;
    set.emplace(p->id, std::move(*p));
  }
  return set;
}

}  // namespace

Result<PolicySet> LoadPolicyDirectory(const std::string& dir) {
  auto files = ReadPolicyFiles(dir);
  if (!files.ok()) return Error{files.error()};
  return ParseFiles(*files);
}

Status PolicyStore::Reload(bool* changed) {
  if (changed) *changed = false;
  std::lock_guard<std::mutex> reload(reload_mu_);
  auto files = ReadPolicyFiles(dir_);
  if (!files.ok()) return Error{files.error()};
  std::string all;
  for (const auto& f : *files) all += f.name + '\0' + std::to_string(f.text.size()) + '\0' + f.text;
  std::string fp = ToHex(ossl::Sha256(AsBytes(all)));
  {
    std::lock_guard<std::mutex> l(mu_);
    if (fp == fingerprint_) return OkStatus();
  }
  // Each file is parsed once per content: a refused file (say, an alias bomb) stays refused with
  // its remembered error until it changes, instead of being parsed again every reload.
  std::map<std::string, ParsedFile> parsed;
  PolicySet set;
  std::map<std::string, std::string> where;
  std::optional<Error> error;
  for (const auto& f : *files) {
    std::string digest = ToHex(ossl::Sha256(AsBytes(f.text)));
    auto cached = parsed_.find(f.name);
    if (cached != parsed_.end() && cached->second.digest == digest) {
      parsed.emplace(f.name, std::move(cached->second));
    } else {
      ++files_parsed_;
      parsed.emplace(f.name, ParsedFile{digest, ParsePolicy(f.text, f.name)});
    }
    if (error) continue;  // keep caching the rest
    const Result<Policy>& p = parsed.at(f.name).policy;
    if (!p.ok()) {
      error = Error{p.error()};
    } else if (where.count(p->id)) {
      error = Error{f.name + ": id " + p->id + " is also the id of " + where[p->id] +
                    "; policy ids must be unique"};
    } else {
      where[p->id] = f.name;
      set.emplace(p->id, *p);
    }
  }
  parsed_ = std::move(parsed);  // files gone from the directory are forgotten
  if (error) return *error;
  std::lock_guard<std::mutex> l(mu_);
  set_ = std::make_shared<const PolicySet>(std::move(set));
  fingerprint_ = fp;
  if (changed) *changed = true;
  return OkStatus();
}

std::shared_ptr<const PolicySet> PolicyStore::Get() const {
  std::lock_guard<std::mutex> l(mu_);
  return set_;
}

}  // namespace tdxvirt::service
