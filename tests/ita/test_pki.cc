#include "test_pki.h"

#include <gtest/gtest.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "common/base64.h"
#include "common/hex.h"

namespace tdxvirt::ita::testing {

Bytes Issued::der() const {
  unsigned char* buf = nullptr;
  int n = i2d_X509(cert.get(), &buf);
  Bytes out(buf, buf + (n > 0 ? n : 0));
  OPENSSL_free(buf);
  return out;
}

ossl::PkeyPtr NewRsaKey(int bits) {
  ossl::PkeyPtr k(EVP_RSA_gen(unsigned(bits)));
  if (!k) ADD_FAILURE() << "RSA key generation failed: " << ossl::LastError();
  return k;
}

namespace {
void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) {
    ADD_FAILURE() << "extension " << OBJ_nid2sn(nid) << "=" << value << ": " << ossl::LastError();
    return;
  }
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}
}  // namespace

Issued Issue(const CertSpec& s, ossl::PkeyPtr key, const Issued* issuer) {
  Issued out;
  out.cert.reset(X509_new());
  X509* c = out.cert.get();
  X509_set_version(c, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c), s.serial);
  X509_NAME* name = X509_NAME_new();
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("tdxvirt tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(s.cn.c_str()), -1, -1, 0);
  X509_set_subject_name(c, name);
  X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer->cert.get()) : name);
  X509_NAME_free(name);
  ASN1_TIME_set(X509_getm_notBefore(c), time_t(s.not_before));
  ASN1_TIME_set(X509_getm_notAfter(c), time_t(s.not_after));
  X509_set_pubkey(c, key.get());
  X509* issuer_cert = issuer ? issuer->cert.get() : c;
  AddExt(c, issuer_cert, NID_basic_constraints,
         s.ca ? (s.pathlen >= 0 ? "critical,CA:TRUE,pathlen:" + std::to_string(s.pathlen)
                                : "critical,CA:TRUE")
              : "critical,CA:FALSE");
  AddExt(c, issuer_cert, NID_subject_key_identifier, "hash");
  AddExt(c, issuer_cert, NID_authority_key_identifier, "keyid:always");
  AddExt(c, issuer_cert, NID_key_usage,
         s.ca ? "critical,keyCertSign,cRLSign"
              : "digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment");
  if (!s.cdp.empty()) {
    std::string uris;
    for (size_t at = 0; at != std::string::npos;) {
      size_t comma = s.cdp.find(',', at);
      uris += (uris.empty() ? "URI:" : ",URI:") +
              s.cdp.substr(at, comma == std::string::npos ? comma : comma - at);
      at = comma == std::string::npos ? comma : comma + 1;
    }
    AddExt(c, issuer_cert, NID_crl_distribution_points, uris);
  }
  if (!s.eku.empty()) AddExt(c, issuer_cert, NID_ext_key_usage, s.eku);
  EVP_PKEY* signer = issuer ? issuer->key.get() : key.get();
  if (X509_sign(c, signer, EVP_sha384()) <= 0) ADD_FAILURE() << "X509_sign: " << ossl::LastError();
  out.key = std::move(key);
  return out;
}

Bytes MakeCrl(const Issued& issuer, int64_t this_update, int64_t next_update,
              const std::vector<const Issued*>& revoked) {
  std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(X509_CRL_new(), X509_CRL_free);
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer.cert.get()));
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> t1(
      ASN1_TIME_set(nullptr, time_t(this_update)), ASN1_TIME_free);
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> t2(
      ASN1_TIME_set(nullptr, time_t(next_update)), ASN1_TIME_free);
  X509_CRL_set1_lastUpdate(crl.get(), t1.get());
  X509_CRL_set1_nextUpdate(crl.get(), t2.get());
  for (const Issued* r : revoked) {
    X509_REVOKED* e = X509_REVOKED_new();
    X509_REVOKED_set_serialNumber(e, X509_get_serialNumber(r->cert.get()));
    X509_REVOKED_set_revocationDate(e, t1.get());
    X509_CRL_add0_revoked(crl.get(), e);
  }
  std::unique_ptr<ASN1_INTEGER, decltype(&ASN1_INTEGER_free)> number(ASN1_INTEGER_new(),
                                                                     ASN1_INTEGER_free);
  ASN1_INTEGER_set(number.get(), 1);
  X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0);
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), issuer.key.get(), EVP_sha384()) <= 0)
    ADD_FAILURE() << "X509_CRL_sign: " << ossl::LastError();
  unsigned char* buf = nullptr;
  int n = i2d_X509_CRL(crl.get(), &buf);
  Bytes out(buf, buf + (n > 0 ? n : 0));
  OPENSSL_free(buf);
  return out;
}

Chain MakeChain(const ChainSpec& s) {
  Chain c;
  int64_t day = 86400;
  c.root = Issue({.cn = "Test Attestation Token Root CA",
                  .ca = true,
                  .not_before = s.now - day,
                  .not_after = s.now + 3650 * day,
                  .serial = 100},
                 NewRsaKey(), nullptr);
  c.signing_ca = Issue({.cn = "Test Attestation Token Signing CA",
                        .ca = true,
                        .pathlen = 0,
                        .cdp = s.signing_ca_cdp ? s.crl_base + "/crl/root-ca-crl.der" : "",
                        .not_before = s.now - day,
                        .not_after = s.now + 1825 * day,
                        .serial = 200},
                       NewRsaKey(), &c.root);
  c.leaf =
      Issue({.cn = "Test Attestation Token Signing Certificate",
             .cdp = !s.leaf_cdp ? ""
                                : s.crl_base + "/crl/ats-ca-crl.der" +
                                      (s.leaf_second_cdp.empty() ? "" : "," + s.leaf_second_cdp),
             .eku = s.leaf_eku,
             .not_before = s.now - day,
             .not_after = s.leaf_not_after ? s.leaf_not_after : s.now + 365 * day,
             .serial = 300},
            NewRsaKey(), &c.signing_ca);
  auto der = c.leaf.der();
  c.kid = ToHex(ossl::Sha384(der));
  return c;
}

nlohmann::json JwkFor(const Chain& c, const std::string& alg) {
  BIGNUM *n = nullptr, *e = nullptr;
  EVP_PKEY_get_bn_param(c.leaf.key.get(), "n", &n);
  EVP_PKEY_get_bn_param(c.leaf.key.get(), "e", &e);
  Bytes nb(BN_num_bytes(n)), eb(BN_num_bytes(e));
  BN_bn2bin(n, nb.data());
  BN_bn2bin(e, eb.data());
  BN_free(n);
  BN_free(e);
  return {
      {"alg", alg},
      {"e", Base64UrlEncode(eb)},
      {"kid", c.kid},
      {"kty", "RSA"},
      {"n", Base64UrlEncode(nb)},
      {"x5c",
       {Base64Encode(c.leaf.der()), Base64Encode(c.signing_ca.der()), Base64Encode(c.root.der())}}};
}

std::string SignToken(const nlohmann::json& claims, const std::string& alg, const std::string& kid,
                      EVP_PKEY* key) {
  nlohmann::json header = {{"alg", alg}, {"kid", kid}, {"typ", "JWT"}};
  std::string input =
      Base64UrlEncode(AsBytes(header.dump())) + "." + Base64UrlEncode(AsBytes(claims.dump()));
  ossl::MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  bool pss = alg == "PS384";
  EVP_DigestSignInit(ctx.get(), &pctx, pss ? EVP_sha384() : EVP_sha256(), nullptr, key);
  if (pss) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  size_t len = 0;
  EVP_DigestSign(ctx.get(), nullptr, &len, AsBytes(input).data(), input.size());
  Bytes sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, AsBytes(input).data(), input.size()) != 1)
    ADD_FAILURE() << "EVP_DigestSign: " << ossl::LastError();
  sig.resize(len);
  return input + "." + Base64UrlEncode(sig);
}

}  // namespace tdxvirt::ita::testing
