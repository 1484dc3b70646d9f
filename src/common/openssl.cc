#include "common/openssl.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

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

namespace {
struct BioFree { void operator()(BIO* p) const { BIO_free(p); } };
using BioPtr = std::unique_ptr<BIO, BioFree>;
}  // namespace

Result<std::vector<X509Ptr>> ParsePemChain(std::string_view pem) {
  std::vector<X509Ptr> chain;
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  size_t pos = 0;
  while ((pos = pem.find(kBegin, pos)) != std::string_view::npos) {
    size_t end = pem.find("-----END CERTIFICATE-----", pos);
    if (end == std::string_view::npos)
      return Error{"PEM certificate " + std::to_string(chain.size() + 1) +
                   " has no END CERTIFICATE line"};
    end += 25;
    std::string_view block = pem.substr(pos, end - pos);
    BioPtr bio(BIO_new_mem_buf(block.data(), int(block.size())));
    X509* cert = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (!cert)
      return Error{"PEM certificate " + std::to_string(chain.size() + 1) +
                   " is not a valid X.509 certificate: " + LastError()};
    chain.emplace_back(cert);
    pos = end;
  }
  if (chain.empty()) return Error{"no PEM certificate (BEGIN CERTIFICATE) found"};
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

}  // namespace tdxvirt::ossl
