#include "service/jose.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <ctime>

#include "common/file.h"
#include "common/hex.h"

namespace tdxvirt::service {

namespace {

struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };
using BioPtr = std::unique_ptr<BIO, BioFree>;
struct CtxFree { void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); } };

Bytes BnBytes(const BIGNUM* bn) {
  Bytes out(static_cast<size_t>(BN_num_bytes(bn)));
  BN_bn2bin(bn, out.data());
  return out;
}

Result<ossl::PkeyPtr> NewKey(const char* type, const char* param_name, int bits_or_nid) {
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0) return Error{"keygen: " + ossl::LastError()};
  if (std::string_view(type) == "RSA") {
    if (EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits_or_nid) <= 0)
      return Error{"keygen: " + ossl::LastError()};
  } else if (EVP_PKEY_CTX_set_group_name(ctx.get(), param_name) <= 0) {
    return Error{"keygen: " + ossl::LastError()};
  }
  if (EVP_PKEY_generate(ctx.get(), &key) <= 0) return Error{"keygen: " + ossl::LastError()};
  return ossl::PkeyPtr(key);
}

Result<ossl::X509Ptr> Issue(const std::string& cn, bool ca, EVP_PKEY* subject_key, X509* issuer,
                            EVP_PKEY* issuer_key, int64_t not_before, int64_t not_after,
                            const std::string& san = "") {
  ossl::X509Ptr c(X509_new());
  X509_set_version(c.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get()));
  BN_free(bn);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("tdxvirt"), -1, -1, 0);
  X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
  ASN1_TIME_set(X509_getm_notBefore(c.get()), time_t(not_before));
  ASN1_TIME_set(X509_getm_notAfter(c.get()), time_t(not_after));
  X509_set_pubkey(c.get(), subject_key);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer ? issuer : c.get(), c.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    if (!ext) return false;
    X509_add_ext(c.get(), ext, -1);
    X509_EXTENSION_free(ext);
    return true;
  };
  bool ok = add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
            add(NID_key_usage, ca ? "critical,keyCertSign,cRLSign"
                                  : san.empty() ? "critical,digitalSignature"
                                                : "critical,digitalSignature,keyEncipherment") &&
            add(NID_subject_key_identifier, "hash") &&
            add(NID_authority_key_identifier, "keyid:always") &&
            (san.empty() || (add(NID_subject_alt_name, san.c_str()) &&
                             add(NID_ext_key_usage, "serverAuth")));
  if (!ok) return Error{"certificate extensions: " + ossl::LastError()};
  if (X509_sign(c.get(), issuer_key, EVP_sha384()) <= 0)
    return Error{"cannot sign the certificate: " + ossl::LastError()};
  return c;
}

bool IsCa(X509* c) { return X509_check_ca(c) > 0; }

}  // namespace

Result<JwsAlg> ParseJwsAlg(std::string_view name) {
  if (name == "PS384") return JwsAlg::kPS384;
  if (name == "RS256") return JwsAlg::kRS256;
  return Error{"token_signing_alg: \"" + std::string(name) + "\" is not supported; use PS384 or RS256"};
}

std::string_view JwsAlgName(JwsAlg alg) { return alg == JwsAlg::kPS384 ? "PS384" : "RS256"; }

Result<Bytes> RsaSign(EVP_PKEY* key, JwsAlg alg, ByteSpan data) {
  ossl::MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = alg == JwsAlg::kPS384 ? EVP_sha384() : EVP_sha256();
  if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key) <= 0)
    return Error{"sign: " + ossl::LastError()};
  if (alg == JwsAlg::kPS384 &&
      (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
    return Error{"sign: " + ossl::LastError()};
  size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, data.data(), data.size()) <= 0)
    return Error{"sign: " + ossl::LastError()};
  Bytes sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, data.data(), data.size()) <= 0)
    return Error{"sign: " + ossl::LastError()};
  sig.resize(len);
  return sig;
}

bool RsaVerify(EVP_PKEY* key, JwsAlg alg, ByteSpan data, ByteSpan signature) {
  if (!key || !EVP_PKEY_is_a(key, "RSA")) return false;
  ossl::MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = alg == JwsAlg::kPS384 ? EVP_sha384() : EVP_sha256();
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key) > 0;
  if (ok && alg == JwsAlg::kPS384)
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) > 0;
  ok = ok && EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), data.data(),
                              data.size()) == 1;
  ossl::LastError();  // clear the queue after a failed verification
  return ok;
}

namespace {

// The two JWKs (PS384, RS256) of `leaf`, x5c = leaf then `rest` (std base64 DER).
Result<std::vector<nlohmann::json>> LeafJwks(X509* leaf, const std::vector<X509*>& rest) {
  std::string kid = ToHex(ossl::Sha384(ossl::CertToDer(leaf)));
  BIGNUM *n = nullptr, *e = nullptr;
  EVP_PKEY* pub = X509_get0_pubkey(leaf);
  if (!pub || !EVP_PKEY_is_a(pub, "RSA")) return Error{"signing certificate: not an RSA key"};
  EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &n);
  EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &e);
  if (!n || !e) {
    BN_free(n);
    BN_free(e);
    return Error{"signing certificate: cannot read the RSA modulus"};
  }
  std::string n64 = Base64UrlEncode(BnBytes(n)), e64 = Base64UrlEncode(BnBytes(e));
  BN_free(n);
  BN_free(e);
  nlohmann::json x5c = nlohmann::json::array({Base64Encode(ossl::CertToDer(leaf))});
  for (X509* c : rest) x5c.push_back(Base64Encode(ossl::CertToDer(c)));
  std::vector<nlohmann::json> out;
  for (const char* alg : {"PS384", "RS256"})
    out.push_back({{"kty", "RSA"}, {"kid", kid}, {"n", n64}, {"e", e64}, {"alg", alg}, {"x5c", x5c},
                   {"use", "sig"}});
  return out;
}

// HMAC-SHA-384 of a label under a private key's DER: secret, and the same in every replica that
// mounts this key.
Result<ByteArray<48>> NonceMacKey(EVP_PKEY* k) {
  int der_len = i2d_PrivateKey(k, nullptr);
  if (der_len <= 0) return Error{"signing key: cannot encode: " + ossl::LastError()};
  Bytes der(static_cast<size_t>(der_len));
  uint8_t* p = der.data();
  i2d_PrivateKey(k, &p);
  ByteArray<48> out{};
  unsigned int mac_len = 0;
  static constexpr char kLabel[] = "tdxvirt verifier nonce key v1";
  HMAC(EVP_sha384(), der.data(), int(der.size()), reinterpret_cast<const uint8_t*>(kLabel),
       sizeof kLabel - 1, out.data(), &mac_len);
  OPENSSL_cleanse(der.data(), der.size());
  return out;
}

}  // namespace

Result<SigningKey> SigningKey::FromPem(std::string_view key_pem, std::string_view chain_pem) {
  BioPtr b(BIO_new_mem_buf(key_pem.data(), int(key_pem.size())));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr);
  if (!k) return Error{"signing key: not a PEM private key (" + ossl::LastError() + ")"};
  SigningKey s;
  s.key_.reset(k, EVP_PKEY_free);
  if (!EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_get_bits(k) < 2048)
    return Error{"signing key: must be RSA of at least 2048 bits (PS384/RS256 tokens)"};
  auto chain = ossl::ParsePemChain(chain_pem);
  if (!chain.ok()) return Error{"signing certificate chain: " + chain.error()};
  if (chain->size() > 10) return Error{"signing certificate chain: more than 10 certificates"};
  X509* leaf = (*chain)[0].get();
  if (EVP_PKEY_eq(X509_get0_pubkey(leaf), k) != 1)
    return Error{"signing certificate chain: the first certificate is not the signing key's; "
                 "put the leaf first"};
  s.kid_ = ToHex(ossl::Sha384(ossl::CertToDer(leaf)));
  std::vector<X509*> rest;
  for (size_t i = 1; i < chain->size(); ++i) rest.push_back((*chain)[i].get());
  auto jwks = LeafJwks(leaf, rest);
  if (!jwks.ok()) return Error{jwks.error()};
  s.jwks_ = {{"keys", *jwks}};
  auto mac = NonceMacKey(k);
  if (!mac.ok()) return Error{mac.error()};
  s.nonce_mac_key_ = *mac;
  return s;
}

Result<SigningKey> SigningKey::FromTokenPki(const tokenpki::Pki& pki) {
  SigningKey s;
  EVP_PKEY_up_ref(pki.leaf_key.get());
  s.key_.reset(pki.leaf_key.get(), EVP_PKEY_free);
  s.kid_ = ToHex(ossl::Sha384(ossl::CertToDer(pki.leaf.get())));
  std::vector<X509*> rest = {pki.signing_ca.get(), pki.root_ca.get()};
  auto keys = LeafJwks(pki.leaf.get(), rest);
  if (!keys.ok()) return Error{keys.error()};
  if (pki.previous_leaf && X509_cmp(pki.previous_leaf.get(), pki.leaf.get()) != 0) {
    auto prev = LeafJwks(pki.previous_leaf.get(), rest);
    if (!prev.ok()) return Error{"previous-token-signing.crt: " + prev.error()};
    keys->insert(keys->end(), prev->begin(), prev->end());
  }
  s.jwks_ = {{"keys", *keys}};
  auto mac = NonceMacKey(pki.signing_ca_key.get());
  if (!mac.ok()) return Error{mac.error()};
  s.nonce_mac_key_ = *mac;
  return s;
}

Result<SigningKey> SigningKey::Load(const std::string& key_path, const std::string& chain_path) {
  auto key = ReadFile(key_path, 1 << 20);
  if (!key.ok()) return Error{"--signing-key: " + key.error()};
  auto chain = ReadFile(chain_path, 1 << 20);
  if (!chain.ok()) return Error{"--signing-chain: " + chain.error()};
  auto s = FromPem(AsString(*key), AsString(*chain));
  OPENSSL_cleanse(key->data(), key->size());
  return s;
}

Result<std::string> SigningKey::Sign(const nlohmann::json& claims, JwsAlg alg,
                                     const std::string& jku) const {
  nlohmann::ordered_json header;
  header["alg"] = JwsAlgName(alg);
  if (!jku.empty()) header["jku"] = jku;
  header["kid"] = kid_;
  header["typ"] = "JWT";
  std::string input = Base64UrlEncode(AsBytes(header.dump())) + "." +
                      Base64UrlEncode(AsBytes(claims.dump()));
  auto sig = RsaSign(key_.get(), alg, AsBytes(input));
  if (!sig.ok()) return Error{sig.error()};
  return input + "." + Base64UrlEncode(*sig);
}

namespace {

// The chain (leaf first) for `leaf_key`, as CreateSigningKeyPem describes.
Result<std::string> IssueSigningChain(EVP_PKEY* leaf_key, const SigningKeyOptions& o) {
  int64_t nb = o.not_before ? o.not_before : int64_t(std::time(nullptr)) - 3600;
  int64_t na = nb + o.validity_days * 86400;
  std::string chain;
  ossl::X509Ptr leaf;
  if (!o.ca_cert_pem.empty() || !o.ca_key_pem.empty()) {
    auto ca = ossl::ParsePemChain(o.ca_cert_pem);
    if (!ca.ok()) return Error{"CA certificate: " + ca.error()};
    BioPtr b(BIO_new_mem_buf(o.ca_key_pem.data(), int(o.ca_key_pem.size())));
    ossl::PkeyPtr ca_key(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
    if (!ca_key) return Error{"CA key: not a PEM private key"};
    if (EVP_PKEY_eq(X509_get0_pubkey((*ca)[0].get()), ca_key.get()) != 1)
      return Error{"CA key: does not match the first CA certificate"};
    auto l = Issue(o.common_name, false, leaf_key, (*ca)[0].get(), ca_key.get(), nb, na,
                   o.subject_alt_names);
    if (!l.ok()) return Error{l.error()};
    leaf = std::move(*l);
    chain = ossl::CertToPem(leaf.get());
    for (auto& c : *ca) chain += ossl::CertToPem(c.get());
  } else {
    // Names as Intel's client looks for them in x5c: a "Root CA" and a "Signing CA".
    auto root_key = NewKey("EC", "P-384", 0);
    auto ca_key = NewKey("EC", "P-384", 0);
    if (!root_key.ok() || !ca_key.ok()) return Error{"cannot create the CA keys"};
    auto root = Issue("tdxvirt Attestation Token Root CA", true, root_key->get(), nullptr,
                      root_key->get(), nb, na);
    if (!root.ok()) return Error{root.error()};
    auto ca = Issue("tdxvirt Attestation Token Signing CA", true, ca_key->get(), root->get(),
                    root_key->get(), nb, na);
    if (!ca.ok()) return Error{ca.error()};
    auto l = Issue(o.common_name, false, leaf_key, ca->get(), ca_key->get(), nb, na,
                   o.subject_alt_names);
    if (!l.ok()) return Error{l.error()};
    leaf = std::move(*l);
    chain = ossl::CertToPem(leaf.get()) + ossl::CertToPem(ca->get()) + ossl::CertToPem(root->get());
  }
  return chain;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

}  // namespace

Result<std::pair<std::string, std::string>> CreateSigningKeyPem(const SigningKeyOptions& o) {
  if (o.key_bits < 2048 || o.key_bits > 8192) return Error{"key_bits: 2048..8192"};
  auto leaf_key = NewKey("RSA", nullptr, o.key_bits);
  if (!leaf_key.ok()) return Error{leaf_key.error()};
  auto chain = IssueSigningChain(leaf_key->get(), o);
  if (!chain.ok()) return Error{chain.error()};
  auto key_pem = ossl::PrivateKeyToPem(leaf_key->get());
  if (!key_pem.ok()) return Error{key_pem.error()};
  return std::make_pair(*key_pem, *chain);
}

Status CreateSigningKeyFiles(const std::string& key_path, const std::string& chain_path,
                             const SigningKeyOptions& options) {
  auto pem = CreateSigningKeyPem(options);
  if (!pem.ok()) return Error{pem.error()};
  // The key first: an interruption between the two leaves the key alone, which
  // InitSigningKeyFiles completes; never a chain whose key is lost.
  Status s = WriteFileAtomic(key_path, AsBytes(pem->first), 0600);
  OPENSSL_cleanse(pem->first.data(), pem->first.size());
  if (!s.ok()) return s;
  return WriteFileAtomic(chain_path, AsBytes(pem->second), 0644);
}

Result<SigningKeyInit> InitSigningKeyFiles(const std::string& key_path, const std::string& chain_path,
                                           const SigningKeyOptions& options) {
  bool have_key = Exists(key_path), have_chain = Exists(chain_path);
  if (have_key && have_chain)
    return Error{key_path + " and " + chain_path +
                 " exist; refusing to overwrite a signing key (remove both to create a new one)"};
  if (have_chain)
    return Error{chain_path + " exists but " + key_path +
                 " does not: a chain without its key cannot sign; restore " + key_path +
                 ", or remove " + chain_path + " and run --init-signing-key again"};
  if (!have_key) {
    auto pem = CreateSigningKeyPem(options);
    if (!pem.ok()) return Error{pem.error()};
    Status s = WriteFileAtomic(key_path, AsBytes(pem->first), 0600, /*replace_existing=*/false);
    OPENSSL_cleanse(pem->first.data(), pem->first.size());
    if (!s.ok()) return Error{s.error()};
    s = WriteFileAtomic(chain_path, AsBytes(pem->second), 0644, /*replace_existing=*/false);
    if (!s.ok()) return Error{s.error()};
    return SigningKeyInit::kCreated;
  }
  // The key alone: an earlier init was stopped between its two writes. The chain was never
  // written, so nobody can trust a different one for this key: issuing a fresh chain is sound.
  auto fix = ": remove " + key_path + " and run --init-signing-key again";
  auto pem = ReadRegularFile(key_path, 1 << 20, /*follow_symlinks=*/false);
  if (!pem.ok()) return Error{pem.error() + fix};
  BioPtr b(BIO_new_mem_buf(pem->data(), int(pem->size())));
  ossl::PkeyPtr key(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  OPENSSL_cleanse(pem->data(), pem->size());
  ossl::LastError();
  if (!key) return Error{key_path + " exists without " + chain_path + " but is not a PEM private key" + fix};
  if (!EVP_PKEY_is_a(key.get(), "RSA") || EVP_PKEY_get_bits(key.get()) < 2048 ||
      EVP_PKEY_get_bits(key.get()) > 8192)
    return Error{key_path + " exists without " + chain_path + " but is not an RSA key of 2048..8192 bits" + fix};
  auto chain = IssueSigningChain(key.get(), options);
  if (!chain.ok()) return Error{chain.error()};
  if (Status s = WriteFileAtomic(chain_path, AsBytes(*chain), 0644, /*replace_existing=*/false); !s.ok())
    return Error{s.error()};
  return SigningKeyInit::kChainCompleted;
}

Result<RsaKeyPairPem> CreateRsaKeyPair(int bits) {
  auto key = NewKey("RSA", nullptr, bits);
  if (!key.ok()) return Error{key.error()};
  RsaKeyPairPem out;
  auto priv = ossl::PrivateKeyToPem(key->get());
  if (!priv.ok()) return Error{priv.error()};
  out.private_pem = std::move(*priv);
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PUBKEY(b.get(), key->get())) return Error{"cannot encode the public key"};
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  out.public_pem.assign(data, size_t(n > 0 ? n : 0));
  return out;
}

Result<Bytes> PublicKeyDerFromPem(std::string_view pem) {
  BioPtr b(BIO_new_mem_buf(pem.data(), int(pem.size())));
  ossl::PkeyPtr key(PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr));
  if (!key) {
    BioPtr b2(BIO_new_mem_buf(pem.data(), int(pem.size())));
    key.reset(PEM_read_bio_PrivateKey(b2.get(), nullptr, nullptr, nullptr));
  }
  ossl::LastError();
  if (!key) return Error{"not a PEM public key (\"PUBLIC KEY\") or private key"};
  int n = i2d_PUBKEY(key.get(), nullptr);
  if (n <= 0) return Error{"cannot encode the public key"};
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  i2d_PUBKEY(key.get(), &p);
  return der;
}

namespace {

// The key of a JWK: its x5c leaf when present (optionally verified to a root), else n/e.
Result<ossl::PkeyPtr> JwkKey(const nlohmann::json& jwk, const std::string& trusted_root_pem) {
  if (jwk.contains("x5c")) {
    const auto& x5c = jwk["x5c"];
    if (!x5c.is_array() || x5c.empty() || x5c.size() > 10)
      return Error{"JWKS: x5c must be an array of 1..10 certificates"};
    std::vector<ossl::X509Ptr> certs;
    for (const auto& c : x5c) {
      if (!c.is_string()) return Error{"JWKS: x5c entries must be base64 strings"};
      auto der = Base64Decode(c.get<std::string>(), "JWKS x5c");
      if (!der.ok()) return Error{der.error()};
      auto cert = ossl::ParseDerCertificate(*der);
      if (!cert.ok()) return Error{"JWKS x5c: " + cert.error()};
      certs.push_back(std::move(*cert));
    }
    if (!trusted_root_pem.empty()) {
      auto roots = ossl::ParsePemChain(trusted_root_pem);
      if (!roots.ok()) return Error{"trusted root: " + roots.error()};
      std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
      for (auto& r : *roots) X509_STORE_add_cert(store.get(), r.get());
      struct SkFree { void operator()(STACK_OF(X509)* s) const { sk_X509_free(s); } };
      std::unique_ptr<STACK_OF(X509), SkFree> untrusted(sk_X509_new_null());
      for (size_t i = 1; i < certs.size(); ++i)
        if (IsCa(certs[i].get())) sk_X509_push(untrusted.get(), certs[i].get());
      std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                         X509_STORE_CTX_free);
      X509_STORE_CTX_init(ctx.get(), store.get(), certs[0].get(), untrusted.get());
      if (X509_verify_cert(ctx.get()) != 1)
        return Error{std::string("JWKS x5c: the signing certificate does not chain to the trusted "
                                 "root: ") + X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()))};
    }
    EVP_PKEY* k = X509_get_pubkey(certs[0].get());
    if (!k) return Error{"JWKS x5c: leaf has no usable public key"};
    return ossl::PkeyPtr(k);
  }
  if (!trusted_root_pem.empty()) return Error{"JWKS: key has no x5c chain to check against the trusted root"};
  if (!jwk.value("n", nlohmann::json()).is_string() || !jwk.value("e", nlohmann::json()).is_string())
    return Error{"JWKS: RSA key needs n and e (or x5c)"};
  auto n = Base64UrlDecode(jwk["n"].get<std::string>(), "JWKS n");
  auto e = Base64UrlDecode(jwk["e"].get<std::string>(), "JWKS e");
  if (!n.ok() || !e.ok()) return Error{"JWKS: n/e are not base64url"};
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
  BIGNUM* bn_n = BN_bin2bn(n->data(), int(n->size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(e->data(), int(e->size()), nullptr);
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n);
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld.get());
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* key = nullptr;
  bool ok = ctx && EVP_PKEY_fromdata_init(ctx.get()) > 0 &&
            EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) > 0;
  OSSL_PARAM_free(params);
  BN_free(bn_n);
  BN_free(bn_e);
  if (!ok) return Error{"JWKS: invalid RSA key: " + ossl::LastError()};
  return ossl::PkeyPtr(key);
}

bool ClaimEquals(const nlohmann::json& have, const nlohmann::json& want) {
  if (have.is_string() && want.is_string()) {
    std::string a = have.get<std::string>(), b = want.get<std::string>();
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(),
                      [](char x, char y) { return std::tolower(x) == std::tolower(y); });
  }
  return have == want;
}

}  // namespace

Result<VerifiedToken> VerifyToken(std::string_view token, std::string_view jwks_text,
                                  const VerifyTokenOptions& o) {
  if (token.size() > (1 << 20)) return Error{"token: longer than 1 MiB"};
  size_t d1 = token.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    return Error{"token: not a JWS compact serialization (header.payload.signature)"};
  auto header_bytes = Base64UrlDecode(token.substr(0, d1), "token header");
  auto payload_bytes = Base64UrlDecode(token.substr(d1 + 1, d2 - d1 - 1), "token payload");
  auto sig = Base64UrlDecode(token.substr(d2 + 1), "token signature");
  if (!header_bytes.ok()) return Error{header_bytes.error()};
  if (!payload_bytes.ok()) return Error{payload_bytes.error()};
  if (!sig.ok()) return Error{sig.error()};
  VerifiedToken out;
  out.header = nlohmann::json::parse(AsString(*header_bytes), nullptr, false);
  if (!out.header.is_object()) return Error{"token header: not a JSON object"};
  auto alg_name = out.header.value("alg", nlohmann::json());
  if (!alg_name.is_string()) return Error{"token header: alg missing"};
  auto alg = ParseJwsAlg(alg_name.get<std::string>());
  if (!alg.ok()) return Error{"token header: alg \"" + alg_name.get<std::string>() +
                              "\" refused (only PS384 and RS256 are accepted)"};
  auto kid = out.header.value("kid", nlohmann::json());
  if (!kid.is_string()) return Error{"token header: kid missing"};

  auto jwks = nlohmann::json::parse(jwks_text, nullptr, false);
  if (!jwks.is_object() || !jwks.contains("keys") || !jwks["keys"].is_array())
    return Error{"JWKS: not a JSON object with a \"keys\" array"};
  const nlohmann::json* jwk = nullptr;
  for (const auto& k : jwks["keys"])
    if (!jwk && k.is_object() && k.value("kid", nlohmann::json()) == kid) jwk = &k;
  if (!jwk) return Error{"token header: kid " + kid.get<std::string>() + " is not in the JWKS"};
  auto key = o.jwk_key ? o.jwk_key(*jwk) : JwkKey(*jwk, o.trusted_root_pem);
  if (!key.ok())
    return Error{o.jwk_key ? "JWKS key " + kid.get<std::string>() + ": " + key.error() : key.error()};
  if (!RsaVerify(key->get(), *alg, AsBytes(token.substr(0, d2)), *sig))
    return Error{"token signature: does not verify with JWKS key " + kid.get<std::string>()};

  out.claims = nlohmann::json::parse(AsString(*payload_bytes), nullptr, false);
  if (!out.claims.is_object()) return Error{"token payload: not a JSON object"};
  auto exp = out.claims.value("exp", nlohmann::json());
  if (!exp.is_number_integer()) return Error{"token: exp missing"};
  if (o.now > exp.get<int64_t>() + o.leeway_seconds)
    return Error{"token: expired at exp=" + std::to_string(exp.get<int64_t>()) + " (now " +
                 std::to_string(o.now) + "); get a new token"};
  auto nbf = out.claims.value("nbf", nlohmann::json());
  if (nbf.is_number_integer() && o.now + o.leeway_seconds < nbf.get<int64_t>())
    return Error{"token: not valid before nbf=" + std::to_string(nbf.get<int64_t>()) +
                 " (now " + std::to_string(o.now) + "); check the clocks"};
  if (!o.issuer.empty() && out.claims.value("iss", nlohmann::json()) != o.issuer)
    return Error{"token: iss is " + out.claims.value("iss", nlohmann::json()).dump() +
                 ", expected \"" + o.issuer + "\""};
  for (const auto& [name, want] : o.expected_claims) {
    const nlohmann::json* have = nullptr;
    if (out.claims.contains(name)) have = &out.claims[name];
    else if (out.claims.contains("tdx") && out.claims["tdx"].is_object() && out.claims["tdx"].contains(name))
      have = &out.claims["tdx"][name];
    if (!have) return Error{"claim " + name + ": missing, expected " + want.dump()};
    if (!ClaimEquals(*have, want))
      return Error{"claim " + name + ": is " + have->dump() + ", expected " + want.dump()};
  }
  return out;
}

}  // namespace tdxvirt::service
