// The trust anchor of DCAP verification. By default the Intel SGX Root CA, built in and checked
// against its published SHA-256 fingerprint; `FromPem` trusts another root (the simulator's), which
// the CLI only does when told to with --root.
#pragma once

#include <string_view>

#include "common/openssl.h"
#include "common/result.h"

namespace tdxvirt::verify {

// SHA-256 of the DER Intel SGX Root CA certificate.
inline constexpr char kIntelSgxRootCaSha256[] =
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

class TrustedRoot {
 public:
  static Result<TrustedRoot> IntelSgxRootCa();
  // Exactly one self-signed CA certificate in PEM.
  static Result<TrustedRoot> FromPem(std::string_view pem);

  X509* cert() const { return cert_.get(); }
  const Bytes& der() const { return der_; }
  std::string fingerprint() const;  // SHA-256 of the DER, lower-case hex

 private:
  std::shared_ptr<X509> cert_;
  Bytes der_;
};

}  // namespace tdxvirt::verify
