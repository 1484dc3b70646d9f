// Outside text (YAML or JSON: manifests, AdmissionReviews, settings) to one JSON value, bounded.
// YAML goes through yaml-cpp and is resolved with the YAML 1.2 core schema (what kubectl users
// expect: `true`, `1`, `null` are typed; quoted scalars stay strings).
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/base64.h"  // Base64Encode/Base64Decode, used with documents
#include "common/bytes.h"
#include "common/result.h"

namespace tdxvirt::kubevirt {

using Json = nlohmann::json;

// Bounds for every document read from outside: size, nesting depth, and total nodes (YAML
// aliases can otherwise expand exponentially: the "billion laughs" document).
inline constexpr size_t kMaxDocumentBytes = 4 << 20;
inline constexpr int kMaxDocumentDepth = 64;
inline constexpr size_t kMaxDocumentNodes = 200000;
// Text of all scalars and keys after YAML aliases are expanded: aliases repeat a long scalar for the
// cost of a few bytes each, so the node count alone does not bound memory.
inline constexpr size_t kMaxExpandedBytes = 4 * kMaxDocumentBytes;

// Parses one document: JSON when the first non-blank character is '{' or '[', YAML otherwise.
// A YAML stream must hold exactly one non-empty document (`---` separators are fine).
// `what` names the input in errors ("manifest", "settings").
Result<Json> ParseDocument(std::string_view text, std::string_view what);

// j[key] when j is an object and that member is a string, else "" (never throws, unlike
// Json::value on a member of another type).
inline std::string StringField(const Json& j, std::string_view key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// The member `key` of an object, or null (also when `j` is not an object).
const Json* Get(const Json& j, std::string_view key);
// Get along a path of keys: Path(vm, {"spec", "template", "spec"}).
const Json* Path(const Json& j, std::initializer_list<std::string_view> keys);

// "a/b~c" -> "a~1b~0c": a key as one JSON Pointer token (RFC 6901).
std::string PointerToken(std::string_view key);

}  // namespace tdxvirt::kubevirt
