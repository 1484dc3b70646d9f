#include "simulator/pki.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <memory>

namespace tdxvirt::simulator {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, size_t(len));
}

struct SeqFree {
  void operator()(ASN1_SEQUENCE_ANY* s) const { sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free); }
};
using SeqPtr = std::unique_ptr<ASN1_SEQUENCE_ANY, SeqFree>;

ASN1_TYPE* Oid(const std::string& dotted) {
  ASN1_OBJECT* obj = OBJ_txt2obj(dotted.c_str(), 1);
  ASN1_TYPE* t = ASN1_TYPE_new();
  ASN1_TYPE_set(t, V_ASN1_OBJECT, obj);
  return t;
}
ASN1_TYPE* Octets(const uint8_t* data, size_t n) {
  ASN1_OCTET_STRING* s = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(s, data, int(n));
  ASN1_TYPE* t = ASN1_TYPE_new();
  ASN1_TYPE_set(t, V_ASN1_OCTET_STRING, s);
  return t;
}
ASN1_TYPE* Integer(long v, int type = V_ASN1_INTEGER) {
  ASN1_INTEGER* i = ASN1_INTEGER_new();
  ASN1_INTEGER_set(i, v);
  if (type == V_ASN1_ENUMERATED) {
    ASN1_ENUMERATED* e = ASN1_ENUMERATED_new();
    ASN1_ENUMERATED_set(e, v);
    ASN1_INTEGER_free(i);
    ASN1_TYPE* t = ASN1_TYPE_new();
    ASN1_TYPE_set(t, V_ASN1_ENUMERATED, e);
    return t;
  }
  ASN1_TYPE* t = ASN1_TYPE_new();
  ASN1_TYPE_set(t, V_ASN1_INTEGER, i);
  return t;
}

// SEQUENCE OF the given elements, as an ASN1_TYPE holding its DER (how OpenSSL represents a
// nested SEQUENCE inside ANY). Takes ownership of the elements.
ASN1_TYPE* Sequence(std::initializer_list<ASN1_TYPE*> items, Bytes* der_out = nullptr) {
  SeqPtr seq(sk_ASN1_TYPE_new_null());
  for (ASN1_TYPE* item : items) sk_ASN1_TYPE_push(seq.get(), item);
  unsigned char* der = nullptr;
  int len = i2d_ASN1_SEQUENCE_ANY(seq.get(), &der);
  if (len <= 0) return nullptr;
  if (der_out) der_out->assign(der, der + len);
  ASN1_STRING* s = ASN1_STRING_new();
  ASN1_STRING_set(s, der, len);
  OPENSSL_free(der);
  ASN1_TYPE* t = ASN1_TYPE_new();
  ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);
  return t;
}

Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return Error{std::string("cannot build extension ") + OBJ_nid2sn(nid) + ": " + ossl::LastError()};
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return Error{"cannot add extension: " + ossl::LastError()};
  return OkStatus();
}

}  // namespace

ossl::PkeyPtr NewP256Key() { return ossl::PkeyPtr(EVP_EC_gen("prime256v1")); }

std::string KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(bio.get());
}

Result<ossl::PkeyPtr> KeyFromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), int(pem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (!key) return Error{"not a PEM private key: " + ossl::LastError()};
  return ossl::PkeyPtr(key);
}

std::string CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return BioText(bio.get());
}

Bytes CertToDer(X509* cert) {
  int len = i2d_X509(cert, nullptr);
  Bytes out(size_t(len > 0 ? len : 0));
  unsigned char* p = out.data();
  i2d_X509(cert, &p);
  return out;
}

Result<ByteArray<64>> RawP256PublicKey(EVP_PKEY* key) {
  unsigned char point[65];
  size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len) != 1 ||
      len != 65 || point[0] != 0x04)
    return Error{"not an uncompressed P-256 public key: " + ossl::LastError()};
  ByteArray<64> out;
  std::copy(point + 1, point + 65, out.begin());
  return out;
}

Result<Bytes> EncodeSgxExtensions(const evidence::PckExtensions& e) {
  const std::string root = evidence::kSgxExtensionsOid;
  // TCB: 16 component SVNs, PCESVN, CPUSVN.
  SeqPtr tcb(sk_ASN1_TYPE_new_null());
  for (int i = 0; i < 16; ++i)
    sk_ASN1_TYPE_push(tcb.get(), Sequence({Oid(root + ".2." + std::to_string(i + 1)),
                                           Integer(e.cpu_svn_components[i])}));
  sk_ASN1_TYPE_push(tcb.get(), Sequence({Oid(root + ".2.17"), Integer(e.pce_svn)}));
  sk_ASN1_TYPE_push(tcb.get(), Sequence({Oid(root + ".2.18"), Octets(e.cpu_svn.data(), 16)}));
  unsigned char* tcb_der = nullptr;
  int tcb_len = i2d_ASN1_SEQUENCE_ANY(tcb.get(), &tcb_der);
  if (tcb_len <= 0) return Error{"cannot encode the TCB extension: " + ossl::LastError()};
  ASN1_STRING* tcb_str = ASN1_STRING_new();
  ASN1_STRING_set(tcb_str, tcb_der, tcb_len);
  OPENSSL_free(tcb_der);
  ASN1_TYPE* tcb_any = ASN1_TYPE_new();
  ASN1_TYPE_set(tcb_any, V_ASN1_SEQUENCE, tcb_str);

  Bytes der;
  ASN1_TYPE* all = Sequence(
      {Sequence({Oid(root + ".1"), Octets(e.ppid.data(), 16)}), Sequence({Oid(root + ".2"), tcb_any}),
       Sequence({Oid(root + ".3"), Octets(e.pce_id.data(), 2)}),
       Sequence({Oid(root + ".4"), Octets(e.fmspc.data(), 6)}),
       Sequence({Oid(root + ".5"), Integer(e.sgx_type.value_or(0), V_ASN1_ENUMERATED)})},
      &der);
  if (!all) return Error{"cannot encode the SGX extensions: " + ossl::LastError()};
  ASN1_TYPE_free(all);
  return der;
}

Result<ossl::X509Ptr> IssueCertificate(const CertSpec& spec, EVP_PKEY* subject_key, X509* issuer,
                                       EVP_PKEY* issuer_key) {
  ossl::X509Ptr cert(X509_new());
  if (!cert) return Error{"X509_new: " + ossl::LastError()};
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("tdxvirt simulator"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), time_t(spec.not_before));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), time_t(spec.not_after));
  X509_set_pubkey(cert.get(), subject_key);

  std::string bc = spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE";
  if (spec.ca && spec.path_len >= 0) bc += ",pathlen:" + std::to_string(spec.path_len);
  for (auto [nid, value] : std::initializer_list<std::pair<int, std::string>>{
           {NID_basic_constraints, bc},
           {NID_key_usage, spec.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,nonRepudiation"},
           {NID_subject_key_identifier, "hash"},
           {NID_authority_key_identifier, "keyid:always"}}) {
    Status s = AddExtension(cert.get(), issuer, nid, value.c_str());
    if (!s.ok()) return Error{s.error()};
  }
  if (spec.sgx_extensions) {
    auto der = EncodeSgxExtensions(*spec.sgx_extensions);
    if (!der.ok()) return Error{der.error()};
    std::unique_ptr<ASN1_OBJECT, decltype(&ASN1_OBJECT_free)> oid(
        OBJ_txt2obj(evidence::kSgxExtensionsOid, 1), ASN1_OBJECT_free);
    ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(value, der->data(), int(der->size()));
    X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 0, value);
    ASN1_OCTET_STRING_free(value);
    if (!ext || X509_add_ext(cert.get(), ext, -1) != 1) {
      X509_EXTENSION_free(ext);
      return Error{"cannot add the SGX extensions: " + ossl::LastError()};
    }
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), issuer_key ? issuer_key : subject_key, EVP_sha256()) <= 0)
    return Error{"cannot sign certificate: " + ossl::LastError()};
  return cert;
}

Result<Bytes> IssueCrl(X509* issuer, EVP_PKEY* issuer_key, int64_t this_update, int64_t next_update,
                       const std::vector<X509*>& revoked, const X509_NAME* issuer_name) {
  ossl::X509CrlPtr crl(X509_CRL_new());
  if (!crl) return Error{"X509_CRL_new: " + ossl::LastError()};
  X509_CRL_set_version(crl.get(), 1);  // v2
  X509_CRL_set_issuer_name(crl.get(), issuer_name ? issuer_name : X509_get_subject_name(issuer));
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> t1(ASN1_TIME_set(nullptr, time_t(this_update)),
                                                           ASN1_TIME_free);
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> t2(ASN1_TIME_set(nullptr, time_t(next_update)),
                                                           ASN1_TIME_free);
  X509_CRL_set1_lastUpdate(crl.get(), t1.get());
  X509_CRL_set1_nextUpdate(crl.get(), t2.get());
  for (X509* cert : revoked) {
    X509_REVOKED* entry = X509_REVOKED_new();
    X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(cert));
    X509_REVOKED_set_revocationDate(entry, t1.get());
    X509_CRL_add0_revoked(crl.get(), entry);
  }
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), issuer_key, EVP_sha256()) <= 0)
    return Error{"cannot sign CRL: " + ossl::LastError()};
  int len = i2d_X509_CRL(crl.get(), nullptr);
  Bytes out(size_t(len > 0 ? len : 0));
  unsigned char* p = out.data();
  i2d_X509_CRL(crl.get(), &p);
  return out;
}

}  // namespace tdxvirt::simulator
