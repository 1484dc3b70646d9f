// Key transfer policies, in Intel KBS's model (model/key_transfer_policy.go; reference
// key-broker.md §1.4), and their evaluation against a verified attestation token.
//
// Intel's TDX policy has no MRCONFIGID, debug, TCB-status list or measured-boot fields; a TD owner
// needs them (the disk key must go to *their* configuration, never to a debug TD). They are added
// under the same "attributes" object, so every Intel policy parses unchanged and means the same,
// except that a debug TD is refused unless `allow_debug` is true (Intel does not look).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace tdxvirt::kbs {

struct TdxAttributes {
  // Intel's fields: lists match by exact (case-sensitive) membership, the rest by equality; a
  // field left out is not checked.
  std::vector<std::string> mrsignerseam, mrseam, mrtd;  // 96 hex each
  std::optional<uint16_t> seamsvn;                      // major * 256 + minor
  std::array<std::optional<std::string>, 4> rtmr;       // rtmr0..rtmr3, 96 hex
  // true: attester_tcb_status must be up to date ("UpToDate", as real tokens say, or Intel KBS's "OK").
  std::optional<bool> enforce_tcb_upto_date;

  // tdxvirt's fields, checked even when policy_ids decide (Intel then skips its own attributes).
  std::vector<std::string> mrconfigid;   // 96 hex each
  bool allow_debug = false;              // a debug TD's memory is readable by the host
  std::vector<std::string> tcb_status;   // allowed attester_tcb_status values; empty = any
  // Pins on the token's tdx_measured_boot claim (docs/service.md): "kernel_digest", "initrd_digest",
  // "cmdline_digest" (lists of 96 hex), "secure_boot" (bool), "rtmr_verdicts" ({"rtmr1":"match"}).
  // A pinned value counts only if its register's verdict is "match". Empty object = none.
  nlohmann::json measured_boot = nlohmann::json::object();
};

struct KeyTransferPolicy {
  std::string id;              // version-4 UUID (set by the store when created)
  std::string created_at;      // RFC 3339, as Intel returns it
  std::string attestation_type = "TDX";  // only TDX is served
  TdxAttributes attributes;
  std::vector<std::string> policy_ids;  // Trust Authority policy UUIDs
};

// Intel's create-time validation (hex fields ^[a-fA-F0-9]{96}$, UUIDs, types, unknown fields
// refused) plus ours. Errors name the field ("tdx.attributes.mrtd[1]") and the fix. `id` and
// `created_at` are read when present (the store's files carry them).
Result<KeyTransferPolicy> ParseKeyTransferPolicy(std::string_view json_text);
// The stored and returned form: Intel's JSON with id and created_at.
nlohmann::json KeyTransferPolicyToJson(const KeyTransferPolicy& policy);

// The claims a policy reads, from a verified token: flat (v1, Intel KBS's model) or v2 (under
// "tdx", lifted as Intel's newer KBS does). Type errors name the claim (Intel answers 401).
struct TokenClaims {
  std::string attester_type;  // "TDX"
  std::string tdx_mrsignerseam, tdx_mrseam, tdx_mrtd, tdx_mrconfigid;
  std::array<std::string, 4> tdx_rtmr;
  std::optional<uint16_t> tdx_seamsvn;
  std::string attester_tcb_status;
  bool debug = false;  // tdx_td_attributes_debug or tdx_is_debuggable or dbgstat != "disabled"
  std::vector<std::string> policy_ids_matched;  // ids of policy_ids_matched[] (lower case)
  // The claim is present (even as []): Intel's rule then lets policy_ids alone decide its part.
  bool has_policy_ids_matched = false;
  std::string attester_held_data;               // base64: the TD's public key
  nlohmann::json measured_boot;                 // tdx_measured_boot, null when absent
  std::string jti;
  int64_t exp = 0, iat = 0;
};
Result<TokenClaims> ClaimsFromToken(const nlohmann::json& claims);

struct PolicyDecision {
  bool allowed = false;
  bool by_policy_ids = false;        // a matched Trust Authority policy id decided Intel's part
  std::vector<std::string> reasons;  // one per failed check: "mrtd: token has <hex>, policy allows [...]"
};
PolicyDecision EvaluatePolicy(const KeyTransferPolicy& policy, const TokenClaims& claims);

}  // namespace tdxvirt::kbs
