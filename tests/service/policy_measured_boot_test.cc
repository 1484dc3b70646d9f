// The measured-boot policy keys without a socket: strict parsing (each error names the key and the
// fix), PolicyToJson, the default register requirements, and evaluation against an appraised log
// (a secure_boot pin when the log does not measure the variable, an opaque command line), plus the
// request's event_log size cap.
#include <gtest/gtest.h>

#include "common/base64.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "eventlog/builder.h"
#include "service/appraisal.h"
#include "service/measured_boot.h"
#include "service/policy.h"

namespace tdxvirt::service {
namespace {

const std::string kId = "id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\n";

TEST(MeasuredBootPolicy, ParsesEveryKeyAndWritesItBack) {
  std::string k(96, 'a'), i(96, 'b'), c(96, 'c');
  auto p = ParsePolicy(kId + "kernel_digest: " + k + "\ninitrd_digest: [" + i + "]\ncmdline: [\"console=hvc0\", \"\"]\n" +
                       "cmdline_digest: " + c + "\nsecure_boot: false\nrtmr_verdicts: {rtmr1: any, rtmr3: match}\n");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_TRUE(PolicyNeedsEventLog(*p));
  EXPECT_EQ(EffectiveRtmrRequirement(*p, 0), RtmrRequirement::kMatch);
  EXPECT_EQ(EffectiveRtmrRequirement(*p, 1), RtmrRequirement::kAny);
  EXPECT_EQ(EffectiveRtmrRequirement(*p, 3), RtmrRequirement::kMatch);
  auto j = PolicyToJson(*p);
  EXPECT_EQ(j["kernel_digest"], nlohmann::ordered_json::array({k}));
  EXPECT_EQ(j["initrd_digest"], nlohmann::ordered_json::array({i}));
  EXPECT_EQ(j["cmdline"], nlohmann::ordered_json::array({"console=hvc0", ""}));
  EXPECT_EQ(j["cmdline_digest"], nlohmann::ordered_json::array({c}));
  EXPECT_EQ(j["secure_boot"], false);
  EXPECT_EQ(j["rtmr_verdicts"].dump(), R"({"rtmr1":"any","rtmr3":"match"})");
  // What PolicyToJson writes parses to the same policy.
  auto again = ParsePolicy(j.dump());
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(PolicyToJson(*again), j);

  auto plain = ParsePolicy(kId);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(PolicyNeedsEventLog(*plain));
  EXPECT_EQ(EffectiveRtmrRequirement(*plain, 2), RtmrRequirement::kMatch);
  EXPECT_EQ(EffectiveRtmrRequirement(*plain, 3), RtmrRequirement::kMatchOrUnexplained);
  EXPECT_FALSE(PolicyToJson(*plain).contains("rtmr_verdicts"));
}

TEST(MeasuredBootPolicy, ErrorsNameTheKeyAndTheFix) {
  struct Case {
    std::string text, want;
  } cases[] = {
      {"kernel_digest: abc\n", "f.yaml: kernel_digest: odd number of hex digits; each byte needs two"},
      {"initrd_digest: [aabb]\n", "f.yaml: initrd_digest: expected 48 bytes (96 hex digits), got 2"},
      {"cmdline_digest: []\n", "f.yaml: cmdline_digest: empty list (omit the key to allow any value)"},
      {"kernel_digest: {a: b}\n", "f.yaml: kernel_digest: expected 96 hex digits or a list of them"},
      {"cmdline: 42\n",
       "f.yaml: cmdline: expected the command line text or a list of them (quote a value YAML would read as a "
       "number or true/false)"},
      {"cmdline: [console=hvc0, true]\n",
       "f.yaml: cmdline: entries must be text (quote a value YAML would read as a number or true/false)"},
      {"cmdline: []\n", "f.yaml: cmdline: empty list (omit the key to allow any command line)"},
      {"secure_boot: yes please\n", "f.yaml: secure_boot: expected true or false"},
      {"rtmr_verdicts: match\n",
       "f.yaml: rtmr_verdicts: expected a mapping of rtmr0..rtmr3 to match, match_or_unexplained or any, e.g. "
       "{rtmr3: any}"},
      {"rtmr_verdicts: {}\n",
       "f.yaml: rtmr_verdicts: empty mapping (omit the key for the default: match for rtmr0..rtmr2, "
       "match_or_unexplained for rtmr3)"},
      {"rtmr_verdicts: {rtmr4: any}\n", "f.yaml: rtmr_verdicts: unknown register \"rtmr4\" (rtmr0..rtmr3)"},
      {"rtmr_verdicts: {mrtd: any}\n", "f.yaml: rtmr_verdicts: unknown register \"mrtd\" (rtmr0..rtmr3)"},
      {"rtmr_verdicts: {rtmr2: matches}\n",
       "f.yaml: rtmr_verdicts.rtmr2: \"matches\" is not a requirement (match, match_or_unexplained, any)"},
      {"rtmr_verdicts: {rtmr2: [match]}\n",
       "f.yaml: rtmr_verdicts.rtmr2: array is not a requirement (match, match_or_unexplained, any)"},
  };
  for (const auto& c : cases) {
    auto p = ParsePolicy(kId + c.text, "f.yaml");
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_EQ(p.error(), c.want) << c.text;
  }
}

// An appraised log whose registers all match the quote.
MeasuredBoot Appraised(const eventlog::EventLogBuilder& b) {
  auto mb = AppraiseEventLog(b.Finish(0), b.rtmrs());
  EXPECT_TRUE(mb.ok()) << mb.error();
  return *mb;
}

TEST(MeasuredBootPolicy, SecureBootPinNeedsTheVariableMeasured) {
  eventlog::EventLogBuilder b;
  b.AddHashed(1, eventlog::kEvSeparator, Bytes{0, 0, 0, 0});
  auto p = ParsePolicy(kId + "secure_boot: true\n");
  ASSERT_TRUE(p.ok());
  evidence::TdQuoteBody body{};
  auto mb = Appraised(b);
  EXPECT_EQ(EvaluatePolicy(*p, body, "UpToDate", &mb),
            std::vector<std::string>{"secure_boot: the event log does not measure the SecureBoot variable"});
}

TEST(MeasuredBootPolicy, TextPinIsCheckedAgainstTheStubsDigest) {
  // The stub as Linux writes it: the tag's data is its name, the digest covers the load options.
  eventlog::EventLogBuilder b;
  std::string name("LOADED_IMAGE::LoadOptions\0", 26);
  auto options = *eventlog::DirectBootLoadOptions("console=hvc0", true);
  b.AddTag(3, eventlog::kTagLoadOptions, AsBytes(name), ossl::Sha384(options));
  auto mb = Appraised(b);
  ASSERT_TRUE(mb.summary.cmdline.has_value());
  evidence::TdQuoteBody body{};
  // The text as given to QEMU's -append: hashed as the stub saw it (with " initrd=initrd").
  auto text = ParsePolicy(kId + "cmdline: console=hvc0\n");
  ASSERT_TRUE(text.ok());
  EXPECT_TRUE(EvaluatePolicy(*text, body, "UpToDate", &mb).empty());
  auto other = ParsePolicy(kId + "cmdline: [console=ttyS0, \"console=hvc0 debug\"]\n");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(EvaluatePolicy(*other, body, "UpToDate", &mb),
            std::vector<std::string>{
                "cmdline: event 1 (EV_EVENT_TAG LOADED_IMAGE::LoadOptions, RTMR2, offset 65) measured " +
                ToHex(ossl::Sha384(options)) +
                ", the digest of none of the allowed command lines (as UTF-16LE load options, with or "
                "without \" initrd=initrd\")"});
  // Its digest pin matches too.
  auto digest = ParsePolicy(kId + "cmdline_digest: " + ToHex(ossl::Sha384(options)) + "\n");
  ASSERT_TRUE(digest.ok());
  EXPECT_TRUE(EvaluatePolicy(*digest, body, "UpToDate", &mb).empty());
  // The claim says what the log holds: opaque, no text.
  auto claim = MeasuredBootClaim(mb);
  EXPECT_EQ(claim["cmdline"]["binding"], "opaque");
  EXPECT_EQ(claim["cmdline"]["text"], nullptr);
}

TEST(MeasuredBootPolicy, OpaqueUkiCommandLineIsNoTextPin) {
  // An opaque command line from another source (a UKI's .cmdline section content) cannot be
  // checked against a text: the reason says to pin the digest.
  eventlog::EventLogBuilder b;
  // systemd-stub: the section name in UTF-16 as data, measured by name, then by content.
  auto name = *eventlog::Utf16LeWithNul(".cmdline");
  b.Add(3, eventlog::kEvIpl, ossl::Sha384(AsBytes(std::string_view(".cmdline\0", 9))), name);
  b.Add(3, eventlog::kEvIpl, ossl::Sha384(AsBytes("console=hvc0")), name);
  auto mb = Appraised(b);
  ASSERT_TRUE(mb.summary.cmdline.has_value());
  ASSERT_EQ(mb.summary.cmdline->source, "uki");
  evidence::TdQuoteBody body{};
  auto text = ParsePolicy(kId + "cmdline: console=hvc0\n");
  ASSERT_TRUE(text.ok());
  auto reasons = EvaluatePolicy(*text, body, "UpToDate", &mb);
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_NE(reasons[0].find("pin cmdline_digest instead"), std::string::npos) << reasons[0];
}

TEST(MeasuredBootPolicy, TextPinMatchesOnlyTheWholeCommandLine) {
  eventlog::EventLogBuilder b;
  b.AddTag(3, eventlog::kTagLoadOptions, *eventlog::DirectBootLoadOptions("console=hvc0 quiet", true));
  auto mb = Appraised(b);
  evidence::TdQuoteBody body{};
  for (std::string pin : {"console=hvc0 quiet", "console=hvc0 quiet initrd=initrd"}) {
    auto p = ParsePolicy(kId + "cmdline: \"" + pin + "\"\n");
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(EvaluatePolicy(*p, body, "UpToDate", &mb).empty()) << pin;
  }
  for (std::string pin : {"console=hvc0", "console=hvc0 quiet initrd=initrd initrd=initrd", ""}) {
    auto p = ParsePolicy(kId + "cmdline: \"" + pin + "\"\n");
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(EvaluatePolicy(*p, body, "UpToDate", &mb).size(), 1u) << pin;
  }
}

TEST(MeasuredBootPolicy, RequestCarriesEventLogsUpToOneMebibyte) {
  // trustee's td-shim CCEL area is exactly 1 MiB; Intel's 256 KiB (LAML 0x40000) fits with room.
  std::string quote = Base64Encode(Bytes(100, 1));
  auto ok = ParseAttestRequest(R"({"tdx":{"quote":")" + quote + R"(","event_log":")" +
                               Base64Encode(Bytes(1 << 20, 0xff)) + "\"}}");
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->event_log.size(), size_t(1) << 20);
  EXPECT_EQ(ok->evidence_prefix, "tdx.");
  auto big = ParseAttestRequest(R"({"quote":")" + quote + R"(","event_log":")" +
                                Base64Encode(Bytes((1 << 20) + 3, 0xff)) + "\"}");
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error(), "event_log: larger than 1048576 bytes");
}

}  // namespace
}  // namespace tdxvirt::service
