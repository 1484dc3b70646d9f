// `tdxvirt eventlog inspect|replay` run as a user would: exit codes 0/1/2, JSON, stderr messages.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/hex.h"
#include "eventlog/builder.h"
#include "evidence/quote.h"
#include "test_util.h"

namespace tdxvirt {
namespace {

using testing::RunTdxvirt;
using testing::TestdataPath;
using json = nlohmann::json;

std::string Log(const std::string& dir, const std::string& file = "ccel.bin") {
  return TestdataPath("eventlogs/" + dir + "/" + file);
}

// A TD quote (v4, unsigned: replay does not verify signatures) carrying these RTMRs.
std::string WriteQuote(const testing::TempDir& dir, const eventlog::Rtmrs& rtmrs) {
  auto q = evidence::ParseQuote(testing::ReadTestdata("quotes/tdx-v4-uptodate/quote.bin"));
  EXPECT_TRUE(q.ok()) << q.error();
  for (size_t i = 0; i < 4; ++i) q->body.td.rtmr[i] = rtmrs[i];
  Bytes raw = evidence::SerializeQuote(*q);
  std::string path = dir.File("quote.bin");
  testing::WriteFile(path, std::string(AsString(raw)));
  return path;
}

TEST(EventlogCli, ReplayRealLogWithTable) {
  auto r = RunTdxvirt("eventlog replay --ccel " + Log("ovmf-direct-boot") + " --table " +
                      Log("ovmf-direct-boot", "ccel_table.bin") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j["rtmrs"][0],
            "8083cd6898cc52a90231cdf9c0532bf9513c40465c6f71e56cbe32ee2c11a9dfc030297ca3ca0f62477d6d1f610d3fdb");
  EXPECT_EQ(j["extends"], json::parse("[14,4,1,0]"));
  EXPECT_EQ(j["broken"], json::array());
  EXPECT_FALSE(j.contains("matches"));
}

TEST(EventlogCli, DigestFlipIsANegative) {
  auto r = RunTdxvirt("eventlog replay --json --ccel " + Log("derived-digest-flip"));
  EXPECT_EQ(r.exit_code, 1);
  auto j = json::parse(r.out);
  ASSERT_EQ(j["broken"].size(), 1u);
  EXPECT_EQ(j["broken"][0]["event"], 19);
  EXPECT_EQ(j["broken"][0]["description"], "event 19 (EV_SEPARATOR, RTMR1, offset 2346)");
  EXPECT_NE(r.err.find("event 19 (EV_SEPARATOR, RTMR1, offset 2346) is broken"), std::string::npos)
      << r.err;
}

TEST(EventlogCli, TruncatedAndSevAreMalformed) {
  auto t = RunTdxvirt("eventlog replay --ccel " + Log("derived-truncated"));
  EXPECT_EQ(t.exit_code, 2);
  EXPECT_NE(t.err.find("event 17 (offset 8324): event data (EventSize 1608) at offset 8390"),
            std::string::npos)
      << t.err;
  auto s = RunTdxvirt("eventlog replay --ccel " + Log("derived-cctype-sev") + " --table " +
                      Log("derived-cctype-sev", "ccel_table.bin"));
  EXPECT_EQ(s.exit_code, 2);
  EXPECT_NE(s.err.find("CC type at offset 36 is 1 (AMD SEV), not 2 (Intel TDX)"), std::string::npos)
      << s.err;
  auto missing = RunTdxvirt("eventlog replay --ccel /nonexistent/ccel");
  EXPECT_EQ(missing.exit_code, 2);
}

TEST(EventlogCli, QuoteVerdicts) {
  testing::TempDir dir;
  eventlog::EventLogBuilder b;
  b.AddHashed(1, eventlog::kEvSeparator, Bytes{0, 0, 0, 0});
  b.AddHashed(2, eventlog::kEvEfiAction, AsBytes("Exit Boot Services Invocation"));
  std::string log = dir.File("ccel.bin");
  Bytes raw = b.Finish();
  testing::WriteFile(log, std::string(AsString(raw)));

  eventlog::Rtmrs rtmrs = b.rtmrs();
  rtmrs[3].fill(0x5A);  // extended at run time: not in the log
  auto ok = RunTdxvirt("eventlog replay --json --ccel " + log + " --quote " + WriteQuote(dir, rtmrs));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  auto j = json::parse(ok.out);
  EXPECT_EQ(j["matches"], json::parse("[true,true,true,null]"));
  EXPECT_EQ(j["verdicts"][3]["verdict"], "unexplained");

  rtmrs[1][5] ^= 1;
  auto bad = RunTdxvirt("eventlog replay --json --ccel " + log + " --quote " + WriteQuote(dir, rtmrs));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(json::parse(bad.out)["matches"], json::parse("[true,false,true,null]"));
  EXPECT_NE(bad.err.find("rtmr1: log replays to "), std::string::npos) << bad.err;

  auto text = RunTdxvirt("eventlog replay --ccel " + log);
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("rtmr1 " + ToHex(b.rtmrs()[1]) + " (1 extends)"), std::string::npos)
      << text.out;

  testing::WriteFile(dir.File("junk"), "not a quote");
  EXPECT_EQ(RunTdxvirt("eventlog replay --ccel " + log + " --quote " + dir.File("junk")).exit_code, 2);
}

TEST(EventlogCli, InspectPrintsTableSpecIdEventsAndSummary) {
  auto r = RunTdxvirt("eventlog inspect --ccel " + Log("ovmf-direct-boot") + " --table " +
                      Log("ovmf-direct-boot", "ccel_table.bin"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j["table"]["laml"], 65536);
  EXPECT_EQ(j["spec_id"]["algorithms"][0]["name"], "sha384");
  EXPECT_EQ(j["log_bytes"], 2026);
  EXPECT_EQ(j["events"].size(), 20u);
  EXPECT_EQ(j["events"][12]["fields"]["device_path"],
            "VenMedia(1428f772-b64a-441e-b8c3-9ebdd7f893c7)/kernel");
  EXPECT_EQ(j["events"][8]["binding"], "bound");
  EXPECT_EQ(j["summary"]["kernel"]["event"], 12);
  EXPECT_EQ(j["summary"]["secure_boot"], false);
  auto none = RunTdxvirt("eventlog inspect --ccel " + Log("trustee-aael-alibaba"));
  ASSERT_EQ(none.exit_code, 0) << none.err;
  auto k = json::parse(none.out);
  EXPECT_EQ(k["table"], nullptr);
  EXPECT_EQ(k["events"][86]["register"], "rtmr3");
}

}  // namespace
}  // namespace tdxvirt
