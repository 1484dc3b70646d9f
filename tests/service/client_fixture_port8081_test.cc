// Intel's C client test fixtures through `attest verify`: its dev JWKS served at /certs and its two
// CRLs at the certificates' distribution points, http://localhost:8081/crl/{ats-ca,root-ca}-crl.der,
// so this test binds 127.0.0.1:8081 (CTest RESOURCE_LOCK port8081). The token is checked at a time
// inside its validity (2024-06-11T04:11:03Z..04:41:03Z).
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "client_test_pki.h"
#include "common/file.h"
#include "test_util.h"

namespace tdxvirt::service {
namespace {

using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;
using tdxvirt::testing::WriteFile;
using namespace tdxvirt::service::testing;

const std::string kIta = std::string(TDXVIRT_TESTDATA) + "/ita/";
const std::string kKid =
    "7b51f97448317458a755db25bb313277211d6d431760fdcbf6025dd288b1b4a7d18185c126decce1172d21be95cbfcb3";

std::string Fixture(const std::string& name) {
  auto b = ReadFile(kIta + name);
  EXPECT_TRUE(b.ok()) << name;
  return b.ok() ? std::string(AsString(*b)) : "";
}

// Port 8081 may be held for a while by another process (TIME_WAIT of a previous server, another
// checkout's tests): retry the bind, bounded.
std::unique_ptr<TestHttpServer> Bind8081() {
  for (int i = 0; i < 1200; ++i) {
    auto s = std::make_unique<TestHttpServer>(8081);
    if (s->port() == 8081) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return nullptr;
}

class IntelFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    http = Bind8081();
    ASSERT_TRUE(http) << "127.0.0.1:8081 stayed busy for 2 minutes";
    http->Set("/certs", Fixture("c-client-dev-jwks.json"));
    http->Set("/crl/ats-ca-crl.der", Fixture("c-client-ats-ca-crl.der"));
    http->Set("/crl/root-ca-crl.der", Fixture("c-client-root-ca-crl.der"));
    WriteFile(dir.File("cfg.json"), R"({"trustauthority_url":"http://127.0.0.1:8081"})");
  }
  std::string Verify(const std::string& extra) const {
    return "attest verify -t @" + kIta + "c-client-dev-sgx-token.jwt --at 2024-06-11T04:20:00Z --crl-cache " +
           dir.File("cache") + " " + extra;
  }
  TempDir dir;
  std::unique_ptr<TestHttpServer> http;
};

TEST_F(IntelFixture, DevTokenVerifiesWithJwksFromCertsAndCrlsFromTheDistributionPoints) {
  auto r = RunTdxvirt(Verify("-c " + dir.File("cfg.json") + " --allow-http"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string claims = nlohmann::json::parse(Fixture("c-client-dev-sgx-token.payload.json")).dump();
  EXPECT_EQ(r.out, "Token is valid and issued by Intel Trust Authority hosted at  Intel Trust Authority\n" +
                       claims + "\n");
  EXPECT_EQ(http->Hits("/certs"), 1);
  EXPECT_EQ(http->Hits("/crl/ats-ca-crl.der"), 1);
  EXPECT_EQ(http->Hits("/crl/root-ca-crl.der"), 1);
  // Offline JWKS (--jwks), CRLs still fetched (fresh cache directory).
  WriteFile(dir.File("jwks.json"), Fixture("c-client-dev-jwks.json"));
  r = RunTdxvirt(Verify("--jwks " + dir.File("jwks.json") + " --no-crl-cache"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(http->Hits("/crl/ats-ca-crl.der"), 2);
}

TEST_F(IntelFixture, WrongCrlAtTheLeafsDistributionPointIsRefused) {
  http->Set("/crl/ats-ca-crl.der", Fixture("c-client-root-ca-crl.der"));
  auto r = RunTdxvirt(Verify("-c " + dir.File("cfg.json") + " --allow-http"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "tdxvirt: token invalid: JWKS key " + kKid +
                       ": leaf \"Development Amber Attestation Token Signing\": CRL "
                       "http://localhost:8081/crl/ats-ca-crl.der: issued by \"Development Amber Root CA\", not by "
                       "\"Development Amber ATS Signing CA\"\n");
  EXPECT_EQ(r.out, "");
}

TEST_F(IntelFixture, AfterTheCrlsNextUpdateTheyAreOutdated) {
  auto r = RunTdxvirt("attest verify -t @" + kIta + "c-client-dev-sgx-token.jwt --at 2029-06-11T00:00:00Z "
                      "--no-crl-cache -c " + dir.File("cfg.json") + " --allow-http");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "tdxvirt: token invalid: JWKS key " + kKid +
                       ": Signing CA \"Development Amber ATS Signing CA\": CRL "
                       "http://localhost:8081/crl/root-ca-crl.der: outdated: nextUpdate 2029-06-10T03:34:18Z is "
                       "before the verification time 2029-06-11T00:00:00Z\n");
}

}  // namespace
}  // namespace tdxvirt::service
