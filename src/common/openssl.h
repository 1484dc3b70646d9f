// Thin RAII and helpers over OpenSSL 3. All cryptography in tdxvirt goes through OpenSSL.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"

namespace tdxvirt::ossl {

struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct X509CrlFree { void operator()(X509_CRL* p) const { X509_CRL_free(p); } };
struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct MdCtxFree { void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); } };
using X509Ptr = std::unique_ptr<X509, X509Free>;
using X509CrlPtr = std::unique_ptr<X509_CRL, X509CrlFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// The queued OpenSSL error text (and clears the queue); "" when none.
std::string LastError();

ByteArray<32> Sha256(ByteSpan data);
ByteArray<48> Sha384(ByteSpan data);
ByteArray<64> Sha512(ByteSpan data);

// A P-256 public key from its raw x||y coordinates (the quote's encoding, no 0x04 prefix).
Result<PkeyPtr> P256PublicKeyFromRaw(const ByteArray<64>& xy);
// ECDSA-P256-SHA256 verification of a raw r||s signature (the quote's encoding). False for a bad
// signature and for any malformed input; never throws.
bool VerifyEcdsaP256Sha256(EVP_PKEY* key, ByteSpan message, const ByteArray<64>& signature_rs);
// Signs with ECDSA-SHA256 and returns raw r||s.
Result<ByteArray<64>> SignEcdsaP256Sha256(EVP_PKEY* key, ByteSpan message);

// Every certificate in a PEM text, in order; text with no certificate, or a malformed block, is an
// error. `strict` (for chains inside evidence) also refuses anything between or after the blocks
// but white space and NUL padding, so no byte of the chain is free to alter.
Result<std::vector<X509Ptr>> ParsePemChain(std::string_view pem, bool strict = false);
Result<X509Ptr> ParseDerCertificate(ByteSpan der);
Result<X509CrlPtr> ParseDerCrl(ByteSpan der);

// Encoders for the files and JWKS entries a PKI writes: PEM "CERTIFICATE", DER, and a private key
// as PKCS#8 PEM "PRIVATE KEY".
std::string CertToPem(const X509* cert);
Bytes CertToDer(const X509* cert);
Result<std::string> PrivateKeyToPem(EVP_PKEY* key);
// The first fullName URI among the certificate's CRL distribution points (Go's
// CRLDistributionPoints[0], Python's cdp.value[0].full_name[0]); "" when there is none.
std::string FirstCrlDistributionPointUri(const X509* cert);

// "CN=Intel SGX PCK Certificate,O=Intel Corporation,..." : RFC 2253 escaping, attributes in the
// order the certificate encodes them (as `openssl x509 -subject` shows them).
std::string NameToString(const X509_NAME* name);
// The first commonName of a name, "" when absent.
std::string CommonName(const X509_NAME* name);
// "2025-02-06T23:25:51Z"; "" if the time cannot be converted.
std::string TimeToRfc3339(const ASN1_TIME* t);
// Seconds since the epoch, or an error for a malformed time.
Result<int64_t> TimeToUnix(const ASN1_TIME* t);

}  // namespace tdxvirt::ossl
