// The service with collateral from a PCS (the simulator's, over real HTTP) instead of files: the
// token loop, one fetch per FMSPC kept until nextUpdate, the on-disk cache after a restart with the
// PCS gone, and the errors when a PCS has nothing for the quote or cannot be reached.
#include <gtest/gtest.h>

#include "simulator/pcs.h"
#include "service_test_util.h"

namespace tdxvirt::service {
namespace {

using namespace testing;

std::unique_ptr<simulator::SimPcsServer> StartPcs(const std::string& sim_dir) {
  auto platform = simulator::SimPlatform::Load(sim_dir);
  EXPECT_TRUE(platform.ok()) << platform.error();
  auto pcs = std::make_unique<simulator::SimPcsServer>(std::move(*platform));
  auto port = pcs->Start();
  EXPECT_TRUE(port.ok()) << port.error();
  return pcs;
}

ServerOptions WithPcs(const std::string& url, const std::string& cache, bool offline = false) {
  ServerOptions o;
  o.pcs.base_url = url;
  o.pcs.cache_dir = cache;
  o.pcs.offline = offline;
  o.pcs.retry.max_attempts = 1;
  return o;
}

TEST(ServicePcs, TokensWithCollateralFetchedOncePerPlatform) {
  auto pcs = StartPcs(F().sim_dir);
  TempDir cache;
  TestService svc(WithPcs(pcs->base_url(), cache.path()));
  ASSERT_TRUE(svc.server);
  auto client = svc.Client();
  auto provider = SimProvider();
  auto token = CollectToken(client, *provider, {});
  ASSERT_TRUE(token.ok()) << token.error();
  EXPECT_EQ(pcs->requests(), 4u);  // TCB Info, QE Identity, PCK CRL, root CA CRL
  auto again = CollectToken(client, *provider, {});
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(pcs->requests(), 4u) << "collateral is kept until its nextUpdate";
  auto jwks = client.GetCerts();
  ASSERT_TRUE(jwks.ok());
  VerifyTokenOptions vo;
  vo.now = svc.now->load();
  vo.expected_claims = {{"attester_tcb_status", "UpToDate"}};
  auto v = VerifyToken(*again, *jwks, vo);
  EXPECT_TRUE(v.ok()) << v.error();
}

TEST(ServicePcs, RestartWithThePcsGoneUsesTheDiskCacheOffline) {
  TempDir cache;
  {
    auto pcs = StartPcs(F().sim_dir);
    TestService svc(WithPcs(pcs->base_url(), cache.path()));
    auto client = svc.Client();
    ASSERT_TRUE(CollectToken(client, *SimProvider(), {}).ok());
    pcs->Stop();
  }
  // --pcs-offline: the cache only, never the network (the URL may be anything).
  TestService offline(WithPcs("https://pcs.invalid", cache.path(), /*offline=*/true));
  ASSERT_TRUE(offline.server);
  auto client = offline.Client();
  auto token = CollectToken(client, *SimProvider(), {});
  EXPECT_TRUE(token.ok()) << token.error();
}

TEST(ServicePcs, NoCollateralIsA503NamingTheFmspc) {
  auto pcs = StartPcs(F().sim_dir);
  TempDir cache;
  TestService svc(WithPcs(pcs->base_url(), cache.path()));
  // A platform the PCS does not know (another FMSPC).
  TempDir other_dir;
  simulator::PlatformConfig pc;
  pc.fmspc = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
  auto other = simulator::SimPlatform::Create(pc);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(other->Save(other_dir.path()).ok());
  guest::ProviderOptions po;
  po.kind = guest::ProviderKind::kSim;
  po.sim_dir = other_dir.path();
  auto provider = guest::SelectQuoteProvider(po);
  ASSERT_TRUE(provider.ok());
  // One attempt: this is about the service's 503, not the client's retries (client_token_test).
  auto no_retry = [](ClientConfig c) {
    c.retry.max_retries = 0;
    return *TrustAuthorityClient::Create(c);
  };
  auto client = no_retry(svc.Config());
  auto token = CollectToken(client, **provider, {});
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error(), "attest: HTTP 503: fetching collateral for FMSPC 112233445566 (platform CA): GET " +
                               pcs->base_url() +
                               "/tdx/certification/v4/tcb?fmspc=112233445566: HTTP 404 (no TCB info for this "
                               "FMSPC); Request-ID 1");

  // A PCS that cannot be reached: the same status, and the reason.
  const std::string gone = pcs->base_url();
  pcs->Stop();
  TempDir empty_cache;
  TestService unreachable(WithPcs(pcs->base_url(), empty_cache.path()));
  auto c2 = no_retry(unreachable.Config());
  auto t2 = CollectToken(c2, *SimProvider(), {});
  ASSERT_FALSE(t2.ok());
  EXPECT_EQ(t2.error(), "attest: HTTP 503: fetching collateral for FMSPC 00a06f000000 (platform CA): GET " + gone +
                            "/tdx/certification/v4/tcb?fmspc=00a06f000000: cannot connect");
}

}  // namespace
}  // namespace tdxvirt::service
