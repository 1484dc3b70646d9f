#include "common/openssl.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <ctime>

namespace tdxvirt::ossl {

std::string LastError() {
  std::string out;
  unsigned long code;
  char buf[256];
  while ((code = ERR_get_error()) != 0) {
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

ByteArray<32> Sha256(ByteSpan data) {
  ByteArray<32> out;
  SHA256(data.data(), data.size(), out.data());
  return out;
}
ByteArray<48> Sha384(ByteSpan data) {
  ByteArray<48> out;
  SHA384(data.data(), data.size(), out.data());
  return out;
}
ByteArray<64> Sha512(ByteSpan data) {
  ByteArray<64> out;
  SHA512(data.data(), data.size(), out.data());
  return out;
}

Result<PkeyPtr> P256PublicKeyFromRaw(const ByteArray<64>& xy) {
  unsigned char point[65];
  point[0] = 0x04;  // uncompressed
  std::copy(xy.begin(), xy.end(), point + 1);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>("prime256v1"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
      OSSL_PARAM_construct_end()};
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
    return Error{"not a P-256 public key (x||y): " + LastError()};
  return PkeyPtr(key);
}

namespace {
// Raw r||s to the DER ECDSA-Sig-Value OpenSSL verifies.
Bytes RawSignatureToDer(const ByteArray<64>& rs) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (!sig) return {};
  BIGNUM* r = BN_bin2bn(rs.data(), 32, nullptr);
  BIGNUM* s = BN_bin2bn(rs.data() + 32, 32, nullptr);
  if (!r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return {};
  }
  Bytes der(80);
  unsigned char* p = der.data();
  int len = i2d_ECDSA_SIG(sig, &p);
  ECDSA_SIG_free(sig);
  der.resize(len > 0 ? size_t(len) : 0);
  return der;
}
}  // namespace

bool VerifyEcdsaP256Sha256(EVP_PKEY* key, ByteSpan message, const ByteArray<64>& signature_rs) {
  Bytes der = RawSignatureToDer(signature_rs);
  if (der.empty() || !key) return false;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx.get(), der.data(), der.size(), message.data(), message.size()) == 1;
  ERR_clear_error();
  return ok;
}

Result<ByteArray<64>> SignEcdsaP256Sha256(EVP_PKEY* key, ByteSpan message) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()) != 1)
    return Error{"ECDSA sign failed: " + LastError()};
  Bytes der(len);
  if (EVP_DigestSign(ctx.get(), der.data(), &len, message.data(), message.size()) != 1)
    return Error{"ECDSA sign failed: " + LastError()};
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, long(len));
  if (!sig) return Error{"ECDSA signature is not DER: " + LastError()};
  ByteArray<64> out{};
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  bool ok = BN_bn2binpad(r, out.data(), 32) == 32 && BN_bn2binpad(s, out.data() + 32, 32) == 32;
  ECDSA_SIG_free(sig);
  if (!ok) return Error{"ECDSA signature is not P-256 sized"};
  return out;
}

namespace {
struct BioFree { void operator()(BIO* p) const { BIO_free(p); } };
using BioPtr = std::unique_ptr<BIO, BioFree>;
}  // namespace

Result<std::vector<X509Ptr>> ParsePemChain(std::string_view pem, bool strict) {
  std::vector<X509Ptr> chain;
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  static constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  auto only_padding = [](std::string_view gap) {
    return gap.find_first_not_of(std::string_view(" \t\r\n\0", 5)) == std::string_view::npos;
  };
  size_t pos = 0, prev_end = 0;
  while ((pos = pem.find(kBegin, pos)) != std::string_view::npos) {
    if (strict && !only_padding(pem.substr(prev_end, pos - prev_end)))
      return Error{"unexpected text before PEM certificate " + std::to_string(chain.size() + 1)};
    size_t end = pem.find(kEnd, pos);
    if (end == std::string_view::npos)
      return Error{"PEM certificate " + std::to_string(chain.size() + 1) +
                   " has no END CERTIFICATE line"};
    if (pem.substr(pos + kBegin.size(), end - pos - kBegin.size()).find("-----") != std::string_view::npos)
      return Error{"PEM certificate " + std::to_string(chain.size() + 1) +
                   " has a broken END CERTIFICATE line"};
    end += kEnd.size();
    std::string_view block = pem.substr(pos, end - pos);
    BioPtr bio(BIO_new_mem_buf(block.data(), int(block.size())));
    X509* cert = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (!cert)
      return Error{"PEM certificate " + std::to_string(chain.size() + 1) +
                   " is not a valid X.509 certificate: " + LastError()};
    chain.emplace_back(cert);
    pos = prev_end = end;
  }
  if (chain.empty()) return Error{"no PEM certificate (BEGIN CERTIFICATE) found"};
  if (strict && !only_padding(pem.substr(prev_end)))
    return Error{"unexpected text after the last PEM certificate"};
  return chain;
}

Result<X509Ptr> ParseDerCertificate(ByteSpan der) {
  const unsigned char* p = der.data();
  X509* cert = d2i_X509(nullptr, &p, long(der.size()));
  if (!cert) return Error{"not a DER X.509 certificate: " + LastError()};
  X509Ptr owned(cert);
  if (p != der.data() + der.size()) return Error{"DER certificate has trailing bytes"};
  return owned;
}

Result<X509CrlPtr> ParseDerCrl(ByteSpan der) {
  const unsigned char* p = der.data();
  X509_CRL* crl = d2i_X509_CRL(nullptr, &p, long(der.size()));
  if (!crl) return Error{"not a DER X.509 CRL: " + LastError()};
  X509CrlPtr owned(crl);
  if (p != der.data() + der.size()) return Error{"DER CRL has trailing bytes"};
  return owned;
}

std::string NameToString(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return "";
  X509_NAME_print_ex(bio.get(), name, 0,
                     XN_FLAG_RFC2253 & ~XN_FLAG_DN_REV & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size_t(len));
}

std::string CommonName(const X509_NAME* name) {
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return "";
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, s);
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), size_t(len));
  OPENSSL_free(utf8);
  return out;
}

Result<int64_t> TimeToUnix(const ASN1_TIME* t) {
  struct tm tm {};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return Error{"malformed ASN.1 time"};
  return int64_t(timegm(&tm));
}

std::string TimeToRfc3339(const ASN1_TIME* t) {
  struct tm tm {};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return "";
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {
std::string BioText(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, size_t(n)) : std::string();
}
}  // namespace

std::string CertToPem(const X509* cert) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), const_cast<X509*>(cert));
  return BioText(b.get());
}

Bytes CertToDer(const X509* cert) {
  int n = i2d_X509(cert, nullptr);
  if (n <= 0) return {};
  Bytes out(static_cast<size_t>(n));
  uint8_t* p = out.data();
  i2d_X509(cert, &p);
  return out;
}

Result<std::string> PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr))
    return Error{"cannot encode the private key: " + LastError()};
  return BioText(b.get());
}

std::string FirstCrlDistributionPointUri(const X509* cert) {
  auto* dps = static_cast<CRL_DIST_POINTS*>(
      X509_get_ext_d2i(cert, NID_crl_distribution_points, nullptr, nullptr));
  LastError();  // absent or malformed: no URI
  std::string out;
  for (int i = 0; dps && out.empty() && i < sk_DIST_POINT_num(dps); ++i) {
    DIST_POINT* dp = sk_DIST_POINT_value(dps, i);
    if (!dp->distpoint || dp->distpoint->type != 0) continue;  // fullName only
    GENERAL_NAMES* names = dp->distpoint->name.fullname;
    for (int j = 0; out.empty() && j < sk_GENERAL_NAME_num(names); ++j) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, j);
      if (g->type != GEN_URI) continue;
      const ASN1_IA5STRING* u = g->d.uniformResourceIdentifier;
      out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(u)), size_t(ASN1_STRING_length(u)));
    }
  }
  CRL_DIST_POINTS_free(dps);
  return out;
}

}  // namespace tdxvirt::ossl
