// `serve attestation --token-pki` over real sockets: the JWKS, token header, OpenID configuration
// and CRLs as Intel's clients fetch them, CRL re-signing on the server's clock and on a changed
// revocations.json, and the flags' refusals.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/hex.h"
#include "tokenpki/pki_test_util.h"

namespace tdxvirt::tokenpki {
namespace {

using testing::PkiService;
using testing::PkiServiceProcess;
using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;

struct Got {
  int status = 0;
  std::string body, content_type;
};
Got Get(const std::string& base, const std::string& path) {
  httplib::Client c(base);
  c.set_connection_timeout(10);
  c.set_read_timeout(30);
  auto r = c.Get(path);
  if (!r) {
    ADD_FAILURE() << "GET " << base << path << " failed";
    return {};
  }
  return {r->status, r->body, r->get_header_value("Content-Type")};
}

ossl::X509CrlPtr Crl(const std::string& der) {
  auto c = ossl::ParseDerCrl(AsBytes(der));
  EXPECT_TRUE(c.ok()) << c.error();
  return c.ok() ? std::move(*c) : nullptr;
}

int64_t CrlNumber(X509_CRL* crl) {
  auto* n = static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr));
  int64_t v = -1;
  if (n) ASN1_INTEGER_get_int64(&v, n);
  ASN1_INTEGER_free(n);
  return v;
}

bool Lists(X509_CRL* crl, X509* cert) {
  X509_REVOKED* r = nullptr;
  return X509_CRL_get0_by_cert(crl, &r, cert) == 1;
}

Bytes Der(X509* c) {
  int n = i2d_X509(c, nullptr);
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  i2d_X509(c, &p);
  return der;
}

// Everything a verifier fetches from the public URL, without an API key, shaped as Intel's.
TEST(TokenPkiService, PublishesJwksOpenIdAndCrlsWhereTheCertificatesPoint) {
  PkiService s;
  ASSERT_TRUE(s.server);
  EXPECT_EQ(s.server->base_url(), s.public_url);
  auto pki = LoadDirectory(s.pki_dir, s.public_url, 0);
  ASSERT_TRUE(pki.ok()) << pki.error();

  Got jwks = Get(s.public_url, "/certs");
  ASSERT_EQ(jwks.status, 200);
  auto j = nlohmann::json::parse(jwks.body);
  ASSERT_EQ(j["keys"].size(), 2u);
  std::string kid = ToHex(ossl::Sha384(Der(pki->leaf.get())));
  std::vector<std::string> x5c = {Base64Encode(Der(pki->leaf.get())), Base64Encode(Der(pki->signing_ca.get())),
                                  Base64Encode(Der(pki->root_ca.get()))};
  for (size_t i = 0; i < 2; ++i) {
    const auto& k = j["keys"][i];
    EXPECT_EQ(k["alg"], i == 0 ? "PS384" : "RS256");
    EXPECT_EQ(k["kty"], "RSA");
    EXPECT_EQ(k["kid"], kid);
    EXPECT_EQ(k["use"], "sig");
    EXPECT_EQ(k["e"], "AQAB");
    EXPECT_TRUE(k["n"].is_string());
    EXPECT_EQ(k["x5c"].get<std::vector<std::string>>(), x5c);
  }

  Got oidc = Get(s.public_url, "/.well-known/openid-configuration");
  ASSERT_EQ(oidc.status, 200);
  auto o = nlohmann::json::parse(oidc.body);
  EXPECT_EQ(o["issuer"], s.public_url);
  EXPECT_EQ(o["jwks_uri"], s.public_url + "/certs");

  // The CDPs of the served certificates, fetched as Intel's clients do.
  for (auto [path, issuer] : {std::pair{"/crl/ats-ca-crl.der", pki->signing_ca.get()},
                              std::pair{"/crl/root-ca-crl.der", pki->root_ca.get()}}) {
    SCOPED_TRACE(path);
    Got crl = Get(s.public_url, path);
    ASSERT_EQ(crl.status, 200);
    EXPECT_EQ(crl.content_type, "application/pkix-crl");
    auto c = Crl(crl.body);
    ASSERT_TRUE(c);
    EXPECT_EQ(X509_CRL_verify(c.get(), X509_get0_pubkey(issuer)), 1);
    EXPECT_EQ(CrlNumber(c.get()), s.now->load());
    EXPECT_GT(*ossl::TimeToUnix(X509_CRL_get0_nextUpdate(c.get())), s.now->load());
  }
}

TEST(TokenPkiService, TokenHeaderNamesJkuAndTheLeafKid) {
  PkiService s;
  ASSERT_TRUE(s.server);
  auto provider = service::testing::SimProvider();
  ASSERT_TRUE(provider);
  auto token = service::CollectToken(s.Client(), *provider, {});
  ASSERT_TRUE(token.ok()) << token.error();
  auto header = nlohmann::json::parse(AsString(*Base64UrlDecode(token->substr(0, token->find('.')), "h")));
  EXPECT_EQ(header.dump(), nlohmann::json({{"alg", "PS384"}, {"jku", s.public_url + "/certs"},
                                           {"kid", s.server->signing_key().kid()}, {"typ", "JWT"}})
                               .dump());
  auto v = service::VerifyToken(*token, Get(s.public_url, "/certs").body, {.now = s.now->load()});
  EXPECT_TRUE(v.ok()) << v.error();
}

TEST(TokenPkiService, CrlsAreResignedWhenTheClockPassesHalfTheirLife) {
  PkiService s;
  ASSERT_TRUE(s.server);
  int64_t t0 = s.now->load();
  auto first = Crl(Get(s.public_url, "/crl/ats-ca-crl.der").body);
  s.now->store(t0 + kCrlLifetimeSeconds / 2 - 1);
  EXPECT_EQ(CrlNumber(Crl(Get(s.public_url, "/crl/ats-ca-crl.der").body).get()), t0);
  s.now->store(t0 + kCrlLifetimeSeconds / 2);
  for (const char* path : {"/crl/ats-ca-crl.der", "/crl/root-ca-crl.der"}) {
    auto c = Crl(Get(s.public_url, path).body);
    EXPECT_EQ(CrlNumber(c.get()), t0 + kCrlLifetimeSeconds / 2) << path;
    EXPECT_EQ(*ossl::TimeToUnix(X509_CRL_get0_nextUpdate(c.get())), t0 + kCrlLifetimeSeconds / 2 + kCrlLifetimeSeconds);
  }
}

// The whole procedure against the binary: revoke the previous leaf after a rotate (and the
// Signing CA), and the running server's CRLs list them once it has re-read revocations.json.
TEST(TokenPkiService, RevokedCertificatesAppearInTheServedCrls) {
  PkiServiceProcess p;
  ASSERT_GT(p.pid, 0);
  auto before = LoadDirectory(p.pki_dir, p.public_url, 0);
  ASSERT_TRUE(before.ok());
  auto r = RunTdxvirt("token-pki rotate --dir " + p.pki_dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunTdxvirt("token-pki revoke --dir " + p.pki_dir + " --cert " + p.pki_dir + "/previous-token-signing.crt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // no longer the directory's current leaf (rotated), so no warning
  // The server re-reads revocations.json every --policy-reload seconds and logs the re-signing,
  // then the warning about its own signer (a second line: wait for both).
  std::string log;
  auto both = [&] {
    return log.find("crls_resigned") != std::string::npos &&
           log.find("\"event\":\"token_signer_revoked\"") != std::string::npos;
  };
  for (int i = 0; i < 6000 && !both(); ++i) {  // 60 s watchdog
    log = tdxvirt::testing::ReadFileText(p.log_path);
    if (!both()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_NE(log.find("crls_resigned"), std::string::npos) << log;
  // The running server still signs with that leaf (a rotation takes effect on restart): it says so.
  EXPECT_NE(log.find("\"event\":\"token_signer_revoked\""), std::string::npos) << log;
  auto leaf_crl = Crl(Get(p.public_url, "/crl/ats-ca-crl.der").body);
  ASSERT_TRUE(leaf_crl);
  EXPECT_TRUE(Lists(leaf_crl.get(), before->leaf.get()));
  EXPECT_EQ(X509_CRL_verify(leaf_crl.get(), X509_get0_pubkey(before->signing_ca.get())), 1);
  auto root_crl = Crl(Get(p.public_url, "/crl/root-ca-crl.der").body);
  EXPECT_FALSE(Lists(root_crl.get(), before->signing_ca.get()));
}

TEST(TokenPkiService, FlagsAreRefusedWithTheFix) {
  TempDir d;
  auto& F = service::testing::F();
  std::string common = " --plain-http --listen 127.0.0.1:0 --collateral " + F.sim_dir + "/collateral.json --root " +
                       F.sim_dir + "/root_ca.pem";
  testing::InitPki(d.File("pki"), "http://127.0.0.1:1");
  auto r = RunTdxvirt("serve attestation --token-pki " + d.File("pki") + common);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --public-url is required with --token-pki: the https:// base URL clients use "
                   "for this service (its certificates' CRL distribution points are under it)\n");
  r = RunTdxvirt("serve attestation --token-pki " + d.File("pki") + " --public-url https://elsewhere" + common);
  EXPECT_EQ(r.err, "tdxvirt: error: --token-pki: " + d.File("pki") + "/signing-ca.crt: CRL distribution point "
                   "\"http://127.0.0.1:1/crl/root-ca-crl.der\" is not https://elsewhere/crl/root-ca-crl.der; "
                   "Intel's clients fetch it from there. Pass the --public-url the PKI was created with, or "
                   "create a new PKI for https://elsewhere with `tdxvirt token-pki init`\n");
  r = RunTdxvirt("serve attestation --token-pki " + d.File("pki") + " --public-url http://127.0.0.1:1 --jku https://x/certs" + common);
  EXPECT_EQ(r.err, "tdxvirt: error: --jku: https://x/certs is not http://127.0.0.1:1/certs, where this service "
                   "serves its JWKS; drop --jku\n");
  r = RunTdxvirt("serve attestation --token-pki " + d.File("pki") + " --public-url http://127.0.0.1:1 --signing-key " +
                 F.key + " --signing-chain " + F.chain + common);
  EXPECT_EQ(r.err, "tdxvirt: error: give either --token-pki or --signing-key/--signing-chain, not both\n");
  r = RunTdxvirt("serve attestation" + common);
  EXPECT_EQ(r.err, "tdxvirt: error: --token-pki is required (create it with `tdxvirt token-pki init --dir DIR "
                   "--public-url URL`), or give your own --signing-key and --signing-chain\n");
  r = RunTdxvirt("serve attestation --token-pki " + d.File("nothing") + " --public-url http://127.0.0.1:1" + common);
  EXPECT_EQ(r.err, "tdxvirt: error: --token-pki: " + d.File("nothing") + "/root-ca.crt: missing; create the "
                   "directory with `tdxvirt token-pki init --dir " + d.File("nothing") + " --public-url URL`\n");
}

// Bring your own chain still works, with a start-up warning about what Intel's clients need.
TEST(TokenPkiService, OwnChainWarnsThatIntelsClientsNeedCrls) {
  service::testing::TestService s;
  ASSERT_TRUE(s.server);
  EXPECT_TRUE(s.WaitForLog("\"event\":\"no_token_pki\""));
  EXPECT_EQ(Get(s.server->base_url(), "/crl/ats-ca-crl.der").status, 404);
}

}  // namespace
}  // namespace tdxvirt::tokenpki
