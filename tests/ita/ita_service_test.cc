// Tokens from our attestation service, verified the Go, C and Python ways (ita_ways.h) with the
// JWKS and both CRLs fetched over HTTP from the service itself, at the CDPs its token PKI names.
// The service runs in process (AttestationServer, as `tdxvirt serve attestation --token-pki DIR
// --public-url URL` runs it) with simulator quotes; the PKI directory is made, revoked and rotated
// with the real `tdxvirt token-pki` commands.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/base64.h"
#include "ita_ways.h"
#include "service_test_util.h"

namespace tdxvirt::ita {
namespace {

using service::AttestationServer;
using service::ServerOptions;
using service::testing::F;
using service::testing::SimProvider;
using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;

// A port free right now: the public URL (and so every CDP in the PKI) must name the port before
// the service binds it.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

class OurService : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = FreePort();
    ASSERT_NE(port_, 0);
    url_ = "http://127.0.0.1:" + std::to_string(port_);
    auto r = RunTdxvirt("token-pki init --dir " + Pki() + " --public-url " + url_ + " --key-bits 2048");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    Start();
  }
  void TearDown() override { Stop(); }

  std::string Pki() const { return dir_.File("pki"); }
  // The service reads the PKI directory (and revocations.json) when it starts; a restart is how
  // these tests make it see a rotate or a revoke deterministically (the live reload is the PKI
  // tests' business).
  void Start() {
    ServerOptions o;
    o.port = port_;
    o.plain_http = true;
    o.token_pki_dir = Pki();
    o.public_url = url_;
    o.collateral_path = F().sim_dir + "/collateral.json";
    o.root_pem_path = F().sim_dir + "/root_ca.pem";
    o.api_keys = {"test-api-key"};
    o.log = [](const std::string&) {};
    auto s = AttestationServer::Create(std::move(o));
    ASSERT_TRUE(s.ok()) << s.error();
    server_ = std::move(*s);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.error();
    ASSERT_EQ(*port, port_);
  }
  void Stop() {
    if (server_) server_->Stop();
    server_.reset();
  }
  void Restart() {
    Stop();
    Start();
  }
  std::string Token(const std::string& alg) {
    service::ClientConfig c;
    c.trustauthority_url = c.trustauthority_api_url = url_;
    c.trustauthority_api_key = "test-api-key";
    c.allow_http = true;
    auto client = service::TrustAuthorityClient::Create(c);
    EXPECT_TRUE(client.ok()) << client.error();
    auto provider = SimProvider();
    service::TokenRequestOptions o;
    o.token_signing_alg = alg;
    auto t = service::CollectToken(*client, *provider, o);
    EXPECT_TRUE(t.ok()) << t.error();
    return t.ok() ? *t : "";
  }
  WayOptions Options() const { return {.base_url = url_, .now = std::time(nullptr)}; }
  static nlohmann::json Header(const std::string& token) {
    auto h = Base64UrlDecode(token.substr(0, token.find('.')), "header");
    return h.ok() ? nlohmann::json::parse(AsString(*h), nullptr, false) : nlohmann::json();
  }
  void Revoke(const std::string& cert_file) {
    auto r = RunTdxvirt("token-pki revoke --dir " + Pki() + " --cert " + Pki() + "/" + cert_file);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  TempDir dir_;
  int port_ = 0;
  std::string url_;
  std::unique_ptr<AttestationServer> server_;
};

TEST_F(OurService, Ps384AndRs256TokensPassAllThreeWays) {
  for (const char* alg : {"PS384", "RS256"}) {
    SCOPED_TRACE(alg);
    std::string t = Token(alg);
    auto h = Header(t);
    EXPECT_EQ(h["alg"], alg);
    EXPECT_EQ(h["jku"], url_ + "/certs");
    EXPECT_EQ(h["typ"], "JWT");
    auto go = VerifyGoWay(t, Options());
    auto c = VerifyCWay(t, Options());
    auto py = VerifyPythonWay(t, Options());
    ASSERT_TRUE(go.ok()) << go.error();
    ASSERT_TRUE(c.ok()) << c.error();
    ASSERT_TRUE(py.ok()) << py.error();
    EXPECT_EQ((*go)["iss"], (*c)["iss"]);
    EXPECT_EQ(*go, *py);
    EXPECT_EQ(*go, *c);
  }
}

TEST_F(OurService, RevokedSigningCertificateFailsAllThreeWays) {
  std::string ps = Token("PS384"), rs = Token("RS256");
  Revoke("token-signing.crt");
  Restart();
  for (const std::string& t : {ps, rs}) {
    EXPECT_EQ(VerifyGoWay(t, Options()).error(),
              "Failed to verify jwt token: Failed to check ATS Leaf certificate against ATS CRL: Certificate was Revoked");
    EXPECT_EQ(VerifyCWay(t, Options()).error(), "verify_token: STATUS_VERIFYING_CERT_CHAIN_ERROR: certificate revoked");
    EXPECT_EQ(VerifyPythonWay(t, Options()).error(),
              "verify_token: Failed to check Leaf Certificate against Intermediate CA CRL: certificate has been revoked");
  }
}

// Intel's C client checks the CRL of the leaf only (X509_V_FLAG_CRL_CHECK, and verify_crl looks up
// no serial), so a revoked Signing CA passes the C way; the Go and Python ways refuse. This is the
// client's behaviour, not the service's: root-ca-crl.der lists the Signing CA (the C way fetches
// and signature-checks it).
TEST_F(OurService, RevokedSigningCaFailsTheGoAndPythonWays) {
  std::string t = Token("PS384");
  Revoke("signing-ca.crt");
  Restart();
  EXPECT_EQ(VerifyGoWay(t, Options()).error(),
            "Failed to verify jwt token: Failed to check ATS CA Certificate against Root CA CRL: Certificate was Revoked");
  EXPECT_EQ(VerifyPythonWay(t, Options()).error(),
            "verify_token: Failed to check Intermediate CA Certificate against Root CA CRL: certificate has been revoked");
  auto c = VerifyCWay(t, Options());
  EXPECT_TRUE(c.ok()) << c.error();
}

TEST_F(OurService, TokenOfThePreviousKeyStillVerifiesAfterRotate) {
  std::string old_token = Token("PS384");
  auto r = RunTdxvirt("token-pki rotate --dir " + Pki());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Restart();
  std::string new_token = Token("PS384");
  ASSERT_NE(Header(old_token)["kid"], Header(new_token)["kid"]);
  for (const std::string& t : {old_token, new_token}) {
    auto go = VerifyGoWay(t, Options());
    auto c = VerifyCWay(t, Options());
    auto py = VerifyPythonWay(t, Options());
    EXPECT_TRUE(go.ok()) << go.error();
    EXPECT_TRUE(c.ok()) << c.error();
    EXPECT_TRUE(py.ok()) << py.error();
  }
}

// The real binaries end to end: `tdxvirt serve attestation --token-pki DIR --public-url URL` and a
// token from `tdxvirt attest token` (simulated TD), RS256 to cover the non-default algorithm.
TEST(OurServiceBinary, ServeAttestationTokenPassesAllThreeWays) {
  TempDir d;
  int port = FreePort();
  ASSERT_NE(port, 0);
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto r = RunTdxvirt("token-pki init --dir " + d.File("pki") + " --public-url " + url + " --key-bits 2048");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  tdxvirt::testing::WriteFile(d.File("keys"), "cli-key\n");
  pid_t pid = tdxvirt::testing::SpawnTdxvirt(
      {"serve", "attestation", "--plain-http", "--listen", "127.0.0.1:" + std::to_string(port), "--port-file",
       d.File("port"), "--token-pki", d.File("pki"), "--public-url", url, "--collateral",
       F().sim_dir + "/collateral.json", "--root", F().sim_dir + "/root_ca.pem", "--api-key-file", d.File("keys")},
      d.File("serve.err"));
  ASSERT_GT(pid, 0);
  // The port file is written once the socket listens (bounded wait, as tests/service does).
  std::string written;
  for (int i = 0; i < 3000 && written.empty(); ++i) {
    written = tdxvirt::testing::ReadFileText(d.File("port"));
    if (written.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(written.empty()) << "serve attestation did not start: " << tdxvirt::testing::ReadFileText(d.File("serve.err"));
  tdxvirt::testing::WriteFile(d.File("cfg.json"), nlohmann::json({{"trustauthority_url", url},
                                                                  {"trustauthority_api_url", url},
                                                                  {"trustauthority_api_key", "cli-key"}}).dump());
  r = RunTdxvirt("attest token -c " + d.File("cfg.json") + " --allow-http --provider sim --sim-dir " + F().sim_dir +
                 " -a RS256");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string token = r.out.substr(0, r.out.find('\n'));
  WayOptions o{.base_url = url, .now = std::time(nullptr)};
  auto go = VerifyGoWay(token, o);
  auto c = VerifyCWay(token, o);
  auto py = VerifyPythonWay(token, o);
  EXPECT_TRUE(go.ok()) << go.error();
  EXPECT_TRUE(c.ok()) << c.error();
  EXPECT_TRUE(py.ok()) << py.error();
  EXPECT_EQ(tdxvirt::testing::TerminateAndWait(pid), 0);
}

}  // namespace
}  // namespace tdxvirt::ita
