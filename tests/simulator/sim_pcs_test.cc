// The simulated PCS: each answer in PCS's shape (checked with the verifier's own PCS parsers), its
// refusals, and Intel's PCS client fetching, caching and verifying through it over real HTTP.
#include <gtest/gtest.h>

#include "common/hex.h"
#include "simulator/pcs.h"
#include "simulator/platform.h"
#include "test_util.h"
#include "verify/collateral.h"
#include "verify/pcs_client.h"

namespace tdxvirt::simulator {
namespace {

SimPlatform Platform() {
  auto p = SimPlatform::Create({});
  EXPECT_TRUE(p.ok()) << p.error();
  return std::move(*p);
}

std::string Header(const PcsReply& r, const std::string& name) {
  for (auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

TEST(SimPcs, AnswersAreWhatIntelsPcsReturns) {
  SimPlatform p = Platform();
  const auto& c = p.collateral();
  std::string fmspc = ToHex(p.config().fmspc);

  auto tcb = AnswerPcsRequest(p, "/tdx/certification/v4/tcb", {{"fmspc", fmspc}});
  ASSERT_EQ(tcb.status, 200) << tcb.body;
  EXPECT_EQ(tcb.content_type, "application/json");
  auto tcb_json = verify::ParsePcsSignedJson(tcb.body, "tcbInfo");
  ASSERT_TRUE(tcb_json.ok()) << tcb_json.error();
  EXPECT_EQ(tcb_json->body, c.tcb_info);  // the signed text, byte for byte
  EXPECT_EQ(tcb_json->signature, c.tcb_info_signature);
  auto chain = verify::PemOrUrlEncoded(Header(tcb, "TCB-Info-Issuer-Chain"));
  ASSERT_TRUE(chain.ok()) << chain.error();
  EXPECT_EQ(*chain, c.tcb_info_issuer_chain);
  EXPECT_EQ(Header(tcb, "TCB-Info-Issuer-Chain").find('\n'), std::string::npos);  // percent-encoded

  // FMSPC in upper case names the same platform.
  std::string upper = fmspc;
  for (char& ch : upper) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_EQ(AnswerPcsRequest(p, "/tdx/certification/v4/tcb", {{"fmspc", upper}}).status, 200);

  auto qe = AnswerPcsRequest(p, "/tdx/certification/v4/qe/identity", {});
  ASSERT_EQ(qe.status, 200);
  auto qe_json = verify::ParsePcsSignedJson(qe.body, "enclaveIdentity");
  ASSERT_TRUE(qe_json.ok()) << qe_json.error();
  EXPECT_EQ(qe_json->body, c.qe_identity);
  EXPECT_FALSE(Header(qe, "SGX-Enclave-Identity-Issuer-Chain").empty());

  auto crl = AnswerPcsRequest(p, "/sgx/certification/v4/pckcrl", {{"ca", "platform"}, {"encoding", "der"}});
  ASSERT_EQ(crl.status, 200);
  EXPECT_EQ(Bytes(crl.body.begin(), crl.body.end()), c.pck_crl);
  auto crl_chain = verify::PemOrUrlEncoded(Header(crl, "SGX-PCK-CRL-Issuer-Chain"));
  ASSERT_TRUE(crl_chain.ok());
  EXPECT_EQ(*crl_chain, c.pck_crl_issuer_chain);
  auto pem = AnswerPcsRequest(p, "/sgx/certification/v4/pckcrl", {{"ca", "platform"}});
  ASSERT_EQ(pem.status, 200);
  EXPECT_EQ(pem.body.rfind("-----BEGIN X509 CRL-----", 0), 0u) << pem.body;

  auto root = AnswerPcsRequest(p, "/sgx/certification/v4/rootcacrl", {});
  ASSERT_EQ(root.status, 200);
  auto root_der = verify::CrlBytes(AsBytes(root.body));  // hex text, as PCCS serves it
  ASSERT_TRUE(root_der.ok()) << root_der.error();
  EXPECT_EQ(*root_der, c.root_ca_crl);
}

TEST(SimPcs, RefusesAsPcsDoes) {
  SimPlatform p = Platform();
  auto tcb = [&](std::map<std::string, std::string> q) {
    return AnswerPcsRequest(p, "/tdx/certification/v4/tcb", q);
  };
  EXPECT_EQ(tcb({}).status, 400);
  EXPECT_EQ(tcb({{"fmspc", "00a06f"}}).status, 400);
  EXPECT_EQ(tcb({{"fmspc", "00a06f00000g"}}).status, 400);
  auto other = tcb({{"fmspc", "112233445566"}});
  EXPECT_EQ(other.status, 404);
  EXPECT_NE(other.body.find(ToHex(p.config().fmspc)), std::string::npos) << other.body;
  auto crl = [&](std::map<std::string, std::string> q) {
    return AnswerPcsRequest(p, "/sgx/certification/v4/pckcrl", q).status;
  };
  EXPECT_EQ(crl({}), 400);
  EXPECT_EQ(crl({{"ca", "platfrom"}}), 400);
  EXPECT_EQ(crl({{"ca", "processor"}}), 404);  // the simulated PCK CA is a Platform CA
  EXPECT_EQ(crl({{"ca", "platform"}, {"encoding", "base64"}}), 400);
  EXPECT_EQ(AnswerPcsRequest(p, "/sgx/certification/v4/pckcert", {}).status, 404);
  EXPECT_EQ(AnswerPcsRequest(p, "/", {}).status, 404);
}

TEST(SimPcs, IntelsProtocolClientFetchesAndCachesThroughIt) {
  SimPlatform p = Platform();
  const verify::Collateral expected = p.collateral();
  const std::string fmspc = ToHex(p.config().fmspc);
  SimPcsServer server(std::move(p));
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.error();
  testing::TempDir cache;
  verify::PcsClientOptions o;
  o.base_url = server.base_url() + "/sgx/certification/v4";  // as users paste PCS URLs
  o.cache_dir = cache.path();
  auto client = verify::PcsClient::Create(o);
  ASSERT_TRUE(client.ok()) << client.error();
  auto first = client->Fetch(fmspc, "platform");
  ASSERT_TRUE(first.ok()) << first.error();
  EXPECT_EQ(first->source, verify::CollateralSource::kNetwork);
  EXPECT_EQ(first->collateral.tcb_info, expected.tcb_info);
  EXPECT_EQ(first->collateral.qe_identity, expected.qe_identity);
  EXPECT_EQ(first->collateral.pck_crl, expected.pck_crl);
  EXPECT_EQ(first->collateral.root_ca_crl, expected.root_ca_crl);
  uint64_t served = server.requests();
  EXPECT_EQ(served, 4u);  // TCB Info, QE Identity, PCK CRL, root CA CRL
  auto second = client->Fetch(fmspc, "platform");
  ASSERT_TRUE(second.ok()) << second.error();
  EXPECT_EQ(second->source, verify::CollateralSource::kCache);
  EXPECT_EQ(server.requests(), served);
  auto unknown = client->Fetch("112233445566", "platform");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().find("404"), std::string::npos) << unknown.error();
  server.Stop();
}

}  // namespace
}  // namespace tdxvirt::simulator
