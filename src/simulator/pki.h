// X.509 building blocks for the simulated Intel PKI: P-256 keys, certificates, CRLs and the PCK
// certificate's SGX extensions, all through OpenSSL. Used only by the simulator; the verifier
// never learns that a certificate came from here.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "common/openssl.h"
#include "common/result.h"
#include "evidence/pck_cert.h"

namespace tdxvirt::simulator {

ossl::PkeyPtr NewP256Key();
std::string KeyToPem(EVP_PKEY* key);  // PKCS#8, unencrypted: files holding it are 0600
Result<ossl::PkeyPtr> KeyFromPem(std::string_view pem);
std::string CertToPem(X509* cert);
Bytes CertToDer(X509* cert);
// The raw x||y of a P-256 public key (the quote's attestation key encoding).
Result<ByteArray<64>> RawP256PublicKey(EVP_PKEY* key);

struct CertSpec {
  std::string common_name;
  bool ca = false;
  int path_len = -1;  // CA only; -1 = unlimited
  int64_t not_before = 0;
  int64_t not_after = 0;
  // PCK leaf only: the SGX extensions (OID 1.2.840.113741.1.13.1).
  const evidence::PckExtensions* sgx_extensions = nullptr;
};

// Issues a certificate for `subject_key`, signed by `issuer_key`; self-signed when issuer is null.
Result<ossl::X509Ptr> IssueCertificate(const CertSpec& spec, EVP_PKEY* subject_key, X509* issuer,
                                       EVP_PKEY* issuer_key);

// A DER CRL signed by `issuer_key`, listing `revoked` certificates. Its issuer name is `issuer`'s
// subject, or `issuer_name` when given (a CRL that names someone other than its signer).
Result<Bytes> IssueCrl(X509* issuer, EVP_PKEY* issuer_key, int64_t this_update, int64_t next_update,
                       const std::vector<X509*>& revoked, const X509_NAME* issuer_name = nullptr);

// DER of the SGX extensions value (the inverse of evidence::ExtractPckExtensions).
Result<Bytes> EncodeSgxExtensions(const evidence::PckExtensions& ext);

}  // namespace tdxvirt::simulator
