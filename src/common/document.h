// Outside text (YAML or JSON: manifests, AdmissionReviews, settings, attestation policies) to one
// JSON value, bounded, so that no document can make the parser take unbounded memory or stack.
// YAML goes through yaml-cpp after the checks of common/yaml_guard.h.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tdxvirt {

// Bounds for every document read from outside: size, nesting depth, and total nodes (YAML
// aliases can otherwise expand exponentially: the "billion laughs" document).
inline constexpr size_t kMaxDocumentBytes = 4 << 20;
inline constexpr int kMaxDocumentDepth = 64;
inline constexpr size_t kMaxDocumentNodes = 200000;
// Text of all scalars and keys after YAML aliases are expanded: aliases repeat a long scalar for the
// cost of a few bytes each, so the node count alone does not bound memory.
inline constexpr size_t kMaxExpandedBytes = 4 * kMaxDocumentBytes;

// What an unquoted YAML scalar becomes. Documents differ: Kubernetes users expect the YAML 1.2 core
// schema, policies keep hex digests such as 0000000000000001 as strings.
using PlainScalarResolver = nlohmann::json (*)(const std::string& plain);
// YAML 1.2 core schema: null, true/false, integers, floats; anything else a string.
nlohmann::json ResolveCoreSchemaScalar(const std::string& plain);

// Parses one document: JSON when the first non-blank character is '{' or '[', YAML otherwise.
// A YAML stream must hold exactly one non-empty document (`---` separators are fine); duplicate
// keys are refused. `what` names the input in errors ("manifest", "settings", a policy file name).
Result<nlohmann::json> ParseBoundedDocument(std::string_view text, std::string_view what,
                                            PlainScalarResolver resolve = ResolveCoreSchemaScalar);

}  // namespace tdxvirt
