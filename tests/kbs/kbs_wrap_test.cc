// Wrapping a released key as Intel's KBS does: round trip, the openapi sample's layout, the three
// forms of the TD's public key (the real pilot token's among them), every refusal with its exact
// message, and decryption by code that is not ours (raw EVP calls here, and the openssl tool).
#include <gtest/gtest.h>

#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/openssl.h"
#include "kbs/wrap.h"
#include "test_util.h"

namespace tdxvirt::kbs {
namespace {

using tdxvirt::testing::ReadFileText;
using tdxvirt::testing::TestdataPath;

// One RSA-3072 key for the whole file (generation is slow).
EVP_PKEY* TdKey() {
  static ossl::PkeyPtr key(EVP_RSA_gen(3072));
  return key.get();
}

Bytes Spki(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

Bytes Secret() {
  Bytes s(32);
  for (size_t i = 0; i < s.size(); ++i) s[i] = uint8_t(0xA0 + i);
  return s;
}

// K layout with a chosen exponent word and modulus bytes.
Bytes Held(std::array<uint8_t, 4> e, const Bytes& modulus) {
  Bytes out;
  out.reserve(4 + modulus.size());
  for (uint8_t b : e) out.push_back(b);
  for (uint8_t b : modulus) out.push_back(b);
  return out;
}

// --- independent implementations (raw EVP, not the functions under test) ---
Bytes RawRsaOaepDecrypt(EVP_PKEY* key, const Bytes& ct) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key, nullptr);
  size_t len = 0;
  EXPECT_EQ(EVP_PKEY_decrypt_init(ctx), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()), 1);
  EXPECT_EQ(EVP_PKEY_decrypt(ctx, nullptr, &len, ct.data(), ct.size()), 1);
  Bytes out(len);
  EXPECT_EQ(EVP_PKEY_decrypt(ctx, out.data(), &len, ct.data(), ct.size()), 1);
  out.resize(len);
  EVP_PKEY_CTX_free(ctx);
  return out;
}

Bytes RawGcmOpen(const Bytes& wrapped_key, const Bytes& swk) {
  // header: iv_len=12, tag_len=16, len(ct||tag), all u32le
  EXPECT_EQ(LoadLe32(&wrapped_key[0]), 12u);
  EXPECT_EQ(LoadLe32(&wrapped_key[4]), 16u);
  size_t box = LoadLe32(&wrapped_key[8]);
  EXPECT_EQ(wrapped_key.size(), 12 + 12 + box);
  const uint8_t* iv = &wrapped_key[12];
  const uint8_t* ct = &wrapped_key[24];
  size_t ct_len = box - 16;
  Bytes out(ct_len + 16);
  int len = 0, fin = 0;
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  EXPECT_EQ(EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), nullptr, swk.data(), iv), 1);
  EXPECT_EQ(EVP_DecryptUpdate(c, out.data(), &len, ct, int(ct_len)), 1);
  Bytes tag(ct + ct_len, ct + box);
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag.data()), 1);
  EXPECT_EQ(EVP_DecryptFinal_ex(c, out.data() + len, &fin), 1);
  EVP_CIPHER_CTX_free(c);
  out.resize(size_t(len + fin));
  return out;
}

TEST(WrapTest, RoundTripThroughOurOwnUnwrap) {
  auto held = HeldDataForKey(TdKey());
  ASSERT_TRUE(held.ok()) << held.error();
  auto pub = ParseHeldPublicKey(*held);
  ASSERT_TRUE(pub.ok()) << pub.error();
  EXPECT_EQ(pub->form, HeldKeyForm::kExponentModulus);
  auto w = WrapSecret(Secret(), pub->key.get());
  ASSERT_TRUE(w.ok()) << w.error();
  EXPECT_EQ(w->wrapped_swk.size(), 384u);  // RSA-3072
  auto back = UnwrapSecret(*w, TdKey());
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, Secret());
  // A fresh SWK and IV every time.
  auto w2 = WrapSecret(Secret(), pub->key.get());
  ASSERT_TRUE(w2.ok());
  EXPECT_NE(w2->wrapped_key, w->wrapped_key);
  EXPECT_NE(w2->wrapped_swk, w->wrapped_swk);
}

TEST(WrapTest, KLayoutIsLittleEndianExponentThenBigEndianModulus) {
  auto held = HeldDataForKey(TdKey());
  ASSERT_TRUE(held.ok());
  ASSERT_EQ(held->size(), 4u + 384u);
  EXPECT_EQ(Bytes(held->begin(), held->begin() + 4), (Bytes{0x01, 0x00, 0x01, 0x00}));
  BIGNUM* n = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(TdKey(), OSSL_PKEY_PARAM_RSA_N, &n), 1);
  Bytes nb(size_t(BN_num_bytes(n)));
  BN_bn2bin(n, nb.data());
  BN_free(n);
  EXPECT_EQ(Bytes(held->begin() + 4, held->end()), nb);
}

TEST(WrapTest, LayoutMatchesIntelsOpenapiSample) {
  auto j = nlohmann::json::parse(ReadFileText(TestdataPath("ita/kbs-transfer-response-sample.json")));
  auto sample_key = Base64Decode(j["wrapped_key"].get<std::string>(), "wrapped_key");
  auto sample_swk = Base64Decode(j["wrapped_swk"].get<std::string>(), "wrapped_swk");
  ASSERT_TRUE(sample_key.ok() && sample_swk.ok());
  ASSERT_EQ(sample_key->size(), 72u);
  EXPECT_EQ(Bytes(sample_key->begin(), sample_key->begin() + 12),
            (Bytes{0x0c, 0, 0, 0, 0x10, 0, 0, 0, 0x30, 0, 0, 0}));
  EXPECT_EQ(sample_swk->size(), 384u);

  auto pub = ParseHeldPublicKey(*HeldDataForKey(TdKey()));
  ASSERT_TRUE(pub.ok());
  auto w = WrapSecret(Secret(), pub->key.get());
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->wrapped_key.size(), sample_key->size());
  EXPECT_EQ(Bytes(w->wrapped_key.begin(), w->wrapped_key.begin() + 12),
            Bytes(sample_key->begin(), sample_key->begin() + 12));
  EXPECT_EQ(w->wrapped_swk.size(), sample_swk->size());
  // Our parser accepts the sample's structure (only the tag fails: we lack its SWK).
  Bytes zero_swk(32, 0);
  EXPECT_EQ(OpenWrappedKey(*sample_key, zero_swk).error(),
            "wrapped_key: AES-256-GCM authentication failed: the wrong SWK, or the wrapped key was altered");
}

TEST(WrapTest, IndependentDecryptionWithRawEvp) {
  auto pub = ParseHeldPublicKey(*HeldDataForKey(TdKey()));
  ASSERT_TRUE(pub.ok());
  auto w = WrapSecret(Secret(), pub->key.get());
  ASSERT_TRUE(w.ok());
  Bytes swk = RawRsaOaepDecrypt(TdKey(), w->wrapped_swk);
  ASSERT_EQ(swk.size(), 32u);
  EXPECT_EQ(RawGcmOpen(w->wrapped_key, swk), Secret());
}

TEST(WrapTest, IndependentDecryptionWithTheOpensslTool) {
  auto pub = ParseHeldPublicKey(*HeldDataForKey(TdKey()));
  auto w = WrapSecret(Secret(), pub->key.get());
  ASSERT_TRUE(w.ok());
  char tmpl[] = "/tmp/kbs-wrap-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::filesystem::path dir(tmpl);
  auto pem = ossl::PrivateKeyToPem(TdKey());
  ASSERT_TRUE(pem.ok());
  std::ofstream(dir / "key.pem") << *pem;
  {
    std::ofstream f(dir / "swk.bin", std::ios::binary);
    f.write(reinterpret_cast<const char*>(w->wrapped_swk.data()), std::streamsize(w->wrapped_swk.size()));
  }
  std::string cmd = "openssl pkeyutl -decrypt -inkey " + (dir / "key.pem").string() + " -in " +
                    (dir / "swk.bin").string() + " -out " + (dir / "out.bin").string() +
                    " -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 "
                    "-pkeyopt rsa_mgf1_md:sha256";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::string out = ReadFileText((dir / "out.bin").string());
  std::filesystem::remove_all(dir);
  Bytes swk(out.begin(), out.end());
  ASSERT_EQ(swk.size(), 32u);
  EXPECT_EQ(RawGcmOpen(w->wrapped_key, swk), Secret());
}

TEST(HeldKeyTest, ThreeFormsAllGiveTheSameKey) {
  Bytes k = *HeldDataForKey(TdKey());
  // Pilot form: big-endian exponent.
  Bytes pilot = k;
  pilot[0] = 0x00; pilot[1] = 0x01; pilot[2] = 0x00; pilot[3] = 0x01;
  for (const auto& [bytes, form] : std::vector<std::pair<Bytes, HeldKeyForm>>{
           {k, HeldKeyForm::kExponentModulus},
           {pilot, HeldKeyForm::kExponentBigEndian},
           {Spki(TdKey()), HeldKeyForm::kSubjectPublicKeyInfo}}) {
    auto pub = ParseHeldPublicKey(bytes);
    ASSERT_TRUE(pub.ok()) << pub.error();
    EXPECT_EQ(pub->form, form);
    EXPECT_EQ(EVP_PKEY_eq(pub->key.get(), TdKey()), 1);
  }
}

TEST(HeldKeyTest, RealPilotTokenKeyIsBigEndianExponent) {
  auto claims = nlohmann::json::parse(ReadFileText(TestdataPath("ita/kbs-pilot-tdx-token.payload.json")));
  auto held = Base64Decode(claims["attester_held_data"].get<std::string>(), "attester_held_data");
  ASSERT_TRUE(held.ok());
  auto pub = ParseHeldPublicKey(*held);
  ASSERT_TRUE(pub.ok()) << pub.error();
  EXPECT_EQ(pub->form, HeldKeyForm::kExponentBigEndian);
  EXPECT_EQ(EVP_PKEY_get_bits(pub->key.get()), 3072);
  BIGNUM* e = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(pub->key.get(), OSSL_PKEY_PARAM_RSA_E, &e), 1);
  EXPECT_EQ(BN_get_word(e), 65537u);
  BN_free(e);
  // And a secret wraps to it.
  EXPECT_TRUE(WrapSecret(Secret(), pub->key.get()).ok());
}

TEST(HeldKeyTest, Refusals) {
  const std::array<uint8_t, 4> e_le = {0x01, 0x00, 0x01, 0x00};
  EXPECT_EQ(ParseHeldPublicKey(Bytes{0x01, 0x00, 0x01, 0x00}).error(),
            "attester_held_data: 4 bytes is too short for an RSA public key; send the TD's RSA-3072 public "
            "key as u32le exponent || big-endian modulus (or a DER SubjectPublicKeyInfo)");
  Bytes m2048(256, 0xff);
  EXPECT_EQ(ParseHeldPublicKey(Held(e_le, m2048)).error(),
            "attester_held_data: the RSA modulus has 2048 bits; Intel's KBS requires more than 2048 bits: "
            "use an RSA-3072 key");
  // Leading zero bytes do not make a modulus longer.
  Bytes padded(257, 0xff);
  padded[0] = 0x00;
  EXPECT_EQ(ParseHeldPublicKey(Held(e_le, padded)).error(),
            "attester_held_data: the RSA modulus has 2048 bits; Intel's KBS requires more than 2048 bits: "
            "use an RSA-3072 key");
  Bytes m2049(257, 0x00);
  m2049[0] = 0x01;
  m2049.back() = 0x01;
  EXPECT_TRUE(ParseHeldPublicKey(Held(e_le, m2049)).ok());
  EXPECT_EQ(ParseHeldPublicKey(Held(e_le, Bytes(2049, 0xff))).error(),
            "attester_held_data: the RSA modulus has 16392 bits, more than 16384; use an RSA-3072 key");
  const std::array<uint8_t, 4> even = {0x00, 0x01, 0x01, 0x00};
  EXPECT_EQ(ParseHeldPublicKey(Held(even, Bytes(384, 0xff))).error(),
            "attester_held_data: the exponent bytes read 0x00010100 little-endian and 0x00010100 big-endian, "
            "even either way, so this is no RSA public key; send u32le exponent (65537 = 01 00 01 00) || "
            "big-endian modulus");
  const std::array<uint8_t, 4> one = {0x01, 0x00, 0x00, 0x00};
  EXPECT_EQ(ParseHeldPublicKey(Held(one, Bytes(384, 0xff))).error(),
            "attester_held_data: the RSA exponent must be odd and at least 3 (65537 is usual)");
  Bytes spki = Spki(TdKey());
  spki.push_back(0x00);
  EXPECT_EQ(ParseHeldPublicKey(spki).error(),
            "attester_held_data: 1 trailing bytes after the DER SubjectPublicKeyInfo (" +
                std::to_string(spki.size() - 1) + " of " + std::to_string(spki.size()) +
                " bytes used); send the key alone");
  ossl::PkeyPtr small(EVP_RSA_gen(2048));
  EXPECT_EQ(ParseHeldPublicKey(Spki(small.get())).error(),
            "attester_held_data: the RSA modulus has 2048 bits; Intel's KBS requires more than 2048 bits: "
            "use an RSA-3072 key");
  ossl::PkeyPtr ec(EVP_EC_gen("P-256"));
  EXPECT_EQ(ParseHeldPublicKey(Spki(ec.get())).error(),
            "attester_held_data: the SubjectPublicKeyInfo holds a EC key, not RSA; send the TD's RSA-3072 "
            "public key as u32le exponent || big-endian modulus (or a DER SubjectPublicKeyInfo)");
  Bytes not_der = {0x30, 0x03, 0x01, 0x02, 0x03, 0x04};
  EXPECT_EQ(ParseHeldPublicKey(not_der).error().rfind(
                "attester_held_data: starts with 0x30 but is not a DER SubjectPublicKeyInfo", 0),
            0u);
}

class OpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pub = ParseHeldPublicKey(*HeldDataForKey(TdKey()));
    w = *WrapSecret(Secret(), pub->key.get());
    swk = RawRsaOaepDecrypt(TdKey(), w.wrapped_swk);
  }
  WrappedSecret w;
  Bytes swk;
};

TEST_F(OpenTest, OpensTheRealBox) { EXPECT_EQ(*OpenWrappedKey(w.wrapped_key, swk), Secret()); }

TEST_F(OpenTest, RefusesShortBufferAndLyingHeaders) {
  EXPECT_EQ(OpenWrappedKey(Bytes(11, 0), swk).error(), "wrapped_key: 11 bytes is shorter than its 12-byte header");
  Bytes k = w.wrapped_key;
  k[0] = 16;
  EXPECT_EQ(OpenWrappedKey(k, swk).error(), "wrapped_key: the header's IV length is 16, expected 12");
  k = w.wrapped_key;
  k[4] = 12;
  EXPECT_EQ(OpenWrappedKey(k, swk).error(), "wrapped_key: the header's tag length is 12, expected 16");
  k = w.wrapped_key;
  k[8] = 0x0f;
  EXPECT_EQ(OpenWrappedKey(k, swk).error(),
            "wrapped_key: the header's ciphertext length 15 is shorter than the 16-byte tag");
  k = w.wrapped_key;
  k[8] = 0x31;  // one more than the buffer holds
  EXPECT_EQ(OpenWrappedKey(k, swk).error(),
            "wrapped_key: the header announces 73 bytes (12 + 12 + 49), the buffer has 72");
  k = w.wrapped_key;
  k[8] = 0xff; k[9] = 0xff; k[10] = 0xff; k[11] = 0xff;  // would overflow 32-bit arithmetic
  EXPECT_EQ(OpenWrappedKey(k, swk).error(),
            "wrapped_key: the header announces 4294967319 bytes (12 + 12 + 4294967295), the buffer has 72");
  k = w.wrapped_key;
  k.push_back(0);  // trailing byte
  EXPECT_EQ(OpenWrappedKey(k, swk).error(),
            "wrapped_key: the header announces 72 bytes (12 + 12 + 48), the buffer has 73");
}

TEST_F(OpenTest, RefusesTamperingAndTheWrongSwk) {
  const std::string kAuth =
      "wrapped_key: AES-256-GCM authentication failed: the wrong SWK, or the wrapped key was altered";
  Bytes k = w.wrapped_key;
  k[30] ^= 1;  // ciphertext
  EXPECT_EQ(OpenWrappedKey(k, swk).error(), kAuth);
  k = w.wrapped_key;
  k.back() ^= 1;  // tag
  EXPECT_EQ(OpenWrappedKey(k, swk).error(), kAuth);
  k = w.wrapped_key;
  k[12] ^= 1;  // IV
  EXPECT_EQ(OpenWrappedKey(k, swk).error(), kAuth);
  Bytes other = swk;
  other[0] ^= 1;
  EXPECT_EQ(OpenWrappedKey(w.wrapped_key, other).error(), kAuth);
  EXPECT_EQ(OpenWrappedKey(w.wrapped_key, Bytes(16, 0)).error(),
            "wrapped_swk: the SWK is 16 bytes, expected 32 (AES-256)");
  WrappedSecret bad = w;
  bad.wrapped_swk[5] ^= 1;
  EXPECT_EQ(UnwrapSecret(bad, TdKey()).error(),
            "wrapped_swk: RSA-OAEP (SHA-256) decryption failed: wrong key, or not a ciphertext for it");
}

TEST(WrapTest, EmptySecretAndNonRsaKey) {
  auto pub = ParseHeldPublicKey(*HeldDataForKey(TdKey()));
  auto w = WrapSecret(Bytes{}, pub->key.get());
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->wrapped_key.size(), 12u + 12u + 16u);
  EXPECT_TRUE(UnwrapSecret(*w, TdKey())->empty());
  ossl::PkeyPtr ec(EVP_EC_gen("P-256"));
  EXPECT_EQ(WrapSecret(Secret(), ec.get()).error(), "wrap: the TD's public key is not an RSA key");
}

}  // namespace
}  // namespace tdxvirt::kbs
