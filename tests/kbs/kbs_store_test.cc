// The key store: Intel's POST /keys body (validation messages, generated keys parsed back with
// OpenSSL), and the directory store (round trips, 0600 files, a planted symbolic link never written
// through, a Secret mount's symlink layout read and refused for writes, conflicts, malformed files
// named without their contents).
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/base64.h"
#include "common/openssl.h"
#include "common/time.h"
#include "kbs/store.h"
#include "test_util.h"

namespace tdxvirt::kbs {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::WriteFile;

const std::string kPolicyId = "4110594b-a753-4457-9d7f-3e52b62f2ed8";
const std::string kKeyId = "7110194b-a703-4657-9d7f-3e02b62f2ed8";
constexpr int64_t kNow = 1735689600;  // 2025-01-01T00:00:00Z

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

KeyTransferPolicy Policy(const std::string& id = kPolicyId) {
  KeyTransferPolicy p;
  p.id = id;
  p.created_at = "2025-01-01T00:00:00Z";
  p.attributes.mrtd = {std::string(96, 'a')};
  p.attributes.allow_debug = false;
  return p;
}

KeyRecord AesKey(const std::string& id = kKeyId) {
  KeyRecord k;
  k.id = id;
  k.algorithm = "AES";
  k.key_length = 256;
  k.transfer_policy_id = kPolicyId;
  k.created_at = "2025-01-01T00:00:00Z";
  for (int i = 0; i < 32; ++i) k.key_data.push_back(uint8_t(0xa0 + i));
  return k;
}

std::unique_ptr<KeyStore> Open(const std::string& dir, bool read_only = false) {
  auto s = OpenDirectoryKeyStore(dir, read_only);
  EXPECT_TRUE(s.ok()) << s.error();
  return s.ok() ? std::move(*s) : nullptr;
}

// Length of the DER header of the outer SEQUENCE.
size_t SeqHeader(const Bytes& der) { return der[1] < 0x80 ? 2 : 2 + (der[1] & 0x7f); }

// ---- the request ----

std::string Request(const std::string& info, const std::string& policy = "\"" + kPolicyId + "\"") {
  return R"({"key_information": )" + info + R"(, "transfer_policy_id": )" + policy + "}";
}

TEST(NewKeyFromRequestTest, GeneratesAesKeysOfEachLength) {
  for (int bits : {128, 192, 256}) {
    auto k = NewKeyFromRequest(Request(R"({"algorithm": "AES", "key_length": )" + std::to_string(bits) + "}"), kNow);
    ASSERT_TRUE(k.ok()) << k.error();
    EXPECT_EQ(k->algorithm, "AES");
    EXPECT_EQ(k->key_length, bits);
    EXPECT_EQ(k->key_data.size(), size_t(bits / 8));
    EXPECT_NE(k->key_data, Bytes(size_t(bits / 8), 0));
    EXPECT_EQ(k->created_at, "2025-01-01T00:00:00Z");
    EXPECT_EQ(k->transfer_policy_id, kPolicyId);
    EXPECT_EQ(k->id.size(), 36u);
    EXPECT_EQ(k->id[14], '4');
  }
  // Intel accepts the lower-case spelling; the stored name is the upper-case one. Ids compare in lower case.
  auto k = NewKeyFromRequest(Request(R"({"algorithm": "aes", "key_length": 128})", "\"4110594B-A753-4457-9D7F-3E52B62F2ED8\""), kNow);
  ASSERT_TRUE(k.ok()) << k.error();
  EXPECT_EQ(k->algorithm, "AES");
  EXPECT_EQ(k->transfer_policy_id, kPolicyId);
  auto a = NewKeyFromRequest(Request(R"({"algorithm": "AES", "key_length": 256})"), kNow);
  auto b = NewKeyFromRequest(Request(R"({"algorithm": "AES", "key_length": 256})"), kNow);
  EXPECT_NE(a->key_data, b->key_data);
  EXPECT_NE(a->id, b->id);
}

TEST(NewKeyFromRequestTest, GeneratesRsaAsPkcs1Der) {
  auto k = NewKeyFromRequest(Request(R"({"algorithm": "RSA", "key_length": 2048})"), kNow);
  ASSERT_TRUE(k.ok()) << k.error();
  const Bytes& der = k->key_data;
  // RSAPrivateKey ::= SEQUENCE { version INTEGER 0, modulus INTEGER, ... } (PKCS#8 would have an
  // AlgorithmIdentifier SEQUENCE after the version).
  size_t h = SeqHeader(der);
  ASSERT_GT(der.size(), h + 4);
  EXPECT_EQ(der[h], 0x02);
  EXPECT_EQ(der[h + 1], 0x01);
  EXPECT_EQ(der[h + 2], 0x00);
  EXPECT_EQ(der[h + 3], 0x02) << "modulus INTEGER, not PKCS#8";
  const unsigned char* p = der.data();
  ossl::PkeyPtr key(d2i_PrivateKey(EVP_PKEY_RSA, nullptr, &p, long(der.size())));
  ASSERT_TRUE(key);
  EXPECT_EQ(p, der.data() + der.size());
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 2048);
  EXPECT_EQ(k->key_length, 2048);
  EXPECT_EQ(k->curve_type, "");
}

TEST(NewKeyFromRequestTest, GeneratesEcAsSec1DerOnTheCurveAsked) {
  for (auto [curve, group, bits] : {std::tuple{"prime256v1", "prime256v1", 256}, {"secp256r1", "prime256v1", 256},
                                    {"secp384r1", "secp384r1", 384}, {"secp521r1", "secp521r1", 521}}) {
    auto k = NewKeyFromRequest(Request(std::string(R"({"algorithm": "EC", "curve_type": ")") + curve + "\"}"), kNow);
    ASSERT_TRUE(k.ok()) << k.error();
    EXPECT_EQ(k->curve_type, curve);
    EXPECT_EQ(k->key_length, 0);
    const Bytes& der = k->key_data;
    // ECPrivateKey ::= SEQUENCE { version INTEGER 1, privateKey OCTET STRING, ... }
    size_t h = SeqHeader(der);
    EXPECT_EQ(der[h], 0x02);
    EXPECT_EQ(der[h + 1], 0x01);
    EXPECT_EQ(der[h + 2], 0x01);
    EXPECT_EQ(der[h + 3], 0x04);
    const unsigned char* p = der.data();
    ossl::PkeyPtr key(d2i_PrivateKey(EVP_PKEY_EC, nullptr, &p, long(der.size())));
    ASSERT_TRUE(key) << curve;
    char name[64] = {0};
    size_t len = 0;
    ASSERT_EQ(EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len), 1);
    EXPECT_EQ(std::string(name, len), group);
    EXPECT_EQ(EVP_PKEY_get_bits(key.get()), bits);
  }
  // A key_length that says the curve's size is accepted.
  EXPECT_TRUE(NewKeyFromRequest(Request(R"({"algorithm": "EC", "curve_type": "secp384r1", "key_length": 384})"), kNow).ok());
}

TEST(NewKeyFromRequestTest, RegistersGivenKeysInTheStoredForm) {
  Bytes aes(16, 0x42);
  auto k = NewKeyFromRequest(
      Request(R"({"algorithm": "AES", "key_length": 128, "key_data": ")" + Base64Encode(aes) + "\"}"), kNow);
  ASSERT_TRUE(k.ok()) << k.error();
  EXPECT_EQ(k->key_data, aes);
  // An RSA key as PKCS#8 PEM (what `openssl genpkey` writes) is stored as PKCS#1 DER, the same key.
  ossl::PkeyPtr rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t(2048)));
  auto pem = ossl::PrivateKeyToPem(rsa.get());
  ASSERT_TRUE(pem.ok());
  auto r = NewKeyFromRequest(Request(R"({"algorithm": "RSA", "key_data": ")" + Base64Encode(AsBytes(*pem)) + "\"}"), kNow);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->key_length, 2048);
  Bytes want(size_t(i2d_PrivateKey(rsa.get(), nullptr)));
  unsigned char* w = want.data();
  i2d_PrivateKey(rsa.get(), &w);
  EXPECT_EQ(r->key_data, want);
  // An EC key on another curve than curve_type says.
  ossl::PkeyPtr ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp384r1"));
  Bytes sec1(size_t(i2d_PrivateKey(ec.get(), nullptr)));
  unsigned char* e = sec1.data();
  i2d_PrivateKey(ec.get(), &e);
  auto bad = NewKeyFromRequest(
      Request(R"({"algorithm": "EC", "curve_type": "prime256v1", "key_data": ")" + Base64Encode(sec1) + "\"}"), kNow);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), "key_information.key_data is a key on secp384r1, curve_type says prime256v1");
  auto good = NewKeyFromRequest(
      Request(R"({"algorithm": "EC", "curve_type": "secp384r1", "key_data": ")" + Base64Encode(sec1) + "\"}"), kNow);
  ASSERT_TRUE(good.ok()) << good.error();
  EXPECT_EQ(good->key_data, sec1);
}

TEST(NewKeyFromRequestTest, RefusalsNameTheFieldAndTheFix) {
  const std::string aes16 = Base64Encode(Bytes(16, 1));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "key request: not valid JSON"},
      {"[]", "key request: the body must be a JSON object {\"key_information\": {...}, \"transfer_policy_id\": \"<uuid>\"}"},
      {R"({"key_information": {"algorithm": "AES", "key_length": 256}, "transfer_policy_id": ")" + kPolicyId + R"(", "x": 1})",
       "key request: unknown field \"x\" (allowed: key_information, transfer_policy_id)"},
      {R"({"transfer_policy_id": ")" + kPolicyId + "\"}",
       "key_information is missing; give e.g. {\"algorithm\": \"AES\", \"key_length\": 256}"},
      {Request("3"), "key_information must be an object, e.g. {\"algorithm\": \"AES\", \"key_length\": 256}"},
      {Request(R"({"key_length": 256})"), "key_information.algorithm is missing; use \"AES\", \"RSA\" or \"EC\""},
      {Request(R"({"algorithm": 1})"), "key_information.algorithm must be a string: \"AES\", \"RSA\" or \"EC\""},
      {Request(R"({"algorithm": "DES", "key_length": 64})"),
       "key_information.algorithm \"DES\" is not supported; use \"AES\", \"RSA\" or \"EC\""},
      {Request(R"({"algorithm": "AES", "key_length": 256, "size": 1})"),
       "key_information: unknown field \"size\" (allowed: algorithm, key_length, curve_type, key_data)"},
      {Request(R"({"algorithm": "AES", "key_length": 256, "kmip_key_id": "k"})"),
       "key_information.kmip_key_id: KMIP is not supported by this broker; give key_data or let the broker "
       "generate the key"},
      {Request(R"({"algorithm": "AES"})"), "key_information.key_length is missing; AES takes 128, 192 or 256"},
      {Request(R"({"algorithm": "AES", "key_length": "256"})"),
       "key_information.key_length must be a positive integer (bits)"},
      {Request(R"({"algorithm": "AES", "key_length": 512})"),
       "key_information.key_length 512 is not supported for AES; use 128, 192 or 256"},
      {Request(R"({"algorithm": "AES", "key_length": 256, "key_data": ")" + aes16 + "\"}"),
       "key_information.key_data is 16 bytes, key_length 256 needs 32; give base64 of the raw key"},
      {Request(R"({"algorithm": "AES", "key_length": 128, "key_data": "not base64!"})"),
       "key_information.key_data is not standard base64; give base64 of the raw AES key or of the RSA/EC "
       "private key (DER or PEM)"},
      {Request(R"({"algorithm": "AES", "key_length": 128, "curve_type": "secp384r1"})"),
       "key_information.curve_type is only for EC keys; leave it out"},
      {Request(R"({"algorithm": "RSA"})"), "key_information.key_length is missing; RSA takes 2048, 3072 or 4096"},
      {Request(R"({"algorithm": "RSA", "key_length": 1024})"),
       "key_information.key_length 1024 is not supported for RSA; use 2048, 3072 or 4096"},
      {Request(R"({"algorithm": "RSA", "key_length": 2048, "key_data": ")" + aes16 + "\"}"),
       "key_information.key_data is not an RSA private key; give base64 of its DER (PKCS#1 or PKCS#8) or PEM"},
      {Request(R"({"algorithm": "EC"})"),
       "key_information.curve_type is missing; EC takes \"prime256v1\" (or \"secp256r1\"), \"secp384r1\" or "
       "\"secp521r1\""},
      {Request(R"({"algorithm": "EC", "curve_type": "secp256k1"})"),
       "key_information.curve_type \"secp256k1\" is not supported; use \"prime256v1\" (or \"secp256r1\"), "
       "\"secp384r1\" or \"secp521r1\""},
      {Request(R"({"algorithm": "EC", "curve_type": "prime256v1", "key_length": 384})"),
       "key_information.key_length 384 does not match curve_type prime256v1 (256 bits); leave key_length out"},
      {R"({"key_information": {"algorithm": "AES", "key_length": 256}})",
       "transfer_policy_id is missing; create a key transfer policy (POST /kbs/v1/key-transfer-policies) and "
       "give its id"},
      {Request(R"({"algorithm": "AES", "key_length": 256})", "\"4110594b-a753-1457-9d7f-3e52b62f2ed8\""),
       "transfer_policy_id must be the id of a key transfer policy, a version-4 UUID "
       "(xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx)"},
      {Request(R"({"algorithm": "AES", "key_length": 256})", "7"),
       "transfer_policy_id must be the id of a key transfer policy, a version-4 UUID "
       "(xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx)"},
  };
  for (auto& [body, message] : cases) {
    auto k = NewKeyFromRequest(body, kNow);
    ASSERT_FALSE(k.ok()) << body;
    EXPECT_EQ(k.error(), message) << body;
  }
}

TEST(KeyToJsonTest, IntelsKeyResponseWithoutTheSecret) {
  KeyRecord k = AesKey();
  auto j = KeyToJson(k, "https://kbs.example:9443/");
  EXPECT_EQ(j, nlohmann::json::parse(R"({"id": ")" + kKeyId + R"(", "key_info": {"algorithm": "AES", "key_length": 256},
      "transfer_policy_id": ")" + kPolicyId + R"(", "created_at": "2025-01-01T00:00:00Z",
      "transfer_link": "https://kbs.example:9443/kbs/v1/keys/)" + kKeyId + R"(/transfer"})"));
  k.algorithm = "EC";
  k.key_length = 0;
  k.curve_type = "secp384r1";
  auto e = KeyToJson(k, "");
  EXPECT_EQ(e["key_info"], nlohmann::json::parse(R"({"algorithm": "EC", "curve_type": "secp384r1"})"));
  EXPECT_EQ(e["transfer_link"], "/kbs/v1/keys/" + kKeyId + "/transfer");  // Intel's relative link
  EXPECT_EQ(e.dump().find(Base64Encode(k.key_data)), std::string::npos);
}

// ---- the directory store ----

TEST(DirectoryKeyStoreTest, RoundTripsKeysAndPoliciesIn0600Files) {
  TempDir tmp;
  auto store = Open(tmp.path());
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->writable());
  EXPECT_EQ(store->Describe(), "directory " + tmp.path());
  ASSERT_TRUE(store->PutPolicy(Policy()).ok());
  KeyRecord key = AesKey();
  auto put = store->PutKey(key);
  ASSERT_TRUE(put.ok()) << put.message;

  for (std::string name : {"key-" + kKeyId + ".json", "policy-" + kPolicyId + ".json"}) {
    struct stat st {};
    ASSERT_EQ(lstat(tmp.File(name).c_str(), &st), 0) << name;
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u) << name;
  }
  // The file is the contract's layout.
  auto file = nlohmann::json::parse(Read(tmp.File("key-" + kKeyId + ".json")));
  EXPECT_EQ(file, nlohmann::json::parse(R"({"id": ")" + kKeyId + R"(", "key_information": {"algorithm": "AES",
      "key_length": 256, "key_data": ")" + Base64Encode(key.key_data) + R"("}, "transfer_policy_id": ")" + kPolicyId +
                                        R"(", "created_at": "2025-01-01T00:00:00Z"})"));
  auto policy_file = nlohmann::json::parse(Read(tmp.File("policy-" + kPolicyId + ".json")));
  EXPECT_EQ(policy_file, KeyTransferPolicyToJson(Policy()));

  KeyRecord got;
  ASSERT_TRUE(store->GetKey(kKeyId, got).ok());
  EXPECT_EQ(got.key_data, key.key_data);
  EXPECT_EQ(got.algorithm, "AES");
  EXPECT_EQ(got.key_length, 256);
  EXPECT_EQ(got.transfer_policy_id, kPolicyId);
  EXPECT_EQ(got.created_at, key.created_at);
  KeyRecord upper;
  EXPECT_TRUE(store->GetKey("7110194B-A703-4657-9D7F-3E02B62F2ED8", upper).ok());

  std::vector<KeyRecord> keys;
  ASSERT_TRUE(store->ListKeys(keys).ok());
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].id, kKeyId);
  EXPECT_TRUE(keys[0].key_data.empty());

  KeyTransferPolicy p;
  ASSERT_TRUE(store->GetPolicy(kPolicyId, p).ok());
  EXPECT_EQ(KeyTransferPolicyToJson(p), KeyTransferPolicyToJson(Policy()));
  std::vector<KeyTransferPolicy> policies;
  ASSERT_TRUE(store->ListPolicies(policies).ok());
  ASSERT_EQ(policies.size(), 1u);

  // Generated RSA and EC keys go through the store unchanged.
  for (const char* info : {R"({"algorithm": "RSA", "key_length": 2048})", R"({"algorithm": "EC", "curve_type": "secp521r1"})"}) {
    auto k = NewKeyFromRequest(Request(info), kNow);
    ASSERT_TRUE(k.ok()) << k.error();
    ASSERT_TRUE(store->PutKey(*k).ok()) << info;
    KeyRecord back;
    ASSERT_TRUE(store->GetKey(k->id, back).ok());
    EXPECT_EQ(back.key_data, k->key_data);
    EXPECT_EQ(back.curve_type, k->curve_type);
    EXPECT_EQ(back.key_length, k->key_length);
  }
}

TEST(DirectoryKeyStoreTest, ConflictsAndNotFound) {
  TempDir tmp;
  auto store = Open(tmp.path());
  KeyRecord orphan = AesKey();
  auto no_policy = store->PutKey(orphan);
  EXPECT_EQ(no_policy.error, StoreError::kInvalid);
  EXPECT_EQ(no_policy.message, "Key transfer policy with specified id does not exist (transfer_policy_id " +
                                   kPolicyId + "); create the policy first");
  ASSERT_TRUE(store->PutPolicy(Policy()).ok());
  auto again = store->PutPolicy(Policy());
  EXPECT_EQ(again.error, StoreError::kConflict);
  EXPECT_EQ(again.message, "policy " + kPolicyId + " exists (policy-" + kPolicyId + ".json); delete it first or use another id");
  ASSERT_TRUE(store->PutKey(AesKey()).ok());
  KeyRecord other = AesKey();
  other.key_data.assign(32, 7);
  auto dup = store->PutKey(other);
  EXPECT_EQ(dup.error, StoreError::kConflict);
  EXPECT_EQ(dup.message, "key " + kKeyId + " exists (key-" + kKeyId + ".json); delete it first or use another id");
  KeyRecord kept;
  ASSERT_TRUE(store->GetKey(kKeyId, kept).ok());
  EXPECT_EQ(kept.key_data, AesKey().key_data);  // the first one stays

  auto in_use = store->DeletePolicy(kPolicyId);
  EXPECT_EQ(in_use.error, StoreError::kConflict);
  EXPECT_EQ(in_use.message, "Key transfer policy is associated with keys: " + kKeyId + "; delete those keys first");
  ASSERT_TRUE(store->DeleteKey(kKeyId).ok());
  ASSERT_TRUE(store->DeletePolicy(kPolicyId).ok());
  EXPECT_FALSE(fs::exists(tmp.File("policy-" + kPolicyId + ".json")));

  KeyRecord k;
  auto missing = store->GetKey(kKeyId, k);
  EXPECT_EQ(missing.error, StoreError::kNotFound);
  EXPECT_EQ(missing.message, "Key with specified id does not exist");
  EXPECT_EQ(store->DeleteKey(kKeyId).error, StoreError::kNotFound);
  EXPECT_EQ(store->GetKey("not-a-uuid", k).error, StoreError::kNotFound);
  EXPECT_EQ(store->GetKey("../" + kKeyId, k).error, StoreError::kNotFound);
  KeyTransferPolicy p;
  auto no = store->GetPolicy(kPolicyId, p);
  EXPECT_EQ(no.error, StoreError::kNotFound);
  EXPECT_EQ(no.message, "Key transfer policy with specified id does not exist");
  EXPECT_EQ(store->DeletePolicy(kPolicyId).error, StoreError::kNotFound);
}

// A symbolic link planted under the key's name (pointing where the store's user may write) is an
// existing entry: refused, the link left alone, nothing written where it points.
TEST(DirectoryKeyStoreTest, PlantedSymlinkIsNeverWrittenThrough) {
  TempDir tmp;
  fs::create_directory(tmp.File("store"));
  auto store = Open(tmp.File("store"));
  ASSERT_TRUE(store->PutPolicy(Policy()).ok());
  const std::string name = tmp.File("store/key-" + kKeyId + ".json");
  fs::create_symlink(tmp.File("victim"), name);
  auto st = store->PutKey(AesKey());
  EXPECT_EQ(st.error, StoreError::kConflict);
  EXPECT_FALSE(fs::exists(tmp.File("victim")));
  EXPECT_TRUE(fs::is_symlink(name));
  // No temporary left behind either.
  int entries = 0;
  for (auto& e : fs::directory_iterator(tmp.File("store"))) entries += e.path().filename().string().starts_with(".");
  EXPECT_EQ(entries, 0);
}

// kubelet's layout for a Secret volume: the files are symlinks into ..data, itself a symlink to a
// timestamped directory. Reads follow them; the store is read-only and says how to change it.
TEST(DirectoryKeyStoreTest, ReadsASecretMountAndRefusesToWriteIt) {
  TempDir tmp;
  const std::string dir = tmp.File("kbs");
  const std::string ts = "..2025_01_01_00_00_00.123456789";
  fs::create_directories(dir + "/" + ts);
  KeyRecord key = AesKey();
  nlohmann::json file = {{"id", kKeyId},
                         {"key_information", {{"algorithm", "AES"}, {"key_length", 256}, {"key_data", Base64Encode(key.key_data)}}},
                         {"transfer_policy_id", kPolicyId},
                         {"created_at", "2025-01-01T00:00:00Z"}};
  WriteFile(dir + "/" + ts + "/key-" + kKeyId + ".json", file.dump());
  WriteFile(dir + "/" + ts + "/policy-" + kPolicyId + ".json", KeyTransferPolicyToJson(Policy()).dump());
  fs::create_directory_symlink(ts, dir + "/..data");
  for (std::string name : {"key-" + kKeyId + ".json", "policy-" + kPolicyId + ".json"})
    fs::create_symlink("..data/" + name, dir + "/" + name);

  auto store = Open(dir);
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->writable());
  EXPECT_EQ(store->Describe(), "directory " + dir + " (read-only)");
  KeyRecord got;
  auto st = store->GetKey(kKeyId, got);
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(got.key_data, key.key_data);
  std::vector<KeyRecord> keys;
  ASSERT_TRUE(store->ListKeys(keys).ok());  // ..data and the timestamped directory are not entries
  EXPECT_EQ(keys.size(), 1u);
  KeyTransferPolicy p;
  ASSERT_TRUE(store->GetPolicy(kPolicyId, p).ok());

  const std::string ro = "key store " + dir +
                         " is read-only (a Kubernetes Secret volume): add or remove the key-<uuid>.json / "
                         "policy-<uuid>.json file in the Secret it is mounted from, or serve a writable "
                         "directory (without --store-read-only)";
  KeyRecord other = AesKey("0b9b4c1e-2f0a-4e4b-8a59-1c2d3e4f5a6b");
  for (StoreStatus s : {store->PutKey(other), store->DeleteKey(kKeyId), store->PutPolicy(Policy()),
                        store->DeletePolicy(kPolicyId)}) {
    EXPECT_EQ(s.error, StoreError::kReadOnly);
    EXPECT_EQ(s.message, ro);
  }
  EXPECT_TRUE(fs::exists(dir + "/" + ts + "/key-" + kKeyId + ".json"));
}

TEST(DirectoryKeyStoreTest, ReadOnlyFlagAndUnwritableDirectory) {
  TempDir tmp;
  auto store = Open(tmp.path(), /*read_only=*/true);
  EXPECT_FALSE(store->writable());
  auto s = store->PutPolicy(Policy());
  EXPECT_EQ(s.error, StoreError::kReadOnly);
  EXPECT_EQ(s.message, "key store " + tmp.path() +
                           " is read-only (--store-read-only): add or remove the key-<uuid>.json / "
                           "policy-<uuid>.json file in the Secret it is mounted from, or serve a writable "
                           "directory (without --store-read-only)");
  EXPECT_FALSE(fs::exists(tmp.File("policy-" + kPolicyId + ".json")));
  auto missing = OpenDirectoryKeyStore(tmp.File("none"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), "key store " + tmp.File("none") +
                                 ": No such file or directory; create the directory or mount the Secret there");
}

TEST(DirectoryKeyStoreTest, UnwritableDirectoryIsReadOnly) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes any directory; the permission case needs another user";
  TempDir tmp;
  fs::create_directory(tmp.File("ro"));
  chmod(tmp.File("ro").c_str(), 0500);
  auto unwritable = Open(tmp.File("ro"));
  EXPECT_FALSE(unwritable->writable());
  EXPECT_EQ(unwritable->PutPolicy(Policy()).error, StoreError::kReadOnly);
  chmod(tmp.File("ro").c_str(), 0700);
}

// Malformed entries are named (file and why) without their contents; the good ones still list.
TEST(DirectoryKeyStoreTest, MalformedFilesAreReportedByNameWithoutTheirContents) {
  TempDir tmp;
  auto store = Open(tmp.path());
  ASSERT_TRUE(store->PutPolicy(Policy()).ok());
  ASSERT_TRUE(store->PutKey(AesKey()).ok());
  const std::string bad_json = "0b9b4c1e-2f0a-4e4b-8a59-1c2d3e4f5a6b";
  const std::string wrong_id = "1b9b4c1e-2f0a-4e4b-8a59-1c2d3e4f5a6b";
  const std::string bad_length = "2b9b4c1e-2f0a-4e4b-8a59-1c2d3e4f5a6b";
  const std::string secret_b64 = Base64Encode(Bytes(32, 0x5a));
  WriteFile(tmp.File("key-" + bad_json + ".json"), "{\"id\": \"" + secret_b64 + "\"");
  nlohmann::json moved = nlohmann::json::parse(Read(tmp.File("key-" + kKeyId + ".json")));
  WriteFile(tmp.File("key-" + wrong_id + ".json"), moved.dump());
  nlohmann::json odd = moved;
  odd["id"] = bad_length;
  odd["key_information"]["key_length"] = 128;
  odd["key_information"]["key_data"] = secret_b64;
  WriteFile(tmp.File("key-" + bad_length + ".json"), odd.dump());
  WriteFile(tmp.File("key-NOT-A-UUID.json"), "{}");
  WriteFile(tmp.File("README"), "not an entry");

  KeyRecord k;
  auto s = store->GetKey(bad_json, k);
  EXPECT_EQ(s.error, StoreError::kInvalid);
  EXPECT_EQ(s.message, "key store: key-" + bad_json + ".json: not a JSON object; fix or remove the file");
  s = store->GetKey(wrong_id, k);
  EXPECT_EQ(s.message, "key store: key-" + wrong_id + ".json: id \"" + kKeyId +
                           "\" differs from the file name; the id must be the name's uuid");
  s = store->GetKey(bad_length, k);
  EXPECT_EQ(s.message, "key store: key-" + bad_length +
                           ".json: key_information.key_data is 32 bytes, key_length 128 needs 16; give base64 of "
                           "the raw key; fix or remove the file");

  std::vector<KeyRecord> keys;
  auto listed = store->ListKeys(keys);
  EXPECT_EQ(listed.error, StoreError::kInvalid);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].id, kKeyId);
  for (auto name : {"key-" + bad_json + ".json", "key-" + wrong_id + ".json", "key-" + bad_length + ".json",
                    std::string("key-NOT-A-UUID.json: the name must be key-<lower-case version-4 uuid>.json")})
    EXPECT_NE(listed.message.find(name), std::string::npos) << name << "\n" << listed.message;
  EXPECT_EQ(listed.message.find("README"), std::string::npos);
  EXPECT_EQ(listed.message.find(secret_b64), std::string::npos);
  EXPECT_EQ(listed.message.find(Base64Encode(AesKey().key_data)), std::string::npos);

  // A policy cannot be deleted while a key file that might use it is unreadable.
  auto del = store->DeletePolicy(kPolicyId);
  EXPECT_EQ(del.error, StoreError::kConflict);
  EXPECT_TRUE(del.message.starts_with("cannot tell which keys use policy " + kPolicyId)) << del.message;

  // Over the 1 MiB cap: refused by size, never read.
  const std::string big = "3b9b4c1e-2f0a-4e4b-8a59-1c2d3e4f5a6b";
  WriteFile(tmp.File("key-" + big + ".json"), std::string((1 << 20) + 1, ' '));
  s = store->GetKey(big, k);
  EXPECT_EQ(s.message, "key store: key-" + big + ".json is larger than 1 MiB; fix or remove the file");
}

TEST(DirectoryKeyStoreTest, PolicyFileWhoseIdDiffersFromItsName) {
  TempDir tmp;
  const std::string other = "5b9b4c1e-2f0a-4e4b-8a59-1c2d3e4f5a6b";
  WriteFile(tmp.File("policy-" + other + ".json"), KeyTransferPolicyToJson(Policy()).dump());
  auto store = Open(tmp.path());
  KeyTransferPolicy p;
  auto s = store->GetPolicy(other, p);
  EXPECT_EQ(s.error, StoreError::kInvalid);
  EXPECT_EQ(s.message, "key store: policy-" + other + ".json: id \"" + kPolicyId +
                           "\" differs from the file name; the id must be the name's uuid");
}

}  // namespace
}  // namespace tdxvirt::kbs
