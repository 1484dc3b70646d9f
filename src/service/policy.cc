#include "service/policy.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <regex>

#include "common/file.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "common/utf8.h"
#include "common/yaml_guard.h"
#include "verify/tcb_info.h"

namespace tdxvirt::service {

namespace {

// YAML to JSON: plain scalars that read as booleans or integers become those, the rest strings.
Result<nlohmann::json> YamlToJson(const YAML::Node& n, int depth = 0) {
  if (depth > 16) return Error{"nested deeper than 16 levels"};
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nlohmann::json();
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      // JSON strings must be UTF-8 (dump() throws otherwise); YAML passes raw bytes through.
      if (FirstInvalidUtf8(s))
        return Error{"line " + std::to_string(n.Mark().line + 1) + ": not valid UTF-8; save the file as UTF-8"};
      if (n.Tag() != "!") {  // not quoted
        if (s == "true" || s == "True" || s == "TRUE") return nlohmann::json(true);
        if (s == "false" || s == "False" || s == "FALSE") return nlohmann::json(false);
        if (!s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos)
          return nlohmann::json(uint64_t(std::stoull(s)));
      }
      return nlohmann::json(s);
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& e : n) {
        auto v = YamlToJson(e, depth + 1);
        if (!v.ok()) return v;
        a.push_back(std::move(*v));
      }
      return a;
    }
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) return Error{"keys must be scalars"};
        if (FirstInvalidUtf8(kv.first.Scalar()))
          return Error{"line " + std::to_string(kv.first.Mark().line + 1) + ": not valid UTF-8; save the file as UTF-8"};
        auto v = YamlToJson(kv.second, depth + 1);
        if (!v.ok()) return v;
        o[kv.first.Scalar()] = std::move(*v);
      }
      return o;
    }
  }
  return nlohmann::json();
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

uint32_t SeamSvn(const evidence::TeeTcbSvn& svn) { return uint32_t(svn[1]) << 8 | svn[0]; }

Result<Policy> ParsePolicy(std::string_view text, std::string_view source) {
  std::string src(source);
  auto fail = [&](const std::string& m) { return Error{src + ": " + m}; };
  if (text.size() > (1 << 20)) return fail("larger than 1 MiB");
  size_t first = text.find_first_not_of(" \t\r\n");
  nlohmann::json j;
  if (first != std::string_view::npos && text[first] == '{') {
    j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) return fail("not valid JSON");
  } else {
    if (Status guard = CheckYamlBlockCommas(text, "not valid YAML"); !guard.ok()) return fail(guard.error());
    try {
      auto y = YamlToJson(YAML::Load(std::string(text)));
      if (!y.ok()) return fail(y.error());
      j = std::move(*y);
    } catch (const YAML::Exception& e) {
      return fail(std::string("not valid YAML: ") + e.what());
    }
  }
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
      static const std::regex kId("^[A-Za-z0-9._-]{1,128}$");
      if (!std::regex_match(*s, kId)) return fail("id: use 1..128 of A-Z a-z 0-9 . _ -");
      p.id = *s;
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
    } else {
      return fail("unknown key \"" + k +
                  "\" (known: id, version, description, tcb_status, mrtd, rtmr0..rtmr3, "
                  "mrconfigid, mrowner, mrownerconfig, xfam, td_attributes, allow_debug, "
                  "min_tee_tcb_svn, min_seam_svn)");
    }
  }
  if (p.id.empty()) return fail("id: missing; every policy needs the id that policy_ids name");
  p.hash = ToHex(ossl::Sha384(AsBytes(text)));
  return p;
}

nlohmann::ordered_json PolicyToJson(const Policy& p) {
  nlohmann::ordered_json j;
  j["id"] = p.id;
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
  return j;
}

std::vector<std::string> EvaluatePolicy(const Policy& p, const evidence::TdQuoteBody& body,
                                        std::string_view tcb_status) {
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
    auto text = ReadFile(e.path().string(), 1 << 20);
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
  auto files = ReadPolicyFiles(dir_);
  if (!files.ok()) return Error{files.error()};
  std::string all;
  for (const auto& f : *files) all += f.name + '\0' + std::to_string(f.text.size()) + '\0' + f.text;
  std::string fp = ToHex(ossl::Sha256(AsBytes(all)));
  {
    std::lock_guard<std::mutex> l(mu_);
    if (fp == fingerprint_) return OkStatus();
  }
  auto set = ParseFiles(*files);
  if (!set.ok()) return Error{set.error()};
  std::lock_guard<std::mutex> l(mu_);
  set_ = std::make_shared<const PolicySet>(std::move(*set));
  fingerprint_ = fp;
  if (changed) *changed = true;
  return OkStatus();
}

std::shared_ptr<const PolicySet> PolicyStore::Get() const {
  std::lock_guard<std::mutex> l(mu_);
  return set_;
}

}  // namespace tdxvirt::service
