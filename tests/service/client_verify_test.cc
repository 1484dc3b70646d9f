// `attest verify` as Intel's Go client verifies: JWKS from /certs, the x5c chain sorted by CN and
// verified, CRLs at the Signing CA's and the leaf's distribution points (fetched over a real socket,
// cached on disk), then the signature. Negatives use a PKI made here; Intel's own fixtures are in
// client_fixture_port8081_test.cc. Also the pure chain/CRL functions over Intel's fixture bytes.
#include <sys/stat.h>

#include <condition_variable>
#include <ctime>

#include "client_test_pki.h"
#include "common/file.h"
#include "common/hex.h"
#include "service/client.h"
#include "service/jose.h"
#include "service/token_chain.h"
#include "test_util.h"

namespace tdxvirt::service {
namespace {

using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;
using tdxvirt::testing::WriteFile;
using namespace tdxvirt::service::testing;

const std::string kOk = "Token is valid and issued by Intel Trust Authority hosted at  test-issuer\n";

Bytes Fixture(const std::string& name) {
  auto b = ReadFile(std::string(TDXVIRT_TESTDATA) + "/ita/" + name);
  EXPECT_TRUE(b.ok()) << name;
  return b.ok() ? *b : Bytes{};
}

// A PKI, its CRLs and JWKS served over HTTP, a token signed by its leaf, and a config file.
struct Served {
  TempDir dir;
  TestHttpServer http;
  std::unique_ptr<TestPki> pki;
  std::string kid, token;
  nlohmann::json claims, jwks;
  Bytes ats_crl;
  int64_t now = std::time(nullptr);

  explicit Served(bool leaf_cdp = true) {
    pki = std::make_unique<TestPki>(http.url(), leaf_cdp);
    auto key = SigningKey::FromPem(PemOfKey(pki->leaf_key.get()), pki->ChainPem());
    EXPECT_TRUE(key.ok()) << key.error();
    kid = key->kid();
    claims = {{"iss", "test-issuer"}, {"iat", now}, {"nbf", now}, {"exp", now + 600}, {"attester_type", "TDX"}};
    token = *key->Sign(claims, JwsAlg::kPS384, http.url() + "/certs");
    jwks = key->jwks();
    http.Set("/certs", jwks.dump());
    http.Set("/crl/root-ca-crl.der", pki->RootCrl());
    ats_crl = pki->AtsCrl();
    http.Set("/crl/ats-ca-crl.der", ats_crl);
    WriteFile(dir.File("cfg.json"), nlohmann::json({{"trustauthority_url", http.url()}}).dump());
    WriteFile(dir.File("token"), token);
  }
  std::string Verify(const std::string& extra = "") const {
    return "attest verify -c " + dir.File("cfg.json") + " --allow-http -t @" + dir.File("token") +
           " --crl-cache " + dir.File("cache") + " " + extra;
  }
  std::string Invalid(const std::string& why) const {
    return "tdxvirt: token invalid: JWKS key " + kid + ": " + why + "\n";
  }
};

TEST(AttestVerify, ChainAndCrlsFromTheDistributionPointsThenTheCachedCrls) {
  Served s;
  auto r = RunTdxvirt(s.Verify());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kOk + s.claims.dump() + "\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(s.http.Hits("/crl/root-ca-crl.der"), 1);
  EXPECT_EQ(s.http.Hits("/crl/ats-ca-crl.der"), 1);
  // Cached as <sha256 of the URL>.der, reused until nextUpdate: the second run fetches no CRL.
  std::string url = s.http.url() + "/crl/ats-ca-crl.der";
  auto cached = ReadFile(s.dir.File("cache") + "/" + ToHex(ossl::Sha256(AsBytes(url))) + ".der");
  ASSERT_TRUE(cached.ok()) << cached.error();
  EXPECT_EQ(*cached, s.ats_crl);
  r = RunTdxvirt(s.Verify());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(s.http.Hits("/crl/root-ca-crl.der"), 1);
  EXPECT_EQ(s.http.Hits("/crl/ats-ca-crl.der"), 1);
  // --no-crl-cache fetches again.
  r = RunTdxvirt(s.Verify("--no-crl-cache"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(s.http.Hits("/crl/ats-ca-crl.der"), 2);
}

TEST(AttestVerify, RevokedLeafIsRefusedNamingCertificateAndCrl) {
  Served s;
  s.http.Set("/crl/ats-ca-crl.der", s.pki->AtsCrl({0x3000}));
  auto r = RunTdxvirt(s.Verify());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, s.Invalid("leaf \"Test Token Signing Certificate\": CRL " + s.http.url() +
                             "/crl/ats-ca-crl.der: lists serial 3000: the certificate is revoked"));
  EXPECT_EQ(r.out, "");
}

TEST(AttestVerify, RevokedSigningCaIsRefused) {
  Served s;
  s.http.Set("/crl/root-ca-crl.der", s.pki->RootCrl({0x2000}));
  auto r = RunTdxvirt(s.Verify());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, s.Invalid("Signing CA \"Test Token Signing CA\": CRL " + s.http.url() +
                             "/crl/root-ca-crl.der: lists serial 2000: the certificate is revoked"));
}

TEST(AttestVerify, CrlNotSignedByTheIssuerIsRefused) {
  Served s;
  // Right issuer name, signed with the Root's key instead of the Signing CA's.
  s.http.Set("/crl/ats-ca-crl.der", MakeCrl(s.pki->ca.get(), s.pki->root_key.get(), {}, s.now - 60, s.now + 3600));
  auto r = RunTdxvirt(s.Verify());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, s.Invalid("leaf \"Test Token Signing Certificate\": CRL " + s.http.url() +
                             "/crl/ats-ca-crl.der: signature does not verify with the key of \"Test Token Signing CA\""));
  // The Root's CRL served for the leaf: another issuer.
  s.http.Set("/crl/ats-ca-crl.der", s.pki->RootCrl());
  r = RunTdxvirt(s.Verify("--no-crl-cache"));
  EXPECT_EQ(r.err, s.Invalid("leaf \"Test Token Signing Certificate\": CRL " + s.http.url() +
                             "/crl/ats-ca-crl.der: issued by \"Test Token Root CA\", not by \"Test Token Signing CA\""));
}

std::string Rfc3339(int64_t t) {
  time_t tt = time_t(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

TEST(AttestVerify, OutdatedOrMalformedCrlIsRefusedAndNotCached) {
  Served s;
  s.http.Set("/crl/root-ca-crl.der", MakeCrl(s.pki->root.get(), s.pki->root_key.get(), {}, 1700000000, 1700003600));
  int64_t at = s.now + 5;
  auto r = RunTdxvirt(s.Verify("--at " + std::to_string(at)));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, s.Invalid("Signing CA \"Test Token Signing CA\": CRL " + s.http.url() +
                             "/crl/root-ca-crl.der: outdated: nextUpdate 2023-11-14T23:13:20Z is before the "
                             "verification time " + Rfc3339(at)));
  std::string url = s.http.url() + "/crl/root-ca-crl.der";
  struct stat st {};
  EXPECT_NE(stat((s.dir.File("cache") + "/" + ToHex(ossl::Sha256(AsBytes(url))) + ".der").c_str(), &st), 0);
  s.http.Set("/crl/root-ca-crl.der", std::string("not a CRL"));
  r = RunTdxvirt(s.Verify());
  EXPECT_EQ(r.exit_code, 1);
  std::string prefix = s.Invalid("Signing CA \"Test Token Signing CA\": CRL " + url + ": not a DER X.509 CRL: ");
  prefix.pop_back();  // the newline; OpenSSL's reason follows
  EXPECT_EQ(r.err.substr(0, prefix.size()), prefix);
}

TEST(AttestVerify, CrlNotServedNamesTheUrlAndStatus) {
  Served s;
  s.http.Remove("/crl/ats-ca-crl.der");
  auto r = RunTdxvirt(s.Verify());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, s.Invalid("leaf \"Test Token Signing Certificate\": CRL " + s.http.url() +
                             "/crl/ats-ca-crl.der: HTTP 404"));
}

TEST(AttestVerify, LeafWithoutDistributionPointIsRefusedUnlessNoCrl) {
  Served s(/*leaf_cdp=*/false);
  auto r = RunTdxvirt(s.Verify());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, s.Invalid("leaf \"Test Token Signing Certificate\": no CRL distribution point URI (Intel's "
                             "verifier requires one)"));
  r = RunTdxvirt(s.Verify("--no-crl"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kOk + s.claims.dump() + "\n");
}

TEST(AttestVerify, ChainValidityDatesAtTheVerificationTime) {
  Served s;
  int64_t at = s.pki->not_after + 10;
  auto r = RunTdxvirt(s.Verify("--no-crl --at " + std::to_string(at)));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, s.Invalid("certificate chain: root \"Test Token Root CA\": certificate has expired "
                             "(verification time " + Rfc3339(at) + ")"));
}

TEST(AttestVerify, TrustedRootPinsTheRoot) {
  Served s;
  TestPki other(s.http.url());
  WriteFile(s.dir.File("other.pem"), PemOfCert(other.root.get()));
  WriteFile(s.dir.File("root.pem"), PemOfCert(s.pki->root.get()));
  auto r = RunTdxvirt(s.Verify("--at " + std::to_string(s.now) + " --trusted-root " + s.dir.File("other.pem")));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, s.Invalid("certificate chain: Signing CA \"Test Token Signing CA\": certificate signature failure "
                             "(verification time " + Rfc3339(s.now) + ") (root pinned by --trusted-root)"));
  r = RunTdxvirt(s.Verify("--trusted-root " + s.dir.File("root.pem")));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(AttestVerify, JwkWhoseKeyIsNotTheLeafsIsRefused) {
  Served s;
  TestPki other(s.http.url());
  auto other_key = SigningKey::FromPem(PemOfKey(other.leaf_key.get()), other.ChainPem());
  ASSERT_TRUE(other_key.ok());
  s.jwks["keys"][0]["n"] = other_key->jwks()["keys"][0]["n"];
  s.http.Set("/certs", s.jwks.dump());
  auto r = RunTdxvirt(s.Verify());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, s.Invalid("JWK n/e are not the key of the leaf \"Test Token Signing Certificate\""));
}

TEST(AttestVerify, ClaimsOnlyPrintsClaimsAndSaysNothingWasChecked) {
  // The KBS pilot token: its JWKS exists nowhere, so only its claims can be read.
  std::string token = std::string(TDXVIRT_TESTDATA) + "/ita/kbs-pilot-tdx-token.jwt";
  auto payload = Fixture("kbs-pilot-tdx-token.payload.json");
  auto r = RunTdxvirt("attest verify --claims-only -t @" + token);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, nlohmann::json::parse(AsString(payload)).dump() + "\n");
  EXPECT_EQ(r.err, "tdxvirt: claims only: the signature, certificate chain and CRLs were NOT checked\n");
  r = RunTdxvirt("attest verify --claims-only --unverified-ok -t @" + token);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, nlohmann::json::parse(AsString(payload)).dump() + "\n");
  r = RunTdxvirt("attest verify --unverified-ok --jwks x -t @" + token);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --unverified-ok goes with --claims-only\n");
}

// ---- the pure functions, over Intel's C client fixtures ----

TEST(TokenChain, IntelFixtureClassifiesAndItsCrlsCheck) {
  std::vector<Bytes> x5c = {Fixture("c-client-dev-jwks-x5c2.der"), Fixture("c-client-dev-jwks-x5c0.der"),
                            Fixture("c-client-dev-jwks-x5c1.der")};  // order does not matter (Go)
  auto chain = ClassifyX5c(x5c);
  ASSERT_TRUE(chain.ok()) << chain.error();
  EXPECT_EQ(ossl::CommonName(X509_get_subject_name(chain->leaf.get())), "Development Amber Attestation Token Signing");
  int64_t at = 1718079600;  // 2024-06-11T04:20:00Z
  auto root = VerifyTokenSigningChain(*chain, {.now = at});
  ASSERT_TRUE(root.ok()) << root.error();
  EXPECT_EQ(*FirstCrlUri(chain->leaf.get()), "http://localhost:8081/crl/ats-ca-crl.der");
  EXPECT_EQ(*FirstCrlUri(chain->signing_ca.get()), "http://localhost:8081/crl/root-ca-crl.der");
  Bytes ats = Fixture("c-client-ats-ca-crl.der"), rootcrl = Fixture("c-client-root-ca-crl.der");
  EXPECT_TRUE(CheckCrl(ats, chain->leaf.get(), chain->signing_ca.get(), at).ok());
  EXPECT_TRUE(CheckCrl(rootcrl, chain->signing_ca.get(), root->get(), at).ok());
  EXPECT_EQ(CheckCrl(rootcrl, chain->leaf.get(), chain->signing_ca.get(), at).error(),
            "issued by \"Development Amber Root CA\", not by \"Development Amber ATS Signing CA\"");
  EXPECT_EQ(CheckCrl(ats, chain->leaf.get(), chain->signing_ca.get(), 1900000000).error(),
            "outdated: nextUpdate 2029-06-10T03:35:06Z is before the verification time 2030-03-17T17:46:40Z");
  EXPECT_EQ(FirstCrlUri(root->get()).error(), "no CRL distribution point URI (Intel's verifier requires one)");
}

TEST(TokenChain, ClassificationRefusesMissingAndDuplicateRoles) {
  Bytes leaf = Fixture("c-client-dev-jwks-x5c0.der"), ca = Fixture("c-client-dev-jwks-x5c1.der"),
        root = Fixture("c-client-dev-jwks-x5c2.der");
  EXPECT_EQ(ClassifyX5c({leaf, ca}).error(), "x5c: no Root CA (a CA certificate whose CN contains \"Root CA\")");
  EXPECT_EQ(ClassifyX5c({leaf, root}).error(), "x5c: no Signing CA (a certificate whose CN contains \"Signing CA\")");
  EXPECT_EQ(ClassifyX5c({ca, root}).error(), "x5c: no leaf (token signing) certificate");
  EXPECT_EQ(ClassifyX5c({leaf, ca, root, ca}).error(),
            "x5c: two certificates in the role Signing CA (\"Development Amber ATS Signing CA\" and "
            "\"Development Amber ATS Signing CA\"); expected one Root CA, one Signing CA and one leaf");
  EXPECT_EQ(ClassifyX5c({leaf, ca, Bytes{1, 2, 3}}).error().rfind("x5c[2]: ", 0), 0u);
  // Go's own fixture: a leaf whose CDP text begins with "URI:" is not a URL.
  auto odd = ossl::ParseDerCertificate(Fixture("go-connector-ats-signing-ca.der"));
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(FirstCrlUri(odd->get()).error(),
            "CRL distribution point \"URI:https://amber.intel.com/root-ca.crl\" is not an http:// or https:// URL");
}

// ---- HttpCrlFetcher: limits ----

TEST(CrlFetch, ALargerCrlThanTheLimitIsRefused) {
  TestHttpServer http;
  http.Set("/big.crl", std::string(101, 'x'));
  HttpCrlFetcher f({.max_size = 100});
  auto r = f.Fetch(http.url() + "/big.crl");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), http.url() + "/big.crl: response larger than 100 bytes");
}

TEST(CrlFetch, AServerThatNeverAnswersMeetsTheDeadline) {
  httplib::Server server;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  server.Get("/slow.crl", [&](const httplib::Request&, httplib::Response& res) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(60), [&] { return release; });
    res.set_content("late", "application/octet-stream");
  });
  int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });
  for (int i = 0; i < 10000 && !server.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::vector<std::chrono::milliseconds> waits;
  CrlFetchOptions o;
  o.deadline = std::chrono::seconds(1);
  o.retry.sleep = [&](std::chrono::milliseconds d) { waits.push_back(d); };
  HttpCrlFetcher f(o);
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/slow.crl";
  auto r = f.Fetch(url);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  server.stop();
  t.join();
  ASSERT_FALSE(r.ok());
  // A read timeout is retried as Intel's client retries its deadline: 3 attempts, then refused.
  EXPECT_EQ(r.error(), url + ": Read (gave up after 3 attempts)");
  EXPECT_EQ(waits.size(), 2u);
}

}  // namespace
}  // namespace tdxvirt::service
