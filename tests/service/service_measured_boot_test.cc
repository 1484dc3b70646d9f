// Measured boot over the real HTTP server: a TD event log built with eventlog::EventLogBuilder (and
// a real CCEL) is sent with a simulated TD's quote whose RTMRs the test chooses; the token's
// tdx_measured_boot claim, the measured-boot policy keys and the 400s for bad logs.
#include <httplib.h>

#include "common/base64.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "eventlog/builder.h"
#include "service_test_util.h"

namespace tdxvirt::service {
namespace {

using namespace testing;

struct Raw {
  int status = 0;
  std::string body;
};

Raw Post(const TestService& s, const std::string& path, const std::string& body) {
  httplib::Client c(s.server->base_url());
  c.set_read_timeout(60, 0);
  auto r = c.Post(path.c_str(), {{"x-api-key", "test-api-key"}}, body, "application/json");
  if (!r) return {-1, httplib::to_string(r.error())};
  return {r->status, r->body};
}

std::string Message(const Raw& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("message") ? j["message"].get<std::string>() : r.body;
}

std::string Sha384Hex(std::string_view s) { return ToHex(ossl::Sha384(AsBytes(s))); }
evidence::Sha384Digest Sha384Of(std::string_view s) { return ossl::Sha384(AsBytes(s)); }
Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }

const std::string kCmdline = "console=hvc0 root=/dev/vda1";
// What the stub measures for it (QEMU -kernel with -initrd): the digest `tdxvirt measure` predicts.
std::string CmdlineDigest() {
  auto lo = eventlog::DirectBootLoadOptions(kCmdline, true);
  return ToHex(ossl::Sha384(*lo));
}
const std::string kKernelDigest = Sha384Hex("vmlinuz");
const std::string kInitrdDigest = Sha384Hex("initrd.img");

// UEFI_VARIABLE_DATA of EFI_GLOBAL_VARIABLE SecureBoot with one byte of value.
Bytes SecureBootVariable(uint8_t value) {
  Bytes d = *FromHex("61dfe48bca93d211aa0d00e098032b8c");
  auto le64 = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) d.push_back(uint8_t(v >> (8 * i)));
  };
  le64(10);
  le64(1);
  for (char c : std::string("SecureBoot")) d.insert(d.end(), {uint8_t(c), 0});
  d.push_back(value);
  return d;
}

// The kernel's EV_EFI_BOOT_SERVICES_APPLICATION data as OVMF writes it for QEMU -kernel (event 12 of
// testdata/eventlogs/trustee-ovmf: UEFI_IMAGE_LOAD_EVENT with the device path "kernel").
const char kKernelImageLoadEvent[] =
    "1800b37c0000000000a2a5000000000000000000000000002a000000000000000403140072f728144ab61e44b8c39ebd"
    "d7f893c7040412006b00650072006e0065006c0000007fff0400";

// A direct boot (OVMF, QEMU -kernel -initrd, Linux >= 6.9) as the firmware and stub measure it.
eventlog::EventLogBuilder DirectBootLog(uint8_t secure_boot = 1, bool broken_separator = false) {
  using namespace eventlog;
  EventLogBuilder b;
  b.AddHashed(1, kEvEfiVariableDriverConfig, SecureBootVariable(secure_boot));  // event 1
  Bytes sep = {0, 0, 0, 0};
  if (broken_separator) b.Add(1, kEvSeparator, Sha384Of("not the separator"), sep);
  else b.AddHashed(1, kEvSeparator, sep);  // event 2
  b.Add(2, kEvEfiBootServicesApplication, *FromHexFixed<48>(kKernelDigest, "k"),
        *FromHex(kKernelImageLoadEvent));                                           // event 3
  b.AddHashed(2, kEvEfiAction, B("Calling EFI Application from Boot Option"));     // event 4
  b.AddHashed(2, kEvSeparator, sep);                                                // event 5
  b.AddTag(3, kTagLoadOptions, *DirectBootLoadOptions(kCmdline, true));            // event 6
  b.AddTag(3, kTagInitrd, B(std::string_view("Linux initrd\0", 13)),
           *FromHexFixed<48>(kInitrdDigest, "i"));                                  // event 7
  b.AddHashed(2, kEvEfiAction, B("Exit Boot Services Invocation"));                // event 8
  return b;
}

const std::string kZero = std::string(96, '0');

// Policy ids of this suite.
const std::string kPolCmdline = "5712c7a0-00e1-4000-8000-000000000001";
const std::string kPolCmdlineOther = "5712c7a0-00e1-4000-8000-000000000002";
const std::string kPolCmdlineDigest = "5712c7a0-00e1-4000-8000-000000000003";
const std::string kPolCmdlineDigestOther = "5712c7a0-00e1-4000-8000-000000000004";
const std::string kPolKernel = "5712c7a0-00e1-4000-8000-000000000005";
const std::string kPolKernelOther = "5712c7a0-00e1-4000-8000-000000000006";
const std::string kPolInitrd = "5712c7a0-00e1-4000-8000-000000000007";
const std::string kPolInitrdOther = "5712c7a0-00e1-4000-8000-000000000008";
const std::string kPolSecureBoot = "5712c7a0-00e1-4000-8000-000000000009";
const std::string kPolNoSecureBoot = "5712c7a0-00e1-4000-8000-00000000000a";
const std::string kPolRtmr3Match = "5712c7a0-00e1-4000-8000-00000000000b";
const std::string kPolRtmr2AnyCmdline = "5712c7a0-00e1-4000-8000-00000000000c";
const std::string kPolRtmr2Any = "5712c7a0-00e1-4000-8000-00000000000d";
const std::string kPolPlain = "5712c7a0-00e1-4000-8000-00000000000e";

class MeasuredBootE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    // Policies are in place before the service starts: its first load has them.
    auto pol = [&](const std::string& id, const std::string& body) {
      WriteFile(policies_.File(id + ".yaml"), "id: " + id + "\n" + body);
    };
    pol(kPolCmdline, "cmdline: \"" + kCmdline + "\"\n");
    pol(kPolCmdlineOther, "cmdline: [console=ttyS0, \"console=hvc0 debug\"]\n");
    pol(kPolCmdlineDigest, "cmdline_digest: " + CmdlineDigest() + "\n");
    pol(kPolCmdlineDigestOther, "cmdline_digest: [" + Hex48('c') + "]\n");
    pol(kPolKernel, "kernel_digest: " + kKernelDigest + "\n");
    pol(kPolKernelOther, "kernel_digest: " + Hex48('e') + "\n");
    pol(kPolInitrd, "initrd_digest: " + kInitrdDigest + "\n");
    pol(kPolInitrdOther, "initrd_digest: " + Hex48('d') + "\n");
    pol(kPolSecureBoot, "secure_boot: true\n");
    pol(kPolNoSecureBoot, "secure_boot: false\n");
    pol(kPolRtmr3Match, "rtmr_verdicts: {rtmr3: match}\n");
    pol(kPolRtmr2AnyCmdline, "rtmr_verdicts: {rtmr2: any}\ncmdline: \"" + kCmdline + "\"\n");
    pol(kPolRtmr2Any, "rtmr_verdicts: {rtmr2: any}\n");
    pol(kPolPlain, "tcb_status: [UpToDate]\n");
    ServerOptions o;
    o.policy_dir = policies_.path();
    svc_ = std::make_unique<TestService>(o);
    ASSERT_TRUE(svc_->server);
  }

  // A simulated TD config file whose RTMRs are `rtmrs`.
  std::string TdWith(const eventlog::Rtmrs& rtmrs) {
    nlohmann::json j;
    for (int i = 0; i < 4; ++i) j["rtmr" + std::to_string(i)] = ToHex(rtmrs[i]);
    std::string path = dir_.File("td" + std::to_string(++tds_) + ".json");
    WriteFile(path, j.dump());
    return path;
  }

  // v2 evidence from the sim TD `td` with `log` (none when empty) and policies.
  nlohmann::json Evidence(const std::string& td, const Bytes& log, std::vector<std::string> policy_ids = {},
                          bool must_match = false) {
    auto client = svc_->Client();
    auto provider = SimProvider(td);
    TokenRequestOptions o;
    o.policy_ids = std::move(policy_ids);
    o.policy_must_match = must_match;
    auto ev = CollectEvidence(client, *provider, o);
    EXPECT_TRUE(ev.ok()) << ev.error();
    if (!ev.ok()) return {};
    if (!log.empty()) (*ev)["tdx"]["event_log"] = Base64Encode(log);
    return *ev;
  }

  // The claims of a 200 answer's token, signature checked against /certs.
  nlohmann::json Claims(const Raw& r) {
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return {};
    auto token = nlohmann::json::parse(r.body)["token"].get<std::string>();
    auto jwks = svc_->Client().GetCerts();
    EXPECT_TRUE(jwks.ok());
    VerifyTokenOptions o;
    o.issuer = "tdxvirt Attestation Service";
    o.now = svc_->now->load();
    o.trusted_root_pem = std::string(AsString(*ReadFile(F().chain)));
    auto v = VerifyToken(token, *jwks, o);
    EXPECT_TRUE(v.ok()) << v.error();
    return v.ok() ? v->claims : nlohmann::json();
  }

  // policy id -> its reasons (empty when it matched), from a token's claims.
  static std::map<std::string, std::vector<std::string>> Outcomes(const nlohmann::json& claims) {
    std::map<std::string, std::vector<std::string>> out;
    if (claims.contains("policy_ids_matched") && claims["policy_ids_matched"].is_array())
      for (const auto& m : claims["policy_ids_matched"]) out[m["id"]] = {};
    if (claims.contains("policy_ids_unmatched") && claims["policy_ids_unmatched"].is_array())
      for (const auto& m : claims["policy_ids_unmatched"]) out[m["id"]] = m["reasons"];
    return out;
  }

  TempDir policies_, dir_;
  int tds_ = 0;
  std::unique_ptr<TestService> svc_;
};

// Descriptions of DirectBootLog's events, as reasons name them.
const std::string kEvKernel = "event 3 (EV_EFI_BOOT_SERVICES_APPLICATION, RTMR1, offset 254)";
const std::string kEvCmdline = "event 6 (EV_EVENT_TAG LOADED_IMAGE::LoadOptions, RTMR2, offset 570)";
const std::string kEvInitrd = "event 7 (EV_EVENT_TAG Linux initrd, RTMR2, offset 728)";

TEST_F(MeasuredBootE2e, TokenCarriesTheMeasuredBootClaimInV2AndV1) {
  auto b = DirectBootLog();
  Bytes log = b.Finish();
  std::string td = TdWith(b.rtmrs());
  nlohmann::json want = {
      {"event_log_sha384", ToHex(ossl::Sha384(log))},
      {"rtmrs", {{"rtmr0", "match"}, {"rtmr1", "match"}, {"rtmr2", "match"}, {"rtmr3", "match"}}},
      {"secure_boot", true},
      {"kernel", {{"digest", kKernelDigest}, {"binding", "opaque"}, {"event", 3}, {"source", "efi-app"}}},
      {"initrd", {{"digest", kInitrdDigest}, {"binding", "opaque"}, {"event", 7}, {"source", "efi-stub"}}},
      {"cmdline",
       {{"digest", CmdlineDigest()}, {"binding", "bound"}, {"event", 6}, {"source", "efi-stub"},
        {"text", kCmdline + " initrd=initrd"}}},
      {"boot_attempts", 1}};

  auto v2 = Claims(Post(*svc_, "/appraisal/v2/attest", Evidence(td, log).dump()));
  ASSERT_TRUE(v2.contains("tdx")) << v2.dump();
  EXPECT_EQ(v2["tdx"]["tdx_measured_boot"], want) << v2["tdx"]["tdx_measured_boot"].dump(1);
  EXPECT_FALSE(v2.contains("tdx_measured_boot"));

  nlohmann::json flat = Evidence(td, log)["tdx"];
  auto v1 = Claims(Post(*svc_, "/appraisal/v1/attest", flat.dump()));
  EXPECT_EQ(v1["tdx_measured_boot"], want) << v1.dump(1);

  // No log, no claim (v1 and v2).
  auto none2 = Claims(Post(*svc_, "/appraisal/v2/attest", Evidence(td, {}).dump()));
  EXPECT_FALSE(none2["tdx"].contains("tdx_measured_boot"));
  auto none1 = Claims(Post(*svc_, "/appraisal/v1/attest", Evidence(td, {})["tdx"].dump()));
  EXPECT_FALSE(none1.contains("tdx_measured_boot"));
  EXPECT_TRUE(none1.contains("tdx_mrtd"));
}

TEST_F(MeasuredBootE2e, PoliciesPinTheCommandLineKernelInitrdAndSecureBoot) {
  auto b = DirectBootLog();
  std::string td = TdWith(b.rtmrs());
  auto c = Claims(Post(*svc_, "/appraisal/v2/attest",
                       Evidence(td, b.Finish(),
                                {kPolCmdline, kPolCmdlineOther, kPolCmdlineDigest, kPolCmdlineDigestOther,
                                 kPolKernel, kPolKernelOther, kPolInitrd, kPolInitrdOther, kPolSecureBoot,
                                 kPolNoSecureBoot})
                           .dump()));
  std::map<std::string, std::vector<std::string>> want = {
      {kPolCmdline, {}},
      {kPolCmdlineOther,
       {"cmdline: " + kEvCmdline + " measured \"" + kCmdline + " initrd=initrd\", not an allowed value"}},
      {kPolCmdlineDigest, {}},
      {kPolCmdlineDigestOther,
       {"cmdline_digest: " + kEvCmdline + " measured " + CmdlineDigest() + ", not an allowed value"}},
      {kPolKernel, {}},
      {kPolKernelOther, {"kernel_digest: " + kEvKernel + " measured " + kKernelDigest + ", not an allowed value"}},
      {kPolInitrd, {}},
      {kPolInitrdOther, {"initrd_digest: " + kEvInitrd + " measured " + kInitrdDigest + ", not an allowed value"}},
      {kPolSecureBoot, {}},
      {kPolNoSecureBoot, {"secure_boot: the event log measured Secure Boot enabled, the policy requires disabled"}},
  };
  EXPECT_EQ(Outcomes(c), want) << c.dump(1);

  // Secure Boot off: the other way round.
  auto off = DirectBootLog(0);
  auto c2 = Claims(Post(*svc_, "/appraisal/v2/attest",
                        Evidence(TdWith(off.rtmrs()), off.Finish(), {kPolSecureBoot, kPolNoSecureBoot}).dump()));
  std::map<std::string, std::vector<std::string>> want2 = {
      {kPolSecureBoot, {"secure_boot: the event log measured Secure Boot disabled, the policy requires enabled"}},
      {kPolNoSecureBoot, {}}};
  EXPECT_EQ(Outcomes(c2), want2) << c2.dump(1);
}

TEST_F(MeasuredBootE2e, RegisterVerdictsAgainstTheQuote) {
  auto b = DirectBootLog();
  // The quote's RTMR2 differs from what the log replays to; RTMR3 was extended at run time.
  eventlog::Rtmrs quote = b.rtmrs();
  quote[2] = Sha384Of("another command line");
  quote[3] = Sha384Of("runtime");
  auto c = Claims(Post(*svc_, "/appraisal/v2/attest",
                       Evidence(TdWith(quote), b.Finish(),
                                {kPolKernel, kPolCmdline, kPolRtmr3Match, kPolRtmr2AnyCmdline, kPolRtmr2Any})
                           .dump()));
  EXPECT_EQ(c["tdx"]["tdx_measured_boot"]["rtmrs"],
            nlohmann::json({{"rtmr0", "match"}, {"rtmr1", "match"}, {"rtmr2", "mismatch"}, {"rtmr3", "unexplained"}}));
  std::string rtmr2 = "rtmr2: mismatch: the event log replays to " + ToHex(b.rtmrs()[2]) + ", the quote has " +
                      ToHex(quote[2]);
  std::map<std::string, std::vector<std::string>> want = {
      // The default requirement: match for rtmr0..2, match_or_unexplained for rtmr3.
      {kPolKernel, {rtmr2}},
      {kPolCmdline,
       {rtmr2, "cmdline: " + kEvCmdline +
                   " is not confirmed by the quote (rtmr2: mismatch); a pinned value counts only from a "
                   "register that matches"}},
      {kPolRtmr3Match,
       {rtmr2, "rtmr3: unexplained: the event log has no event for it and the quote has " + ToHex(quote[3]) +
                   "; the policy requires match (rtmr_verdicts)"}},
      // rtmr2: any accepts the register, but a value pinned from it still needs it confirmed.
      {kPolRtmr2AnyCmdline,
       {"cmdline: " + kEvCmdline +
        " is not confirmed by the quote (rtmr2: mismatch); a pinned value counts only from a register that "
        "matches"}},
      {kPolRtmr2Any, {}},
  };
  EXPECT_EQ(Outcomes(c), want) << c.dump(1);
}

TEST_F(MeasuredBootE2e, PinningPolicyWithoutALogIs403WithMustMatch) {
  auto b = DirectBootLog();
  std::string td = TdWith(b.rtmrs());
  auto r = Post(*svc_, "/appraisal/v2/attest", Evidence(td, {}, {kPolKernel, kPolPlain}, true).dump());
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(Message(r), "policy_must_match: " + kPolKernel +
                            ": event_log: this policy pins measured boot (kernel_digest); send the TD's event log "
                            "(tdx.event_log, from /sys/firmware/acpi/tables/data/CCEL)");
  // Without policy_must_match: a token listing the policy as unmatched, as any policy mismatch.
  auto c = Claims(Post(*svc_, "/appraisal/v2/attest", Evidence(td, {}, {kPolRtmr2AnyCmdline, kPolPlain}).dump()));
  std::map<std::string, std::vector<std::string>> want = {
      {kPolRtmr2AnyCmdline,
       {"event_log: this policy pins measured boot (cmdline, rtmr_verdicts); send the TD's event log "
        "(tdx.event_log, from /sys/firmware/acpi/tables/data/CCEL)"}},
      {kPolPlain, {}}};
  EXPECT_EQ(Outcomes(c), want) << c.dump(1);
}

const std::string kTruncated =
    "event 8 (offset 815): event data (EventSize 29) at offset 881 needs 29 bytes but 24 remain; the log is "
    "truncated: supply the whole /sys/firmware/acpi/tables/data/CCEL";

TEST_F(MeasuredBootE2e, MalformedOrSelfContradictingLogIs400NamingTheField) {
  auto b = DirectBootLog();
  Bytes log = b.Finish(0);
  std::string td = TdWith(b.rtmrs());
  // Cut inside the last event: truncated, whatever the policies.
  Bytes cut(log.begin(), log.end() - 5);
  auto ev = Evidence(td, cut);
  auto r = Post(*svc_, "/appraisal/v2/attest", ev.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Message(r), "tdx.event_log: " + kTruncated);
  // The refusal used the nonce up, as every 4xx.
  auto again = Post(*svc_, "/appraisal/v2/attest", ev.dump());
  EXPECT_EQ(Message(again), "verifier_nonce: already used (a nonce is good for one attest request); get a fresh nonce");
  // Flat form: the field is named as sent.
  auto flat = Post(*svc_, "/appraisal/v1/attest", Evidence(td, cut)["tdx"].dump());
  EXPECT_EQ(flat.status, 400);
  EXPECT_EQ(Message(flat), "event_log: " + kTruncated);

  // A separator whose digest is not SHA-384 of its data: the log contradicts itself.
  auto broken = DirectBootLog(1, /*broken_separator=*/true);
  auto br = Post(*svc_, "/appraisal/v2/attest", Evidence(TdWith(broken.rtmrs()), broken.Finish()).dump());
  EXPECT_EQ(br.status, 400);
  EXPECT_EQ(Message(br),
            "tdx.event_log: event 2 (EV_SEPARATOR, RTMR0, offset 184): digest " + Sha384Hex("not the separator") +
                " is not SHA-384 of its 4 data bytes (" + Sha384Hex(std::string_view("\0\0\0\0", 4)) +
                "): the event data does not match what was measured; the log contradicts itself, send it as "
                "the TD's firmware wrote it");
}

TEST_F(MeasuredBootE2e, LogIsReadOnlyAfterTheQuoteVerified) {
  auto ev = Evidence(TdWith(DirectBootLog().rtmrs()), B("not an event log"));
  auto quote = *Base64Decode(ev["tdx"]["quote"].get<std::string>(), "quote");
  quote[48 + 16 + 48 + 48 + 8 + 8 + 8 + 5] ^= 1;  // a byte of MRTD
  ev["tdx"]["quote"] = Base64Encode(quote);
  auto r = Post(*svc_, "/appraisal/v2/attest", ev.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Message(r),
            "quote verification failed: quote_signature: the quote signature does not verify with the "
            "attestation key: header or TD report was altered");
}

// A real CCEL (trustee's OVMF direct boot log) with a TD whose RTMRs are the published replay.
TEST_F(MeasuredBootE2e, RealOvmfDirectBootLog) {
  auto log = ReadFile(std::string(TDXVIRT_TESTDATA) + "/eventlogs/trustee-ovmf/ccel.bin");
  ASSERT_TRUE(log.ok()) << log.error();
  eventlog::Rtmrs rtmrs = {
      *FromHexFixed<48>("8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193", "0"),
      *FromHexFixed<48>("775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6", "1"),
      *FromHexFixed<48>("94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a", "2"),
      {}};
  auto c = Claims(Post(*svc_, "/appraisal/v2/attest", Evidence(TdWith(rtmrs), *log).dump()));
  const auto& mb = c["tdx"]["tdx_measured_boot"];
  EXPECT_EQ(mb["event_log_sha384"], ToHex(ossl::Sha384(*log)));
  EXPECT_EQ(mb["rtmrs"],
            nlohmann::json({{"rtmr0", "match"}, {"rtmr1", "match"}, {"rtmr2", "match"}, {"rtmr3", "match"}}));
  // Event 12: the kernel's Authenticode digest; 17, 18: the stub's LoadOptions and initrd tags,
  // whose data is only the tag's name, so the command line is known by its digest alone.
  EXPECT_EQ(mb["kernel"], nlohmann::json({{"digest", "a2ccae1e7d6c668ca325bb09c882d8ce44d26d714ba6f58d2e8083fe291a704646afe24a2368bca3341728d78ec80a80"},
                                          {"binding", "opaque"}, {"event", 12}, {"source", "efi-app"}}))
      << mb.dump(1);
  EXPECT_EQ(mb["cmdline"], nlohmann::json({{"digest", "4230f84885a6f3f305e91a1955045398bd9edd8ffd2aaf2aab8ad3ac53476c4ac82a3675ef559c4ae949a06e84119fc2"},
                                           {"binding", "opaque"}, {"event", 17}, {"source", "efi-stub"}, {"text", nullptr}}))
      << mb.dump(1);
  EXPECT_EQ(mb["initrd"], nlohmann::json({{"digest", "b15af9286108d3d8c9f794a51409e55bad6334f5d96a1e4469f8df2d75fd69aac648d939e13daf6800e82e6c1f6628c4"},
                                          {"binding", "opaque"}, {"event", 18}, {"source", "efi-stub"}}))
      << mb.dump(1);
  EXPECT_EQ(mb["boot_attempts"], 1);
}

}  // namespace
}  // namespace tdxvirt::service
