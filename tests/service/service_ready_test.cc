// /readyz tells the truth: not ready while the trust anchor or the collateral would fail every
// attest, ready again when that passes; a warning at start when no API key is required.
#include <httplib.h>

#include "common/openssl.h"
#include "common/time.h"
#include "service_test_util.h"
#include "verify/collateral.h"
#include "verify/trusted_root.h"

namespace tdxvirt::service {
namespace {

using namespace testing;

std::pair<int, std::string> Readyz(const TestService& s) {
  httplib::Client c(s.server->base_url());
  auto r = c.Get("/readyz");
  if (!r) return {-1, httplib::to_string(r.error())};
  return {r->status, r->body};
}

bool Logged(TestService& s, const std::string& level, const std::string& event, std::string* detail = nullptr) {
  for (const auto& line : s.Logs()) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j["level"] == level && j["event"] == event) {
      if (detail) *detail = j.value("detail", "");
      return true;
    }
  }
  return false;
}

TEST(ServiceReady, ReadyWithTheRightRootAndFreshCollateral) {
  TestService s;
  ASSERT_TRUE(s.server);
  EXPECT_EQ(Readyz(s), (std::pair<int, std::string>{200, "ready\n"}));
  EXPECT_FALSE(Logged(s, "error", "not_ready"));
}

TEST(ServiceReady, AWrongRootIsNotReadyAndSaysWhy) {
  // Another simulated platform's root: nothing in this collateral chains to it.
  TempDir other;
  auto p = simulator::SimPlatform::Create({});
  ASSERT_TRUE(p.ok() && p->Save(other.File("sim")).ok());
  ServerOptions o;
  o.root_pem_path = other.File("sim/root_ca.pem");
  TestService s(o);
  ASSERT_TRUE(s.server);
  std::string why;
  EXPECT_FALSE(s.server->ready(&why));
  EXPECT_EQ(why, "every attest would fail: root_ca_crl_signature: the root_ca_crl signature does not "
                 "verify with the key of \"tdxvirt Simulated SGX Root CA\"; the CRL is corrupt or forged");
  auto [status, body] = Readyz(s);
  EXPECT_EQ(status, 503);
  EXPECT_EQ(body, "not ready: " + why + "\n");
  std::string logged;
  ASSERT_TRUE(Logged(s, "error", "not_ready", &logged));
  EXPECT_EQ(logged, why);
  // And it is true: an attest with a good quote is refused.
  auto client = s.Client();
  auto provider = SimProvider();
  auto token = CollectToken(client, *provider, {});
  ASSERT_FALSE(token.ok());
  auto root_pem = ReadFile(other.File("sim/root_ca.pem"));
  ASSERT_TRUE(root_pem.ok());
  auto root = verify::TrustedRoot::FromPem(AsString(*root_pem));
  ASSERT_TRUE(root.ok()) << root.error();
  EXPECT_EQ(token.error(),
            "attest: HTTP 400: quote verification failed: pck_chain: chain ends in the self-signed \"tdxvirt "
            "Simulated SGX Root CA\" (SHA-256 of the trusted root is " +
                root->fingerprint() +
                "); it is not the trusted root. Pass --root with the right CA, or check the evidence");
}

TEST(ServiceReady, ExpiredCollateralIsNotReadyUntilTheClockIsRightAgain) {
  TestService s;
  ASSERT_TRUE(s.server);
  int64_t start = s.now->load();
  s.now->store(start + 40 * 86400);  // past the simulator's 30-day nextUpdate
  auto [status, body] = Readyz(s);
  EXPECT_EQ(status, 503);
  // The time is the nextUpdate of the simulator's Root CA CRL.
  auto collateral = verify::LoadCollateral(F().sim_dir + "/collateral.json");
  ASSERT_TRUE(collateral.ok()) << collateral.error();
  auto crl = ossl::ParseDerCrl(collateral->root_ca_crl);
  ASSERT_TRUE(crl.ok()) << crl.error();
  EXPECT_EQ(body, "not ready: every attest would fail: root_ca_crl_validity: root_ca_crl expired at " +
                      ossl::TimeToRfc3339(X509_CRL_get0_nextUpdate(crl->get())) + "; fetch fresh collateral\n");
  s.now->store(start);
  EXPECT_EQ(Readyz(s).first, 200);
}

TEST(ServiceReady, StartWithoutApiKeysWarns) {
  std::vector<std::string> lines;
  std::mutex mu;
  auto make = [&](std::vector<std::string> keys) {
    ServerOptions o;
    o.plain_http = true;
    o.signing_key_path = F().key;
    o.signing_chain_path = F().chain;
    o.collateral_path = F().sim_dir + "/collateral.json";
    o.root_pem_path = F().sim_dir + "/root_ca.pem";
    o.api_keys = std::move(keys);
    o.log = [&](const std::string& l) {
      std::lock_guard g(mu);
      lines.push_back(l);
    };
    auto s = AttestationServer::Create(std::move(o));
    EXPECT_TRUE(s.ok());
    EXPECT_TRUE((*s)->Start().ok());
    (*s)->Stop();
  };
  auto warned = [&] {
    std::lock_guard g(mu);
    for (const auto& l : lines) {
      auto j = nlohmann::json::parse(l, nullptr, false);
      if (j["event"] == "no_api_keys" && j["level"] == "warn")
        return j["detail"] == "nonce and attest accept requests without x-api-key; give "
                              "--api-key-file unless a gateway in front authenticates callers";
    }
    return false;
  };
  make({"k"});
  EXPECT_FALSE(warned());
  make({});
  EXPECT_TRUE(warned());
}

}  // namespace
}  // namespace tdxvirt::service
