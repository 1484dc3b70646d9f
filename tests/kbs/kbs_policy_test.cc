// Key transfer policies: Intel's validation (and ours) at parse time, the stored JSON form, the
// claims read from real and v2 tokens, and every evaluation check passing and failing with its
// exact reason.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kbs/policy.h"
#include "test_util.h"

namespace tdxvirt::kbs {
namespace {

using nlohmann::json;
using tdxvirt::testing::ReadFileText;
using tdxvirt::testing::TestdataPath;

const std::string kZero96(96, '0');
const std::string kA96(96, 'a');
const std::string kB96(96, 'b');

json PilotPayload() {
  return json::parse(ReadFileText(TestdataPath("ita/kbs-pilot-tdx-token.payload.json")));
}
TokenClaims Pilot() {
  auto c = ClaimsFromToken(PilotPayload());
  EXPECT_TRUE(c.ok()) << c.error();
  return *c;
}

std::string ParseError(const std::string& text) {
  auto p = ParseKeyTransferPolicy(text);
  return p.ok() ? "parsed" : p.error();
}
std::string WithAttrs(const std::string& attrs) {
  return R"({"attestation_type":"TDX","tdx":{"attributes":)" + attrs + "}}";
}

// ---------- parsing ----------

TEST(PolicyParseTest, IntelSampleParses) {
  auto p = ParseKeyTransferPolicy(ReadFileText(TestdataPath("ita/kbs-tdx-key-transfer-policy-sample.json")));
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->attestation_type, "TDX");
  EXPECT_EQ(p->attributes.mrseam.size(), 1u);
  EXPECT_EQ(p->attributes.seamsvn, 258);
  EXPECT_EQ(p->attributes.enforce_tcb_upto_date, false);
  ASSERT_TRUE(p->attributes.rtmr[1]);
  EXPECT_EQ(p->policy_ids, (std::vector<std::string>{"37965f5f-ccaf-4cdc-a356-a8ed5268a5bf",
                                                     "9846bf40-e380-4842-ae15-1b60996d1190"}));
}

TEST(PolicyParseTest, RoundTripThroughStoredJson) {
  std::string text = R"({"id":"4517534B-a758-4447-bd2f-3e5606152ed6","created_at":"2026-01-02T03:04:05Z",
    "attestation_type":"TDX","tdx":{"attributes":{"mrsignerseam":[")" + kZero96 + R"("],"mrseam":[")" + kA96 +
                     R"("],"seamsvn":4,"mrtd":[")" + kA96 + R"(",")" + kB96 + R"("],"rtmr2":")" + kB96 +
                     R"(","enforce_tcb_upto_date":true,"mrconfigid":[")" + kZero96 +
                     R"("],"allow_debug":true,"tcb_status":["UpToDate","SWHardeningNeeded"],
    "measured_boot":{"kernel_digest":[")" + std::string(96, 'C') +
                     R"("],"secure_boot":true,"rtmr_verdicts":{"rtmr3":"any"}}},
    "policy_ids":["37965f5f-ccaf-4cdc-a356-a8ed5268a5bf"]}})";
  auto p = ParseKeyTransferPolicy(text);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->id, "4517534b-a758-4447-bd2f-3e5606152ed6");
  EXPECT_EQ(p->attributes.measured_boot["kernel_digest"][0], std::string(96, 'c'));  // lower-cased
  json j = KeyTransferPolicyToJson(*p);
  auto again = ParseKeyTransferPolicy(j.dump());
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(KeyTransferPolicyToJson(*again), j);
  EXPECT_EQ(j["tdx"]["attributes"]["seamsvn"], 4);
  EXPECT_EQ(j["tdx"]["attributes"]["rtmr2"], kB96);
  EXPECT_FALSE(j["tdx"]["attributes"].contains("rtmr0"));
  EXPECT_EQ(j["created_at"], "2026-01-02T03:04:05Z");
  // The minimal policy keeps Intel's shape.
  auto min = ParseKeyTransferPolicy(R"({"attestation_type":"TDX","tdx":{}})");
  ASSERT_TRUE(min.ok());
  EXPECT_EQ(KeyTransferPolicyToJson(*min), json::parse(R"({"attestation_type":"TDX","tdx":{}})"));
}

TEST(PolicyParseTest, RefusesUnknownFieldsAtEveryLevel) {
  EXPECT_EQ(ParseError(R"({"attestation_type":"TDX","tdx":{},"x":1})"),
            "key transfer policy: unknown field \"x\" (allowed: id, created_at, attestation_type, sgx, tdx)");
  EXPECT_EQ(ParseError(R"({"attestation_type":"TDX","tdx":{"policy_id":[]}})"),
            "tdx: unknown field \"policy_id\" (allowed: attributes, policy_ids)");
  EXPECT_EQ(ParseError(WithAttrs(R"({"mrsigner":[]})")),
            "tdx.attributes: unknown field \"mrsigner\" (allowed: mrsignerseam, mrseam, seamsvn, mrtd, rtmr0, "
            "rtmr1, rtmr2, rtmr3, enforce_tcb_upto_date, mrconfigid, allow_debug, tcb_status, measured_boot)");
  EXPECT_EQ(ParseError(WithAttrs(R"({"measured_boot":{"kernel":[]}})")),
            "tdx.attributes.measured_boot: unknown field \"kernel\" (allowed: kernel_digest, initrd_digest, "
            "cmdline_digest, secure_boot, rtmr_verdicts)");
  EXPECT_EQ(ParseError(WithAttrs(R"({"measured_boot":{"rtmr_verdicts":{"rtmr4":"match"}}})")),
            "tdx.attributes.measured_boot.rtmr_verdicts: unknown field \"rtmr4\" (allowed: rtmr0, rtmr1, rtmr2, "
            "rtmr3)");
}

TEST(PolicyParseTest, RefusesBadValuesNamingTheField) {
  EXPECT_EQ(ParseError("{"), "key transfer policy: not valid JSON");
  EXPECT_EQ(ParseError("[]"), "key transfer policy: expected a JSON object");
  EXPECT_EQ(ParseError(R"({"tdx":{}})"), "attestation_type: must be specified; set \"TDX\"");
  EXPECT_EQ(ParseError(R"({"attestation_type":"SGX","sgx":{}})"),
            "attestation_type: SGX policies are not served here: this key broker releases keys to TDX TDs "
            "only; set \"TDX\" and a \"tdx\" object");
  EXPECT_EQ(ParseError(R"({"attestation_type":"SEV","tdx":{}})"),
            "attestation_type: \"SEV\" is not an attestation type; set \"TDX\"");
  EXPECT_EQ(ParseError(R"({"attestation_type":"TDX","sgx":{},"tdx":{}})"),
            "sgx: only TDX is served; remove the sgx object and use \"tdx\"");
  EXPECT_EQ(ParseError(R"({"attestation_type":"TDX"})"),
            "tdx: missing; a TDX policy needs \"tdx\": {\"attributes\": {...}} and/or {\"policy_ids\": [...]}");
  EXPECT_EQ(ParseError(WithAttrs(R"({"mrtd":[")" + kA96 + R"(",")" + kA96.substr(1) + R"("]})")),
            "tdx.attributes.mrtd[1]: expected 96 hex digits (a SHA-384 measurement), got \"" + kA96.substr(1) + "\"");
  EXPECT_EQ(ParseError(WithAttrs(R"({"mrseam":")" + kA96 + R"("})")),
            "tdx.attributes.mrseam: expected a list of 96-hex-digit measurements, got \"" + kA96 + "\"");
  EXPECT_EQ(ParseError(WithAttrs(R"({"rtmr0":")" + std::string(95, 'a') + R"(g"})")),
            "tdx.attributes.rtmr0: expected 96 hex digits (a SHA-384 measurement), got \"" +
                std::string(95, 'a') + "g\"");
  // The README's string form of seamsvn is refused, naming the field.
  EXPECT_EQ(ParseError(WithAttrs(R"({"seamsvn":"3"})")),
            "tdx.attributes.seamsvn: expected a number 0..65535 (major * 256 + minor, e.g. 258), got \"3\"");
  EXPECT_EQ(ParseError(WithAttrs(R"({"seamsvn":65536})")),
            "tdx.attributes.seamsvn: expected a number 0..65535 (major * 256 + minor, e.g. 258), got 65536");
  EXPECT_EQ(ParseError(WithAttrs(R"({"seamsvn":-1})")),
            "tdx.attributes.seamsvn: expected a number 0..65535 (major * 256 + minor, e.g. 258), got -1");
  EXPECT_EQ(ParseError(WithAttrs(R"({"seamsvn":2.5})")),
            "tdx.attributes.seamsvn: expected a number 0..65535 (major * 256 + minor, e.g. 258), got 2.5");
  EXPECT_EQ(ParseError(WithAttrs(R"({"enforce_tcb_upto_date":"true"})")),
            "tdx.attributes.enforce_tcb_upto_date: expected true or false, got \"true\"");
  EXPECT_EQ(ParseError(WithAttrs(R"({"tcb_status":["UpToDat"]})")),
            "tdx.attributes.tcb_status[0]: \"UpToDat\" is not a TCB status (UpToDate, SWHardeningNeeded, "
            "ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, ...)");
  EXPECT_EQ(ParseError(WithAttrs(R"({"measured_boot":{"kernel_digest":[]}})")),
            "tdx.attributes.measured_boot.kernel_digest: empty list would never match; omit the key instead");
  EXPECT_EQ(ParseError(WithAttrs(R"({"measured_boot":{"rtmr_verdicts":{"rtmr1":"mismatch"}}})")),
            "tdx.attributes.measured_boot.rtmr_verdicts.rtmr1: expected match, match_or_unexplained or any, got "
            "\"mismatch\"");
  EXPECT_EQ(ParseError(R"({"attestation_type":"TDX","tdx":{"policy_ids":["37965f5f-ccaf-4cdc-a356"]}})"),
            "tdx.policy_ids[0]: expected a UUID (8-4-4-4-12 hex digits), got \"37965f5f-ccaf-4cdc-a356\"");
  EXPECT_EQ(ParseError(R"({"id":"nope","attestation_type":"TDX","tdx":{}})"),
            "id: expected a UUID (8-4-4-4-12 hex digits), got \"nope\"");
  // Go reads null as absent.
  EXPECT_EQ(ParseError(WithAttrs(R"({"mrtd":null,"seamsvn":null,"rtmr0":""})")), "parsed");
}

// ---------- claims ----------

TEST(ClaimsTest, ReadsThePilotTokenFlat) {
  TokenClaims c = Pilot();
  EXPECT_EQ(c.attester_type, "TDX");
  EXPECT_EQ(c.tdx_mrtd.substr(0, 8), "b7de8016");
  EXPECT_EQ(c.tdx_seamsvn, 4);
  EXPECT_EQ(c.attester_tcb_status, "UpToDate");
  EXPECT_FALSE(c.debug);
  EXPECT_FALSE(c.has_policy_ids_matched);
  EXPECT_EQ(c.jti, "0748c105-4e75-4233-ac19-004fef63216c");
  EXPECT_EQ(c.exp, 1706769811);
  EXPECT_TRUE(c.measured_boot.is_null());
  EXPECT_EQ(c.attester_held_data.substr(0, 8), "AAEAAeZY");
}

TEST(ClaimsTest, LiftsV2ClaimsFromTdx) {
  json flat = PilotPayload();
  json v2 = {{"jti", "j2"}, {"exp", 10}, {"iat", 5}, {"policy_ids_matched", json::array({{{"id", "ABC"}}})}};
  json tdx = json::object();
  for (auto& [k, v] : flat.items())
    if (k != "jti" && k != "exp" && k != "iat") tdx[k] = v;
  tdx["tdx_measured_boot"] = {{"rtmrs", {{"rtmr1", "match"}}}};
  v2["tdx"] = tdx;
  auto c = ClaimsFromToken(v2);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->tdx_mrtd, flat["tdx_mrtd"]);
  EXPECT_EQ(c->jti, "j2");
  EXPECT_TRUE(c->has_policy_ids_matched);
  EXPECT_EQ(c->policy_ids_matched, std::vector<std::string>{"abc"});
  EXPECT_EQ(c->measured_boot["rtmrs"]["rtmr1"], "match");
}

TEST(ClaimsTest, DebugFromEveryClaimThatSaysIt) {
  for (auto [k, v] : std::vector<std::pair<std::string, json>>{{"tdx_td_attributes_debug", true},
                                                                {"tdx_is_debuggable", true},
                                                                {"dbgstat", "enabled"},
                                                                {"tdx_td_attributes", "0100001000000000"}}) {
    json p = PilotPayload();
    p[k] = v;
    auto c = ClaimsFromToken(p);
    ASSERT_TRUE(c.ok()) << c.error();
    EXPECT_TRUE(c->debug) << k;
  }
}

TEST(ClaimsTest, TypeErrorsNameTheClaim) {
  json p = PilotPayload();
  p["tdx_mrtd"] = 5;
  EXPECT_EQ(ClaimsFromToken(p).error(), "token claim tdx_mrtd: expected a string claim, got 5");
  p = PilotPayload();
  p["tdx_seamsvn"] = "4";
  EXPECT_EQ(ClaimsFromToken(p).error(), "token claim tdx_seamsvn: expected an integer 0..65535, got \"4\"");
  p = PilotPayload();
  p["tdx_is_debuggable"] = "false";
  EXPECT_EQ(ClaimsFromToken(p).error(), "token claim tdx_is_debuggable: expected a boolean claim, got \"false\"");
  p = PilotPayload();
  p["policy_ids_matched"] = json::array({{{"id", 1}}});
  EXPECT_EQ(ClaimsFromToken(p).error(),
            "token claim policy_ids_matched[0].id: expected a UUID string, got 1");
  p = PilotPayload();
  p["exp"] = "soon";
  EXPECT_EQ(ClaimsFromToken(p).error(), "token claim exp: expected an integer claim, got \"soon\"");
  p = PilotPayload();
  p["tdx_measured_boot"] = "yes";
  EXPECT_EQ(ClaimsFromToken(p).error(), "token claim tdx_measured_boot: expected an object, got \"yes\"");
  EXPECT_EQ(ClaimsFromToken(json::array()).error(), "token claims: expected a JSON object");
  EXPECT_EQ(ClaimsFromToken(json{{"tdx", 1}}).error(), "token claim tdx: expected an object of TDX claims, got 1");
  // A deeply nested value is named, not dumped (dump() recurses).
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(ParseError(WithAttrs(R"({"mrtd":)" + deep + "}")),
            "tdx.attributes.mrtd[0]: expected 96 hex digits (a SHA-384 measurement), got a list");
}

// ---------- evaluation ----------

class EvalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    c = Pilot();
    // A policy that pins every attribute to the pilot token's values.
    p.attributes.mrsignerseam = {c.tdx_mrsignerseam};
    p.attributes.mrseam = {c.tdx_mrseam};
    p.attributes.seamsvn = 4;
    p.attributes.mrtd = {kA96, c.tdx_mrtd};
    for (size_t i = 0; i < 4; ++i) p.attributes.rtmr[i] = c.tdx_rtmr[i];
    p.attributes.enforce_tcb_upto_date = true;
    p.attributes.mrconfigid = {c.tdx_mrconfigid};
    p.attributes.tcb_status = {"UpToDate"};
  }
  std::vector<std::string> Reasons() {
    auto d = EvaluatePolicy(p, c);
    EXPECT_EQ(d.allowed, d.reasons.empty());
    return d.reasons;
  }
  using V = std::vector<std::string>;
  KeyTransferPolicy p;
  TokenClaims c;
};

TEST_F(EvalTest, ThePilotTokenPassesItsOwnPolicy) {
  auto d = EvaluatePolicy(p, c);
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(d.by_policy_ids);
  EXPECT_TRUE(d.reasons.empty());
}

TEST_F(EvalTest, EveryIntelAttributeFailsWithItsReason) {
  p.attributes.mrsignerseam = {kA96};
  EXPECT_EQ(Reasons(), V{"mrsignerseam: the TD has " + kZero96 + ", the policy allows [" + kA96 + "]"});
  SetUp();
  p.attributes.mrseam = {kA96, kB96};
  EXPECT_EQ(Reasons(), V{"mrseam: the TD has " + c.tdx_mrseam + ", the policy allows [" + kA96 + ", " + kB96 + "]"});
  SetUp();
  p.attributes.seamsvn = 258;
  EXPECT_EQ(Reasons(), V{"seamsvn: the TD has 4, the policy requires 258"});
  SetUp();
  p.attributes.mrtd = {kA96};
  EXPECT_EQ(Reasons(), V{"mrtd: the TD has " + c.tdx_mrtd + ", the policy allows [" + kA96 + "]"});
  // Case-sensitive, as Intel's.
  SetUp();
  std::string upper = c.tdx_mrtd;
  for (char& ch : upper) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  p.attributes.mrtd = {upper};
  EXPECT_EQ(Reasons().size(), 1u);
  for (size_t i = 0; i < 4; ++i) {
    SetUp();
    p.attributes.rtmr[i] = kB96;
    EXPECT_EQ(Reasons(), V{"rtmr" + std::to_string(i) + ": the TD has " + c.tdx_rtmr[i] + ", the policy requires " + kB96});
  }
  SetUp();
  c.attester_tcb_status = "OutOfDate";
  p.attributes.tcb_status.clear();
  EXPECT_EQ(Reasons(), V{"enforce_tcb_upto_date: the TD's attester_tcb_status is \"OutOfDate\", the policy "
                         "requires \"UpToDate\""});
  c.attester_tcb_status = "OK";  // Intel KBS's own word
  EXPECT_TRUE(Reasons().empty());
  p.attributes.enforce_tcb_upto_date = false;
  c.attester_tcb_status = "OutOfDate";
  EXPECT_TRUE(Reasons().empty());
}

TEST_F(EvalTest, AbsentClaimsFailPinnedFields) {
  c.tdx_seamsvn.reset();
  c.tdx_rtmr[3].clear();
  EXPECT_EQ(Reasons(), (V{"seamsvn: the TD has none, the policy requires 4",
                          "rtmr3: the TD has none, the policy requires " + kZero96}));
}

TEST_F(EvalTest, ReasonsListEveryFailedCheck) {
  p.attributes.mrtd = {kA96};
  p.attributes.seamsvn = 1;
  p.attributes.mrconfigid = {kA96};
  c.debug = true;
  auto r = Reasons();
  EXPECT_EQ(r, (V{"seamsvn: the TD has 4, the policy requires 1",
                  "mrtd: the TD has " + c.tdx_mrtd + ", the policy allows [" + kA96 + "]",
                  "mrconfigid: the TD has " + kZero96 + ", the policy allows [" + kA96 + "]",
                  "debug: the TD is a debug TD (the host can read its memory); the policy refuses it unless "
                  "allow_debug is true"}));
}

TEST_F(EvalTest, PolicyIdsDecideIntelsPartButNotOurs) {
  p.policy_ids = {"37965f5f-ccaf-4cdc-a356-a8ed5268a5bf"};
  p.attributes.mrtd = {kA96};  // would fail
  c.has_policy_ids_matched = true;
  c.policy_ids_matched = {"9846bf40-e380-4842-ae15-1b60996d1190", "37965f5f-ccaf-4cdc-a356-a8ed5268a5bf"};
  auto d = EvaluatePolicy(p, c);
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.by_policy_ids);
  // Ours still apply.
  p.attributes.mrconfigid = {kA96};
  EXPECT_EQ(Reasons(), V{"mrconfigid: the TD has " + kZero96 + ", the policy allows [" + kA96 + "]"});
  // No intersection: refused on policy_ids alone (Intel does not fall back to the attributes).
  SetUp();
  p.policy_ids = {"37965f5f-ccaf-4cdc-a356-a8ed5268a5bf"};
  p.attributes.mrtd = {kA96};
  c.has_policy_ids_matched = true;
  c.policy_ids_matched = {"9846bf40-e380-4842-ae15-1b60996d1190"};
  EXPECT_EQ(Reasons(), V{"policy_ids: none of the token's policy_ids_matched [9846bf40-e380-4842-ae15-1b60996d1190] "
                         "is among the policy's policy_ids [37965f5f-ccaf-4cdc-a356-a8ed5268a5bf]"});
  // Without the claim, the attributes decide.
  c.has_policy_ids_matched = false;
  c.policy_ids_matched.clear();
  EXPECT_EQ(Reasons(), V{"mrtd: the TD has " + c.tdx_mrtd + ", the policy allows [" + kA96 + "]"});
}

TEST_F(EvalTest, DebugRefusedUnlessAllowed) {
  c.debug = true;
  EXPECT_EQ(Reasons(), V{"debug: the TD is a debug TD (the host can read its memory); the policy refuses it "
                         "unless allow_debug is true"});
  p.attributes.allow_debug = true;
  EXPECT_TRUE(Reasons().empty());
  // With an otherwise empty policy too (Intel would release).
  p = KeyTransferPolicy{};
  EXPECT_EQ(Reasons().size(), 1u);
}

TEST_F(EvalTest, TcbStatusList) {
  c.attester_tcb_status = "SWHardeningNeeded";
  p.attributes.enforce_tcb_upto_date.reset();
  EXPECT_EQ(Reasons(), V{"tcb_status: the TD's attester_tcb_status is \"SWHardeningNeeded\", the policy allows "
                         "[UpToDate]"});
  p.attributes.tcb_status.push_back("SWHardeningNeeded");
  EXPECT_TRUE(Reasons().empty());
}

TEST_F(EvalTest, MrconfigidPasses) {
  p.attributes.mrconfigid = {kA96, kZero96};
  EXPECT_TRUE(Reasons().empty());
}

class MeasuredBootTest : public EvalTest {
 protected:
  void SetUp() override {
    EvalTest::SetUp();
    c.measured_boot = json::parse(R"({"rtmrs":{"rtmr0":"match","rtmr1":"match","rtmr2":"match","rtmr3":"unexplained"},
      "secure_boot":true,"kernel":{"digest":")" + kA96 + R"(","event":9},"initrd":{"digest":")" + kB96 +
                                  R"("},"cmdline":null})");
    p.attributes.measured_boot = json::parse(R"({"kernel_digest":[")" + kA96 + R"("],"initrd_digest":[")" + kB96 +
                                             R"("],"secure_boot":true,"rtmr_verdicts":{"rtmr3":"match_or_unexplained"}})");
  }
};

TEST_F(MeasuredBootTest, PinsPass) { EXPECT_TRUE(Reasons().empty()); }

TEST_F(MeasuredBootTest, NoClaim) {
  c.measured_boot = nullptr;
  EXPECT_EQ(Reasons(), V{"measured_boot: the token has no tdx_measured_boot claim (the TD sent no event log); "
                         "attest with the event log"});
}

TEST_F(MeasuredBootTest, DigestMismatch) {
  p.attributes.measured_boot["kernel_digest"] = {kB96};
  EXPECT_EQ(Reasons(), V{"measured_boot.kernel_digest: the TD booted kernel " + kA96 + ", the policy allows [" +
                         kB96 + "]"});
  SetUp();
  p.attributes.measured_boot["initrd_digest"] = {kA96};
  EXPECT_EQ(Reasons(), V{"measured_boot.initrd_digest: the TD booted initrd " + kB96 + ", the policy allows [" +
                         kA96 + "]"});
  SetUp();
  p.attributes.measured_boot["cmdline_digest"] = {kA96};
  EXPECT_EQ(Reasons(), V{"measured_boot.cmdline_digest: the event log measures no cmdline"});
}

TEST_F(MeasuredBootTest, PinCountsOnlyFromAMatchingRegister) {
  c.measured_boot["rtmrs"]["rtmr2"] = "mismatch";
  EXPECT_EQ(Reasons(), (V{"measured_boot.kernel_digest: rtmr2 is \"mismatch\" in the token, so its events prove "
                          "nothing; a pinned value counts only from a register that matches",
                          "measured_boot.initrd_digest: rtmr2 is \"mismatch\" in the token, so its events prove "
                          "nothing; a pinned value counts only from a register that matches"}));
  SetUp();
  c.measured_boot["rtmrs"]["rtmr0"] = "unexplained";
  EXPECT_EQ(Reasons(), V{"measured_boot.secure_boot: rtmr0 is \"unexplained\" in the token, so its events prove "
                         "nothing; a pinned value counts only from a register that matches"});
}

TEST_F(MeasuredBootTest, SecureBoot) {
  c.measured_boot["secure_boot"] = false;
  EXPECT_EQ(Reasons(), V{"measured_boot.secure_boot: the TD booted with Secure Boot disabled, the policy requires "
                         "enabled"});
  c.measured_boot["secure_boot"] = nullptr;
  EXPECT_EQ(Reasons(), V{"measured_boot.secure_boot: the event log does not measure the SecureBoot variable"});
}

TEST_F(MeasuredBootTest, RtmrVerdicts) {
  c.measured_boot["rtmrs"]["rtmr3"] = "mismatch";
  EXPECT_EQ(Reasons(), V{"measured_boot.rtmr_verdicts: rtmr3 is \"mismatch\", the policy requires "
                         "match_or_unexplained"});
  p.attributes.measured_boot["rtmr_verdicts"]["rtmr3"] = "any";
  EXPECT_TRUE(Reasons().empty());
  c.measured_boot["rtmrs"]["rtmr3"] = "unexplained";
  p.attributes.measured_boot["rtmr_verdicts"]["rtmr3"] = "match";
  EXPECT_EQ(Reasons(), V{"measured_boot.rtmr_verdicts: rtmr3 is \"unexplained\", the policy requires match"});
}

}  // namespace
}  // namespace tdxvirt::kbs
