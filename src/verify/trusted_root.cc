#include "verify/trusted_root.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/hex.h"

namespace tdxvirt::verify {

namespace {

// Intel SGX Root CA (public certificate; Intel publishes it at
// certificates.trustedservices.intel.com). Subject = issuer "CN=Intel SGX Root CA", valid to 2049.
constexpr char kIntelSgxRootCaPem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw\n"
    "aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv\n"
    "cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ\n"
    "BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG\n"
    "A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0\n"
    "aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT\n"
    "AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7\n"
    "1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB\n"
    "uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ\n"
    "MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50\n"
    "ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV\n"
    "Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI\n"
    "KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg\n"
    "AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=\n"
    "-----END CERTIFICATE-----\n";

}  // namespace

Result<TrustedRoot> TrustedRoot::IntelSgxRootCa() {
  auto root = FromPem(kIntelSgxRootCaPem);
  if (!root.ok()) return root;
  // A second guard against a corrupted build: the fingerprint Intel publishes.
  if (root->fingerprint() != kIntelSgxRootCaSha256)
    return Error{"built-in Intel SGX Root CA does not match its published SHA-256 fingerprint"};
  return root;
}

Result<TrustedRoot> TrustedRoot::FromPem(std::string_view pem) {
  auto chain = ossl::ParsePemChain(pem);
  if (!chain.ok()) return Error{"trusted root: " + chain.error()};
  if (chain->size() != 1)
    return Error{"trusted root: expected exactly one certificate, found " +
                 std::to_string(chain->size())};
  X509* cert = chain->front().get();
  if (X509_check_issued(cert, cert) != X509_V_OK)
    return Error{"trusted root: certificate is not self-issued (subject " +
                 ossl::NameToString(X509_get_subject_name(cert)) + ")"};
  ossl::PkeyPtr key(X509_get_pubkey(cert));
  if (!key || X509_verify(cert, key.get()) != 1)
    return Error{"trusted root: self-signature does not verify"};
  if (X509_check_ca(cert) == 0) return Error{"trusted root: certificate is not a CA"};
  TrustedRoot out;
  int len = i2d_X509(cert, nullptr);
  out.der_.resize(size_t(len));
  unsigned char* p = out.der_.data();
  i2d_X509(cert, &p);
  out.cert_ = std::shared_ptr<X509>(chain->front().release(), X509_free);
  return out;
}

std::string TrustedRoot::fingerprint() const { return ToHex(ossl::Sha256(der_)); }

}  // namespace tdxvirt::verify
