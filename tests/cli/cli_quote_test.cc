// `tdxvirt quote inspect` against every documented value in shared/testdata/quotes/MANIFEST.md.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/hex.h"
#include "test_util.h"

namespace tdxvirt {
namespace {

using nlohmann::json;
using testing::RunTdxvirt;
using testing::TestdataPath;

json Inspect(const std::string& relative) {
  auto r = RunTdxvirt("quote inspect " + TestdataPath(relative));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

const std::string kZero48(96, '0');

TEST(CliQuoteInspect, V4UpToDate) {
  json j = Inspect("quotes/tdx-v4-uptodate/quote.bin");
  EXPECT_EQ(j["version"], 4);
  EXPECT_EQ(j["tee_type"], 129);
  EXPECT_EQ(j["body_type"], 2);
  EXPECT_EQ(j["qe_vendor_id"], "939a7233f79c4ca9940a0db3957f0607");
  EXPECT_EQ(j["signature_data_len"], 4300);
  EXPECT_EQ(j["trailing_bytes"], 70);
  EXPECT_EQ(j["fmspc"], "b0c06f000000");
  EXPECT_EQ(j["pce_svn"], 11);
  EXPECT_EQ(j["cpu_svn_components"], json({3, 3, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(j["qe_report"]["isv_svn"], 6);
  EXPECT_EQ(j["tee_tcb_svn"], "06010300000000000000000000000000");
  EXPECT_EQ(j["mr_td"],
            "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7");
  EXPECT_EQ(j["rtmr0"],
            "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0");
  EXPECT_EQ(j["rtmr3"], kZero48);
  EXPECT_EQ(j["report_data"],
            "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20");
  EXPECT_EQ(j["td_attributes"], "0000001000000000");
  EXPECT_EQ(j["sept_ve_disable"], true);
  EXPECT_EQ(j["debug"], false);
  EXPECT_EQ(j["xfam"], "e702060000000000");
  EXPECT_FALSE(j.contains("tee_tcb_svn2"));
  ASSERT_EQ(j["pck_chain"].size(), 3u);
  EXPECT_EQ(j["pck_chain"][0]["subject"].get<std::string>().rfind("CN=Intel SGX PCK Certificate", 0), 0u);
  EXPECT_EQ(j["pck_chain"][2]["subject"].get<std::string>().rfind("CN=Intel SGX Root CA", 0), 0u);
  EXPECT_EQ(j["pck_chain"][0]["not_before"], "2025-02-06T23:25:51Z");
}

TEST(CliQuoteInspect, V5Td15) {
  json j = Inspect("quotes/tdx-v5-no-tcb-level/quote.bin");
  EXPECT_EQ(j["version"], 5);
  EXPECT_EQ(j["body_type"], 3);
  EXPECT_EQ(j["body_size"], 648);
  EXPECT_EQ(j["trailing_bytes"], 0);
  EXPECT_EQ(j["fmspc"], "90c06f000000");
  EXPECT_EQ(j["pce_svn"], 13);
  EXPECT_EQ(j["cpu_svn_components"], json({3, 3, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(j["qe_report"]["isv_svn"], 7);
  EXPECT_EQ(j["tee_tcb_svn"], "07010300000000000000000000000000");
  EXPECT_EQ(j["tee_tcb_svn2"], "0d010300000000000000000000000000");
  EXPECT_EQ(j["mr_servicetd"], kZero48);
  EXPECT_EQ(j["mr_td"],
            "273828c46252fcbdd8ad2dd907130222b03466d52a2911d70c1a5950895d6bd1ae451d382d5a9b1b4c0ed0e5ae9a3dbd");
  for (const char* rtmr : {"rtmr0", "rtmr1", "rtmr2", "rtmr3"}) EXPECT_EQ(j[rtmr], kZero48);
  EXPECT_EQ(j["report_data"],
            "d2142b643598eb5fae2bc8529dd79a558b29f868ccbb6531cb28dab9dce47728" + std::string(64, '0'));
  EXPECT_EQ(j["xfam"], "e718060000000000");
}

TEST(CliQuoteInspect, SapphireRapidsE4) {
  json j = Inspect("quotes/tdx-v4-spr-e4-pcs-2023/quote.bin");
  EXPECT_EQ(j["fmspc"], "50806f000000");
  EXPECT_EQ(j["cpu_svn_components"], json({3, 3, 2, 2, 2, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(j["td_attributes"], "0000004000000000");
  EXPECT_EQ(j["pks"], true);
  EXPECT_EQ(j["sept_ve_disable"], false);
  EXPECT_EQ(j["debug"], false);
}

TEST(CliQuoteInspect, TrailingBytes) {
  json j = Inspect("quotes/tdx-v4-trailing-bytes/quote.bin");
  EXPECT_EQ(j["fmspc"], "00806f050000");
  EXPECT_EQ(j["trailing_bytes"], 3065);
  EXPECT_EQ(j["version"], 4);
}

TEST(CliQuoteInspect, HexTextAndStdin) {
  auto raw = testing::ReadTestdata("quotes/tdx-v4-uptodate/quote.bin");
  testing::TempDir dir;
  testing::WriteFile(dir.File("quote.hex"), "0x" + ToHex(raw) + "\n");
  auto from_hex = RunTdxvirt("quote inspect --compact " + dir.File("quote.hex"));
  ASSERT_EQ(from_hex.exit_code, 0) << from_hex.err;
  auto from_bin = RunTdxvirt("quote inspect --compact " + TestdataPath("quotes/tdx-v4-uptodate/quote.bin"));
  EXPECT_EQ(from_hex.out, from_bin.out);
  auto from_stdin = RunTdxvirt("quote inspect --compact -", ToHex(raw));
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  EXPECT_EQ(from_stdin.out, from_bin.out);
  // --quote, as `quote verify` takes it.
  auto from_flag = RunTdxvirt("quote inspect --compact --quote " + dir.File("quote.hex"));
  ASSERT_EQ(from_flag.exit_code, 0) << from_flag.err;
  EXPECT_EQ(from_flag.out, from_bin.out);
}

TEST(CliQuoteInspect, BadInputExitsTwoWithReason) {
  auto r = RunTdxvirt("quote inspect -", "04000200");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(r.out.empty());
  EXPECT_EQ(r.err, "tdxvirt: error: quote: truncated: field header.tee_type at offset 4 needs 4 bytes but 0 remain; "
                   "supply the complete quote\n");
  auto missing = RunTdxvirt("quote inspect /nonexistent/q.bin");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(missing.err, "tdxvirt: error: cannot open /nonexistent/q.bin: No such file or directory\n");
  auto badhex = RunTdxvirt("quote inspect -", "0x0g");
  EXPECT_EQ(badhex.exit_code, 2);
  EXPECT_EQ(badhex.err, // "0x0g" is not hex, so it is read as binary: its first two bytes are the version.
            "tdxvirt: error: quote: header.version at offset 0 is 30768; only TD quote versions 4 and 5 "
            "are supported (version 3 is an SGX quote)\n");
}

TEST(Cli, UsageAndHelp) {
  EXPECT_EQ(RunTdxvirt("--help").exit_code, 0);
  EXPECT_EQ(RunTdxvirt("quote --help").exit_code, 0);
  EXPECT_EQ(RunTdxvirt("quote inspect --help").exit_code, 0);
  EXPECT_EQ(RunTdxvirt("").exit_code, 2);
  EXPECT_EQ(RunTdxvirt("quote").exit_code, 2);
  EXPECT_EQ(RunTdxvirt("no-such-command").exit_code, 2);
  EXPECT_EQ(RunTdxvirt("quote inspect").exit_code, 2);
  auto v = RunTdxvirt("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out.rfind("tdxvirt ", 0), 0u);
}

TEST(CliReportInspect, ParsesTdReport) {
  Bytes raw(1024, 0);
  raw[0] = 0x81;
  raw[512] = 0x01;  // DEBUG
  raw[528] = 0xaa;  // MRTD[0]
  auto r = RunTdxvirt("report inspect -", ToHex(raw));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["debug"], true);
  EXPECT_EQ(j["mr_td"], "aa" + std::string(94, '0'));
  auto bad = RunTdxvirt("report inspect -", "00");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, "tdxvirt: error: TDREPORT: expected exactly 1024 bytes, got 1\n");
}

std::string VerifyArgs(const std::string& quote, const std::string& collateral, const std::string& at) {
  return "quote verify --compact --quote " + TestdataPath(quote) + " --collateral " +
         TestdataPath(collateral) + " --at " + at;
}

TEST(CliQuoteVerify, VerifiedQuoteExitsZero) {
  auto r = RunTdxvirt(VerifyArgs("quotes/tdx-v4-uptodate/quote.bin",
                                 "quotes/tdx-v4-uptodate/collateral.json", "2025-07-19T10:00:34Z"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["verified"], true);
  EXPECT_EQ(j["tcb_status"], "UpToDate");
  EXPECT_EQ(j["tcb_date"], "2024-03-13T00:00:00Z");
  EXPECT_EQ(j["advisory_ids"], json::array());
  EXPECT_EQ(j["qe_tcb_status"], "UpToDate");
  EXPECT_EQ(j["module_tcb_status"], "UpToDate");
  EXPECT_TRUE(j["error"].is_null());
  EXPECT_GE(j["checks"].size(), 20u);
  // Unix seconds work as well as RFC 3339.
  auto unix_time = RunTdxvirt(VerifyArgs("quotes/tdx-v4-uptodate/quote.bin",
                                         "quotes/tdx-v4-uptodate/collateral.json", "1752919234"));
  EXPECT_EQ(unix_time.out, r.out);
}

TEST(CliQuoteVerify, RejectedQuoteExitsOneAndNamesTheCheck) {
  auto r = RunTdxvirt(VerifyArgs("quotes/negative/tdx_quote_mrtd_bitflip",
                                 "quotes/tdx-v4-uptodate/collateral.json", "1752919234"));
  ASSERT_EQ(r.exit_code, 1) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["verified"], false);
  EXPECT_EQ(j["error"].get<std::string>(),
            "quote_signature: the quote signature does not verify with the attestation key: header or "
            "TD report was altered");
  auto v5 = RunTdxvirt(VerifyArgs("quotes/tdx-v5-no-tcb-level/quote.bin",
                                  "quotes/tdx-v5-no-tcb-level/collateral.json", "1773000000"));
  ASSERT_EQ(v5.exit_code, 1);
  EXPECT_EQ(json::parse(v5.out)["tcb_status"], "TCBNotSupported");
  auto expired = RunTdxvirt(VerifyArgs("quotes/tdx-v4-uptodate/quote.bin",
                                       "quotes/tdx-v4-uptodate/collateral.json", "1753000000"));
  EXPECT_EQ(expired.exit_code, 1);
}

TEST(CliQuoteVerify, BadInputExitsTwo) {
  auto no_coll = RunTdxvirt("quote verify --quote " + TestdataPath("quotes/tdx-v4-uptodate/quote.bin") +
                            " --collateral /nonexistent.json");
  EXPECT_EQ(no_coll.exit_code, 2);
  EXPECT_EQ(no_coll.err, "tdxvirt: error: cannot open /nonexistent.json: No such file or directory\n");
  auto bad_time = RunTdxvirt(VerifyArgs("quotes/tdx-v4-uptodate/quote.bin",
                                        "quotes/tdx-v4-uptodate/collateral.json", "yesterday"));
  EXPECT_EQ(bad_time.exit_code, 2);
  EXPECT_EQ(bad_time.err, "tdxvirt: error: --at yesterday: \"yesterday\" is not an RFC 3339 date-time like "
                           "2025-06-19T10:16:03Z: expected the date as YYYY-MM-DD (or give Unix seconds)\n");
  auto bad_quote = RunTdxvirt("quote verify --quote - --collateral " +
                                  TestdataPath("quotes/tdx-v4-uptodate/collateral.json"),
                              "05000200");
  EXPECT_EQ(bad_quote.exit_code, 2);
  EXPECT_EQ(bad_quote.err, "tdxvirt: error: quote: truncated: field header.tee_type at offset 4 needs 4 bytes but 0 remain; "
                   "supply the complete quote\n");
  auto bad_root = RunTdxvirt(VerifyArgs("quotes/tdx-v4-uptodate/quote.bin",
                                        "quotes/tdx-v4-uptodate/collateral.json", "1752919234") +
                             " --root " + TestdataPath("quotes/tdx-v4-uptodate/quote.bin"));
  EXPECT_EQ(bad_root.exit_code, 2);
  EXPECT_EQ(bad_root.err, "tdxvirt: error: trusted root: expected exactly one certificate, found 3\n");
}

}  // namespace
}  // namespace tdxvirt
