// Policies (JSON and YAML, field errors, evaluation), base64 codecs, the REPORTDATA binding and the
// client config: the pure parts, without a socket.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/hex.h"
#include "common/openssl.h"
#include "service/appraisal.h"
#include "service/client.h"
#include "service/policy.h"
#include "test_util.h"

namespace tdxvirt::service {
namespace {

using tdxvirt::testing::TempDir;
using tdxvirt::testing::WriteFile;

TEST(Policy, JsonAndYamlGiveTheSamePolicy) {
  std::string mrtd(96, 'a');
  auto y = ParsePolicy("id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\ntcb_status: [UpToDate, OutOfDate]\nmrtd: " + mrtd +
                       "\nallow_debug: true\nmin_seam_svn: 262\nxfam: [e702060000000000]\n");
  ASSERT_TRUE(y.ok()) << y.error();
  auto j = ParsePolicy(R"({"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","tcb_status":["UpToDate","OutOfDate"],"mrtd":")" + mrtd +
                       R"(","allow_debug":true,"min_seam_svn":262,"xfam":["e702060000000000"]})");
  ASSERT_TRUE(j.ok()) << j.error();
  EXPECT_EQ(PolicyToJson(*y), PolicyToJson(*j));
  EXPECT_EQ(y->mrtd.size(), 1u);
  EXPECT_TRUE(y->allow_debug);
  EXPECT_EQ(*y->min_seam_svn, 262u);
}

// What an unknown policy key is answered with after its name.
const std::string kKnownPolicyKeys =
    "(known: id, name, version, description, tcb_status, mrtd, rtmr0..rtmr3, mrconfigid, mrowner, mrownerconfig, "
    "xfam, td_attributes, allow_debug, min_tee_tcb_svn, min_seam_svn, kernel_digest, initrd_digest, cmdline, "
    "cmdline_digest, secure_boot, rtmr_verdicts)";

TEST(Policy, ErrorsNameTheFieldAndTheFix) {
  struct Case {
    std::string text, want;
  } cases[] = {
      {"tcb_status: [UpToDate]\n",
       "f.yaml: id: missing; every policy needs the id that policy_ids name"},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\nmrdt: aa\n",
       "f.yaml: unknown key \"mrdt\" " + kKnownPolicyKeys},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\nmrtd: abc\n",
       "f.yaml: mrtd: odd number of hex digits; each byte needs two"},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\nmrtd: []\n",
       "f.yaml: mrtd: empty list (omit the key to allow any value)"},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\ntcb_status: [Great]\n",
       "f.yaml: tcb_status: \"Great\" is not a TCB status (UpToDate, SWHardeningNeeded, ConfigurationNeeded, "
       "ConfigurationAndSWHardeningNeeded, OutOfDate, ...)"},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\nallow_debug: maybe\n",
       "f.yaml: allow_debug: expected true or false"},
      {"id: prod-web\n",
       "f.yaml: id: \"prod-web\" is not a UUID (8-4-4-4-12 hex digits, e.g. "
       "\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"), as Trust Authority policy ids are; put a human name in "
       "\"name\""},
      {"id: '{3fa85f64-5717-4562-b3fc-2c963f66afa6}'\n",  // Go's uuid.Parse would; C's would not
       "f.yaml: id: \"{3fa85f64-5717-4562-b3fc-2c963f66afa6}\" is not a UUID (8-4-4-4-12 hex digits, e.g. "
       "\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"), as Trust Authority policy ids are; put a human name in "
       "\"name\""},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afaz\n",
       "f.yaml: id: \"3fa85f64-5717-4562-b3fc-2c963f66afaz\" is not a UUID (8-4-4-4-12 hex digits, e.g. "
       "\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"), as Trust Authority policy ids are; put a human name in "
       "\"name\""},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\nmin_seam_svn: 70000\n",
       "f.yaml: min_seam_svn: expected an integer 0..65535 (major << 8 | minor)"},
      {"{\"id\": ",
       "f.yaml: not valid JSON: [json.exception.parse_error.101] parse error at line 1, column 8: syntax error "
       "while parsing value - unexpected end of input; expected '[', '{', or a literal"},
      {"id: [unclosed\n",
       "f.yaml: not valid YAML: line 2, column 1: end of sequence flow not found"},
      {"- a\n- b\n",
       "f.yaml: expected a mapping with at least \"id\""},
      // Found by fuzz_service: a non-UTF-8 byte reached an error message's json dump() and threw.
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\ntcb_status: [UpTo\x9e]\n",
       "f.yaml: line 2, column 14: not valid UTF-8; save the document as UTF-8"},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\n\xff: 1\n",
       "f.yaml: line 2, column 1: not valid UTF-8; save the document as UTF-8"},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\nid: 3fa85f64-5717-4562-b3fc-2c963f66afa7\n",
       "f.yaml: duplicate key \"id\" at line 2"},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\ndescription: \"\\ud800\"\n",
       // yaml-cpp refuses surrogates itself
       "f.yaml: not valid YAML: line 2, column 21: invalid unicode: 55296"},
      {"id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\n- a\n,\n",
       // yaml-cpp would loop on it
       "f.yaml: line 3: a ',' cannot start a value outside [ ] or { }; quote the value"},
  };
  for (const auto& c : cases) {
    auto p = ParsePolicy(c.text, "f.yaml");
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_EQ(p.error(), c.want) << c.text;
  }
}

// The probe's 424-byte "billion laughs": nine levels of nine aliases (9^9 nodes once expanded)
// took the service to 1.7 GB. Policies now have the bounds of every outside document.
std::string AliasBomb() {
  std::string t = "id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    std::string prev(1, char(c - 1));
    t += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 9; ++i) t += (i ? ",*" : "*") + prev;
    t += "]\n";
  }
  return t;
}

TEST(Policy, AliasBombsAreRefusedWithinTheDocumentBounds) {
  auto nodes = ParsePolicy(AliasBomb(), "bomb.yaml");
  ASSERT_FALSE(nodes.ok());
  EXPECT_EQ(nodes.error(), "bomb.yaml: more than 200000 nodes (YAML aliases expand); give a smaller document");
  // Few nodes, each a long scalar: the bound on expanded text (16 MiB) is what stops this one.
  std::string wide = "id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\na: &a " + std::string(4096, 'x') + "\nb: &b [*a";
  for (int i = 1; i < 64; ++i) wide += ",*a";
  wide += "]\nc: &c [*b";
  for (int i = 1; i < 64; ++i) wide += ",*b";
  wide += "]\n";
  ASSERT_LT(wide.size(), 5000u);
  auto bytes = ParsePolicy(wide, "wide.yaml");
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.error(), "wide.yaml: YAML aliases expand to more than 16 MiB of text; give a smaller document");
  // Aliases within the bounds are still YAML.
  auto fine = ParsePolicy("id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\nx: &s [UpToDate, OutOfDate]\n", "f.yaml");
  ASSERT_FALSE(fine.ok());
  EXPECT_EQ(fine.error(), "f.yaml: unknown key \"x\" " + kKnownPolicyKeys);
  auto alias = ParsePolicy("id: &id 3fa85f64-5717-4562-b3fc-2c963f66afa6\ndescription: *id\n", "f.yaml");
  ASSERT_TRUE(alias.ok()) << alias.error();
  EXPECT_EQ(alias->description, "3fa85f64-5717-4562-b3fc-2c963f66afa6");
}

// Ids are UUIDs as Trust Authority's; either case names the same policy (kept in lower case, as
// Intel's clients print them); a human name is metadata.
TEST(Policy, IdIsAUuidInLowerCaseAndNameIsMetadata) {
  auto p = ParsePolicy("id: 3FA85F64-5717-4562-B3FC-2C963F66AFA6\nname: prod-web\n");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->id, "3fa85f64-5717-4562-b3fc-2c963f66afa6");
  EXPECT_EQ(p->name, "prod-web");
  EXPECT_EQ(PolicyToJson(*p)["name"], "prod-web");
  EXPECT_EQ(ParsePolicyId("3fa85f64-5717-4562-b3fc-2c963f66afa").error(),
            "\"3fa85f64-5717-4562-b3fc-2c963f66afa\" is not a UUID (8-4-4-4-12 hex digits, e.g. "
            "\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"), as Trust Authority policy ids are");
  EXPECT_EQ(ParsePolicyId("3fa85f6405717-4562-b3fc-2c963f66afa6").ok(), false);  // a dash moved
}

// Unquoted hex stays text (the core schema would read 0000000000000001 as the integer 1).
TEST(Policy, UnquotedHexDigestsStayHex) {
  auto p = ParsePolicy("id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\nxfam: 0000000000000001\ntd_attributes: [1000000000000000]\n");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(ToHex(p->xfam.at(0)), "0000000000000001");
}

// A refused file is parsed once per content, not on every reload; the previous set stays in force
// until the file is fixed.
TEST(PolicyStore, RefusedFileIsNotParsedAgainWhileUnchanged) {
  TempDir d;
  WriteFile(d.File("a.yaml"), "id: aaaaaaaa-0000-4000-8000-00000000000a\n");
  PolicyStore store(d.path());
  bool changed = false;
  ASSERT_TRUE(store.Reload(&changed).ok());
  EXPECT_TRUE(changed);
  EXPECT_EQ(store.files_parsed(), 1u);
  WriteFile(d.File("bomb.yaml"), AliasBomb());
  const std::string refusal =
      "bomb.yaml: more than 200000 nodes (YAML aliases expand); give a smaller document";
  for (int i = 0; i < 3; ++i) {
    Status s = store.Reload(&changed);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error(), refusal);
    EXPECT_FALSE(changed);
    EXPECT_EQ(store.files_parsed(), 2u) << "reload " << i << " parsed a file again";
    EXPECT_EQ(store.Get()->count("aaaaaaaa-0000-4000-8000-00000000000a"), 1u);
  }
  WriteFile(d.File("bomb.yaml"), "id: bbbbbbbb-0000-4000-8000-00000000000b\n");
  ASSERT_TRUE(store.Reload(&changed).ok());
  EXPECT_TRUE(changed);
  EXPECT_EQ(store.files_parsed(), 3u);  // only the changed file
  EXPECT_EQ(store.Get()->size(), 2u);
  ASSERT_TRUE(store.Reload(&changed).ok());
  EXPECT_FALSE(changed);
  EXPECT_EQ(store.files_parsed(), 3u);
}

// A FIFO named like a policy is refused by name; the reload does not wait for a writer.
TEST(PolicyStore, FifoInThePolicyDirectoryDoesNotHang) {
  TempDir d;
  WriteFile(d.File("a.yaml"), "id: aaaaaaaa-0000-4000-8000-00000000000a\n");
  ASSERT_EQ(mkfifo(d.File("b.yaml").c_str(), 0600), 0);
  auto set = LoadPolicyDirectory(d.path());
  ASSERT_TRUE(set.ok()) << set.error();  // not a regular file: skipped like any other non-policy
  EXPECT_EQ(set->size(), 1u);
}

TEST(Policy, EvaluationGivesOneReasonPerFailedRule) {
  evidence::TdQuoteBody body;
  body.td.mr_td.fill(0x11);
  body.tee_tcb_svn = {6, 1, 3};
  body.td.td_attributes = {1, 0, 0, 0, 0, 0, 0, 0};  // debug
  auto p = ParsePolicy("id: 3fa85f64-5717-4562-b3fc-2c963f66afa6\nmrtd: " + std::string(96, '2') + "\nmin_seam_svn: 263\n");
  ASSERT_TRUE(p.ok()) << p.error();
  auto r = EvaluatePolicy(*p, body, "OutOfDate");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0], "tcb_status: OutOfDate is not allowed (UpToDate)");
  EXPECT_EQ(r[1], "td_attributes: the TD is debuggable (bit 0 set) and allow_debug is false");
  EXPECT_EQ(r[2], "mrtd: " + std::string(96, '1') + " is not an allowed value (" + std::string(96, '2') + ")");
  EXPECT_EQ(r[3], "tdx_seamsvn: 262 is below the minimum 263");
  body.td.td_attributes = {};
  body.td.mr_td.fill(0x22);
  body.tee_tcb_svn[1] = 2;
  EXPECT_TRUE(EvaluatePolicy(*p, body, "UpToDate").empty());
}

TEST(Policy, DirectoryLoadsSkipsHiddenAndRefusesDuplicates) {
  TempDir d;
  WriteFile(d.File("a.yaml"), "id: aaaaaaaa-0000-4000-8000-00000000000a\n");
  WriteFile(d.File("b.json"), R"({"id":"bbbbbbbb-0000-4000-8000-00000000000b"})");
  WriteFile(d.File("notes.txt"), "not a policy");
  WriteFile(d.File(".hidden.yaml"), "id: [broken\n");
  auto set = LoadPolicyDirectory(d.path());
  ASSERT_TRUE(set.ok()) << set.error();
  EXPECT_EQ(set->size(), 2u);
  WriteFile(d.File("c.yml"), "id: aaaaaaaa-0000-4000-8000-00000000000a\n");
  auto dup = LoadPolicyDirectory(d.path());
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error(), "c.yml: id aaaaaaaa-0000-4000-8000-00000000000a is also the id of a.yaml; policy ids must be unique");
  auto missing = LoadPolicyDirectory(d.File("missing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), "policy directory " + d.File("missing") + ": No such file or directory");
}

TEST(Base64, RoundTripsAndRejectsMalformed) {
  for (size_t n = 0; n < 10; ++n) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = uint8_t(i * 37 + 250);
    auto d = Base64Decode(Base64Encode(b), "x");
    ASSERT_TRUE(d.ok()) << d.error();
    EXPECT_EQ(*d, b);
    auto u = Base64UrlDecode(Base64UrlEncode(b), "x");
    ASSERT_TRUE(u.ok()) << u.error();
    EXPECT_EQ(*u, b);
  }
  EXPECT_EQ(Base64Encode(AsBytes("hello")), "aGVsbG8=");
  EXPECT_EQ(Base64Decode("aGVsbG8", "x").error(), "x: not standard base64 (length 7 is not a multiple of 4)");
  EXPECT_EQ(Base64Decode("aGV=bG8=", "x").error(), "x: not standard base64 (bad character at offset 3)");
  EXPECT_EQ(Base64Decode("aGVs bG8", "x").error(), "x: not standard base64 (bad character at offset 4)");
  EXPECT_EQ(Base64Decode("a!==", "tdx.quote").error(), "tdx.quote: not standard base64 (bad character at offset 1)");
  EXPECT_EQ(Base64UrlDecode("a+b/", "x").error(), "x: not base64url (character '+')");
}

// JSON null is absent for every optional field, flat and nested (Python sends null for what the
// caller left unset; Go composite sends runtime_data null).
TEST(AttestRequest, NullMeansAbsentForEveryOptionalField) {
  const std::string optional = R"("runtime_data":null,"user_data":null,"event_log":null,"verifier_nonce":null)";
  const std::string top = R"("policy_ids":null,"policy_must_match":null,"token_signing_alg":null)";
  for (std::string body : {R"({"quote":"AAAA",)" + optional + "," + top + "}",
                           R"({"tdx":{"quote":"AAAA",)" + optional + "}," + top + R"(,"tpm":null,"nvgpu":null})",
                           std::string(R"({"tdx":null,"quote":"AAAA"})")}) {
    auto r = ParseAttestRequest(body);
    ASSERT_TRUE(r.ok()) << body << ": " << r.error();
    EXPECT_EQ(r->quote, Bytes(3, 0));
    EXPECT_TRUE(r->runtime_data.empty() && r->user_data.empty() && r->event_log.empty());
    EXPECT_FALSE(r->verifier_nonce.has_value());
    EXPECT_TRUE(r->policy_ids.empty());
    EXPECT_FALSE(r->policy_must_match);
    EXPECT_EQ(r->alg, JwsAlg::kPS384);
  }
  // URL-safe and standard alphabets decode to the same bytes; ids are kept in lower case.
  auto u = ParseAttestRequest(R"({"tdx":{"quote":"-_-_","runtime_data":"+/+/"},"policy_ids":["3FA85F64-5717-4562-B3FC-2C963F66AFA6"]})");
  ASSERT_TRUE(u.ok()) << u.error();
  EXPECT_EQ(u->quote, u->runtime_data);
  EXPECT_EQ(u->policy_ids, std::vector<std::string>{"3fa85f64-5717-4562-b3fc-2c963f66afa6"});
}

TEST(Binding, ReportDataIsSha512OfValIatRuntimeData) {
  VerifierNonce n{{1, 2}, {3}, {9}};
  Bytes rt = {4, 5};
  Bytes all = {1, 2, 3, 4, 5};
  EXPECT_EQ(BindReportData(&n, rt), ossl::Sha512(all));
  EXPECT_EQ(BindReportData(nullptr, rt), ossl::Sha512(rt));
  EXPECT_EQ(BindReportData(nullptr, {}), evidence::ReportData{});
}

TEST(ClientConfig, IntelKeysOnly) {
  auto c = ParseClientConfig(
      R"({"trustauthority_url":"https://a","trustauthority_api_url":"https://b","trustauthority_api_key":"k"})");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->trustauthority_api_url, "https://b");
  EXPECT_TRUE(ParseClientConfig(R"({"tpm":{}})").ok());  // Intel's key: checked, then unused
  EXPECT_EQ(ParseClientConfig(R"({"cloud_provider":"azure"})").error(), 
            "config: cloud_provider \"azure\" is not supported (Azure vTPM-based TDs are not); remove it");
  EXPECT_EQ(ParseClientConfig(R"({"x":1})").error(), 
            "config: unknown key \"x\" (known: cloud_provider, trustauthority_url, trustauthority_api_url, "
            "trustauthority_api_key, tpm, nvgpu)");
  EXPECT_EQ(ParseClientConfig(R"({"trustauthority_url":1})").error(), "config: trustauthority_url: expected a string");
}

}  // namespace
}  // namespace tdxvirt::service
