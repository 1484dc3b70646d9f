// Where the broker's keys and key transfer policies live. The broker only needs the small
// KeyStore interface, so another store (a KMS, Vault, KMIP as Intel's KBS offers) is one class.
//
// The embedded default is a directory of JSON files, one per key and one per policy, because a
// Kubernetes Secret mounted as a volume is exactly that: `key-<uuid>.json`, `policy-<uuid>.json`.
// A Secret mount is read-only and its files are symlinks into `..data`, so reads follow symlinks
// and the admin API answers 409 on such a store ("read-only: edit the Secret"). A writable
// directory (an emptyDir, a PVC, a developer's disk) gets files created 0600 with
// O_EXCL|O_NOFOLLOW and renamed into place, so a crash never leaves a partial key.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/result.h"
#include "kbs/policy.h"

namespace tdxvirt::kbs {

// Intel's key model (model/key.go): key_information {algorithm, key_length, curve_type}.
struct KeyRecord {
  std::string id;                  // version-4 UUID
  std::string algorithm;           // "AES" | "RSA" | "EC"
  int key_length = 0;              // AES 128/192/256, RSA 2048/3072/4096
  std::string curve_type;          // EC: "prime256v1" | "secp384r1"
  std::string transfer_policy_id;  // UUID of a stored policy
  std::string created_at;          // RFC 3339
  Bytes key_data;                  // the secret: raw AES key, PKCS#1 DER (RSA), SEC1 DER (EC)
};
// Intel's KeyResponse without the secret: {id, key_info{algorithm,key_length,curve_type?},
// transfer_policy_id, transfer_link, created_at}. `base_url` builds the transfer_link.
nlohmann::json KeyToJson(const KeyRecord& key, const std::string& base_url);

// Intel's POST /keys body {"key_information": {...}, "transfer_policy_id"}: validated (errors name
// the field), the id and created_at filled, and key_data generated (random AES key, RSA/EC key
// pair by OpenSSL) unless given ("key_data": base64 of the raw key, PKCS#1 or SEC1 DER).
Result<KeyRecord> NewKeyFromRequest(std::string_view json_text, int64_t now);

enum class StoreError { kNone, kNotFound, kConflict, kReadOnly, kInvalid, kIo };
struct StoreStatus {
  StoreError error = StoreError::kNone;
  std::string message;  // names the id or file and the fix; never key bytes
  bool ok() const { return error == StoreError::kNone; }
};

class KeyStore {
 public:
  virtual ~KeyStore() = default;
  // Every call is thread-safe and reads the current state (a Secret update shows up without a
  // restart). Malformed entries are reported by id and file, never with their contents.
  virtual StoreStatus GetKey(const std::string& id, KeyRecord& out) = 0;
  virtual StoreStatus ListKeys(std::vector<KeyRecord>& out) = 0;  // key_data left empty
  virtual StoreStatus PutKey(const KeyRecord& key) = 0;           // kConflict if the id exists
  virtual StoreStatus DeleteKey(const std::string& id) = 0;
  virtual StoreStatus GetPolicy(const std::string& id, KeyTransferPolicy& out) = 0;
  virtual StoreStatus ListPolicies(std::vector<KeyTransferPolicy>& out) = 0;
  virtual StoreStatus PutPolicy(const KeyTransferPolicy& policy) = 0;
  // kConflict while a key refers to it (as Intel's KBS refuses).
  virtual StoreStatus DeletePolicy(const std::string& id) = 0;
  virtual bool writable() const = 0;
  virtual std::string Describe() const = 0;  // "directory /etc/tdxvirt/kbs (read-only)"
};

// Opens DIR (must exist). Writable unless the directory is not writable to this process or
// `read_only` is set. Files larger than 1 MiB, or names other than the two patterns, are ignored
// with a reason in ListKeys/ListPolicies errors only when they claim a pattern.
Result<std::unique_ptr<KeyStore>> OpenDirectoryKeyStore(const std::string& dir, bool read_only = false);

}  // namespace tdxvirt::kbs
