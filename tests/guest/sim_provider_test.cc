// The simulator provider: quotes in process, versions 4 and 5, TD configuration files.
#include "guest/sim_provider.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "guest/quote_provider.h"
#include "guest_test_util.h"

namespace tdxvirt::guest {
namespace {

using testing::ExpectVerifiedQuote;
using testing::Nonce;
using testing::SimDir;

Result<Bytes> SimQuote(const ProviderOptions& base, const evidence::ReportData& rd) {
  ProviderOptions o = base;
  o.kind = ProviderKind::kSim;
  o.sim_dir = SimDir();
  auto p = SelectQuoteProvider(o);
  if (!p.ok()) return Error{p.error()};
  EXPECT_EQ((*p)->name(), "sim");
  return (*p)->GetQuote(rd);
}

TEST(SimProvider, QuoteV4ByDefault) {
  auto quote = SimQuote({}, Nonce(0x50));
  ASSERT_TRUE(quote.ok()) << quote.error();
  ExpectVerifiedQuote(*quote, Nonce(0x50));
  auto q = evidence::ParseQuote(*quote);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->header.version, 4);
  EXPECT_EQ(q->body.td, simulator::DefaultTdConfig().td);
}

TEST(SimProvider, QuoteV5) {
  ProviderOptions o;
  o.quote_version = 5;
  auto quote = SimQuote(o, Nonce(0x51));
  ASSERT_TRUE(quote.ok()) << quote.error();
  ExpectVerifiedQuote(*quote, Nonce(0x51));
  EXPECT_EQ(evidence::ParseQuote(*quote)->header.version, 5);
}

TEST(SimProvider, TdConfigFileAndTd15) {
  tdxvirt::testing::TempDir tmp;
  const auto mr_td = ossl::Sha384(AsBytes("guest test TDVF"));
  tdxvirt::testing::WriteFile(tmp.File("td.json"),
                              "{\"mr_td\": \"" + ToHex(mr_td) + "\", \"td15\": true}");
  ProviderOptions o;
  o.td_config_path = tmp.File("td.json");
  auto quote = SimQuote(o, Nonce(0x52));  // quote_version 4, but a TDX 1.5 TD needs v5
  ASSERT_TRUE(quote.ok()) << quote.error();
  ExpectVerifiedQuote(*quote, Nonce(0x52));
  auto q = evidence::ParseQuote(*quote);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->header.version, 5);
  EXPECT_EQ(q->body.type, evidence::BodyType::kTd15);
  EXPECT_EQ(q->body.td.mr_td, mr_td);

  tdxvirt::testing::WriteFile(tmp.File("bad.json"), "{\"mr_td\": 5");
  o.td_config_path = tmp.File("bad.json");
  quote = SimQuote(o, Nonce(0x52));
  ASSERT_FALSE(quote.ok());
  EXPECT_EQ(quote.error(), tmp.File("bad.json") + ": not valid JSON");
}

}  // namespace
}  // namespace tdxvirt::guest
