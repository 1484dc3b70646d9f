#include "kbs/wrap.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>
#include <string>

#include "service/client.h"

namespace tdxvirt::kbs {
namespace {

constexpr size_t kSwkSize = 32;     // AES-256
constexpr size_t kIvSize = 12;      // Go's gcm.NonceSize()
constexpr size_t kTagSize = 16;     // Go's gcm tag
constexpr size_t kHeaderSize = 12;  // u32le iv length, tag length, len(ciphertext||tag)
// Intel's KBS: modulus bit length must be > 2048. The upper bound is OpenSSL's own RSA limit
// (OPENSSL_RSA_MAX_MODULUS_BITS); a larger "key" would only cost the server time.
constexpr int kMinModulusBits = 2049;
constexpr int kMaxModulusBits = 16384;
// The secret is a key (bytes to a few KiB); the header's lengths are u32.
constexpr size_t kMaxSecretSize = 1 << 20;

constexpr const char* kHeldFix =
    "send the TD's RSA-3072 public key as u32le exponent || big-endian modulus "
    "(or a DER SubjectPublicKeyInfo)";

struct BnFree { void operator()(BIGNUM* p) const { BN_free(p); } };
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
struct PkeyCtxFree { void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); } };
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
struct CipherCtxFree { void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); } };
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;
struct ParamBldFree { void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); } };
struct ParamFree { void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); } };

// Wipes a secret buffer on every path out of a function.
struct Wipe {
  Bytes& b;
  ~Wipe() {
    if (!b.empty()) OPENSSL_cleanse(b.data(), b.size());
  }
};

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

uint32_t LoadBe32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}
void PutLe32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

Status CheckModulusBits(int bits) {
  if (bits < kMinModulusBits)
    return Error{"attester_held_data: the RSA modulus has " + std::to_string(bits) +
                 " bits; Intel's KBS requires more than 2048 bits: use an RSA-3072 key"};
  if (bits > kMaxModulusBits)
    return Error{"attester_held_data: the RSA modulus has " + std::to_string(bits) +
                 " bits, more than " + std::to_string(kMaxModulusBits) + "; use an RSA-3072 key"};
  return OkStatus();
}

Status CheckExponent(const BIGNUM* e) {
  if (!BN_is_odd(e) || BN_is_one(e))
    return Error{"attester_held_data: the RSA exponent must be odd and at least 3 (65537 is usual)"};
  return OkStatus();
}

Result<TdPublicKey> FromSpki(ByteSpan der) {
  const unsigned char* p = der.data();
  ossl::PkeyPtr key(d2i_PUBKEY(nullptr, &p, long(der.size())));
  if (!key) {
    std::string why = ossl::LastError();
    return Error{"attester_held_data: starts with 0x30 but is not a DER SubjectPublicKeyInfo" +
                 (why.empty() ? std::string() : " (" + why + ")") + "; " + kHeldFix};
  }
  size_t used = size_t(p - der.data());
  if (used != der.size())
    return Error{"attester_held_data: " + std::to_string(der.size() - used) +
                 " trailing bytes after the DER SubjectPublicKeyInfo (" + std::to_string(used) + " of " +
                 std::to_string(der.size()) + " bytes used); send the key alone"};
  if (!EVP_PKEY_is_a(key.get(), "RSA"))
    return Error{std::string("attester_held_data: the SubjectPublicKeyInfo holds a ") +
                 EVP_PKEY_get0_type_name(key.get()) + " key, not RSA; " + kHeldFix};
  if (auto s = CheckModulusBits(EVP_PKEY_get_bits(key.get())); !s) return Error{s.error()};
  BIGNUM* e = nullptr;
  if (EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E, &e) <= 0) {
    ossl::LastError();
    return Error{std::string("attester_held_data: the RSA key has no public exponent; ") + kHeldFix};
  }
  BnPtr e_owner(e);
  if (auto s = CheckExponent(e); !s) return Error{s.error()};
  return TdPublicKey{std::move(key), HeldKeyForm::kSubjectPublicKeyInfo};
}

}  // namespace

Result<TdPublicKey> ParseHeldPublicKey(ByteSpan held) {
  if (held.size() < 5)
    return Error{"attester_held_data: " + std::to_string(held.size()) +
                 " bytes is too short for an RSA public key; " + kHeldFix};
  // A K-layout exponent is odd, so its first (low) byte is never 0x30.
  if (held[0] == 0x30) return FromSpki(held);

  uint32_t e_le = LoadLe32(held.data());
  uint32_t e_be = LoadBe32(held.data());
  HeldKeyForm form;
  uint32_t e;
  if (e_le & 1) {
    form = HeldKeyForm::kExponentModulus;
    e = e_le;
  } else if (e_be & 1) {
    form = HeldKeyForm::kExponentBigEndian;
    e = e_be;
  } else {
    return Error{"attester_held_data: the exponent bytes read " + Hex32(e_le) + " little-endian and " +
                 Hex32(e_be) + " big-endian, even either way, so this is no RSA public key; " +
                 "send u32le exponent (65537 = 01 00 01 00) || big-endian modulus"};
  }
  if (e == 1)
    return Error{"attester_held_data: the RSA exponent must be odd and at least 3 (65537 is usual)"};

  ByteSpan modulus = held.subspan(4);
  BnPtr n(BN_bin2bn(modulus.data(), int(modulus.size()), nullptr));
  BnPtr e_bn(BN_new());
  if (!n || !e_bn || !BN_set_word(e_bn.get(), e)) {
    ossl::LastError();
    return Error{"attester_held_data: out of memory reading the RSA key"};
  }
  if (auto s = CheckModulusBits(BN_num_bits(n.get())); !s) return Error{s.error()};

  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e_bn.get())) {
    ossl::LastError();
    return Error{"attester_held_data: out of memory reading the RSA key"};
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    std::string why = ossl::LastError();
    return Error{"attester_held_data: OpenSSL refused the RSA public key (" + why + "); " + kHeldFix};
  }
  return TdPublicKey{ossl::PkeyPtr(raw), form};
}

Result<Bytes> HeldDataForKey(EVP_PKEY* rsa_key) {
  if (!rsa_key || !EVP_PKEY_is_a(rsa_key, "RSA")) return Error{"the TD key is not an RSA key"};
  BIGNUM* n_raw = nullptr;
  BIGNUM* e_raw = nullptr;
  bool ok = EVP_PKEY_get_bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_N, &n_raw) > 0 &&
            EVP_PKEY_get_bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_E, &e_raw) > 0;
  BnPtr n(n_raw), e(e_raw);
  ossl::LastError();
  if (!ok) return Error{"the TD's RSA key has no modulus or exponent"};
  if (BN_num_bits(e.get()) > 32) return Error{"the TD's RSA exponent does not fit 32 bits"};
  Bytes out;
  PutLe32(out, uint32_t(BN_get_word(e.get())));
  size_t off = out.size();
  out.resize(off + size_t(BN_num_bytes(n.get())));
  BN_bn2bin(n.get(), out.data() + off);
  return out;
}

Result<WrappedSecret> WrapSecret(ByteSpan secret, EVP_PKEY* td_public_key) {
  if (!td_public_key || !EVP_PKEY_is_a(td_public_key, "RSA"))
    return Error{"wrap: the TD's public key is not an RSA key"};
  if (secret.size() > kMaxSecretSize)
    return Error{"wrap: the secret is " + std::to_string(secret.size()) + " bytes, more than " +
                 std::to_string(kMaxSecretSize)};
  Bytes swk(kSwkSize);
  Wipe wipe_swk{swk};
  uint8_t iv[kIvSize];
  if (RAND_priv_bytes(swk.data(), int(swk.size())) != 1 || RAND_bytes(iv, int(kIvSize)) != 1) {
    ossl::LastError();
    return Error{"wrap: the random generator failed"};
  }

  // AES-256-GCM, no AAD: Go's gcm.Seal(nil, nonce, data, nil) = ciphertext || tag.
  WrappedSecret out;
  size_t box = secret.size() + kTagSize;
  PutLe32(out.wrapped_key, uint32_t(kIvSize));
  PutLe32(out.wrapped_key, uint32_t(kTagSize));
  PutLe32(out.wrapped_key, uint32_t(box));
  out.wrapped_key.insert(out.wrapped_key.end(), iv, iv + kIvSize);
  size_t ct_at = out.wrapped_key.size();
  out.wrapped_key.resize(ct_at + box);
  uint8_t* ct = out.wrapped_key.data() + ct_at;
  CipherCtxPtr c(EVP_CIPHER_CTX_new());
  int len = 0, fin = 0;
  bool ok = c && EVP_EncryptInit_ex2(c.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, int(kIvSize), nullptr) == 1 &&
            EVP_EncryptInit_ex2(c.get(), nullptr, swk.data(), iv, nullptr) == 1 &&
            EVP_EncryptUpdate(c.get(), ct, &len, secret.data(), int(secret.size())) == 1 &&
            EVP_EncryptFinal_ex(c.get(), ct + len, &fin) == 1 &&
            EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, int(kTagSize), ct + secret.size()) == 1;
  if (!ok) {
    ossl::LastError();
    OPENSSL_cleanse(out.wrapped_key.data(), out.wrapped_key.size());
    return Error{"wrap: AES-256-GCM encryption failed"};
  }

  // RSA-OAEP, SHA-256 and MGF1-SHA-256, empty label: Go's rsa.EncryptOAEP(sha256.New(), ..., nil).
  PkeyCtxPtr r(EVP_PKEY_CTX_new(td_public_key, nullptr));
  size_t out_len = 0;
  ok = r && EVP_PKEY_encrypt_init(r.get()) > 0 &&
       EVP_PKEY_CTX_set_rsa_padding(r.get(), RSA_PKCS1_OAEP_PADDING) > 0 &&
       EVP_PKEY_CTX_set_rsa_oaep_md(r.get(), EVP_sha256()) > 0 &&
       EVP_PKEY_CTX_set_rsa_mgf1_md(r.get(), EVP_sha256()) > 0 &&
       EVP_PKEY_encrypt(r.get(), nullptr, &out_len, swk.data(), swk.size()) > 0;
  if (ok) {
    out.wrapped_swk.resize(out_len);
    ok = EVP_PKEY_encrypt(r.get(), out.wrapped_swk.data(), &out_len, swk.data(), swk.size()) > 0;
    out.wrapped_swk.resize(out_len);
  }
  if (!ok) {
    std::string why = ossl::LastError();
    return Error{"wrap: RSA-OAEP encryption of the SWK failed (" + why + ")"};
  }
  return out;
}

Result<Bytes> OpenWrappedKey(ByteSpan wrapped_key, ByteSpan swk) {
  if (swk.size() != kSwkSize)
    return Error{"wrapped_swk: the SWK is " + std::to_string(swk.size()) + " bytes, expected 32 (AES-256)"};
  if (wrapped_key.size() < kHeaderSize)
    return Error{"wrapped_key: " + std::to_string(wrapped_key.size()) +
                 " bytes is shorter than its 12-byte header"};
  uint32_t iv_len = LoadLe32(wrapped_key.data());
  uint32_t tag_len = LoadLe32(wrapped_key.data() + 4);
  uint32_t box_len = LoadLe32(wrapped_key.data() + 8);
  if (iv_len != kIvSize)
    return Error{"wrapped_key: the header's IV length is " + std::to_string(iv_len) + ", expected 12"};
  if (tag_len != kTagSize)
    return Error{"wrapped_key: the header's tag length is " + std::to_string(tag_len) + ", expected 16"};
  if (box_len < kTagSize)
    return Error{"wrapped_key: the header's ciphertext length " + std::to_string(box_len) +
                 " is shorter than the 16-byte tag"};
  uint64_t want = uint64_t(kHeaderSize) + iv_len + box_len;  // no overflow in 64 bits
  if (want != wrapped_key.size())
    return Error{"wrapped_key: the header announces " + std::to_string(want) + " bytes (12 + 12 + " +
                 std::to_string(box_len) + "), the buffer has " + std::to_string(wrapped_key.size())};

  const uint8_t* iv = wrapped_key.data() + kHeaderSize;
  const uint8_t* ct = iv + kIvSize;
  size_t ct_len = box_len - kTagSize;
  uint8_t tag[kTagSize];
  std::copy(ct + ct_len, ct + box_len, tag);
  Bytes plain(ct_len);
  CipherCtxPtr c(EVP_CIPHER_CTX_new());
  int len = 0, fin = 0;
  bool ok = c && EVP_DecryptInit_ex2(c.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, int(kIvSize), nullptr) == 1 &&
            EVP_DecryptInit_ex2(c.get(), nullptr, swk.data(), iv, nullptr) == 1 &&
            EVP_DecryptUpdate(c.get(), plain.data(), &len, ct, int(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, int(kTagSize), tag) == 1;
  bool authentic = ok && EVP_DecryptFinal_ex(c.get(), plain.data() + len, &fin) == 1;
  ossl::LastError();
  if (!authentic) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return Error{"wrapped_key: AES-256-GCM authentication failed: the wrong SWK, or the wrapped key "
                 "was altered"};
  }
  return plain;
}

Result<Bytes> UnwrapSecret(const WrappedSecret& wrapped, EVP_PKEY* td_private_key) {
  auto swk = service::DecryptRsaOaepSha256(td_private_key, wrapped.wrapped_swk);
  if (!swk) return Error{"wrapped_swk: " + swk.error()};
  Wipe wipe{*swk};
  return OpenWrappedKey(wrapped.wrapped_key, *swk);
}

}  // namespace tdxvirt::kbs
