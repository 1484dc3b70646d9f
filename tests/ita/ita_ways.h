// Three verifiers of Intel Trust Authority tokens, each following the steps of one of Intel's
// clients as read in their sources (shared/reference/ita-ecosystem.md §7):
//   GoWay     – go-connector `VerifyToken` (token.go): golang-jwt + lestrrat jwk + crypto/x509;
//   CWay      – C client `verify_token` (token_verifier.c, util.c): jansson + OpenSSL + libjwt;
//   PythonWay – Python connector `verify_token` (connector.py), run as a real Python program with
//               the libraries Intel's connector uses (`cryptography`, PyJWT): python_way.py.
//
// Why three and not one: the clients disagree (which certificate holds the signing key, which CDPs
// are fetched, whether dates or EKUs are checked, whether a revoked Signing CA is noticed), and a
// token from our service must pass every one of them. Each verifier is written out step by step,
// without shared helpers that would hide those differences; only HTTP GET and base64 are shared.
//
// Every refusal is "<step>: <reason>", with the step and reason worded as the client words them, so
// a test can assert *which* check refused.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace tdxvirt::ita {

struct WayOptions {
  // The token issuer's base URL; the JWKS is GET {base_url}/certs (all three clients).
  std::string base_url;
  // The clock for every date check (certificate validity, CRL nextUpdate, exp/nbf), Unix seconds.
  // The real clients use the wall clock; tests move it to verify Intel's 2024 token.
  int64_t now = 0;
};

// The verified claims, or "<step>: <reason>".
Result<nlohmann::json> VerifyGoWay(const std::string& token, const WayOptions& o);
Result<nlohmann::json> VerifyCWay(const std::string& token, const WayOptions& o);
// Runs /usr/bin/python3 python_way.py; see that file for how `now` reaches PyJWT.
Result<nlohmann::json> VerifyPythonWay(const std::string& token, const WayOptions& o);

// GET of an http:// URL with a 10 s deadline; the body of a 200, else an error naming the URL.
Result<std::string> HttpGet(const std::string& url);

}  // namespace tdxvirt::ita
