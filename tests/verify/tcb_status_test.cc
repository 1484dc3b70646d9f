#include "verify/tcb_status.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/hex.h"
#include "common/openssl.h"
#include "evidence/pck_cert.h"
#include "evidence/quote.h"
#include "test_util.h"

namespace tdxvirt::verify {
namespace {

using evidence::BodyType;
using nlohmann::ordered_json;
using testing::ReadTestdata;

using Advisories = std::vector<std::string>;

std::string ReadText(const std::string& path) {
  Bytes b = ReadTestdata(path);
  return std::string(b.begin(), b.end());
}

// ---- real quotes against their real collateral ----

struct RealCase {
  evidence::Quote quote;
  evidence::PckExtensions pck;
  TcbInfo tcb_info;
  EnclaveIdentity qe_identity;

  TcbInput Input() const {
    TcbInput in;
    in.pck_components = pck.cpu_svn_components;
    in.pck_pce_svn = pck.pce_svn;
    in.body = &quote.body;
    in.qe_isv_svn = quote.signature_data.qe_certification.qe_report.isv_svn;
    in.quote_version = quote.header.version;
    return in;
  }
  const evidence::EnclaveReportBody& qe_report() const {
    return quote.signature_data.qe_certification.qe_report;
  }
};

// `tcb_info_text`/`qe_text`: the exact signed objects.
RealCase LoadReal(const std::string& quote_path, const std::string& tcb_info_text,
                  const std::string& qe_text) {
  RealCase c;
  auto quote = evidence::ParseQuote(ReadTestdata(quote_path));
  EXPECT_TRUE(quote.ok()) << quote.error();
  if (!quote.ok()) return c;
  c.quote = *quote;
  auto pem = evidence::PckCertChainPem(c.quote);
  EXPECT_TRUE(pem.ok()) << pem.error();
  auto chain = ossl::ParsePemChain(pem.ok() ? *pem : "");
  EXPECT_TRUE(chain.ok()) << chain.error();
  if (chain.ok() && !chain->empty()) {
    auto ext = evidence::ExtractPckExtensions((*chain)[0].get());
    EXPECT_TRUE(ext.ok()) << ext.error();
    if (ext.ok()) c.pck = *ext;
  }
  auto info = ParseTcbInfo(tcb_info_text);
  EXPECT_TRUE(info.ok()) << info.error();
  if (info.ok()) c.tcb_info = *info;
  auto qe = ParseQeIdentity(qe_text);
  EXPECT_TRUE(qe.ok()) << qe.error();
  if (qe.ok()) c.qe_identity = *qe;
  return c;
}

RealCase LoadBundleCase(const std::string& dir) {
  auto bundle = ordered_json::parse(ReadText(dir + "/collateral.json"));
  return LoadReal(dir + "/quote.bin", bundle["tcb_info"].get<std::string>(),
                  bundle["qe_identity"].get<std::string>());
}

TEST(TcbStatus, RealUpToDateQuote) {
  RealCase c = LoadBundleCase("quotes/tdx-v4-uptodate");
  EXPECT_EQ(ToHex(c.pck.fmspc), ToHex(c.tcb_info.fmspc));
  EXPECT_EQ(c.Input().qe_isv_svn, 6);

  Status qe_match = MatchQeIdentity(c.qe_identity, c.qe_report());
  EXPECT_TRUE(qe_match.ok()) << qe_match.error();
  Status module_match = MatchTdxModule(c.tcb_info, c.quote.body);
  EXPECT_TRUE(module_match.ok()) << module_match.error();

  TcbResult r = EvaluateTcb(c.tcb_info, c.qe_identity, c.Input());
  EXPECT_EQ(r.status, TcbStatus::kUpToDate) << r.detail;
  EXPECT_EQ(r.platform_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.module_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.qe_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.tcb_date, "2024-03-13T00:00:00Z");
  EXPECT_TRUE(r.advisory_ids.empty());
  EXPECT_EQ(r.detail,
            "TDX TCB level 0 (tcbDate 2024-03-13T00:00:00Z, UpToDate); module TDX_01 level "
            "isvsvn 4 (UpToDate); QE level isvsvn 4 (UpToDate)");
}

TEST(TcbStatus, RealV5QuoteWithoutMatchingLevel) {
  RealCase c = LoadBundleCase("quotes/tdx-v5-no-tcb-level");
  EXPECT_EQ(c.quote.header.version, 5);
  EXPECT_EQ(c.quote.body.type, BodyType::kTd15);
  EXPECT_TRUE(MatchQeIdentity(c.qe_identity, c.qe_report()).ok());
  EXPECT_TRUE(MatchTdxModule(c.tcb_info, c.quote.body).ok());

  TcbResult r = EvaluateTcb(c.tcb_info, c.qe_identity, c.Input());
  EXPECT_EQ(r.status, TcbStatus::kTcbNotSupported);
  EXPECT_EQ(r.platform_status, TcbStatus::kTcbNotSupported);
  EXPECT_FALSE(r.module_status.has_value());
  EXPECT_EQ(r.qe_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.tcb_date, "");
  EXPECT_EQ(r.detail,
            "no TCB level matches the PCK's SGX TCB (components 03030202040100030000000000000000, "
            "pcesvn 13): the lowest level needs sgxtcbcomponents[7] >= 5 (PCK has 3); QE level "
            "isvsvn 4 (UpToDate)");
}

TEST(TcbStatus, RealPcsSample2023WithoutMatchingLevel) {
  const std::string dir = "quotes/tdx-v4-spr-e4-pcs-2023";
  auto tcb = ordered_json::parse(ReadText(dir + "/sample_tcbInfo_response"))["tcbInfo"].dump();
  auto qe =
      ordered_json::parse(ReadText(dir + "/sample_qeIdentity_response"))["enclaveIdentity"].dump();
  RealCase c = LoadReal(dir + "/quote.bin", tcb, qe);
  EXPECT_EQ(ToHex(c.pck.fmspc), "50806f000000");
  EXPECT_TRUE(MatchQeIdentity(c.qe_identity, c.qe_report()).ok());
  // TEE_TCB_SVN[1] is 0: checked against "tdxModule" (this TCB Info has no module identities).
  EXPECT_EQ(c.quote.body.tee_tcb_svn[1], 0);
  EXPECT_TRUE(MatchTdxModule(c.tcb_info, c.quote.body).ok());

  TcbResult r = EvaluateTcb(c.tcb_info, c.qe_identity, c.Input());
  EXPECT_EQ(r.status, TcbStatus::kTcbNotSupported);
  EXPECT_NE(r.detail.find("no TCB level matches the PCK's SGX TCB"), std::string::npos) << r.detail;
}

TEST(TcbStatus, RealQeReportMismatches) {
  RealCase c = LoadBundleCase("quotes/tdx-v4-uptodate");
  const std::string signer = "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5";

  evidence::EnclaveReportBody report = c.qe_report();
  report.mr_signer[31] ^= 1;
  Status s = MatchQeIdentity(c.qe_identity, report);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "QE identity mismatch: QE report mr_signer " + signer.substr(0, 62) +
                           "c4 differs from the TD QE identity mrsigner " + signer);

  report = c.qe_report();
  report.isv_prod_id = 1;
  s = MatchQeIdentity(c.qe_identity, report);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(),
            "QE identity mismatch: QE report isv_prod_id 1 differs from the TD QE identity "
            "isvprodid 2");

  report = c.qe_report();
  report.misc_select = 0x100;
  s = MatchQeIdentity(c.qe_identity, report);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(),
            "QE identity mismatch: QE report misc_select 0x00000100 & miscselectMask 0xffffffff = "
            "0x00000100, but the TD QE identity requires miscselect 0x00000000");

  // Bit 1 of attributes[0] is DEBUG: in the mask, so a debug QE fails.
  report = c.qe_report();
  EXPECT_EQ(ToHex(report.attributes), "1500000000000000e700000000000000");
  report.attributes[0] |= 0x02;
  s = MatchQeIdentity(c.qe_identity, report);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(),
            "QE identity mismatch: QE report attributes 1700000000000000e700000000000000 & "
            "attributesMask fbffffffffffffff0000000000000000 = 13000000000000000000000000000000, "
            "but the TD QE identity requires attributes 11000000000000000000000000000000");

  // Bits outside the masks do not matter (bit 2 of byte 0, XFRM in bytes 8..15, MISCSELECT).
  report = c.qe_report();
  report.attributes[0] &= ~0x04;
  report.attributes[8] = 0x03;
  report.attributes[15] = 0xff;
  EXPECT_TRUE(MatchQeIdentity(c.qe_identity, report).ok());
  c.qe_identity.miscselect_mask = 0;
  report.misc_select = 0xffffffff;
  EXPECT_TRUE(MatchQeIdentity(c.qe_identity, report).ok());
}

// ---- synthetic TCB Info ----

std::array<uint8_t, 16> Fill(std::initializer_list<uint8_t> head) {
  std::array<uint8_t, 16> out{};
  std::copy(head.begin(), head.end(), out.begin());
  return out;
}

ordered_json Components(const std::array<uint8_t, 16>& svns) {
  ordered_json out = ordered_json::array();
  for (uint8_t v : svns) out.push_back(ordered_json{{"svn", v}});
  return out;
}

struct Level {
  std::array<uint8_t, 16> sgx;
  int pce;
  std::array<uint8_t, 16> tdx;
  const char* status;
  Advisories advisories = {};
  const char* date = "2024-03-13T00:00:00Z";
};

struct ModuleLevel {
  int isvsvn;
  const char* status;
  Advisories advisories = {};
};

ordered_json Module(const std::string& id, const std::vector<ModuleLevel>& levels) {
  ordered_json m = {{"id", id},
                    {"mrsigner", std::string(96, '0')},
                    {"attributes", "0000000000000000"},
                    {"attributesMask", "FFFFFFFFFFFFFFFF"},
                    {"tcbLevels", ordered_json::array()}};
  for (const auto& l : levels) {
    ordered_json j = {{"tcb", {{"isvsvn", l.isvsvn}}},
                      {"tcbDate", "2024-03-13T00:00:00Z"},
                      {"tcbStatus", l.status}};
    if (!l.advisories.empty()) j["advisoryIDs"] = l.advisories;
    m["tcbLevels"].push_back(j);
  }
  return m;
}

// The usual module identity: TDX_01 with isvsvn 4 UpToDate and 2 OutOfDate, as Intel publishes.
std::vector<ordered_json> DefaultModules() {
  return {Module("TDX_01", {{4, "UpToDate"}, {2, "OutOfDate"}})};
}

ordered_json TcbInfoJson(const std::vector<Level>& levels,
                         const std::vector<ordered_json>& modules = DefaultModules()) {
  ordered_json doc = {{"id", "TDX"},
                      {"version", 3},
                      {"issueDate", "2025-06-19T10:16:03Z"},
                      {"nextUpdate", "2025-07-19T10:16:03Z"},
                      {"fmspc", "B0C06F000000"},
                      {"pceId", "0000"},
                      {"tcbType", 0},
                      {"tcbEvaluationDataNumber", 17},
                      {"tdxModule",
                       {{"mrsigner", std::string(96, '0')},
                        {"attributes", "0000000000000000"},
                        {"attributesMask", "FFFFFFFFFFFFFFFF"}}}};
  if (!modules.empty()) doc["tdxModuleIdentities"] = modules;
  doc["tcbLevels"] = ordered_json::array();
  for (const auto& l : levels) {
    ordered_json j = {{"tcb",
                       {{"sgxtcbcomponents", Components(l.sgx)},
                        {"pcesvn", l.pce},
                        {"tdxtcbcomponents", Components(l.tdx)}}},
                      {"tcbDate", l.date},
                      {"tcbStatus", l.status}};
    if (!l.advisories.empty()) j["advisoryIDs"] = l.advisories;
    doc["tcbLevels"].push_back(j);
  }
  return doc;
}

TcbInfo MakeTcbInfo(const std::vector<Level>& levels,
                    const std::vector<ordered_json>& modules = DefaultModules()) {
  auto info = ParseTcbInfo(TcbInfoJson(levels, modules).dump());
  EXPECT_TRUE(info.ok()) << info.error();
  return info.ok() ? *info : TcbInfo{};
}

struct QeLevel {
  int isvsvn;
  const char* status;
  Advisories advisories = {};
};

EnclaveIdentity MakeQe(const std::vector<QeLevel>& levels = {{4, "UpToDate"}}) {
  ordered_json doc = {{"id", "TD_QE"},
                      {"version", 2},
                      {"issueDate", "2025-06-19T10:32:27Z"},
                      {"nextUpdate", "2025-07-19T10:32:27Z"},
                      {"tcbEvaluationDataNumber", 17},
                      {"miscselect", "00000000"},
                      {"miscselectMask", "FFFFFFFF"},
                      {"attributes", "11000000000000000000000000000000"},
                      {"attributesMask", "FBFFFFFFFFFFFFFF0000000000000000"},
                      {"mrsigner", std::string(64, 'A')},
                      {"isvprodid", 2},
                      {"tcbLevels", ordered_json::array()}};
  for (const auto& l : levels) {
    ordered_json j = {{"tcb", {{"isvsvn", l.isvsvn}}},
                      {"tcbDate", "2024-03-13T00:00:00Z"},
                      {"tcbStatus", l.status}};
    if (!l.advisories.empty()) j["advisoryIDs"] = l.advisories;
    doc["tcbLevels"].push_back(j);
  }
  auto qe = ParseQeIdentity(doc.dump());
  EXPECT_TRUE(qe.ok()) << qe.error();
  return qe.ok() ? *qe : EnclaveIdentity{};
}

// A platform whose PCK has SGX components 3,3,3 and PCESVN 11.
const std::array<uint8_t, 16> kPckComponents = Fill({3, 3, 3});
const std::array<uint8_t, 16> kSgx = Fill({2, 2, 2});  // what the usual levels require

evidence::TdQuoteBody Body(std::initializer_list<uint8_t> svn, BodyType type = BodyType::kTd10,
                           std::initializer_list<uint8_t> svn2 = {}) {
  evidence::TdQuoteBody body;
  body.type = type;
  body.tee_tcb_svn = Fill(svn);
  body.tee_tcb_svn2 = Fill(svn2);
  return body;
}

TcbInput Input(const evidence::TdQuoteBody& body, uint16_t qe_isv_svn = 6) {
  TcbInput in;
  in.pck_components = kPckComponents;
  in.pck_pce_svn = 11;
  in.body = &body;
  in.qe_isv_svn = qe_isv_svn;
  in.quote_version = body.type == BodyType::kTd15 ? 5 : 4;
  return in;
}

TcbResult Evaluate(const TcbInfo& info, const evidence::TdQuoteBody& body,
                   const EnclaveIdentity& qe = MakeQe(), uint16_t qe_isv_svn = 6) {
  return EvaluateTcb(info, qe, Input(body, qe_isv_svn));
}

TEST(TcbStatus, SkipsModuleComponentsWhenMajorVersionIsSet) {
  // svn 04 01 03 vs level 05 00 02: indexes 0 and 1 belong to the module (TDX_01 judges
  // isvsvn 4), so the platform level matches on index 2 onward.
  TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({5, 0, 2}), "UpToDate"}});
  TcbResult r = Evaluate(info, Body({4, 1, 3}));
  EXPECT_EQ(r.status, TcbStatus::kUpToDate) << r.detail;
  EXPECT_EQ(r.platform_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.module_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.tcb_date, "2024-03-13T00:00:00Z");
}

TEST(TcbStatus, ComparesAllComponentsWhenMajorVersionIsZero) {
  TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({5, 0, 2}), "UpToDate"}});
  TcbResult r = Evaluate(info, Body({4, 0, 3}));
  EXPECT_EQ(r.status, TcbStatus::kTcbNotSupported);
  EXPECT_EQ(r.platform_status, TcbStatus::kTcbNotSupported);
  EXPECT_EQ(r.detail,
            "no TCB level matches TEE_TCB_SVN 04000300000000000000000000000000 (compared from "
            "index 0) among the 1 level(s) the PCK's SGX TCB meets: the lowest of them needs "
            "tdxtcbcomponents[0] >= 5 (TEE_TCB_SVN has 4); QE level isvsvn 4 (UpToDate)");

  r = Evaluate(info, Body({5, 0, 3}));
  EXPECT_EQ(r.status, TcbStatus::kUpToDate) << r.detail;
  EXPECT_FALSE(r.module_status.has_value());  // v4+ with major version 0: no module levels
}

TEST(TcbStatus, ComponentBelowLevelAfterIndexTwo) {
  TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({5, 0, 2, 0, 1}), "UpToDate"}});
  TcbResult r = Evaluate(info, Body({4, 1, 3, 0, 0}));
  EXPECT_EQ(r.status, TcbStatus::kTcbNotSupported);
  EXPECT_NE(r.detail.find("(compared from index 2)"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("tdxtcbcomponents[4] >= 1 (TEE_TCB_SVN has 0)"), std::string::npos);
}

TEST(TcbStatus, WalksDownToTheFirstMatchingTdxLevel) {
  TcbInfo info = MakeTcbInfo({
      {kSgx, 11, Fill({0, 0, 5}), "UpToDate", {}, "2024-03-13T00:00:00Z"},
      {kSgx, 11, Fill({0, 0, 2}), "OutOfDate", {"INTEL-SA-00001"}, "2023-08-09T00:00:00Z"},
  });
  TcbResult r = Evaluate(info, Body({4, 1, 3}));
  EXPECT_EQ(r.status, TcbStatus::kOutOfDate);
  EXPECT_EQ(r.platform_status, TcbStatus::kOutOfDate);
  EXPECT_EQ(r.tcb_date, "2023-08-09T00:00:00Z");
  EXPECT_EQ(r.advisory_ids, Advisories{"INTEL-SA-00001"});
  EXPECT_EQ(r.detail.rfind("TDX TCB level 1 (tcbDate 2023-08-09T00:00:00Z, OutOfDate)", 0), 0u)
      << r.detail;
}

TEST(TcbStatus, SgxLevelAndTdxLevelAreTrackedSeparately) {
  TcbInfo info = MakeTcbInfo({
      {Fill({9}), 11, Fill({}), "UpToDate"},                  // PCK misses it
      {Fill({3}), 11, Fill({0, 0, 9}), "SWHardeningNeeded"},  // first SGX match, TDX missed
      {Fill({2}), 11, Fill({0, 0, 1}), "ConfigurationNeeded", {}, "2022-01-01T00:00:00Z"},
  });
  TcbResult r = Evaluate(info, Body({4, 1, 3}));
  EXPECT_EQ(r.status, TcbStatus::kConfigurationNeeded) << r.detail;
  EXPECT_EQ(r.platform_status, TcbStatus::kConfigurationNeeded);
  EXPECT_EQ(r.tcb_date, "2022-01-01T00:00:00Z");
  EXPECT_EQ(r.detail.rfind("TDX TCB level 2 (tcbDate 2022-01-01T00:00:00Z, ConfigurationNeeded), "
                           "SGX TCB level 1 (SWHardeningNeeded)",
                           0),
            0u)
      << r.detail;
}

TEST(TcbStatus, NoSgxLevel) {
  TcbInfo info = MakeTcbInfo(
      {{Fill({3, 3, 3}), 12, Fill({}), "UpToDate"}, {Fill({3, 3, 4}), 1, Fill({}), "UpToDate"}});
  TcbResult r = Evaluate(info, Body({4, 1, 3}));
  EXPECT_EQ(r.status, TcbStatus::kTcbNotSupported);
  EXPECT_EQ(r.detail,
            "no TCB level matches the PCK's SGX TCB (components 03030300000000000000000000000000, "
            "pcesvn 11): the lowest level needs pcesvn >= 12 (PCK has 11); QE level isvsvn 4 "
            "(UpToDate)");
}

TEST(TcbStatus, ModuleOutOfDateConvergesWithLevel) {
  const std::pair<const char*, TcbStatus> cases[] = {
      {"UpToDate", TcbStatus::kOutOfDate},
      {"SWHardeningNeeded", TcbStatus::kOutOfDate},
      {"ConfigurationNeeded", TcbStatus::kOutOfDateConfigurationNeeded},
      {"ConfigurationAndSWHardeningNeeded", TcbStatus::kOutOfDateConfigurationNeeded},
      {"OutOfDate", TcbStatus::kOutOfDate},
      {"OutOfDateConfigurationNeeded", TcbStatus::kOutOfDateConfigurationNeeded},
  };
  for (const auto& [level_status, expected] : cases) {
    SCOPED_TRACE(level_status);
    TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), level_status}});
    TcbResult r = Evaluate(info, Body({3, 1, 2}));  // module isvsvn 3: TDX_01 level 2 OutOfDate
    EXPECT_EQ(r.module_status, TcbStatus::kOutOfDate);
    EXPECT_EQ(r.platform_status, *ParseTcbStatus(level_status));
    EXPECT_EQ(r.status, expected) << r.detail;

    r = Evaluate(info, Body({4, 1, 2}));  // module up to date: the level's status stands
    EXPECT_EQ(r.module_status, TcbStatus::kUpToDate);
    EXPECT_EQ(r.status, *ParseTcbStatus(level_status)) << r.detail;
  }
}

TEST(TcbStatus, RevokedShortCircuits) {
  // A revoked module makes the TCB revoked, whatever the QE.
  TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), "UpToDate"}},
                             {Module("TDX_01", {{4, "UpToDate"}, {2, "Revoked"}})});
  TcbResult r = Evaluate(info, Body({3, 1, 2}), MakeQe(), /*qe_isv_svn=*/1);
  EXPECT_EQ(r.module_status, TcbStatus::kRevoked);
  EXPECT_EQ(r.qe_status, TcbStatus::kTcbNotSupported);
  EXPECT_EQ(r.status, TcbStatus::kRevoked) << r.detail;

  // So does a revoked platform level.
  info = MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), "Revoked", {"INTEL-SA-00999"}}});
  r = Evaluate(info, Body({4, 1, 2}), MakeQe(), /*qe_isv_svn=*/1);
  EXPECT_EQ(r.platform_status, TcbStatus::kRevoked);
  EXPECT_EQ(r.status, TcbStatus::kRevoked);
  EXPECT_EQ(r.advisory_ids, Advisories{"INTEL-SA-00999"});
}

TEST(TcbStatus, MissingModuleIdentityIsAMismatch) {
  TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), "UpToDate"}});
  TcbResult r = Evaluate(info, Body({4, 2, 3}));
  EXPECT_EQ(r.status, TcbStatus::kTdxModuleMismatch);
  EXPECT_EQ(r.module_status, TcbStatus::kTdxModuleMismatch);
  EXPECT_EQ(r.platform_status, TcbStatus::kUpToDate);
  EXPECT_NE(r.detail.find("no TDX module identity TDX_02 for TEE_TCB_SVN[1] (has TDX_01)"),
            std::string::npos)
      << r.detail;

  // Identity ids are matched case-insensitively.
  info =
      MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), "UpToDate"}}, {Module("tdx_0a", {{1, "UpToDate"}})});
  r = Evaluate(info, Body({1, 0x0a, 3}));
  EXPECT_EQ(r.status, TcbStatus::kUpToDate) << r.detail;
}

TEST(TcbStatus, ModuleBelowEveryLevelIsNotSupported) {
  TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), "UpToDate"}});
  TcbResult r = Evaluate(info, Body({1, 1, 3}));
  EXPECT_EQ(r.status, TcbStatus::kTcbNotSupported);
  EXPECT_EQ(r.module_status, TcbStatus::kTcbNotSupported);
  EXPECT_NE(r.detail.find("module TDX_01: TEE_TCB_SVN[0] = 1 is below every module level"),
            std::string::npos)
      << r.detail;
}

TEST(TcbStatus, QeStatusConverges) {
  EnclaveIdentity qe = MakeQe({{8, "UpToDate"}, {4, "OutOfDate", {"INTEL-SA-00777"}}});
  TcbInfo up = MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), "UpToDate"}});
  TcbResult r = Evaluate(up, Body({4, 1, 2}), qe, 6);
  EXPECT_EQ(r.qe_status, TcbStatus::kOutOfDate);
  EXPECT_EQ(r.platform_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.status, TcbStatus::kOutOfDate);
  EXPECT_EQ(r.advisory_ids, Advisories{"INTEL-SA-00777"});
  EXPECT_EQ(r.tcb_date, "2024-03-13T00:00:00Z");

  TcbInfo conf = MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), "ConfigurationNeeded"}});
  EXPECT_EQ(Evaluate(conf, Body({4, 1, 2}), qe, 6).status,
            TcbStatus::kOutOfDateConfigurationNeeded);
  EXPECT_EQ(Evaluate(conf, Body({4, 1, 2}), qe, 8).status, TcbStatus::kConfigurationNeeded);

  // QVL reports any QE level other than UpToDate and Revoked as out of date.
  EnclaveIdentity qe_conf = MakeQe({{4, "ConfigurationNeeded"}});
  r = Evaluate(up, Body({4, 1, 2}), qe_conf, 6);
  EXPECT_EQ(r.qe_status, TcbStatus::kConfigurationNeeded);
  EXPECT_EQ(r.status, TcbStatus::kOutOfDate);

  EnclaveIdentity qe_revoked = MakeQe({{4, "Revoked"}});
  EXPECT_EQ(Evaluate(up, Body({4, 1, 2}), qe_revoked, 6).status, TcbStatus::kRevoked);
}

TEST(TcbStatus, QeBelowEveryLevelIsNotSupported) {
  TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), "UpToDate"}});
  TcbResult r = Evaluate(info, Body({4, 1, 2}), MakeQe({{4, "UpToDate"}}), 3);
  EXPECT_EQ(r.qe_status, TcbStatus::kTcbNotSupported);
  EXPECT_EQ(r.platform_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.status, TcbStatus::kTcbNotSupported);
  EXPECT_NE(r.detail.find("QE ISVSVN 3 is below every QE identity level"), std::string::npos)
      << r.detail;
}

TEST(TcbStatus, QeTcbLevelLookupUsesIdentityOrder) {
  EnclaveIdentity qe = MakeQe({{8, "UpToDate", {"INTEL-SA-1"}}, {4, "OutOfDate", {"INTEL-SA-2"}}});
  QeTcb t = QeTcbStatus(qe, 9);
  EXPECT_EQ(t.status, TcbStatus::kUpToDate);
  ASSERT_TRUE(t.level.has_value());
  EXPECT_EQ(t.level->isv_svn, 8);
  EXPECT_EQ(t.level->advisory_ids, Advisories{"INTEL-SA-1"});
  t = QeTcbStatus(qe, 7);
  EXPECT_EQ(t.status, TcbStatus::kOutOfDate);
  EXPECT_EQ(t.level->tcb_date, "2024-03-13T00:00:00Z");
  t = QeTcbStatus(qe, 3);
  EXPECT_EQ(t.status, TcbStatus::kTcbNotSupported);
  EXPECT_FALSE(t.level.has_value());
  // Like QVL's EnclaveIdentityV2 (a vector), the first level in JSON order wins.
  EnclaveIdentity ascending = MakeQe({{4, "OutOfDate"}, {8, "UpToDate"}});
  EXPECT_EQ(QeTcbStatus(ascending, 9).status, TcbStatus::kOutOfDate);
}

// TD 1.5: TEE_TCB_SVN says the TD started on module isvsvn 2 (OutOfDate), TEE_TCB_SVN2 that the
// module was since updated in place to isvsvn 4: relaunching the TD would make it up to date.
TEST(TcbStatus, Td15RelaunchAdvised) {
  TcbInfo info = MakeTcbInfo(
      {{kSgx, 11, Fill({5, 0, 2}), "UpToDate"}},
      {Module("TDX_01", {{4, "UpToDate"}, {2, "OutOfDate"}}), Module("TDX_03", {{3, "UpToDate"}})});
  TcbResult r = Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {4, 1, 2}));
  EXPECT_EQ(r.platform_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.module_status, TcbStatus::kOutOfDate);
  EXPECT_EQ(r.status, TcbStatus::kTdRelaunchAdvised) << r.detail;
  EXPECT_NE(r.detail.find("TEE_TCB_SVN2 04010200000000000000000000000000 meets the latest level"),
            std::string::npos)
      << r.detail;

  // Only TD 1.5 bodies carry TEE_TCB_SVN2.
  EXPECT_EQ(Evaluate(info, Body({2, 1, 2}, BodyType::kTd10, {4, 1, 2})).status,
            TcbStatus::kOutOfDate);
  // The updated module must reach the identity's latest level, and microcode the latest level's.
  EXPECT_EQ(Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {3, 1, 2})).status,
            TcbStatus::kOutOfDate);
  EXPECT_EQ(Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {4, 1, 1})).status,
            TcbStatus::kOutOfDate);
  // Updated to another major version: judged by that identity (TDX_03 latest isvsvn 3).
  EXPECT_EQ(Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {3, 3, 2})).status,
            TcbStatus::kTdRelaunchAdvised);
  EXPECT_EQ(Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {2, 3, 2})).status,
            TcbStatus::kOutOfDate);
  // svn2[1] == 0: compared with the latest platform level's TDX components 0 and 2.
  EXPECT_EQ(Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {5, 0, 2})).status,
            TcbStatus::kTdRelaunchAdvised);
  EXPECT_EQ(Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {4, 0, 2})).status,
            TcbStatus::kOutOfDate);
  // An identity for TEE_TCB_SVN2[1] that does not exist.
  r = Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {4, 2, 2}));
  EXPECT_EQ(r.status, TcbStatus::kTdxModuleMismatch);
  EXPECT_NE(r.detail.find("relaunch check: no module identity TDX_02"), std::string::npos);
  // An out-of-date QE rules relaunch out.
  EnclaveIdentity old_qe = MakeQe({{8, "UpToDate"}, {4, "OutOfDate"}});
  EXPECT_EQ(Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {4, 1, 2}), old_qe, 6).status,
            TcbStatus::kOutOfDate);
  // Not out of date because of the module: nothing to relaunch for.
  TcbInfo old_platform = MakeTcbInfo({{kSgx, 11, Fill({5, 0, 2}), "OutOfDate"}});
  EXPECT_EQ(Evaluate(old_platform, Body({4, 1, 2}, BodyType::kTd15, {4, 1, 2})).status,
            TcbStatus::kOutOfDate);
}

TEST(TcbStatus, Td15RelaunchAdvisedConfigurationNeeded) {
  TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({5, 0, 2}), "ConfigurationNeeded"}});
  TcbResult r = Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {4, 1, 2}));
  EXPECT_EQ(r.status, TcbStatus::kTdRelaunchAdvisedConfigurationNeeded) << r.detail;

  // The SGX level's status counts too, and an out-of-date SGX level rules relaunch out.
  info = MakeTcbInfo({
      {Fill({3}), 11, Fill({0, 0, 9}), "ConfigurationAndSWHardeningNeeded"},
      {Fill({2}), 11, Fill({5, 0, 2}), "UpToDate"},
  });
  EXPECT_EQ(Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {4, 1, 9})).status,
            TcbStatus::kTdRelaunchAdvisedConfigurationNeeded);
  info = MakeTcbInfo({
      {Fill({3}), 11, Fill({0, 0, 9}), "OutOfDate"},
      {Fill({2}), 11, Fill({5, 0, 2}), "UpToDate"},
  });
  EXPECT_EQ(Evaluate(info, Body({2, 1, 2}, BodyType::kTd15, {4, 1, 9})).status,
            TcbStatus::kOutOfDate);
}

TEST(TcbStatus, AdvisoryIdsAreTheSortedUnionOfLevelModuleAndQe) {
  TcbInfo info = MakeTcbInfo(
      {{kSgx, 11, Fill({0, 0, 2}), "UpToDate", {"INTEL-SA-00002", "INTEL-SA-00001"}}},
      {Module("TDX_01",
              {{4, "UpToDate"}, {2, "OutOfDate", {"INTEL-SA-00003", "INTEL-SA-00001"}}})});
  EnclaveIdentity qe = MakeQe({{4, "UpToDate", {"INTEL-SA-00000"}}});
  TcbResult r = Evaluate(info, Body({3, 1, 2}), qe, 6);
  EXPECT_EQ(r.status, TcbStatus::kOutOfDate);
  EXPECT_EQ(r.advisory_ids,
            (Advisories{"INTEL-SA-00000", "INTEL-SA-00001", "INTEL-SA-00002", "INTEL-SA-00003"}));
}

TEST(TcbStatus, MissingBodyIsNotSupported) {
  TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), "UpToDate"}});
  TcbInput in;
  TcbResult r = EvaluateTcb(info, MakeQe(), in);
  EXPECT_EQ(r.status, TcbStatus::kTcbNotSupported);
  EXPECT_EQ(r.detail, "no TD quote body given");
}

// ---- TDX module identity ----

TEST(TcbTdxModule, MatchesTdxModuleOrIdentity) {
  std::vector<ordered_json> modules = DefaultModules();
  modules[0]["mrsigner"] = std::string(94, '0') + "01";
  ordered_json doc = TcbInfoJson({{kSgx, 11, Fill({0, 0, 2}), "UpToDate"}}, modules);
  auto info = ParseTcbInfo(doc.dump());
  ASSERT_TRUE(info.ok()) << info.error();
  const std::string zero(96, '0');

  // Major version 0: "tdxModule" (all-zero mrsigner) applies.
  evidence::TdQuoteBody body = Body({4, 0, 2});
  EXPECT_TRUE(MatchTdxModule(*info, body).ok());

  // Major version 1: TDX_01, whose mrsigner here ends in 01.
  body = Body({4, 1, 2});
  Status s = MatchTdxModule(*info, body);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "TDX module mismatch: mr_signer_seam " + zero +
                           " differs from tcbInfo.tdxModuleIdentities TDX_01 mrsigner " +
                           zero.substr(0, 94) + "01");
  body.mr_signer_seam[47] = 1;
  EXPECT_TRUE(MatchTdxModule(*info, body).ok());

  body = Body({4, 2, 2});
  s = MatchTdxModule(*info, body);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(),
            "TDX module mismatch: no tdxModuleIdentities entry TDX_02 for TEE_TCB_SVN[1] = 2 (the "
            "TCB Info has TDX_01)");
}

TEST(TcbTdxModule, SeamAttributesMustBeZeroWithoutMask) {
  std::vector<ordered_json> modules = DefaultModules();
  ordered_json doc = TcbInfoJson({{kSgx, 11, Fill({0, 0, 2}), "UpToDate"}}, modules);
  doc["tdxModule"]["attributesMask"] = "0000000000000000";
  auto info = ParseTcbInfo(doc.dump());
  ASSERT_TRUE(info.ok()) << info.error();

  // Masked out, yet current QVL still rejects any set bit.
  evidence::TdQuoteBody body = Body({4, 0, 2});
  body.seam_attributes[0] = 0x01;
  Status s = MatchTdxModule(*info, body);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(),
            "TDX module mismatch: seam_attributes 0100000000000000 must be all zero and equal "
            "tcbInfo.tdxModule attributes 0000000000000000 (Intel's QVL applies no mask here)");

  // Even when the expected attributes carry the same bit.
  doc["tdxModule"]["attributes"] = "0100000000000000";
  info = ParseTcbInfo(doc.dump());
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(MatchTdxModule(*info, body).ok());
  body.seam_attributes[0] = 0;
  EXPECT_FALSE(MatchTdxModule(*info, body).ok());  // zero, but not equal
}

TEST(TcbTdxModule, NoIdentitiesForMajorVersionIsTcbInfoMismatch) {
  TcbInfo info = MakeTcbInfo({{kSgx, 11, Fill({0, 0, 2}), "UpToDate"}}, {});
  Status s = MatchTdxModule(info, Body({4, 1, 2}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(),
            "TCB info mismatch: the quote's TDX module major version TEE_TCB_SVN[1] is 1 but the "
            "TCB Info has no tdxModuleIdentities; fetch a current TDX TCB Info");
}

}  // namespace
}  // namespace tdxvirt::verify
