// The three verifiers (Go, C and Python ways) proven on Intel's own artefacts first: the C client's
// dev JWKS, CRLs and SGX token (shared/testdata/ita, MANIFEST.md) served over real HTTP at the CDPs
// the certificates name. Then every refusal, each way with its own reason: a revoked leaf, a
// revoked Signing CA, a stale CRL, a missing CDP, a Signing CA from another root, a JWKS key
// without x5c, a tampered signature, an unknown kid, plus the cases where the clients disagree
// (EKU, x5c order, expiry), so the table in docs/verification.md is backed by tests.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "ita_server.h"
#include "ita_ways.h"
#include "test_pki.h"
#include "test_util.h"

namespace tdxvirt::ita {
namespace {

using namespace testing;
using tdxvirt::testing::ReadTestdata;

std::string Testdata(const std::string& name) {
  Bytes b = ReadTestdata("ita/" + name);
  return std::string(AsString(b));
}

// 2024-06-11T04:21:03Z: ten minutes into the C token's 30-minute life.
constexpr int64_t kInsideIntelToken = 1718079063 + 600;

struct Outcomes {
  Result<nlohmann::json> go, c, py;
};
Outcomes VerifyAllWays(const std::string& token, const WayOptions& o) {
  return {VerifyGoWay(token, o), VerifyCWay(token, o), VerifyPythonWay(token, o)};
}
#define EXPECT_ACCEPTED(r) EXPECT_TRUE((r).ok()) << (r).error()
#define EXPECT_REFUSED(r, msg)            \
  do {                                    \
    ASSERT_FALSE((r).ok()) << "accepted"; \
    EXPECT_EQ((r).error(), msg);          \
  } while (0)

class IntelCFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Set("/certs", Testdata("c-client-dev-jwks.json"));
    server_.Set("/crl/ats-ca-crl.der", Testdata("c-client-ats-ca-crl.der"));
    server_.Set("/crl/root-ca-crl.der", Testdata("c-client-root-ca-crl.der"));
    token_ = Testdata("c-client-dev-sgx-token.jwt");
    while (!token_.empty() && (token_.back() == '\n' || token_.back() == '\r')) token_.pop_back();
    jwks_ = nlohmann::json::parse(Testdata("c-client-dev-jwks.json"));
  }
  WayOptions Options() const {
    return {.base_url = "http://localhost:8081", .now = kInsideIntelToken};
  }

  StaticServer server_;
  std::string token_;
  nlohmann::json jwks_;
};

TEST_F(IntelCFixture, AllThreeWaysAcceptIntelsToken) {
  auto expected = nlohmann::json::parse(Testdata("c-client-dev-sgx-token.payload.json"));
  auto r = VerifyAllWays(token_, Options());
  ASSERT_TRUE(r.go.ok()) << r.go.error();
  ASSERT_TRUE(r.c.ok()) << r.c.error();
  ASSERT_TRUE(r.py.ok()) << r.py.error();
  EXPECT_EQ(*r.go, expected);
  EXPECT_EQ(*r.c, expected);
  EXPECT_EQ(*r.py, expected);
}

TEST_F(IntelCFixture, ExpiredTokenRefusedByGoAndPythonButNotByC) {
  WayOptions o = Options();
  o.now = 1718079063 + 1800;  // == exp
  auto r = VerifyAllWays(token_, o);
  EXPECT_REFUSED(r.go, "Failed to verify jwt token: token has invalid claims: token is expired");
  EXPECT_REFUSED(r.py, "verify_token: Attestation Token has expired: Signature has expired");
  EXPECT_ACCEPTED(r.c);  // libjwt's jwt_decode checks no time claim
}

TEST_F(IntelCFixture, TamperedSignatureRefusedAllWays) {
  std::string t = token_;
  char& last = t[t.size() - 2];
  last = last == 'A' ? 'B' : 'A';
  auto r = VerifyAllWays(t, Options());
  EXPECT_REFUSED(
      r.go,
      "Failed to verify jwt token: token signature is invalid: crypto/rsa: verification error");
  EXPECT_REFUSED(r.c, "verify_token: STATUS_TOKEN_VERIFICATION_FAILED_ERROR");
  EXPECT_REFUSED(r.py, "verify_token: Invalid Attestation token: Signature verification failed");
}

TEST_F(IntelCFixture, UnknownKidRefusedAllWays) {
  for (auto& k : jwks_["keys"]) k["kid"] = std::string(96, '0');
  server_.Set("/certs", jwks_.dump());
  auto r = VerifyAllWays(token_, Options());
  EXPECT_REFUSED(r.go, "Failed to verify jwt token: Could not find Key matching the key id");
  EXPECT_REFUSED(r.c, "verify_token: STATUS_KID_NOT_MATCHING_ERROR");
  EXPECT_REFUSED(r.py, "verify_token: Could not find Key matching the key id");
}

// The C client requires x5c on EVERY key of the set, even one it does not use; Go (lestrrat) and
// Python take the first key with the kid, which still has its chain.
TEST_F(IntelCFixture, KeyWithoutX5cRefusedTheCWayOnly) {
  ASSERT_EQ(jwks_["keys"].size(), 2u);
  jwks_["keys"][1].erase("x5c");
  server_.Set("/certs", jwks_.dump());
  auto r = VerifyAllWays(token_, Options());
  EXPECT_REFUSED(r.c,
                 "verify_token: STATUS_JSON_SIGN_CERT_UNMARSHALING_ERROR: "
                 "STATUS_JSON_SIGN_CERT_PARSING_KEYS_X5C_FIELD_NOT_AN_ARRAY_ERROR");
  EXPECT_ACCEPTED(r.go);
  EXPECT_ACCEPTED(r.py);
  // Without x5c on the key the token names, Go and Python have no chain either.
  jwks_["keys"][0].erase("x5c");
  server_.Set("/certs", jwks_.dump());
  r = VerifyAllWays(token_, Options());
  EXPECT_REFUSED(r.go, "Failed to verify jwt token: Invalid certificate chain");
  EXPECT_REFUSED(r.py, "verify_token: no Signing CA or no leaf certificate in x5c");
}

TEST_F(IntelCFixture, MoreThanTenX5cCertificatesRefusedAllWays) {
  for (auto& k : jwks_["keys"])
    while (k["x5c"].size() < 11) k["x5c"].push_back(k["x5c"][2]);
  server_.Set("/certs", jwks_.dump());
  auto r = VerifyAllWays(token_, Options());
  EXPECT_REFUSED(
      r.go, "Failed to verify jwt token: Token Signing Cert chain has more than 10 certificates");
  EXPECT_REFUSED(r.c, "verify_token: STATUS_JSON_NO_OF_SIGN_CERT_EXCEEDING_ERROR");
  EXPECT_REFUSED(r.py, "verify_token: Token Signing Cert chain has more than 10 certificates");
  // Ten are still accepted (the extra copies of the root change nothing).
  for (auto& k : jwks_["keys"]) k["x5c"].erase(10);
  server_.Set("/certs", jwks_.dump());
  r = VerifyAllWays(token_, Options());
  EXPECT_ACCEPTED(r.go);
  EXPECT_ACCEPTED(r.c);
  EXPECT_ACCEPTED(r.py);
}

// x5c[2] replaced by go-connector-invalid-ca.der, a self-signed "Intel Amber Root CA" that did not
// sign this Signing CA: the Root CA's CRL (signed by the real root) no longer verifies.
TEST_F(IntelCFixture, SigningCaNotSignedByTheRootRefusedAllWays) {
  std::string invalid_root = Base64Encode(ReadTestdata("ita/go-connector-invalid-ca.der"));
  for (auto& k : jwks_["keys"]) k["x5c"][2] = invalid_root;
  server_.Set("/certs", jwks_.dump());
  auto r = VerifyAllWays(token_, Options());
  EXPECT_REFUSED(
      r.go,
      "Failed to verify jwt token: Failed to check ATS CA Certificate against Root CA CRL: "
      "CRL signature verification failed: crypto/rsa: verification error");
  EXPECT_REFUSED(
      r.c,
      "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: STATUS_ROOT_CRL_VERIFICATION_ERROR: "
      "STATUS_CRL_VERIFICATION_ERROR");
  EXPECT_REFUSED(r.py,
                 "verify_token: Failed to check Intermediate CA Certificate against Root CA CRL: "
                 "Invalid CRL signature");
}

TEST_F(IntelCFixture, CrlNotServedRefusedAllWays) {
  server_.Set("/crl/ats-ca-crl.der", "not a CRL");
  auto r = VerifyAllWays(token_, Options());
  EXPECT_REFUSED(
      r.go,
      "Failed to verify jwt token: Failed to get ATS CRL Object: Failed to parse revocation list: "
      "x509: malformed crl");
  EXPECT_REFUSED(
      r.c,
      "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: STATUS_INTERMEDIATE_CRL_ERROR: "
      "STATUS_CRL_DOWNLOAD_ERROR: http://localhost:8081/crl/ats-ca-crl.der is not a DER CRL");
  ASSERT_FALSE(r.py.ok());
  EXPECT_TRUE(
      r.py.error().starts_with("verify_token: Failed to get INTERMEDIATE CA CRL Object: Error "
                               "occurred in get_crl request: "))
      << r.py.error();
}

// Our own PKI (Intel's CA keys are not ours) for the cases that need a CA to sign something.
class OwnPki : public ::testing::Test {
 protected:
  static constexpr const char* kBase = "http://127.0.0.1:8081";
  void Serve(const Chain& c, const std::vector<const Issued*>& revoked_by_root = {},
             const std::vector<const Issued*>& revoked_by_signing_ca = {},
             int64_t ats_next_update = 0) {
    server_.Set("/crl/root-ca-crl.der",
                std::string(AsString(MakeCrl(c.root, now_ - 60, now_ + 86400, revoked_by_root))));
    server_.Set("/crl/ats-ca-crl.der",
                std::string(AsString(MakeCrl(c.signing_ca, now_ - 7200,
                                             ats_next_update ? ats_next_update : now_ + 86400,
                                             revoked_by_signing_ca))));
    server_.Set("/certs",
                nlohmann::json{{"keys", {JwkFor(c, "PS384"), JwkFor(c, "RS256")}}}.dump());
  }
  std::string Token(const Chain& c, const std::string& alg = "PS384") {
    nlohmann::json claims = {{"iss", "test"}, {"iat", now_}, {"nbf", now_}, {"exp", now_ + 300}};
    return SignToken(claims, alg, c.kid, c.leaf.key.get());
  }
  WayOptions Options() const { return {.base_url = kBase, .now = now_}; }

  int64_t now_ = std::time(nullptr);
  StaticServer server_;
};

TEST_F(OwnPki, ValidChainAcceptedAllWaysBothAlgorithms) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_});
  Serve(c);
  for (const char* alg : {"PS384", "RS256"}) {
    auto r = VerifyAllWays(Token(c, alg), Options());
    EXPECT_ACCEPTED(r.go);
    EXPECT_ACCEPTED(r.c);
    EXPECT_ACCEPTED(r.py);
  }
}

TEST_F(OwnPki, RevokedLeafRefusedAllWays) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_});
  Serve(c, {}, {&c.leaf});
  auto r = VerifyAllWays(Token(c), Options());
  EXPECT_REFUSED(
      r.go,
      "Failed to verify jwt token: Failed to check ATS Leaf certificate against ATS CRL: "
      "Certificate was Revoked");
  EXPECT_REFUSED(r.c, "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: certificate revoked");
  EXPECT_REFUSED(r.py,
                 "verify_token: Failed to check Leaf Certificate against Intermediate CA CRL: "
                 "certificate has been revoked");
}

// X509_V_FLAG_CRL_CHECK checks the leaf only, and util.c verify_crl never looks up a serial: the C
// client does not notice a revoked Signing CA.
TEST_F(OwnPki, RevokedSigningCaRefusedByGoAndPythonNotByC) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_});
  Serve(c, {&c.signing_ca});
  auto r = VerifyAllWays(Token(c), Options());
  EXPECT_REFUSED(
      r.go,
      "Failed to verify jwt token: Failed to check ATS CA Certificate against Root CA CRL: "
      "Certificate was Revoked");
  EXPECT_REFUSED(r.py,
                 "verify_token: Failed to check Intermediate CA Certificate against Root CA CRL: "
                 "certificate has been revoked");
  EXPECT_ACCEPTED(r.c);
}

TEST_F(OwnPki, CrlPastNextUpdateRefusedAllWays) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_});
  Serve(c, {}, {}, now_ - 3600);
  auto r = VerifyAllWays(Token(c), Options());
  EXPECT_REFUSED(r.go,
                 "Failed to verify jwt token: Failed to check ATS Leaf certificate against ATS "
                 "CRL: Outdated CRL");
  EXPECT_REFUSED(r.c,
                 "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: "
                 "STATUS_INTERMEDIATE_CRL_VERIFICATION_ERROR: "
                 "STATUS_CRL_EXPIRED");
  EXPECT_REFUSED(r.py,
                 "verify_token: Failed to check Leaf Certificate against Intermediate CA CRL: "
                 "crl has been expired");
}

TEST_F(OwnPki, LeafWithoutCdpRefusedAllWays) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_, .leaf_cdp = false});
  Serve(c);
  auto r = VerifyAllWays(Token(c), Options());
  EXPECT_REFUSED(r.go,
                 "Failed to verify jwt token: Failed to get ATS CRL Object: Invalid CDP count "
                 "present in the certificate");
  EXPECT_REFUSED(r.c,
                 "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: STATUS_INTERMEDIATE_CRL_ERROR: "
                 "STATUS_CRL_DP_NOT_PRESENT");
  ASSERT_FALSE(r.py.ok());
  EXPECT_TRUE(r.py.error().starts_with(
      "verify_token: ExtensionNotFound (uncaught in the connector): leaf: "))
      << r.py.error();
}

TEST_F(OwnPki, SigningCaWithoutCdpRefusedAllWays) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_, .signing_ca_cdp = false});
  Serve(c);
  auto r = VerifyAllWays(Token(c), Options());
  EXPECT_REFUSED(r.go,
                 "Failed to verify jwt token: Failed to get ROOT CA CRL Object: Invalid CDP count "
                 "present in the certificate");
  EXPECT_REFUSED(r.c,
                 "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: STATUS_ROOT_CRL_ERROR: "
                 "STATUS_CRL_DP_NOT_PRESENT");
  ASSERT_FALSE(r.py.ok());
  EXPECT_TRUE(r.py.error().starts_with(
      "verify_token: ExtensionNotFound (uncaught in the connector): Signing CA: "))
      << r.py.error();
}

// The Signing CA was issued by another root with the same name; the x5c root signs the Root CA CRL,
// so only the chain step can notice.
TEST_F(OwnPki, SigningCaFromAnotherRootRefusedAllWays) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_});
  Chain other = MakeChain({.crl_base = kBase, .now = now_});
  // x5c = [c.leaf, c.signing_ca, other.root]: other.root signs the root CRL.
  server_.Set("/crl/root-ca-crl.der",
              std::string(AsString(MakeCrl(other.root, now_ - 60, now_ + 86400))));
  server_.Set("/crl/ats-ca-crl.der",
              std::string(AsString(MakeCrl(c.signing_ca, now_ - 60, now_ + 86400))));
  nlohmann::json k = JwkFor(c, "PS384");
  k["x5c"][2] = Base64Encode(other.root.der());
  server_.Set("/certs", nlohmann::json{{"keys", {k}}}.dump());
  auto r = VerifyAllWays(Token(c), Options());
  EXPECT_REFUSED(r.go,
                 "Failed to verify jwt token: Failed to verify cert chain: x509: certificate "
                 "signed by unknown authority");
  EXPECT_REFUSED(
      r.c, "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: unable to get issuer certificate");
  EXPECT_REFUSED(r.py,
                 "verify_token: Error in verifying inter ca certificate against root certificate");
}

// Python checks the CA signatures only, never a validity period.
TEST_F(OwnPki, ExpiredLeafCertificateRefusedByGoAndCNotByPython) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_, .leaf_not_after = now_ - 60});
  Serve(c);
  auto r = VerifyAllWays(Token(c), Options());
  EXPECT_REFUSED(r.go,
                 "Failed to verify jwt token: Failed to verify cert chain: "
                 "x509: certificate has expired or is not yet valid");
  EXPECT_REFUSED(r.c, "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: certificate has expired");
  EXPECT_ACCEPTED(r.py);
}

// Go's VerifyOptions default to ExtKeyUsageServerAuth; the others set no purpose.
TEST_F(OwnPki, LeafEkuWithoutServerAuthRefusedTheGoWayOnly) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_, .leaf_eku = "clientAuth"});
  Serve(c);
  auto r = VerifyAllWays(Token(c), Options());
  EXPECT_REFUSED(r.go,
                 "Failed to verify jwt token: Failed to verify cert chain: "
                 "x509: certificate specifies an incompatible key usage");
  EXPECT_ACCEPTED(r.c);
  EXPECT_ACCEPTED(r.py);
}

// The C client takes the signing key from x5c[0]; Go uses the JWK n/e and Python classifies by
// name.
TEST_F(OwnPki, LeafNotFirstInX5cRefusedTheCWayOnly) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_});
  Serve(c);
  nlohmann::json k = JwkFor(c, "PS384");
  std::swap(k["x5c"][0], k["x5c"][1]);
  server_.Set("/certs", nlohmann::json{{"keys", {k}}}.dump());
  auto r = VerifyAllWays(Token(c), Options());
  EXPECT_REFUSED(r.c, "verify_token: STATUS_TOKEN_VERIFICATION_FAILED_ERROR");
  EXPECT_ACCEPTED(r.go);
  EXPECT_ACCEPTED(r.py);
}

TEST_F(OwnPki, UnsupportedAlgorithmRefusedByGoAndPython) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_});
  Serve(c);
  // A PS384 signature under an "RS384" header: the header check refuses before any key is used.
  std::string t = Token(c);
  std::string header = Base64UrlEncode(
      AsBytes(nlohmann::json{{"alg", "RS384"}, {"kid", c.kid}, {"typ", "JWT"}}.dump()));
  t = header + t.substr(t.find('.'));
  auto r = VerifyAllWays(t, Options());
  EXPECT_REFUSED(
      r.go,
      "Failed to verify jwt token: unsupported token signing algorithm, has to be RS256 or PS384");
  EXPECT_REFUSED(r.py, "verify_token: Invalid Token Signing Algorithm");
  EXPECT_REFUSED(r.c, "verify_token: STATUS_TOKEN_VERIFICATION_FAILED_ERROR");
}

// The C client downloads every URI of every distribution point; Go and Python only the first.
TEST_F(OwnPki, UnreachableSecondCdpRefusedTheCWayOnly) {
  Chain c = MakeChain(
      {.crl_base = kBase, .now = now_, .leaf_second_cdp = std::string(kBase) + "/crl/missing.der"});
  Serve(c);
  auto r = VerifyAllWays(Token(c), Options());
  EXPECT_REFUSED(r.c,
                 "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: STATUS_INTERMEDIATE_CRL_ERROR: "
                 "STATUS_CRL_DOWNLOAD_ERROR: GET http://127.0.0.1:8081/crl/missing.der: HTTP 404");
  EXPECT_ACCEPTED(r.go);
  EXPECT_ACCEPTED(r.py);
}

TEST_F(OwnPki, MissingKidRefusedAllWays) {
  Chain c = MakeChain({.crl_base = kBase, .now = now_});
  Serve(c);
  std::string t = Token(c);
  std::string header =
      Base64UrlEncode(AsBytes(nlohmann::json{{"alg", "PS384"}, {"typ", "JWT"}}.dump()));
  t = header + t.substr(t.find('.'));
  auto r = VerifyAllWays(t, Options());
  EXPECT_REFUSED(r.go, "Failed to verify jwt token: kid field missing in token header");
  EXPECT_REFUSED(r.c, "verify_token: STATUS_TOKEN_KID_NULL_ERROR");
  EXPECT_REFUSED(r.py, "verify_token: Missing key id in token");
}

}  // namespace
}  // namespace tdxvirt::ita
