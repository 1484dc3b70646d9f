// Tokens from our attestation service, verified the Go, C and Python ways (ita_ways.h) with the
// JWKS and both CRLs fetched over HTTP from the service itself, at the CDPs its token PKI names.
// The service runs in process (tokenpki::testing::PkiService: AttestationServer as
// `tdxvirt serve attestation --token-pki DIR --public-url URL` runs it) with simulator quotes, and
// once as the real binary; the PKI is revoked and rotated with the real `tdxvirt token-pki`.
#include <gtest/gtest.h>

#include "common/base64.h"
#include "ita_ways.h"
#include "tokenpki/pki_test_util.h"

namespace tdxvirt::ita {
namespace {

using service::testing::F;
using service::testing::SimProvider;
using tdxvirt::testing::RunTdxvirt;
using tokenpki::testing::PkiService;
using tokenpki::testing::PkiServiceProcess;

std::string Token(const PkiService& s, const std::string& alg) {
  auto client = s.Client();
  auto provider = SimProvider();
  service::TokenRequestOptions o;
  o.token_signing_alg = alg;
  auto t = service::CollectToken(client, *provider, o);
  EXPECT_TRUE(t.ok()) << t.error();
  return t.ok() ? *t : "";
}
nlohmann::json Header(const std::string& token) {
  auto h = Base64UrlDecode(token.substr(0, token.find('.')), "header");
  return h.ok() ? nlohmann::json::parse(AsString(*h), nullptr, false) : nlohmann::json();
}
WayOptions Options(const std::string& url) { return {.base_url = url, .now = std::time(nullptr)}; }

// `token-pki revoke`, then the event of the running server re-signing its CRLs with it.
void RevokeAndWaitForCrls(PkiService& s, const std::string& cert_file) {
  auto r =
      RunTdxvirt("token-pki revoke --dir " + s.pki_dir + " --cert " + s.pki_dir + "/" + cert_file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(s.WaitForLog("\"crls_resigned\"")) << "the service never re-read revocations.json";
}

TEST(OurService, Ps384AndRs256TokensPassAllThreeWays) {
  PkiService s;
  ASSERT_TRUE(s.server);
  for (const char* alg : {"PS384", "RS256"}) {
    SCOPED_TRACE(alg);
    std::string t = Token(s, alg);
    auto h = Header(t);
    EXPECT_EQ(h["alg"], alg);
    EXPECT_EQ(h["jku"], s.public_url + "/certs");
    auto go = VerifyGoWay(t, Options(s.public_url));
    auto c = VerifyCWay(t, Options(s.public_url));
    auto py = VerifyPythonWay(t, Options(s.public_url));
    ASSERT_TRUE(go.ok()) << go.error();
    ASSERT_TRUE(c.ok()) << c.error();
    ASSERT_TRUE(py.ok()) << py.error();
    EXPECT_EQ(*go, *py);
    EXPECT_EQ(*go, *c);
    EXPECT_TRUE(go->contains("tdx")) << go->dump();
  }
}

TEST(OurService, RevokedSigningCertificateFailsAllThreeWays) {
  PkiService s;
  ASSERT_TRUE(s.server);
  std::string ps = Token(s, "PS384"), rs = Token(s, "RS256");
  ASSERT_TRUE(VerifyGoWay(ps, Options(s.public_url)).ok());
  RevokeAndWaitForCrls(s, "token-signing.crt");
  for (const std::string& t : {ps, rs}) {
    EXPECT_EQ(VerifyGoWay(t, Options(s.public_url)).error(),
              "Failed to verify jwt token: Failed to check ATS Leaf certificate against ATS CRL: "
              "Certificate was Revoked");
    EXPECT_EQ(VerifyCWay(t, Options(s.public_url)).error(),
              "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: certificate revoked");
    EXPECT_EQ(VerifyPythonWay(t, Options(s.public_url)).error(),
              "verify_token: Failed to check Leaf Certificate against Intermediate CA CRL: "
              "certificate has been revoked");
  }
}

// Intel's C client checks the CRL of the leaf only (X509_V_FLAG_CRL_CHECK; its verify_crl looks
// up no serial), so a revoked Signing CA passes the C way while Go and Python refuse. That is the
// client's gap, not the service's: root-ca-crl.der lists the Signing CA, and the C way fetches it
// and checks its signature.
TEST(OurService, RevokedSigningCaFailsTheGoAndPythonWaysNotTheC) {
  PkiService s;
  ASSERT_TRUE(s.server);
  std::string t = Token(s, "PS384");
  RevokeAndWaitForCrls(s, "signing-ca.crt");
  EXPECT_EQ(VerifyGoWay(t, Options(s.public_url)).error(),
            "Failed to verify jwt token: Failed to check ATS CA Certificate against Root CA CRL: "
            "Certificate was Revoked");
  EXPECT_EQ(VerifyPythonWay(t, Options(s.public_url)).error(),
            "verify_token: Failed to check Intermediate CA Certificate against Root CA CRL: "
            "certificate has been revoked");
  auto c = VerifyCWay(t, Options(s.public_url));
  EXPECT_TRUE(c.ok()) << c.error();
}

// A rotation takes effect when the service restarts; the previous leaf stays in the JWKS, so a
// token it signed before still verifies every way, beside one from the new leaf.
TEST(OurService, TokenOfThePreviousKeyStillVerifiesAfterRotate) {
  PkiService s;
  ASSERT_TRUE(s.server);
  std::string old_token = Token(s, "PS384");
  auto r = RunTdxvirt("token-pki rotate --dir " + s.pki_dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Restart on the same port and directory (the options PkiService uses, minus its log/clock).
  s.server->Stop();
  s.server.reset();
  service::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = s.port;
  o.plain_http = true;
  o.token_pki_dir = s.pki_dir;
  o.public_url = s.public_url;
  o.collateral_path = F().sim_dir + "/collateral.json";
  o.root_pem_path = F().sim_dir + "/root_ca.pem";
  o.api_keys = {"test-api-key"};
  o.log = [](const std::string&) {};
  auto restarted = service::AttestationServer::Create(std::move(o));
  ASSERT_TRUE(restarted.ok()) << restarted.error();
  s.server = std::move(*restarted);
  auto port = s.server->Start();
  ASSERT_TRUE(port.ok()) << port.error();
  ASSERT_EQ(*port, s.port);

  std::string new_token = Token(s, "PS384");
  ASSERT_NE(Header(old_token)["kid"], Header(new_token)["kid"]);
  for (const std::string& t : {old_token, new_token}) {
    auto go = VerifyGoWay(t, Options(s.public_url));
    auto c = VerifyCWay(t, Options(s.public_url));
    auto py = VerifyPythonWay(t, Options(s.public_url));
    EXPECT_TRUE(go.ok()) << go.error();
    EXPECT_TRUE(c.ok()) << c.error();
    EXPECT_TRUE(py.ok()) << py.error();
  }
}

// The real binaries end to end: `tdxvirt serve attestation --token-pki DIR --public-url URL` and a
// token from `tdxvirt attest token` (simulated TD), RS256 to cover the non-default algorithm.
TEST(OurServiceBinary, ServeAttestationTokenPassesAllThreeWays) {
  PkiServiceProcess p;
  ASSERT_GT(p.pid, 0);
  tdxvirt::testing::WriteFile(p.dir.File("cfg.json"),
                              nlohmann::json({{"trustauthority_url", p.public_url},
                                              {"trustauthority_api_url", p.public_url},
                                              {"trustauthority_api_key", "test-api-key"}})
                                  .dump());
  auto r = RunTdxvirt("attest token -c " + p.dir.File("cfg.json") +
                      " --allow-http --provider sim --sim-dir " + F().sim_dir + " -a RS256");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string token = r.out.substr(0, r.out.find('\n'));
  EXPECT_EQ(Header(token)["alg"], "RS256");
  auto go = VerifyGoWay(token, Options(p.public_url));
  auto c = VerifyCWay(token, Options(p.public_url));
  auto py = VerifyPythonWay(token, Options(p.public_url));
  EXPECT_TRUE(go.ok()) << go.error();
  EXPECT_TRUE(c.ok()) << c.error();
  EXPECT_TRUE(py.ok()) << py.error();
}

}  // namespace
}  // namespace tdxvirt::ita
