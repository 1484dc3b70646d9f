#include "verify/tcb_info.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <set>
#include <stdexcept>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/hex.h"

namespace tdxvirt::verify {

namespace {

using nlohmann::json;

constexpr std::string_view kStatusNames[] = {
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
    "TDRelaunchAdvised",
    "TDRelaunchAdvisedConfigurationNeeded",
    "TCBNotSupported",
    "TDXModuleMismatch",
};

// Raised by the helpers below and caught at the public boundary, so each check is one line.
class FieldError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void Fail(const std::string& path, const std::string& problem) {
  throw FieldError(path + ": " + problem);
}

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// nlohmann's json::parse, rejecting a key repeated within one object (nlohmann keeps the last copy,
// rapidjson-based QVL the first: the two would read different documents).
json ParseStrict(std::string_view text, const std::string& root) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  json::parser_callback_t track = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text.begin(), text.end(), track);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a huge number
    std::string what = e.what();
    size_t bracket = what.find("] ");
    Fail(root,
         "not valid JSON: " + (bracket == std::string::npos ? what : what.substr(bracket + 2)));
  }
  if (!duplicate.empty())
    Fail(root, "key " + Quoted(duplicate) +
                   " appears twice in one object; a signed document must have one meaning");
  if (!doc.is_object()) Fail(root, std::string("expected a JSON object, got ") + doc.type_name());
  return doc;
}

const json* Find(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

const json& Get(const json& obj, const std::string& path, const char* key) {
  const json* v = Find(obj, key);
  if (!v) Fail(path + "." + key, "required member is missing");
  return *v;
}

void ExpectObject(const json& v, const std::string& path) {
  if (!v.is_object()) Fail(path, std::string("expected an object, got ") + v.type_name());
}

const json& Array(const json& v, const std::string& path) {
  if (!v.is_array()) Fail(path, std::string("expected an array, got ") + v.type_name());
  return v;
}

const json& NonEmptyArray(const json& v, const std::string& path) {
  if (Array(v, path).empty()) Fail(path, "expected at least one entry, got an empty array");
  return v;
}

std::string String(const json& v, const std::string& path) {
  if (!v.is_string()) Fail(path, std::string("expected a string, got ") + v.type_name());
  return v.get<std::string>();
}

int64_t Integer(const json& v, const std::string& path, int64_t min, int64_t max) {
  std::string range = std::to_string(min) + ".." + std::to_string(max);
  if (!v.is_number_integer())
    Fail(path, "expected an integer in " + range + ", got " +
                   (v.is_number_float() ? "a fractional number " + v.dump() : v.type_name()));
  bool in_range = v.is_number_unsigned()
                      ? v.get<uint64_t>() <= uint64_t(max) && int64_t(v.get<uint64_t>()) >= min
                      : v.get<int64_t>() >= min && v.get<int64_t>() <= max;
  if (!in_range) Fail(path, "expected an integer in " + range + ", got " + v.dump());
  return v.get<int64_t>();
}

// Strict hex: exactly 2*N digits of either case and nothing else (no "0x", no spaces).
template <size_t N>
ByteArray<N> Hex(const json& v, const std::string& path) {
  std::string text = String(v, path);
  bool digits_only = std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
  if (!digits_only) Fail(path, Quoted(text) + " is not hex; expected only 0-9, a-f, A-F");
  if (text.size() != 2 * N)
    Fail(path, "expected " + std::to_string(2 * N) + " hex digits (" + std::to_string(N) +
                   " bytes), got " + std::to_string(text.size()));
  auto bytes = FromHexFixed<N>(text, path);
  if (!bytes.ok()) Fail(path, bytes.error());
  return *bytes;
}

std::pair<std::string, int64_t> Date(const json& v, const std::string& path) {
  std::string text = String(v, path);
  auto t = ParseRfc3339(text);
  if (!t.ok()) Fail(path, t.error());
  return {text, *t};
}

TcbStatus Status(const json& v, const std::string& path, std::initializer_list<TcbStatus> allowed,
                 std::string_view context) {
  std::string text = String(v, path);
  auto status = ParseTcbStatus(text);
  if (!status.ok() || std::find(allowed.begin(), allowed.end(), *status) == allowed.end()) {
    std::string names;
    for (TcbStatus s : allowed)
      names += (names.empty() ? "" : ", ") + std::string(TcbStatusName(s));
    Fail(path, Quoted(text) + " is not a valid " + std::string(context) +
                   " status; expected one of " + names);
  }
  return *status;
}

// "advisoryIDs" is optional (absent from some levels and from older documents).
std::vector<std::string> AdvisoryIds(const json& level, const std::string& path) {
  std::vector<std::string> out;
  const json* ids = Find(level, "advisoryIDs");
  if (!ids) return out;
  std::string ids_path = path + ".advisoryIDs";
  for (size_t i = 0; i < Array(*ids, ids_path).size(); ++i)
    out.push_back(String((*ids)[i], ids_path + "[" + std::to_string(i) + "]"));
  return out;
}

std::array<uint8_t, 16> Components(const json& tcb, const std::string& path, const char* key) {
  std::string arr_path = path + "." + key;
  const json& arr = Array(Get(tcb, path, key), arr_path);
  if (arr.size() != 16) Fail(arr_path, "expected 16 entries, got " + std::to_string(arr.size()));
  std::array<uint8_t, 16> out{};
  for (size_t i = 0; i < 16; ++i) {
    std::string item = arr_path + "[" + std::to_string(i) + "]";
    ExpectObject(arr[i], item);
    out[i] = uint8_t(Integer(Get(arr[i], item, "svn"), item + ".svn", 0, 255));
    // Informational, but still type-checked as QVL does.
    for (const char* label : {"category", "type"})
      if (const json* s = Find(arr[i], label)) String(*s, item + "." + label);
  }
  return out;
}

TcbLevel ParseTcbLevel(const json& v, const std::string& path) {
  ExpectObject(v, path);
  TcbLevel level;
  const json& tcb = Get(v, path, "tcb");
  std::string tcb_path = path + ".tcb";
  ExpectObject(tcb, tcb_path);
  level.sgx_components = Components(tcb, tcb_path, "sgxtcbcomponents");
  level.pce_svn = uint16_t(Integer(Get(tcb, tcb_path, "pcesvn"), tcb_path + ".pcesvn", 0, 65535));
  level.tdx_components = Components(tcb, tcb_path, "tdxtcbcomponents");
  std::tie(level.tcb_date, level.tcb_date_unix) = Date(Get(v, path, "tcbDate"), path + ".tcbDate");
  level.status =
      Status(Get(v, path, "tcbStatus"), path + ".tcbStatus",
             {TcbStatus::kUpToDate, TcbStatus::kSWHardeningNeeded, TcbStatus::kConfigurationNeeded,
              TcbStatus::kConfigurationAndSWHardeningNeeded, TcbStatus::kOutOfDate,
              TcbStatus::kOutOfDateConfigurationNeeded, TcbStatus::kRevoked},
             "TCB level");
  level.advisory_ids = AdvisoryIds(v, path);
  return level;
}

// "tdxModule" (with_levels false) or one "tdxModuleIdentities" entry.
TdxModuleIdentity ParseModule(const json& v, const std::string& path, bool with_levels) {
  ExpectObject(v, path);
  TdxModuleIdentity m;
  if (with_levels) m.id = String(Get(v, path, "id"), path + ".id");
  m.mrsigner = Hex<48>(Get(v, path, "mrsigner"), path + ".mrsigner");
  m.attributes = Hex<8>(Get(v, path, "attributes"), path + ".attributes");
  m.attributes_mask = Hex<8>(Get(v, path, "attributesMask"), path + ".attributesMask");
  if (!with_levels) return m;

  std::string levels_path = path + ".tcbLevels";
  const json& levels = NonEmptyArray(Get(v, path, "tcbLevels"), levels_path);
  std::vector<size_t> json_index;
  for (size_t i = 0; i < levels.size(); ++i) {
    std::string lp = levels_path + "[" + std::to_string(i) + "]";
    ExpectObject(levels[i], lp);
    ModuleTcbLevel level;
    const json& tcb = Get(levels[i], lp, "tcb");
    ExpectObject(tcb, lp + ".tcb");
    level.isv_svn = uint8_t(Integer(Get(tcb, lp + ".tcb", "isvsvn"), lp + ".tcb.isvsvn", 0, 255));
    level.tcb_date = Date(Get(levels[i], lp, "tcbDate"), lp + ".tcbDate").first;
    level.status = Status(Get(levels[i], lp, "tcbStatus"), lp + ".tcbStatus",
                          {TcbStatus::kUpToDate, TcbStatus::kOutOfDate, TcbStatus::kRevoked},
                          "TDX module TCB level");
    level.advisory_ids = AdvisoryIds(levels[i], lp);
    for (size_t j = 0; j < m.tcb_levels.size(); ++j)
      if (m.tcb_levels[j].isv_svn == level.isv_svn)
        Fail(lp, "duplicates the isvsvn " + std::to_string(level.isv_svn) + " of tcbLevels[" +
                     std::to_string(json_index[j]) + "]; each module level needs its own isvsvn");
    m.tcb_levels.push_back(std::move(level));
    json_index.push_back(i);
  }
  std::stable_sort(
      m.tcb_levels.begin(), m.tcb_levels.end(),
      [](const ModuleTcbLevel& a, const ModuleTcbLevel& b) { return a.isv_svn > b.isv_svn; });
  return m;
}

auto LevelKey(const TcbLevel& l) { return std::tie(l.sgx_components, l.pce_svn, l.tdx_components); }

TcbInfo ParseTcbInfoDoc(std::string_view text) {
  const std::string root = "tcbInfo";
  json doc = ParseStrict(text, root);
  if (Find(doc, "tcbInfo") && !Find(doc, "id"))
    Fail(root,
         "this is a PCS response body; pass the exact text of its \"tcbInfo\" member "
         "(verify::ParsePcsSignedJson extracts it)");
  TcbInfo info;
  info.id = String(Get(doc, root, "id"), root + ".id");
  if (info.id != "TDX")
    Fail(root + ".id", "expected \"TDX\", got " + Quoted(info.id) +
                           "; TD quotes need the TDX TCB Info (/tdx/certification/v4/tcb)");
  info.version = int(
      Integer(Get(doc, root, "version"), root + ".version", 0, std::numeric_limits<int>::max()));
  if (info.version < 3)
    Fail(root + ".version", "expected 3 or later, got " + std::to_string(info.version) +
                                "; TDX TCB Info starts at version 3");
  info.issue_date = Date(Get(doc, root, "issueDate"), root + ".issueDate").second;
  info.next_update = Date(Get(doc, root, "nextUpdate"), root + ".nextUpdate").second;
  info.fmspc = Hex<6>(Get(doc, root, "fmspc"), root + ".fmspc");
  info.pce_id = Hex<2>(Get(doc, root, "pceId"), root + ".pceId");
  info.tcb_type = int(
      Integer(Get(doc, root, "tcbType"), root + ".tcbType", 0, std::numeric_limits<int>::max()));
  if (info.tcb_type != 0)
    Fail(root + ".tcbType",
         std::to_string(info.tcb_type) + " is not supported; Intel's QVL accepts only tcbType 0");
  info.tcb_evaluation_data_number =
      int(Integer(Get(doc, root, "tcbEvaluationDataNumber"), root + ".tcbEvaluationDataNumber", 0,
                  std::numeric_limits<int>::max()));
  info.tdx_module = ParseModule(Get(doc, root, "tdxModule"), root + ".tdxModule", false);
  if (const json* ids = Find(doc, "tdxModuleIdentities")) {
    std::string ids_path = root + ".tdxModuleIdentities";
    NonEmptyArray(*ids, ids_path);
    for (size_t i = 0; i < ids->size(); ++i)
      info.tdx_module_identities.push_back(
          ParseModule((*ids)[i], ids_path + "[" + std::to_string(i) + "]", true));
  }

  std::string levels_path = root + ".tcbLevels";
  const json& levels = NonEmptyArray(Get(doc, root, "tcbLevels"), levels_path);
  std::vector<std::pair<TcbLevel, size_t>> parsed;
  for (size_t i = 0; i < levels.size(); ++i)
    parsed.emplace_back(ParseTcbLevel(levels[i], levels_path + "[" + std::to_string(i) + "]"), i);
  std::stable_sort(parsed.begin(), parsed.end(), [](const auto& a, const auto& b) {
    return LevelKey(a.first) > LevelKey(b.first);
  });
  for (size_t i = 1; i < parsed.size(); ++i) {
    if (LevelKey(parsed[i].first) == LevelKey(parsed[i - 1].first)) {
      auto [first, second] = std::minmax(parsed[i - 1].second, parsed[i].second);
      Fail(levels_path + "[" + std::to_string(second) + "]",
           "has the same sgxtcbcomponents, pcesvn and tdxtcbcomponents as tcbLevels[" +
               std::to_string(first) + "]; Intel's QVL rejects duplicated TCB levels");
    }
  }
  for (auto& [level, index] : parsed) info.tcb_levels.push_back(std::move(level));
  return info;
}

EnclaveIdentity ParseQeIdentityDoc(std::string_view text) {
  const std::string root = "enclaveIdentity";
  json doc = ParseStrict(text, root);
  if (Find(doc, "enclaveIdentity") && !Find(doc, "id"))
    Fail(root,
         "this is a PCS response body; pass the exact text of its \"enclaveIdentity\" "
         "member (verify::ParsePcsSignedJson extracts it)");
  EnclaveIdentity qe;
  qe.id = String(Get(doc, root, "id"), root + ".id");
  if (qe.id != "TD_QE")
    Fail(root + ".id",
         "expected \"TD_QE\", got " + Quoted(qe.id) +
             "; TD quotes need the TD QE identity (/tdx/certification/v4/qe/identity)");
  qe.version = int(
      Integer(Get(doc, root, "version"), root + ".version", 0, std::numeric_limits<int>::max()));
  if (qe.version != 2 && qe.version != 3)
    Fail(root + ".version", "expected 2 (or 3), got " + std::to_string(qe.version) +
                                "; Intel's QVL rejects QE identity v1 for TDX");
  qe.issue_date = Date(Get(doc, root, "issueDate"), root + ".issueDate").second;
  qe.next_update = Date(Get(doc, root, "nextUpdate"), root + ".nextUpdate").second;
  qe.tcb_evaluation_data_number =
      int(Integer(Get(doc, root, "tcbEvaluationDataNumber"), root + ".tcbEvaluationDataNumber", 0,
                  std::numeric_limits<int>::max()));
  qe.miscselect = LoadLe32(Hex<4>(Get(doc, root, "miscselect"), root + ".miscselect").data());
  qe.miscselect_mask =
      LoadLe32(Hex<4>(Get(doc, root, "miscselectMask"), root + ".miscselectMask").data());
  qe.attributes = Hex<16>(Get(doc, root, "attributes"), root + ".attributes");
  qe.attributes_mask = Hex<16>(Get(doc, root, "attributesMask"), root + ".attributesMask");
  qe.mrsigner = Hex<32>(Get(doc, root, "mrsigner"), root + ".mrsigner");
  qe.isv_prod_id = uint16_t(Integer(Get(doc, root, "isvprodid"), root + ".isvprodid", 0, 65535));

  std::string levels_path = root + ".tcbLevels";
  const json& levels = NonEmptyArray(Get(doc, root, "tcbLevels"), levels_path);
  for (size_t i = 0; i < levels.size(); ++i) {
    std::string lp = levels_path + "[" + std::to_string(i) + "]";
    ExpectObject(levels[i], lp);
    QeTcbLevel level;
    const json& tcb = Get(levels[i], lp, "tcb");
    ExpectObject(tcb, lp + ".tcb");
    level.isv_svn =
        uint16_t(Integer(Get(tcb, lp + ".tcb", "isvsvn"), lp + ".tcb.isvsvn", 0, 65535));
    level.tcb_date = Date(Get(levels[i], lp, "tcbDate"), lp + ".tcbDate").first;
    level.status =
        Status(Get(levels[i], lp, "tcbStatus"), lp + ".tcbStatus",
               {TcbStatus::kUpToDate, TcbStatus::kConfigurationNeeded, TcbStatus::kOutOfDate,
                TcbStatus::kOutOfDateConfigurationNeeded, TcbStatus::kRevoked},
               "QE identity TCB level");
    level.advisory_ids = AdvisoryIds(levels[i], lp);
    qe.tcb_levels.push_back(std::move(level));
  }
  return qe;
}

}  // namespace

std::string_view TcbStatusName(TcbStatus status) {
  size_t i = size_t(status);
  return i < std::size(kStatusNames) ? kStatusNames[i] : std::string_view("Unknown");
}

Result<TcbStatus> ParseTcbStatus(std::string_view name) {
  for (size_t i = 0; i < std::size(kStatusNames); ++i)
    if (kStatusNames[i] == name) return TcbStatus(i);
  return Error{
      "unknown TCB status " + Quoted(name) +
      "; expected e.g. UpToDate, SWHardeningNeeded, ConfigurationNeeded, OutOfDate, Revoked"};
}

Result<TcbInfo> ParseTcbInfo(std::string_view json_text) {
  try {
    return ParseTcbInfoDoc(json_text);
  } catch (const FieldError& e) {
    return Error{e.what()};
  }
}

Result<EnclaveIdentity> ParseQeIdentity(std::string_view json_text) {
  try {
    return ParseQeIdentityDoc(json_text);
  } catch (const FieldError& e) {
    return Error{e.what()};
  }
}

}  // namespace tdxvirt::verify
