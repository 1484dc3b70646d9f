#include "common/document.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <optional>
#include <regex>

#include "common/utf8.h"
#include "common/yaml_guard.h"

namespace tdxvirt {

using Json = nlohmann::json;

namespace {

// yaml-cpp recurses per nesting level while parsing, so nesting is bounded before it sees the
// text: flow brackets, and block nesting (indentation plus compact "- - -" markers).
Status CheckNesting(std::string_view text, std::string_view what) {
  int flow = 0;
  bool in_single = false, in_double = false, comment = false;
  size_t line_start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    char c = i < text.size() ? text[i] : '\n';
    if (c == '\n') {
      std::string_view line = text.substr(line_start, i - line_start);
      size_t indent = line.find_first_not_of(' ');
      if (indent != std::string_view::npos) {
        size_t depth = indent;
        size_t p = indent;
        while (p + 1 < line.size() && (line[p] == '-' || line[p] == '?') && line[p + 1] == ' ') {
          depth += 2;
          p += 2;
          while (p < line.size() && line[p] == ' ') ++p;
        }
        if (depth > 2 * size_t(kMaxDocumentDepth) * 4)
          return Error{std::string(what) + ": nesting deeper than the limit at byte " +
                       std::to_string(line_start) + "; flatten the document"};
      }
      line_start = i + 1;
      comment = false;
      in_single = in_double = false;
      continue;
    }
    if (comment) continue;
    if (in_double) {
      if (c == '\\') ++i;
      else if (c == '"') in_double = false;
      continue;
    }
    if (in_single) {
      if (c == '\'') in_single = false;
      continue;
    }
    if (c == '#') comment = true;
    else if (c == '"') in_double = true;
    else if (c == '\'') in_single = true;
    else if (c == '[' || c == '{') {
      if (++flow > kMaxDocumentDepth)
        return Error{std::string(what) + ": nesting deeper than " +
                     std::to_string(kMaxDocumentDepth) + " levels at byte " + std::to_string(i)};
    } else if (c == ']' || c == '}') {
      if (flow > 0) --flow;
    }
  }
  return OkStatus();
}

}  // namespace

Json ResolveCoreSchemaScalar(const std::string& s) {
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.size() <= 40 && std::regex_match(s, kInt)) {
    try {
      size_t used = 0;
      long long v = std::stoll(s, &used, 10);
      if (used == s.size()) return v;
    } catch (const std::exception&) {
    }
    return s;
  }
  if (s.size() <= 64 && std::regex_match(s, kFloat)) {
    try {
      double d = std::stod(s);
      if (std::isfinite(d)) return d;
    } catch (const std::exception&) {
    }
  }
  return s;
}

namespace {

struct Converter {
  std::string what;
  PlainScalarResolver resolve;
  size_t nodes = 0;
  size_t bytes = 0;  // scalar and key text converted so far, aliases expanded

  Status Count(const std::string& text) {
    bytes += text.size();
    if (bytes <= kMaxExpandedBytes) return OkStatus();
    return Error{what + ": YAML aliases expand to more than " + std::to_string(kMaxExpandedBytes >> 20) +
                 " MiB of text; give a smaller document"};
  }

  // JSON strings must be UTF-8 (dump() throws otherwise); YAML passes raw bytes and escapes through.
  Status CheckUtf8(const std::string& s, const YAML::Node& n) const {
    if (!FirstInvalidUtf8(s)) return OkStatus();
    return Error{what + ": line " + std::to_string(n.Mark().line + 1) + ", column " +
                 std::to_string(n.Mark().column + 1) + ": not valid UTF-8; save the document as UTF-8"};
  }

  Result<Json> Convert(const YAML::Node& n, int depth) {
    if (++nodes > kMaxDocumentNodes)
      return Error{what + ": more than " + std::to_string(kMaxDocumentNodes) +
                   " nodes (YAML aliases expand); give a smaller document"};
    if (depth > kMaxDocumentDepth)
      return Error{what + ": nesting deeper than " + std::to_string(kMaxDocumentDepth) + " levels"};
    switch (n.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return Json(nullptr);
      case YAML::NodeType::Scalar: {
        const std::string& tag = n.Tag();
        const std::string& s = n.Scalar();
        if (auto s_ok = CheckUtf8(s, n); !s_ok.ok()) return Error{s_ok.error()};
        if (auto c = Count(s); !c.ok()) return Error{c.error()};
        if (tag == "!" || tag == "tag:yaml.org,2002:str") return Json(s);
        return resolve(s);
      }
      case YAML::NodeType::Sequence: {
        Json out = Json::array();
        for (const auto& item : n) {
          auto v = Convert(item, depth + 1);
          if (!v.ok()) return v;
          out.push_back(std::move(*v));
        }
        return out;
      }
      case YAML::NodeType::Map: {
        Json out = Json::object();
        for (const auto& kv : n) {
          if (!kv.first.IsScalar())
            return Error{what + ": a mapping key at line " + std::to_string(kv.first.Mark().line + 1) +
                         " is not a plain string"};
          std::string key = kv.first.Scalar();
          if (auto k_ok = CheckUtf8(key, kv.first); !k_ok.ok()) return Error{k_ok.error()};
          if (auto c = Count(key); !c.ok()) return Error{c.error()};
          if (out.contains(key))
            return Error{what + ": duplicate key \"" + key + "\" at line " +
                         std::to_string(kv.first.Mark().line + 1)};
          auto v = Convert(kv.second, depth + 1);
          if (!v.ok()) return v;
          out[key] = std::move(*v);
        }
        return out;
      }
    }
    return Json(nullptr);
  }
};

int JsonDepth(const Json& j, int depth) {
  if (depth > kMaxDocumentDepth) return depth;
  int best = depth;
  if (j.is_structured())
    for (const auto& v : j) best = std::max(best, JsonDepth(v, depth + 1));
  return best;
}

}  // namespace

Result<Json> ParseBoundedDocument(std::string_view text, std::string_view what_view,
                                  PlainScalarResolver resolve) {
  std::string what(what_view);
  if (text.size() > kMaxDocumentBytes)
    return Error{what + ": " + std::to_string(text.size()) + " bytes, over the limit of " +
                 std::to_string(kMaxDocumentBytes)};
  if (text.find('\0') != std::string_view::npos)
    return Error{what + ": contains a NUL byte; give YAML or JSON text"};
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return Error{what + ": empty; give a YAML or JSON document"};
  if (auto s = CheckNesting(text, what); !s.ok()) return Error{s.error()};
  if (text[first] == '{' || text[first] == '[') {
    Json j = Json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded()) {
      // Fall through to YAML only for flow-style YAML; report JSON errors precisely.
      try {
        Json again = Json::parse(text.begin(), text.end());
        (void)again;
      } catch (const Json::parse_error& e) {
        return Error{what + ": not valid JSON: " + e.what()};
      }
      return Error{what + ": not valid JSON"};
    }
    if (JsonDepth(j, 0) > kMaxDocumentDepth)
      return Error{what + ": nesting deeper than " + std::to_string(kMaxDocumentDepth) + " levels"};
    return j;
  }
  if (auto s = CheckYamlBlockCommas(text, what); !s.ok()) return Error{s.error()};
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return Error{what + ": not valid YAML: line " + std::to_string(e.mark.line + 1) + ", column " +
                 std::to_string(e.mark.column + 1) + ": " + e.msg};
  }
  Converter conv{what, resolve};
  std::optional<Json> found;
  int count = 0;
  for (const auto& d : docs) {
    if (d.IsNull()) continue;
    ++count;
    if (count > 1)
      return Error{what + ": holds more than one YAML document; give one (split it at ---)"};
    try {
      auto j = conv.Convert(d, 0);
      if (!j.ok()) return Error{j.error()};
      found = std::move(*j);
    } catch (const YAML::Exception& e) {
      return Error{what + ": not valid YAML: " + e.msg};
    }
  }
  if (!found) return Error{what + ": holds no YAML document"};
  return *found;
}

}  // namespace tdxvirt
