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
#include "common/document.h"
#include "common/result.h"

namespace tdxvirt::kubevirt {

using Json = nlohmann::json;

// The bounds (common/document.h), also under the names kubevirt code has always used.
using tdxvirt::kMaxDocumentBytes;
using tdxvirt::kMaxDocumentDepth;
using tdxvirt::kMaxDocumentNodes;
using tdxvirt::kMaxExpandedBytes;

// ParseBoundedDocument with the YAML 1.2 core schema (what kubectl users expect).
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
