#include "verify/tcb_info.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>

#include <nlohmann/json.hpp>

#include "common/hex.h"
#include "test_util.h"

namespace tdxvirt::verify {
namespace {

using nlohmann::ordered_json;
using testing::ReadTestdata;

std::string ReadText(const std::string& path) {
  Bytes b = ReadTestdata(path);
  return std::string(b.begin(), b.end());
}

// The exact signed text from a collateral bundle ("tcb_info" / "qe_identity").
std::string BundleField(const std::string& path, const char* field) {
  return ordered_json::parse(ReadText(path))[field].get<std::string>();
}

// The inner object of a raw PCS response ("tcbInfo" / "enclaveIdentity"), order preserved.
std::string PcsInner(const std::string& path, const char* key) {
  return ordered_json::parse(ReadText(path))[key].dump();
}

const char kUpToDate[] = "quotes/tdx-v4-uptodate/collateral.json";
const char kNoTcbLevel[] = "quotes/tdx-v5-no-tcb-level/collateral.json";
const char kPckCrlSigFlip[] = "quotes/negative/tdx_quote_collateral_pckcrl_sigflip.json";
const char kPcsTcbInfo[] = "quotes/tdx-v4-spr-e4-pcs-2023/sample_tcbInfo_response";
const char kPcsQeIdentity[] = "quotes/tdx-v4-spr-e4-pcs-2023/sample_qeIdentity_response";

std::array<uint8_t, 16> Comps(std::initializer_list<uint8_t> head) {
  std::array<uint8_t, 16> out{};
  std::copy(head.begin(), head.end(), out.begin());
  return out;
}

// ---- statuses and times ----

TEST(TcbInfo, StatusNamesRoundTrip) {
  const std::pair<TcbStatus, const char*> all[] = {
      {TcbStatus::kUpToDate, "UpToDate"},
      {TcbStatus::kSWHardeningNeeded, "SWHardeningNeeded"},
      {TcbStatus::kConfigurationNeeded, "ConfigurationNeeded"},
      {TcbStatus::kConfigurationAndSWHardeningNeeded, "ConfigurationAndSWHardeningNeeded"},
      {TcbStatus::kOutOfDate, "OutOfDate"},
      {TcbStatus::kOutOfDateConfigurationNeeded, "OutOfDateConfigurationNeeded"},
      {TcbStatus::kRevoked, "Revoked"},
      {TcbStatus::kTdRelaunchAdvised, "TDRelaunchAdvised"},
      {TcbStatus::kTdRelaunchAdvisedConfigurationNeeded, "TDRelaunchAdvisedConfigurationNeeded"},
      {TcbStatus::kTcbNotSupported, "TCBNotSupported"},
      {TcbStatus::kTdxModuleMismatch, "TDXModuleMismatch"},
  };
  for (const auto& [status, name] : all) {
    EXPECT_EQ(TcbStatusName(status), name);
    auto parsed = ParseTcbStatus(name);
    ASSERT_TRUE(parsed.ok()) << parsed.error();
    EXPECT_EQ(*parsed, status);
  }
  auto lower = ParseTcbStatus("uptodate");  // Intel's spelling is exact
  ASSERT_FALSE(lower.ok());
  EXPECT_EQ(lower.error().rfind("unknown TCB status \"uptodate\"", 0), 0u) << lower.error();
  EXPECT_FALSE(ParseTcbStatus("").ok());
}

TEST(TcbInfo, Rfc3339Parses) {
  EXPECT_EQ(*ParseRfc3339("2025-06-19T10:16:03Z"), 1750328163);
  EXPECT_EQ(*ParseRfc3339("2025-06-19T10:16:03.999Z"), 1750328163);  // truncated
  EXPECT_EQ(*ParseRfc3339("2025-06-19T10:16:03+00:00"), 1750328163);
  EXPECT_EQ(*ParseRfc3339("2025-06-19T10:16:03.5-00:00"), 1750328163);
  EXPECT_EQ(*ParseRfc3339("2025-06-19T12:16:03+02:00"), 1750328163);
  EXPECT_EQ(*ParseRfc3339("2025-06-19t10:16:03z"), 1750328163);
  EXPECT_EQ(*ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339("1969-12-31T23:59:59Z"), -1);
  EXPECT_EQ(*ParseRfc3339("2024-02-29T00:00:00Z"), 1709164800);
  EXPECT_EQ(*ParseRfc3339("2023-06-18T08:42:58Z"), 1687077778);
}

TEST(TcbInfo, Rfc3339RejectsMalformed) {
  const char* bad[] = {
      "",
      "2025-06-19",
      "2025-06-19T10:16:03",        // no zone
      "2025-06-19 10:16:03Z",       // space
      "2025-6-19T10:16:03Z",        // one-digit month
      "2025-06-19T10:16Z",          // no seconds
      "2025-06-19T24:00:00Z",       // hour
      "2025-06-19T10:60:00Z",       // minute
      "2025-06-19T10:16:60Z",       // leap second
      "2025-13-01T00:00:00Z",       // month
      "2023-02-29T00:00:00Z",       // not a leap year
      "2025-04-31T00:00:00Z",       // April has 30 days
      "2025-06-19T10:16:03.Z",      // empty fraction
      "2025-06-19T10:16:03Zjunk",   // trailing text
      "2025-06-19T10:16:03+0000",   // offset needs a colon
      "2025-06-19T10:16:03+24:00",  // offset out of range
      " 2025-06-19T10:16:03Z",      // leading space
  };
  for (const char* text : bad) {
    auto t = ParseRfc3339(text);
    EXPECT_FALSE(t.ok()) << text;
  }
  auto t = ParseRfc3339("2025-06-19T10:16:03");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error(),
            "\"2025-06-19T10:16:03\" is not an RFC 3339 date-time like 2025-06-19T10:16:03Z: "
            "expected 'Z' or an offset like +00:00 after the time");
}

TEST(TcbInfo, Rfc3339Formats) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(-1), "1969-12-31T23:59:59Z");
  EXPECT_EQ(FormatRfc3339(1750328163), "2025-06-19T10:16:03Z");
  EXPECT_EQ(FormatRfc3339(1709164800), "2024-02-29T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(INT64_MAX), "9999-12-31T23:59:59Z");
  EXPECT_EQ(FormatRfc3339(INT64_MIN), "0000-01-01T00:00:00Z");
  EXPECT_EQ(*ParseRfc3339("0000-01-01T00:00:00Z"), -62167219200);
  EXPECT_EQ(*ParseRfc3339("9999-12-31T23:59:59Z"), 253402300799);
  for (int64_t t : {int64_t(0), int64_t(951782400), int64_t(4102444799), int64_t(1752919234)})
    EXPECT_EQ(*ParseRfc3339(FormatRfc3339(t)), t);
}

// ---- real TCB Info ----

TEST(TcbInfo, ParsesUpToDateCollateral) {
  auto info = ParseTcbInfo(BundleField(kUpToDate, "tcb_info"));
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->id, "TDX");
  EXPECT_EQ(info->version, 3);
  EXPECT_EQ(info->issue_date, *ParseRfc3339("2025-06-19T10:16:03Z"));
  EXPECT_EQ(info->next_update, *ParseRfc3339("2025-07-19T10:16:03Z"));
  EXPECT_EQ(ToHex(info->fmspc), "b0c06f000000");
  EXPECT_EQ(ToHex(info->pce_id), "0000");
  EXPECT_EQ(info->tcb_type, 0);
  EXPECT_EQ(info->tcb_evaluation_data_number, 17);

  EXPECT_TRUE(info->tdx_module.id.empty());
  EXPECT_TRUE(IsAllZero(info->tdx_module.mrsigner));
  EXPECT_EQ(ToHex(info->tdx_module.attributes), "0000000000000000");
  EXPECT_EQ(ToHex(info->tdx_module.attributes_mask), "ffffffffffffffff");
  EXPECT_TRUE(info->tdx_module.tcb_levels.empty());

  ASSERT_EQ(info->tdx_module_identities.size(), 2u);
  const auto& tdx03 = info->tdx_module_identities[0];
  EXPECT_EQ(tdx03.id, "TDX_03");
  ASSERT_EQ(tdx03.tcb_levels.size(), 1u);
  EXPECT_EQ(tdx03.tcb_levels[0].isv_svn, 3);
  const auto& tdx01 = info->tdx_module_identities[1];
  EXPECT_EQ(tdx01.id, "TDX_01");
  EXPECT_TRUE(IsAllZero(tdx01.mrsigner));
  EXPECT_EQ(ToHex(tdx01.attributes_mask), "ffffffffffffffff");
  ASSERT_EQ(tdx01.tcb_levels.size(), 2u);
  EXPECT_EQ(tdx01.tcb_levels[0].isv_svn, 4);
  EXPECT_EQ(tdx01.tcb_levels[0].status, TcbStatus::kUpToDate);
  EXPECT_EQ(tdx01.tcb_levels[0].tcb_date, "2024-03-13T00:00:00Z");
  EXPECT_EQ(tdx01.tcb_levels[1].isv_svn, 2);
  EXPECT_EQ(tdx01.tcb_levels[1].status, TcbStatus::kOutOfDate);
  EXPECT_EQ(tdx01.tcb_levels[1].tcb_date, "2023-08-09T00:00:00Z");
  EXPECT_TRUE(tdx01.tcb_levels[1].advisory_ids.empty());

  ASSERT_EQ(info->tcb_levels.size(), 2u);
  const TcbLevel& top = info->tcb_levels[0];
  EXPECT_EQ(top.sgx_components, Comps({2, 2, 2, 2, 3, 1, 0, 5}));
  EXPECT_EQ(top.pce_svn, 11);
  EXPECT_EQ(top.tdx_components, Comps({5, 0, 2}));
  EXPECT_EQ(top.tcb_date, "2024-03-13T00:00:00Z");
  EXPECT_EQ(top.tcb_date_unix, 1710288000);
  EXPECT_EQ(top.status, TcbStatus::kUpToDate);
  EXPECT_TRUE(top.advisory_ids.empty());
  const TcbLevel& old = info->tcb_levels[1];
  EXPECT_EQ(old.pce_svn, 5);
  EXPECT_EQ(old.tcb_date, "2018-01-04T00:00:00Z");
  EXPECT_EQ(old.status, TcbStatus::kOutOfDate);
  ASSERT_EQ(old.advisory_ids.size(), 14u);
  EXPECT_EQ(old.advisory_ids.front(), "INTEL-SA-00106");
  EXPECT_EQ(old.advisory_ids.back(), "INTEL-SA-00837");
}

TEST(TcbInfo, ParsesNoTcbLevelCollateral) {
  auto info = ParseTcbInfo(BundleField(kNoTcbLevel, "tcb_info"));
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(ToHex(info->fmspc), "90c06f000000");
  EXPECT_EQ(info->tcb_evaluation_data_number, 18);
  EXPECT_EQ(info->issue_date, *ParseRfc3339("2026-02-18T10:58:51Z"));
  ASSERT_EQ(info->tcb_levels.size(), 3u);
  // JSON order is already QVL's descending order.
  EXPECT_EQ(info->tcb_levels[0].sgx_components, Comps({3, 3, 2, 2, 4, 1, 0, 5}));
  EXPECT_EQ(info->tcb_levels[0].pce_svn, 13);
  EXPECT_EQ(info->tcb_levels[0].tdx_components, Comps({5, 0, 3}));
  EXPECT_EQ(info->tcb_levels[1].sgx_components, Comps({2, 2, 2, 2, 3, 1, 0, 5}));
  EXPECT_EQ(info->tcb_levels[1].pce_svn, 13);
  EXPECT_EQ(info->tcb_levels[1].advisory_ids.size(), 5u);
  EXPECT_EQ(info->tcb_levels[2].pce_svn, 5);
  EXPECT_EQ(info->tcb_levels[2].advisory_ids.size(), 19u);
  ASSERT_EQ(info->tdx_module_identities.size(), 2u);
  const auto& tdx01 = info->tdx_module_identities[1];
  ASSERT_EQ(tdx01.tcb_levels.size(), 3u);
  EXPECT_EQ(tdx01.tcb_levels[0].isv_svn, 6);
  EXPECT_EQ(tdx01.tcb_levels[1].isv_svn, 4);
  EXPECT_EQ(tdx01.tcb_levels[1].advisory_ids,
            (std::vector<std::string>{"INTEL-SA-01036", "INTEL-SA-01099"}));
  EXPECT_EQ(tdx01.tcb_levels[2].isv_svn, 2);
}

TEST(TcbInfo, ParsesPcsSampleWithLowerCaseFmspcAndNoModuleIdentities) {
  auto info = ParseTcbInfo(PcsInner(kPcsTcbInfo, "tcbInfo"));
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(ToHex(info->fmspc), "50806f000000");
  EXPECT_EQ(info->tcb_evaluation_data_number, 15);
  EXPECT_EQ(info->issue_date, 1687077778);
  EXPECT_TRUE(info->tdx_module_identities.empty());
  ASSERT_EQ(info->tcb_levels.size(), 2u);
  EXPECT_EQ(info->tcb_levels[0].sgx_components, Comps({5, 5, 2, 2, 3, 1, 0, 3}));
  EXPECT_EQ(info->tcb_levels[0].tdx_components, Comps({3, 0, 5}));
  EXPECT_EQ(info->tcb_levels[0].tcb_date, "2023-02-15T00:00:00Z");
  EXPECT_EQ(info->tcb_levels[1].advisory_ids.size(), 13u);
}

TEST(TcbInfo, ParsesNegativeBundleTcbInfo) {
  // The PCK-CRL-flipped bundle carries the same TCB Info as tdx-v4-uptodate.
  auto info = ParseTcbInfo(BundleField(kPckCrlSigFlip, "tcb_info"));
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(ToHex(info->fmspc), "b0c06f000000");
  EXPECT_EQ(info->tcb_levels.size(), 2u);
}

TEST(TcbInfo, RejectsPcsBodyWithHint) {
  auto info = ParseTcbInfo(ReadText(kPcsTcbInfo));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error(),
            "tcbInfo: this is a PCS response body; pass the exact text of its \"tcbInfo\" member "
            "(verify::ParsePcsSignedJson extracts it)");
  auto qe = ParseQeIdentity(ReadText(kPcsQeIdentity));
  ASSERT_FALSE(qe.ok());
  EXPECT_EQ(qe.error().rfind("enclaveIdentity: this is a PCS response body", 0), 0u) << qe.error();
}

// ---- real QE identities ----

TEST(TcbQeIdentity, ParsesEveryRealIdentity) {
  struct Case {
    std::string text;
    int eval;
    const char* issue;
    const char* level_date;
  };
  const Case cases[] = {
      {BundleField(kUpToDate, "qe_identity"), 17, "2025-06-19T10:32:27Z", "2024-03-13T00:00:00Z"},
      {BundleField(kNoTcbLevel, "qe_identity"), 18, "2026-02-18T10:42:15Z", "2024-11-13T00:00:00Z"},
      {BundleField(kPckCrlSigFlip, "qe_identity"), 17, "2025-06-19T10:32:27Z",
       "2024-03-13T00:00:00Z"},
      {PcsInner(kPcsQeIdentity, "enclaveIdentity"), 15, "2023-06-08T07:24:59Z",
       "2023-02-15T00:00:00Z"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.issue);
    auto qe = ParseQeIdentity(c.text);
    ASSERT_TRUE(qe.ok()) << qe.error();
    EXPECT_EQ(qe->id, "TD_QE");
    EXPECT_EQ(qe->version, 2);
    EXPECT_EQ(qe->tcb_evaluation_data_number, c.eval);
    EXPECT_EQ(qe->issue_date, *ParseRfc3339(c.issue));
    EXPECT_EQ(qe->next_update - qe->issue_date, 30 * 86400);
    EXPECT_EQ(qe->miscselect, 0u);
    EXPECT_EQ(qe->miscselect_mask, 0xffffffffu);
    EXPECT_EQ(ToHex(qe->attributes), "11000000000000000000000000000000");
    EXPECT_EQ(ToHex(qe->attributes_mask), "fbffffffffffffff0000000000000000");
    EXPECT_EQ(ToHex(qe->mrsigner),
              "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5");
    EXPECT_EQ(qe->isv_prod_id, 2);
    ASSERT_EQ(qe->tcb_levels.size(), 1u);
    EXPECT_EQ(qe->tcb_levels[0].isv_svn, 4);
    EXPECT_EQ(qe->tcb_levels[0].tcb_date, c.level_date);
    EXPECT_EQ(qe->tcb_levels[0].status, TcbStatus::kUpToDate);
    EXPECT_TRUE(qe->tcb_levels[0].advisory_ids.empty());
  }
}

// ---- synthetic documents: edits of the real uptodate TCB Info / QE identity ----

ordered_json RealTcbInfo() { return ordered_json::parse(BundleField(kUpToDate, "tcb_info")); }
ordered_json RealQeIdentity() { return ordered_json::parse(BundleField(kUpToDate, "qe_identity")); }

std::string TcbInfoError(const ordered_json& doc) {
  auto r = ParseTcbInfo(doc.dump());
  return r.ok() ? "(parsed)" : r.error();
}
std::string QeError(const ordered_json& doc) {
  auto r = ParseQeIdentity(doc.dump());
  return r.ok() ? "(parsed)" : r.error();
}

TEST(TcbInfo, LevelsAreSortedLikeQvl) {
  ordered_json doc = RealTcbInfo();
  ordered_json base = doc["tcbLevels"][0];
  auto level = [&](std::initializer_list<int> sgx_head, int pce, int tdx2, const char* date) {
    ordered_json l = base;
    int i = 0;
    for (int v : sgx_head) l["tcb"]["sgxtcbcomponents"][i++]["svn"] = v;
    l["tcb"]["pcesvn"] = pce;
    l["tcb"]["tdxtcbcomponents"][2]["svn"] = tdx2;
    l["tcbDate"] = date;
    return l;
  };
  // Lexicographic on SGX components (not dominance), then pcesvn, then TDX components.
  doc["tcbLevels"] = ordered_json::array({
      level({2, 2, 9}, 11, 2, "2001-01-01T00:00:00Z"),
      level({3, 0, 0}, 1, 0, "2002-01-01T00:00:00Z"),
      level({2, 2, 9}, 11, 3, "2003-01-01T00:00:00Z"),
      level({2, 2, 9}, 12, 0, "2004-01-01T00:00:00Z"),
      level({2, 3, 0}, 0, 0, "2005-01-01T00:00:00Z"),
  });
  auto info = ParseTcbInfo(doc.dump());
  ASSERT_TRUE(info.ok()) << info.error();
  std::vector<std::string> order;
  for (const auto& l : info->tcb_levels) order.push_back(l.tcb_date.substr(0, 4));
  EXPECT_EQ(order, (std::vector<std::string>{"2002", "2005", "2004", "2003", "2001"}));
}

TEST(TcbInfo, DuplicateLevelsAreRejected) {
  ordered_json doc = RealTcbInfo();
  ordered_json copy = doc["tcbLevels"][0];
  copy["tcbStatus"] = "OutOfDate";  // status does not count: QVL's set compares TCBs only
  doc["tcbLevels"].push_back(copy);
  EXPECT_EQ(TcbInfoError(doc),
            "tcbInfo.tcbLevels[2]: has the same sgxtcbcomponents, pcesvn and tdxtcbcomponents as "
            "tcbLevels[0]; Intel's QVL rejects duplicated TCB levels");
}

TEST(TcbInfo, ModuleLevelsSortedAndUnique) {
  ordered_json doc = RealTcbInfo();
  auto& levels = doc["tdxModuleIdentities"][1]["tcbLevels"];
  std::swap(levels[0], levels[1]);  // isvsvn 2 first
  auto info = ParseTcbInfo(doc.dump());
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->tdx_module_identities[1].tcb_levels[0].isv_svn, 4);
  EXPECT_EQ(info->tdx_module_identities[1].tcb_levels[1].isv_svn, 2);

  levels[1]["tcb"]["isvsvn"] = 2;
  EXPECT_EQ(TcbInfoError(doc),
            "tcbInfo.tdxModuleIdentities[1].tcbLevels[1]: duplicates the isvsvn 2 of tcbLevels[0]; "
            "each module level needs its own isvsvn");
}

TEST(TcbInfo, FieldErrorsNameThePath) {
  struct Case {
    std::function<void(ordered_json&)> edit;
    const char* error;
  };
  auto add_level = [](ordered_json& d) {
    // Three levels so the broken one is tcbLevels[2], as in the documented example.
    ordered_json extra = d["tcbLevels"][1];
    extra["tcb"]["pcesvn"] = 1;
    d["tcbLevels"].push_back(extra);
  };
  const Case cases[] = {
      {[&](ordered_json& d) {
         add_level(d);
         d["tcbLevels"][2]["tcb"]["sgxtcbcomponents"].erase(15);
       },
       "tcbInfo.tcbLevels[2].tcb.sgxtcbcomponents: expected 16 entries, got 15"},
      {[](ordered_json& d) {
         d["tcbLevels"][0]["tcb"]["tdxtcbcomponents"].push_back(ordered_json{{"svn", 0}});
       },
       "tcbInfo.tcbLevels[0].tcb.tdxtcbcomponents: expected 16 entries, got 17"},
      {[](ordered_json& d) { d["tcbLevels"][1]["tcb"].erase("tdxtcbcomponents"); },
       "tcbInfo.tcbLevels[1].tcb.tdxtcbcomponents: required member is missing"},
      {[](ordered_json& d) { d["tcbLevels"][0]["tcb"]["sgxtcbcomponents"][3]["svn"] = 256; },
       "tcbInfo.tcbLevels[0].tcb.sgxtcbcomponents[3].svn: expected an integer in 0..255, got 256"},
      {[](ordered_json& d) { d["tcbLevels"][0]["tcb"]["sgxtcbcomponents"][3]["svn"] = -1; },
       "tcbInfo.tcbLevels[0].tcb.sgxtcbcomponents[3].svn: expected an integer in 0..255, got -1"},
      {[](ordered_json& d) { d["tcbLevels"][0]["tcb"]["sgxtcbcomponents"][0]["svn"] = 2.5; },
       "tcbInfo.tcbLevels[0].tcb.sgxtcbcomponents[0].svn: expected an integer in 0..255, got a "
       "fractional number 2.5"},
      {[](ordered_json& d) { d["tcbLevels"][0]["tcb"]["sgxtcbcomponents"][0]["category"] = 1; },
       "tcbInfo.tcbLevels[0].tcb.sgxtcbcomponents[0].category: expected a string, got number"},
      {[](ordered_json& d) { d["tcbLevels"][0]["tcb"]["pcesvn"] = "11"; },
       "tcbInfo.tcbLevels[0].tcb.pcesvn: expected an integer in 0..65535, got string"},
      {[](ordered_json& d) { d["tcbLevels"][0]["tcbStatus"] = "Uptodate"; },
       "tcbInfo.tcbLevels[0].tcbStatus: \"Uptodate\" is not a valid TCB level status; expected "
       "one of UpToDate, SWHardeningNeeded, ConfigurationNeeded, "
       "ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, Revoked"},
      {[](ordered_json& d) { d["tcbLevels"][0]["tcbStatus"] = "TCBNotSupported"; },
       "tcbInfo.tcbLevels[0].tcbStatus: \"TCBNotSupported\" is not a valid TCB level status; "
       "expected one of UpToDate, SWHardeningNeeded, ConfigurationNeeded, "
       "ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, Revoked"},
      {[](ordered_json& d) { d["tcbLevels"][1]["tcbDate"] = "2018-01-04"; },
       "tcbInfo.tcbLevels[1].tcbDate: \"2018-01-04\" is not an RFC 3339 date-time like "
       "2025-06-19T10:16:03Z: expected 'T' between date and time"},
      {[](ordered_json& d) { d["tcbLevels"][1]["advisoryIDs"] = "INTEL-SA-00106"; },
       "tcbInfo.tcbLevels[1].advisoryIDs: expected an array, got string"},
      {[](ordered_json& d) { d["tcbLevels"][1]["advisoryIDs"][2] = 7; },
       "tcbInfo.tcbLevels[1].advisoryIDs[2]: expected a string, got number"},
      {[](ordered_json& d) { d["tcbLevels"] = ordered_json::array(); },
       "tcbInfo.tcbLevels: expected at least one entry, got an empty array"},
      {[](ordered_json& d) { d["tcbLevels"][0] = "level"; },
       "tcbInfo.tcbLevels[0]: expected an object, got string"},
      {[](ordered_json& d) { d.erase("fmspc"); }, "tcbInfo.fmspc: required member is missing"},
      {[](ordered_json& d) { d["fmspc"] = "B0C06F0000"; },
       "tcbInfo.fmspc: expected 12 hex digits (6 bytes), got 10"},
      {[](ordered_json& d) { d["fmspc"] = "B0C06F00000G"; },
       "tcbInfo.fmspc: \"B0C06F00000G\" is not hex; expected only 0-9, a-f, A-F"},
      {[](ordered_json& d) { d["fmspc"] = "0xB0C06F0000"; },
       "tcbInfo.fmspc: \"0xB0C06F0000\" is not hex; expected only 0-9, a-f, A-F"},
      {[](ordered_json& d) { d["pceId"] = 0; }, "tcbInfo.pceId: expected a string, got number"},
      {[](ordered_json& d) { d["id"] = "SGX"; },
       "tcbInfo.id: expected \"TDX\", got \"SGX\"; TD quotes need the TDX TCB Info "
       "(/tdx/certification/v4/tcb)"},
      {[](ordered_json& d) { d["version"] = 2; },
       "tcbInfo.version: expected 3 or later, got 2; TDX TCB Info starts at version 3"},
      {[](ordered_json& d) { d["version"] = "3"; },
       "tcbInfo.version: expected an integer in 0..2147483647, got string"},
      {[](ordered_json& d) { d["tcbType"] = 1; },
       "tcbInfo.tcbType: 1 is not supported; Intel's QVL accepts only tcbType 0"},
      {[](ordered_json& d) { d["issueDate"] = "2025-06-19T10:16:03"; },
       "tcbInfo.issueDate: \"2025-06-19T10:16:03\" is not an RFC 3339 date-time like "
       "2025-06-19T10:16:03Z: expected 'Z' or an offset like +00:00 after the time"},
      {[](ordered_json& d) { d.erase("tdxModule"); },
       "tcbInfo.tdxModule: required member is missing"},
      {[](ordered_json& d) { d["tdxModule"]["mrsigner"] = "00"; },
       "tcbInfo.tdxModule.mrsigner: expected 96 hex digits (48 bytes), got 2"},
      {[](ordered_json& d) { d["tdxModuleIdentities"] = ordered_json::array(); },
       "tcbInfo.tdxModuleIdentities: expected at least one entry, got an empty array"},
      {[](ordered_json& d) { d["tdxModuleIdentities"][1].erase("id"); },
       "tcbInfo.tdxModuleIdentities[1].id: required member is missing"},
      {[](ordered_json& d) { d["tdxModuleIdentities"][1]["tcbLevels"][0]["tcb"]["isvsvn"] = 300; },
       "tcbInfo.tdxModuleIdentities[1].tcbLevels[0].tcb.isvsvn: expected an integer in 0..255, "
       "got 300"},
      {[](ordered_json& d) {
         d["tdxModuleIdentities"][1]["tcbLevels"][1]["tcbStatus"] = "ConfigurationNeeded";
       },
       "tcbInfo.tdxModuleIdentities[1].tcbLevels[1].tcbStatus: \"ConfigurationNeeded\" is not a "
       "valid TDX module TCB level status; expected one of UpToDate, OutOfDate, Revoked"},
  };
  for (const auto& c : cases) {
    ordered_json doc = RealTcbInfo();
    c.edit(doc);
    EXPECT_EQ(TcbInfoError(doc), c.error);
  }
}

TEST(TcbInfo, MalformedJsonAndDuplicateKeys) {
  auto r = ParseTcbInfo("{\"id\":\"TDX\",");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().rfind("tcbInfo: not valid JSON: parse error at line 1, column 13", 0), 0u)
      << r.error();
  r = ParseTcbInfo("");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().rfind("tcbInfo: not valid JSON: ", 0), 0u) << r.error();
  r = ParseTcbInfo("[1,2]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "tcbInfo: expected a JSON object, got array");

  // A repeated key, even nested, makes the signed text ambiguous.
  std::string text = BundleField(kUpToDate, "tcb_info");
  std::string dup = text;
  dup.replace(dup.find("\"pcesvn\":11,"), 12, "\"pcesvn\":11,\"pcesvn\":99,");
  r = ParseTcbInfo(dup);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(),
            "tcbInfo: key \"pcesvn\" appears twice in one object; a signed document must have one "
            "meaning");
  // The same key in sibling objects is fine (the real document repeats "svn" everywhere).
  EXPECT_TRUE(ParseTcbInfo(text).ok());
}

TEST(TcbInfo, UnknownMembersAreIgnored) {
  ordered_json doc = RealTcbInfo();
  doc["futureField"] = {{"x", 1}};
  doc["tcbLevels"][0]["tcb"]["future"] = true;
  auto info = ParseTcbInfo(doc.dump());
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->tcb_levels.size(), 2u);
}

TEST(TcbInfo, VersionAboveThreeAccepted) {
  ordered_json doc = RealTcbInfo();
  doc["version"] = 4;
  auto info = ParseTcbInfo(doc.dump());
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->version, 4);
}

// ---- QE identity edits ----

TEST(TcbQeIdentity, MiscselectHexIsInReportByteOrder) {
  ordered_json doc = RealQeIdentity();
  doc["miscselect"] = "01000000";
  doc["miscselectMask"] = "FF00FFFF";
  auto qe = ParseQeIdentity(doc.dump());
  ASSERT_TRUE(qe.ok()) << qe.error();
  EXPECT_EQ(qe->miscselect, 1u);  // bytes 01 00 00 00 read little-endian, like the QE report
  EXPECT_EQ(qe->miscselect_mask, 0xffff00ffu);
}

TEST(TcbQeIdentity, VersionsAndIds) {
  ordered_json doc = RealQeIdentity();
  doc["version"] = 3;
  EXPECT_EQ(QeError(doc), "(parsed)");
  doc["version"] = 1;
  EXPECT_EQ(QeError(doc),
            "enclaveIdentity.version: expected 2 (or 3), got 1; Intel's QVL rejects QE identity "
            "v1 for TDX");
  doc = RealQeIdentity();
  doc["id"] = "QE";
  EXPECT_EQ(QeError(doc),
            "enclaveIdentity.id: expected \"TD_QE\", got \"QE\"; TD quotes need the TD QE identity "
            "(/tdx/certification/v4/qe/identity)");
}

TEST(TcbQeIdentity, FieldErrorsNameThePath) {
  struct Case {
    std::function<void(ordered_json&)> edit;
    std::string error;
  };
  const Case cases[] = {
      {[](ordered_json& d) { d["miscselect"] = "0000000"; },
       "enclaveIdentity.miscselect: expected 8 hex digits (4 bytes), got 7"},
      {[](ordered_json& d) { d.erase("attributesMask"); },
       "enclaveIdentity.attributesMask: required member is missing"},
      {[](ordered_json& d) { d["mrsigner"] = std::string(64, 'z'); },
       "enclaveIdentity.mrsigner: \"" + std::string(64, 'z') +
           "\" is not hex; expected only 0-9, a-f, A-F"},
      {[](ordered_json& d) { d["isvprodid"] = 70000; },
       "enclaveIdentity.isvprodid: expected an integer in 0..65535, got 70000"},
      {[](ordered_json& d) { d["tcbLevels"] = ordered_json::array(); },
       "enclaveIdentity.tcbLevels: expected at least one entry, got an empty array"},
      {[](ordered_json& d) { d["tcbLevels"][0]["tcb"] = 4; },
       "enclaveIdentity.tcbLevels[0].tcb: expected an object, got number"},
      {[](ordered_json& d) { d["tcbLevels"][0]["tcb"].erase("isvsvn"); },
       "enclaveIdentity.tcbLevels[0].tcb.isvsvn: required member is missing"},
      {[](ordered_json& d) { d["tcbLevels"][0]["tcbStatus"] = "SWHardeningNeeded"; },
       "enclaveIdentity.tcbLevels[0].tcbStatus: \"SWHardeningNeeded\" is not a valid QE identity "
       "TCB level status; expected one of UpToDate, ConfigurationNeeded, OutOfDate, "
       "OutOfDateConfigurationNeeded, Revoked"},
      {[](ordered_json& d) { d["nextUpdate"] = nullptr; },
       "enclaveIdentity.nextUpdate: expected a string, got null"},
      {[](ordered_json& d) { d["tcbEvaluationDataNumber"] = -3; },
       "enclaveIdentity.tcbEvaluationDataNumber: expected an integer in 0..2147483647, got -3"},
  };
  for (const auto& c : cases) {
    ordered_json doc = RealQeIdentity();
    c.edit(doc);
    EXPECT_EQ(QeError(doc), c.error);
  }
}

TEST(TcbQeIdentity, LevelsKeepJsonOrderAndAdvisories) {
  ordered_json doc = RealQeIdentity();
  doc["tcbLevels"].push_back(
      ordered_json{{"tcb", {{"isvsvn", 2}}},
                   {"tcbDate", "2023-02-15T00:00:00Z"},
                   {"tcbStatus", "OutOfDate"},
                   {"advisoryIDs", ordered_json::array({"INTEL-SA-00615"})}});
  auto qe = ParseQeIdentity(doc.dump());
  ASSERT_TRUE(qe.ok()) << qe.error();
  ASSERT_EQ(qe->tcb_levels.size(), 2u);
  EXPECT_EQ(qe->tcb_levels[1].isv_svn, 2);
  EXPECT_EQ(qe->tcb_levels[1].status, TcbStatus::kOutOfDate);
  EXPECT_EQ(qe->tcb_levels[1].advisory_ids, std::vector<std::string>{"INTEL-SA-00615"});
}

}  // namespace
}  // namespace tdxvirt::verify
