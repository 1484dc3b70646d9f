#include "kbs/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

#include "common/base64.h"
#include "common/file.h"
#include "common/openssl.h"
#include "common/time.h"
#include "service/client.h"

namespace tdxvirt::kbs {
namespace {

constexpr size_t kMaxFileSize = 1 << 20;
constexpr size_t kMaxListed = 10000;
// Directory entries looked at per listing, whatever they are: a directory stuffed with other
// files cannot make a listing unbounded.
constexpr size_t kMaxScanned = 100000;

const char* const kKeyNotFound = "Key with specified id does not exist";
const char* const kPolicyNotFound = "Key transfer policy with specified id does not exist";

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Intel's route pattern (constant.UUIDReg): a version-4 UUID, either case.
bool IsUuidV4Text(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!IsHex(s[i])) {
      return false;
    }
  }
  char v = s[19];
  return s[14] == '4' && (v == '8' || v == '9' || v == 'a' || v == 'b' || v == 'A' || v == 'B');
}
bool IsLowerUuidV4(std::string_view s) {
  return IsUuidV4Text(s) && std::none_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'F'; });
}
std::string Lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'F') c = char(c - 'A' + 'a');
  return s;
}

struct Cleanse {
  Bytes& b;
  ~Cleanse() {
    if (!b.empty()) OPENSSL_cleanse(b.data(), b.size());
  }
};

int EcCurveBits(const std::string& curve) {
  if (curve == "prime256v1" || curve == "secp256r1") return 256;
  if (curve == "secp384r1") return 384;
  if (curve == "secp521r1") return 521;
  return 0;
}
// OpenSSL's group name for Intel's curve_type values.
std::string EcGroupName(const std::string& curve) { return curve == "secp256r1" ? "prime256v1" : curve; }

std::string GroupNameOf(EVP_PKEY* key) {
  char name[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1)
    return "";
  return std::string(name, len);
}

// The type-specific DER of a private key: PKCS#1 for RSA, SEC1 (with the curve's OID) for EC.
Result<Bytes> TypeSpecificDer(EVP_PKEY* key) {
  int n = i2d_PrivateKey(key, nullptr);
  if (n <= 0) return Error{"cannot encode the private key: " + ossl::LastError()};
  Bytes out(static_cast<size_t>(n));
  unsigned char* p = out.data();
  if (i2d_PrivateKey(key, &p) != n) {
    OPENSSL_cleanse(out.data(), out.size());
    return Error{"cannot encode the private key: " + ossl::LastError()};
  }
  return out;
}

// A private key given as DER (PKCS#1, SEC1 or PKCS#8) or PEM; never echoes the bytes.
ossl::PkeyPtr ParsePrivateKey(ByteSpan data) {
  std::string_view text = AsString(data);
  if (text.find("-----BEGIN") != std::string_view::npos) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(data.data(), int(data.size())), &BIO_free);
    ossl::PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    ERR_clear_error();
    return key;
  }
  const unsigned char* p = data.data();
  ossl::PkeyPtr key(d2i_AutoPrivateKey(nullptr, &p, long(data.size())));
  ERR_clear_error();
  if (key && p != data.data() + data.size()) return nullptr;  // trailing bytes
  return key;
}

// Validates `info` (key_information of a request, or of a stored file when `stored`) into `key`.
// Messages name the field and the fix, never the key's bytes.
Status ReadKeyInformation(const nlohmann::json& info, bool stored, KeyRecord& key) {
  const std::string f = "key_information";
  if (!info.is_object())
    return Error{f + " must be an object, e.g. {\"algorithm\": \"AES\", \"key_length\": 256}"};
  for (auto& [name, value] : info.items()) {
    (void)value;
    if (name == "kmip_key_id")
      return Error{f + ".kmip_key_id: KMIP is not supported by this broker; give key_data or let the "
                       "broker generate the key"};
    if (name != "algorithm" && name != "key_length" && name != "curve_type" && name != "key_data")
      return Error{f + ": unknown field \"" + name + "\" (allowed: algorithm, key_length, curve_type, key_data)"};
  }
  if (!info.contains("algorithm")) return Error{f + ".algorithm is missing; use \"AES\", \"RSA\" or \"EC\""};
  if (!info["algorithm"].is_string()) return Error{f + ".algorithm must be a string: \"AES\", \"RSA\" or \"EC\""};
  std::string algorithm = info["algorithm"].get<std::string>();
  for (auto& c : algorithm) c = char(std::toupper(static_cast<unsigned char>(c)));
  if (algorithm != "AES" && algorithm != "RSA" && algorithm != "EC")
    return Error{f + ".algorithm \"" + info["algorithm"].get<std::string>() +
                 "\" is not supported; use \"AES\", \"RSA\" or \"EC\""};
  key.algorithm = algorithm;

  int length = 0;
  if (info.contains("key_length")) {
    const auto& l = info["key_length"];
    if (!l.is_number_integer() || l.get<int64_t>() <= 0 || l.get<int64_t>() > 65536)
      return Error{f + ".key_length must be a positive integer (bits)"};
    length = int(l.get<int64_t>());
  }
  std::string curve;
  if (info.contains("curve_type")) {
    if (algorithm != "EC") return Error{f + ".curve_type is only for EC keys; leave it out"};
    if (!info["curve_type"].is_string()) return Error{f + ".curve_type must be a string"};
    curve = info["curve_type"].get<std::string>();
  }

  Bytes data;
  bool given = false;
  if (info.contains("key_data")) {
    if (!info["key_data"].is_string()) return Error{f + ".key_data must be a string (base64)"};
    auto decoded = Base64Decode(info["key_data"].get<std::string>(), f + ".key_data");
    if (!decoded.ok() || decoded->empty())
      return Error{f + ".key_data is not standard base64; give base64 of the raw AES key or of the "
                       "RSA/EC private key (DER or PEM)"};
    data = std::move(*decoded);
    given = true;
  } else if (stored) {
    return Error{f + ".key_data is missing"};
  }
  Cleanse cleanse{data};

  if (algorithm == "AES") {
    if (length == 0 && given) length = int(data.size() * 8);
    if (length == 0) return Error{f + ".key_length is missing; AES takes 128, 192 or 256"};
    if (length != 128 && length != 192 && length != 256)
      return Error{f + ".key_length " + std::to_string(length) + " is not supported for AES; use 128, 192 or 256"};
    if (given && data.size() * 8 != size_t(length))
      return Error{f + ".key_data is " + std::to_string(data.size()) + " bytes, key_length " +
                   std::to_string(length) + " needs " + std::to_string(length / 8) +
                   "; give base64 of the raw key"};
    key.key_length = length;
    key.curve_type.clear();
    if (given) key.key_data = data;
    return OkStatus();
  }

  if (algorithm == "EC") {
    if (curve.empty())
      return Error{f + ".curve_type is missing; EC takes \"prime256v1\" (or \"secp256r1\"), \"secp384r1\" or "
                       "\"secp521r1\""};
    int bits = EcCurveBits(curve);
    if (bits == 0)
      return Error{f + ".curve_type \"" + curve +
                   "\" is not supported; use \"prime256v1\" (or \"secp256r1\"), \"secp384r1\" or \"secp521r1\""};
    if (length != 0 && length != bits)
      return Error{f + ".key_length " + std::to_string(length) + " does not match curve_type " + curve + " (" +
                   std::to_string(bits) + " bits); leave key_length out"};
    key.key_length = length;
    key.curve_type = curve;
  } else {
    if (length == 0 && !given) return Error{f + ".key_length is missing; RSA takes 2048, 3072 or 4096"};
    if (length != 0 && length != 2048 && length != 3072 && length != 4096)
      return Error{f + ".key_length " + std::to_string(length) + " is not supported for RSA; use 2048, 3072 or 4096"};
    key.key_length = length;
    key.curve_type.clear();
  }
  if (!given) return OkStatus();

  ossl::PkeyPtr pkey = ParsePrivateKey(data);
  const int want = algorithm == "RSA" ? EVP_PKEY_RSA : EVP_PKEY_EC;
  if (!pkey || EVP_PKEY_get_base_id(pkey.get()) != want)
    return Error{f + ".key_data is not " + (algorithm == "RSA" ? std::string("an RSA") : std::string("an EC")) +
                 " private key; give base64 of its DER (" +
                 (algorithm == "RSA" ? "PKCS#1" : "SEC1") + " or PKCS#8) or PEM"};
  if (algorithm == "RSA") {
    int bits = EVP_PKEY_get_bits(pkey.get());
    if (key.key_length == 0) key.key_length = bits;
    if (bits != key.key_length)
      return Error{f + ".key_data is an RSA-" + std::to_string(bits) + " key, key_length says " +
                   std::to_string(key.key_length)};
    if (bits != 2048 && bits != 3072 && bits != 4096)
      return Error{f + ".key_data is an RSA-" + std::to_string(bits) + " key; use 2048, 3072 or 4096 bits"};
  } else {
    std::string group = GroupNameOf(pkey.get());
    if (group != EcGroupName(curve))
      return Error{f + ".key_data is a key on " + (group.empty() ? std::string("another curve") : group) +
                   ", curve_type says " + curve};
  }
  auto der = TypeSpecificDer(pkey.get());
  if (!der.ok()) return Error{f + ".key_data: " + der.error()};
  key.key_data = std::move(*der);
  return OkStatus();
}

Status Generate(KeyRecord& key) {
  if (key.algorithm == "AES") {
    key.key_data.assign(size_t(key.key_length / 8), 0);
    if (RAND_bytes(key.key_data.data(), int(key.key_data.size())) != 1)
      return Error{"cannot generate an AES key: " + ossl::LastError()};
    return OkStatus();
  }
  ossl::PkeyPtr pkey;
  if (key.algorithm == "RSA")
    pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t(key.key_length)));
  else
    pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", EcGroupName(key.curve_type).c_str()));
  if (!pkey) return Error{"cannot generate an " + key.algorithm + " key: " + ossl::LastError()};
  auto der = TypeSpecificDer(pkey.get());
  if (!der.ok()) return Error{der.error()};
  key.key_data = std::move(*der);
  return OkStatus();
}

nlohmann::json KeyInfoJson(const KeyRecord& key) {
  nlohmann::json info = {{"algorithm", key.algorithm}};
  if (key.key_length != 0) info["key_length"] = key.key_length;
  if (!key.curve_type.empty()) info["curve_type"] = key.curve_type;
  return info;
}

// The stored form of a key: the contract's file layout.
std::string KeyFileText(const KeyRecord& key) {
  nlohmann::json info = KeyInfoJson(key);
  info["key_data"] = Base64Encode(key.key_data);
  nlohmann::json j = {{"id", key.id},
                      {"key_information", info},
                      {"transfer_policy_id", key.transfer_policy_id},
                      {"created_at", key.created_at}};
  std::string text = j.dump(2) + "\n";
  std::string& secret = info["key_data"].get_ref<std::string&>();
  OPENSSL_cleanse(secret.data(), secret.size());
  return text;
}

// Parses a stored key file; errors never quote the file's contents (nlohmann's own messages do).
Status ParseKeyFile(ByteSpan text, KeyRecord& key) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error{"not a JSON object"};
  for (auto& [name, value] : j.items()) {
    (void)value;
    if (name != "id" && name != "key_information" && name != "transfer_policy_id" && name != "created_at")
      return Error{"unknown field \"" + name + "\" (allowed: id, key_information, transfer_policy_id, created_at)"};
  }
  for (const char* s : {"id", "transfer_policy_id", "created_at"})
    if (!j.contains(s) || !j[s].is_string()) return Error{std::string(s) + " is missing or not a string"};
  key.id = j["id"].get<std::string>();
  key.transfer_policy_id = Lower(j["transfer_policy_id"].get<std::string>());
  key.created_at = j["created_at"].get<std::string>();
  if (!IsUuidV4Text(key.transfer_policy_id)) return Error{"transfer_policy_id is not a version-4 UUID"};
  if (!ParseRfc3339(key.created_at).ok()) return Error{"created_at is not an RFC 3339 time"};
  if (!j.contains("key_information")) return Error{"key_information is missing"};
  auto st = ReadKeyInformation(j["key_information"], /*stored=*/true, key);
  if (!j["key_information"].is_null() && j["key_information"].contains("key_data")) {
    std::string& secret = j["key_information"]["key_data"].get_ref<std::string&>();
    OPENSSL_cleanse(secret.data(), secret.size());
  }
  return st;
}

enum class Kind { kKey, kPolicy };
const char* Prefix(Kind k) { return k == Kind::kKey ? "key-" : "policy-"; }

// "key-<uuid>.json" -> uuid; "" when the name does not claim the pattern. `claims` is set when the
// name looks like one (prefix and .json) without being a valid one.
std::string IdOfName(std::string_view name, Kind kind, bool& claims) {
  claims = false;
  std::string_view prefix = Prefix(kind);
  if (!name.starts_with(prefix) || !name.ends_with(".json")) return "";
  std::string_view id = name.substr(prefix.size(), name.size() - prefix.size() - 5);
  if (IsLowerUuidV4(id)) return std::string(id);
  claims = true;
  return "";
}

class DirectoryKeyStore final : public KeyStore {
 public:
  DirectoryKeyStore(std::string dir, bool writable, std::string read_only_why)
      : dir_(std::move(dir)), writable_(writable), read_only_why_(std::move(read_only_why)) {}

  StoreStatus GetKey(const std::string& id, KeyRecord& out) override {
    if (!IsUuidV4Text(id)) return {StoreError::kNotFound, kKeyNotFound};
    return ReadKey(Lower(id), out);
  }

  StoreStatus ListKeys(std::vector<KeyRecord>& out) override {
    out.clear();
    std::vector<std::string> ids;
    StoreStatus st = Scan(Kind::kKey, ids);
    std::vector<std::string> bad;
    if (!st.ok()) bad.push_back(st.message);
    for (auto& id : ids) {
      KeyRecord k;
      auto r = ReadKey(id, k);
      if (r.error == StoreError::kNotFound) continue;  // removed meanwhile
      if (!r.ok()) {
        bad.push_back(r.message);
        continue;
      }
      OPENSSL_cleanse(k.key_data.data(), k.key_data.size());
      k.key_data.clear();
      out.push_back(std::move(k));
    }
    return Joined(bad);
  }

  StoreStatus PutKey(const KeyRecord& key) override {
    if (auto ro = ReadOnly(); !ro.ok()) return ro;
    if (!IsLowerUuidV4(key.id))
      return {StoreError::kInvalid, "key id \"" + key.id + "\" is not a lower-case version-4 UUID"};
    // The record must read back: check it the way a stored file is checked.
    std::string text = KeyFileText(key);
    KeyRecord check;
    Status valid = ParseKeyFile(AsBytes(text), check);
    OPENSSL_cleanse(check.key_data.data(), check.key_data.size());
    if (!valid.ok()) {
      OPENSSL_cleanse(text.data(), text.size());
      return {StoreError::kInvalid, "key " + key.id + ": " + valid.error()};
    }
    std::lock_guard lock(mu_);
    if (!Exists(Path(Kind::kPolicy, key.transfer_policy_id))) {
      OPENSSL_cleanse(text.data(), text.size());
      return {StoreError::kInvalid, std::string(kPolicyNotFound) + " (transfer_policy_id " +
                                        key.transfer_policy_id + "); create the policy first"};
    }
    StoreStatus st = Write(Kind::kKey, key.id, text);
    OPENSSL_cleanse(text.data(), text.size());
    return st;
  }

  StoreStatus DeleteKey(const std::string& id) override {
    if (auto ro = ReadOnly(); !ro.ok()) return ro;
    if (!IsUuidV4Text(id)) return {StoreError::kNotFound, kKeyNotFound};
    std::lock_guard lock(mu_);
    return Remove(Kind::kKey, Lower(id), kKeyNotFound);
  }

  StoreStatus GetPolicy(const std::string& id, KeyTransferPolicy& out) override {
    if (!IsUuidV4Text(id)) return {StoreError::kNotFound, kPolicyNotFound};
    return ReadPolicy(Lower(id), out);
  }

  StoreStatus ListPolicies(std::vector<KeyTransferPolicy>& out) override {
    out.clear();
    std::vector<std::string> ids;
    StoreStatus st = Scan(Kind::kPolicy, ids);
    std::vector<std::string> bad;
    if (!st.ok()) bad.push_back(st.message);
    for (auto& id : ids) {
      KeyTransferPolicy p;
      auto r = ReadPolicy(id, p);
      if (r.error == StoreError::kNotFound) continue;
      if (!r.ok()) {
        bad.push_back(r.message);
        continue;
      }
      out.push_back(std::move(p));
    }
    return Joined(bad);
  }

  StoreStatus PutPolicy(const KeyTransferPolicy& policy) override {
    if (auto ro = ReadOnly(); !ro.ok()) return ro;
    if (!IsLowerUuidV4(policy.id))
      return {StoreError::kInvalid, "policy id \"" + policy.id + "\" is not a lower-case version-4 UUID"};
    std::string text = KeyTransferPolicyToJson(policy).dump(2) + "\n";
    auto check = ParseKeyTransferPolicy(text);
    if (!check.ok()) return {StoreError::kInvalid, "policy " + policy.id + ": " + check.error()};
    std::lock_guard lock(mu_);
    return Write(Kind::kPolicy, policy.id, text);
  }

  StoreStatus DeletePolicy(const std::string& id) override {
    if (auto ro = ReadOnly(); !ro.ok()) return ro;
    if (!IsUuidV4Text(id)) return {StoreError::kNotFound, kPolicyNotFound};
    const std::string lid = Lower(id);
    std::lock_guard lock(mu_);
    if (!Exists(Path(Kind::kPolicy, lid))) return {StoreError::kNotFound, kPolicyNotFound};
    std::vector<KeyRecord> keys;
    StoreStatus listed = ListKeys(keys);
    // A key file that cannot be read might refer to this policy: refuse rather than orphan it.
    if (!listed.ok())
      return {StoreError::kConflict, "cannot tell which keys use policy " + lid + " (" + listed.message +
                                         "); fix the key files first"};
    std::vector<std::string> users;
    for (auto& k : keys)
      if (k.transfer_policy_id == lid) users.push_back(k.id);
    if (!users.empty()) {
      std::string list;
      for (size_t i = 0; i < users.size() && i < 5; ++i) list += (i ? ", " : "") + users[i];
      if (users.size() > 5) list += ", ... (" + std::to_string(users.size()) + " keys)";
      return {StoreError::kConflict,
              "Key transfer policy is associated with keys: " + list + "; delete those keys first"};
    }
    return Remove(Kind::kPolicy, lid, kPolicyNotFound);
  }

  bool writable() const override { return writable_; }
  std::string Describe() const override { return "directory " + dir_ + (writable_ ? "" : " (read-only)"); }

 private:
  std::string Path(Kind kind, const std::string& id) const { return dir_ + "/" + Prefix(kind) + id + ".json"; }
  std::string Name(Kind kind, const std::string& id) const { return std::string(Prefix(kind)) + id + ".json"; }

  static bool Exists(const std::string& path) {
    struct stat st {};
    return lstat(path.c_str(), &st) == 0;
  }

  StoreStatus ReadOnly() const {
    if (writable_) return {};
    return {StoreError::kReadOnly,
            "key store " + dir_ + " is read-only (" + read_only_why_ +
                "): add or remove the key-<uuid>.json / policy-<uuid>.json file in the Secret it is "
                "mounted from, or serve a writable directory (without --store-read-only)"};
  }

  // Reads a file the directory names (following symbolic links, as a Secret mount's files are).
  StoreStatus ReadEntry(Kind kind, const std::string& id, Bytes& out) const {
    const std::string path = Path(kind, id);
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR)
        return {StoreError::kNotFound, kind == Kind::kKey ? kKeyNotFound : kPolicyNotFound};
      return {StoreError::kIo, "key store: cannot read " + path + ": " + std::strerror(errno)};
    }
    if (S_ISREG(st.st_mode) && size_t(st.st_size) > kMaxFileSize)
      return {StoreError::kInvalid, "key store: " + Name(kind, id) + " is larger than 1 MiB; fix or remove the file"};
    auto data = ReadRegularFile(path, kMaxFileSize, /*follow_symlinks=*/true);
    if (!data.ok()) return {StoreError::kInvalid, "key store: " + data.error() + "; fix or remove the file"};
    out = std::move(*data);
    return {};
  }

  StoreStatus ReadKey(const std::string& id, KeyRecord& out) const {
    Bytes data;
    if (auto st = ReadEntry(Kind::kKey, id, data); !st.ok()) return st;
    Cleanse cleanse{data};
    KeyRecord k;
    Status parsed = ParseKeyFile(data, k);
    if (!parsed.ok()) {
      OPENSSL_cleanse(k.key_data.data(), k.key_data.size());
      return {StoreError::kInvalid, "key store: " + Name(Kind::kKey, id) + ": " + parsed.error() +
                                        "; fix or remove the file"};
    }
    if (k.id != id) {
      OPENSSL_cleanse(k.key_data.data(), k.key_data.size());
      return {StoreError::kInvalid, "key store: " + Name(Kind::kKey, id) + ": id \"" + k.id +
                                        "\" differs from the file name; the id must be the name's uuid"};
    }
    out = std::move(k);
    return {};
  }

  StoreStatus ReadPolicy(const std::string& id, KeyTransferPolicy& out) const {
    Bytes data;
    if (auto st = ReadEntry(Kind::kPolicy, id, data); !st.ok()) return st;
    auto p = ParseKeyTransferPolicy(AsString(data));
    if (!p.ok())
      return {StoreError::kInvalid,
              "key store: " + Name(Kind::kPolicy, id) + ": " + p.error() + "; fix or remove the file"};
    if (p->id != id)
      return {StoreError::kInvalid, "key store: " + Name(Kind::kPolicy, id) + ": id \"" + p->id +
                                        "\" differs from the file name; the id must be the name's uuid"};
    out = std::move(*p);
    return {};
  }

  // The ids of the entries of one kind, sorted; entries that claim the pattern but are not valid
  // names are reported, other names (hidden files, ..data, README) are not looked at.
  StoreStatus Scan(Kind kind, std::vector<std::string>& ids) const {
    DIR* d = opendir(dir_.c_str());
    if (!d) return {StoreError::kIo, "key store: cannot list " + dir_ + ": " + std::strerror(errno)};
    std::vector<std::string> bad;
    size_t scanned = 0;
    bool truncated = false;
    while (dirent* e = readdir(d)) {
      if (++scanned > kMaxScanned) {
        truncated = true;
        break;
      }
      std::string_view name = e->d_name;
      if (name.starts_with(".")) continue;
      bool claims = false;
      std::string id = IdOfName(name, kind, claims);
      if (claims && bad.size() < 5) bad.push_back(std::string(name));
      if (!id.empty()) ids.push_back(std::move(id));
    }
    closedir(d);
    std::sort(ids.begin(), ids.end());
    std::vector<std::string> problems;
    if (ids.size() > kMaxListed) {
      ids.resize(kMaxListed);
      truncated = true;
    }
    if (truncated)
      problems.push_back("key store: " + dir_ + " holds too many entries; only the first " +
                         std::to_string(kMaxListed) + " " + (kind == Kind::kKey ? "keys" : "policies") +
                         " are listed");
    for (auto& b : bad)
      problems.push_back("key store: " + b + ": the name must be " + Prefix(kind) +
                         "<lower-case version-4 uuid>.json; rename or remove the file");
    return Joined(problems);
  }

  static StoreStatus Joined(const std::vector<std::string>& problems) {
    if (problems.empty()) return {};
    std::string m;
    for (size_t i = 0; i < problems.size(); ++i) m += (i ? "; " : "") + problems[i];
    return {StoreError::kInvalid, m};
  }

  StoreStatus Write(Kind kind, const std::string& id, const std::string& text) {
    const std::string path = Path(kind, id);
    // lstat: a symbolic link planted under the name is an existing entry, never written through.
    if (Exists(path))
      return {StoreError::kConflict, std::string(kind == Kind::kKey ? "key " : "policy ") + id + " exists (" +
                                         Name(kind, id) + "); delete it first or use another id"};
    Status st = WriteFileAtomic(path, AsBytes(text), 0600, /*replace_existing=*/false);
    if (!st.ok()) {
      if (Exists(path))
        return {StoreError::kConflict, std::string(kind == Kind::kKey ? "key " : "policy ") + id + " exists (" +
                                           Name(kind, id) + "); delete it first or use another id"};
      return {StoreError::kIo, "key store: " + st.error()};
    }
    return {};
  }

  StoreStatus Remove(Kind kind, const std::string& id, const char* not_found) {
    const std::string path = Path(kind, id);
    if (unlink(path.c_str()) != 0) {
      if (errno == ENOENT) return {StoreError::kNotFound, not_found};
      return {StoreError::kIo, "key store: cannot remove " + path + ": " + std::strerror(errno)};
    }
    if (auto st = FsyncDirectory(dir_); !st.ok()) return {StoreError::kIo, "key store: " + st.error()};
    return {};
  }

  const std::string dir_;
  const bool writable_;
  const std::string read_only_why_;
  std::mutex mu_;  // check-then-write sequences (a key's policy exists; a policy has no keys)
};

}  // namespace

nlohmann::json KeyToJson(const KeyRecord& key, const std::string& base_url) {
  std::string base = base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return {{"id", key.id},
          {"key_info", KeyInfoJson(key)},
          {"transfer_policy_id", key.transfer_policy_id},
          {"transfer_link", base + "/kbs/v1/keys/" + key.id + "/transfer"},
          {"created_at", key.created_at}};
}

Result<KeyRecord> NewKeyFromRequest(std::string_view json_text, int64_t now) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
  if (j.is_discarded()) return Error{"key request: not valid JSON"};
  if (!j.is_object())
    return Error{"key request: the body must be a JSON object {\"key_information\": {...}, "
                 "\"transfer_policy_id\": \"<uuid>\"}"};
  for (auto& [name, value] : j.items()) {
    (void)value;
    if (name != "key_information" && name != "transfer_policy_id")
      return Error{"key request: unknown field \"" + name + "\" (allowed: key_information, transfer_policy_id)"};
  }
  KeyRecord key;
  if (!j.contains("key_information"))
    return Error{"key_information is missing; give e.g. {\"algorithm\": \"AES\", \"key_length\": 256}"};
  Status info = ReadKeyInformation(j["key_information"], /*stored=*/false, key);
  if (j["key_information"].is_object() && j["key_information"].contains("key_data") &&
      j["key_information"]["key_data"].is_string()) {
    std::string& secret = j["key_information"]["key_data"].get_ref<std::string&>();
    OPENSSL_cleanse(secret.data(), secret.size());
  }
  if (!info.ok()) {
    OPENSSL_cleanse(key.key_data.data(), key.key_data.size());
    return Error{info.error()};
  }
  if (!j.contains("transfer_policy_id"))
    return Error{"transfer_policy_id is missing; create a key transfer policy (POST "
                 "/kbs/v1/key-transfer-policies) and give its id"};
  if (!j["transfer_policy_id"].is_string() || !IsUuidV4Text(j["transfer_policy_id"].get<std::string>()))
    return Error{"transfer_policy_id must be the id of a key transfer policy, a version-4 UUID "
                 "(xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx)"};
  key.transfer_policy_id = Lower(j["transfer_policy_id"].get<std::string>());
  if (key.key_data.empty()) {
    Status g = Generate(key);
    if (!g.ok()) return Error{g.error()};
  }
  key.id = service::RandomUuid();
  key.created_at = FormatRfc3339(now);
  return key;
}

Result<std::unique_ptr<KeyStore>> OpenDirectoryKeyStore(const std::string& dir, bool read_only) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0)
    return Error{"key store " + dir + ": " + std::strerror(errno) + "; create the directory or mount the Secret there"};
  if (!S_ISDIR(st.st_mode)) return Error{"key store " + dir + " is not a directory"};
  std::string why;
  struct stat data {};
  if (read_only) {
    why = "--store-read-only";
  } else if (lstat((dir + "/..data").c_str(), &data) == 0) {
    // kubelet's atomic-writer layout: a Secret or ConfigMap volume, rewritten by kubelet.
    why = "a Kubernetes Secret volume";
  } else if (access(dir.c_str(), W_OK | X_OK) != 0) {
    why = errno == EROFS ? "a read-only file system" : "not writable by this process";
  }
  std::string clean = dir;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  return std::unique_ptr<KeyStore>(new DirectoryKeyStore(clean, why.empty(), why));
}

}  // namespace tdxvirt::kbs
