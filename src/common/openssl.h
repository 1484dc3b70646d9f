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

// Every certificate in a PEM text, in order. Bytes after the last block (NUL padding in quotes) are
// ignored; text with no certificate, or a malformed block, is an error.
Result<std::vector<X509Ptr>> ParsePemChain(std::string_view pem);
Result<X509Ptr> ParseDerCertificate(ByteSpan der);
Result<X509CrlPtr> ParseDerCrl(ByteSpan der);

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
