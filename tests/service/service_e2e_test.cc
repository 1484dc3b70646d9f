// End to end over loopback: the simulated TD's client gets a nonce, binds it into REPORTDATA,
// attests to the service over a real socket and verifies the token against /certs; then every
// negative path of the issue, each with the error the service must give.
#include <httplib.h>

#include <chrono>
#include <thread>

#include "common/hex.h"
#include "common/openssl.h"
#include "evidence/quote.h"
#include "service_test_util.h"

namespace tdxvirt::service {
namespace {

using namespace testing;
using namespace std::chrono_literals;

struct Raw {
  int status = 0;
  std::string body;
  httplib::Headers headers;
};

Raw Post(const TestService& s, const std::string& path, const std::string& body,
         const std::string& api_key = "test-api-key", httplib::Headers extra = {}) {
  httplib::Client c(s.server->base_url());
  c.set_read_timeout(60, 0);
  httplib::Headers h = {{"x-api-key", api_key}};
  h.insert(extra.begin(), extra.end());
  auto r = c.Post(path.c_str(), h, body, "application/json");
  if (!r) return {-1, httplib::to_string(r.error()), {}};
  return {r->status, r->body, r->headers};
}

Raw Get(const TestService& s, const std::string& path, const std::string& api_key = "test-api-key",
        httplib::Headers extra = {}) {
  httplib::Client c(s.server->base_url());
  c.set_read_timeout(60, 0);
  httplib::Headers h = {{"x-api-key", api_key}};
  h.insert(extra.begin(), extra.end());
  auto r = c.Get(path.c_str(), h);
  if (!r) return {-1, httplib::to_string(r.error()), {}};
  return {r->status, r->body, r->headers};
}

std::string Message(const Raw& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("message") ? j["message"].get<std::string>() : r.body;
}

Result<VerifiedToken> Verify(const TestService& s, const std::string& token,
                             std::map<std::string, nlohmann::json> expect = {}) {
  auto jwks = s.Client().GetCerts();
  if (!jwks.ok()) return Error{jwks.error()};
  VerifyTokenOptions o;
  o.issuer = "tdxvirt Attestation Service";
  o.now = s.now->load();
  o.expected_claims = std::move(expect);
  auto root = ReadFile(F().chain);  // the chain file ends with the Root CA
  o.trusted_root_pem = std::string(AsString(*root));
  return VerifyToken(token, *jwks, o);
}

class ServiceE2e : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(svc_.server); }
  void WritePolicy(const std::string& name, const std::string& text) {
    WriteFile(svc_.policies.File(name), text);
  }
  // Waits (generously) until the service knows policy `id`.
  void WaitForPolicy(const std::string& id) {
    for (int i = 0; i < 600; ++i) {
      auto r = Post(svc_, "/appraisal/v2/attest", R"({"tdx":{"quote":"AAAA"},"policy_ids":[")" + id + "\"]}");
      if (!Contains(Message(r), "unknown policy id")) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "policy " << id << " never loaded";
  }
  nlohmann::json Evidence(const TokenRequestOptions& o = {}, const std::string& td = "") {
    auto client = svc_.Client();
    auto provider = SimProvider(td);
    auto ev = CollectEvidence(client, *provider, o);
    EXPECT_TRUE(ev.ok()) << ev.error();
    return ev.ok() ? *ev : nlohmann::json();
  }

  TestService svc_;
};

TEST_F(ServiceE2e, TokenLoopWithPublicKeyAsRuntimeData) {
  auto pair = CreateRsaKeyPair(2048);
  ASSERT_TRUE(pair.ok()) << pair.error();
  auto der = PublicKeyDerFromPem(pair->public_pem);
  ASSERT_TRUE(der.ok()) << der.error();
  TokenRequestOptions o;
  o.runtime_data = *der;
  o.request_id = "req-1";
  auto client = svc_.Client();
  auto provider = SimProvider();
  auto token = CollectToken(client, *provider, o);
  ASSERT_TRUE(token.ok()) << token.error();

  auto v = Verify(svc_, *token, {{"tdx_is_debuggable", false}, {"attester_tcb_status", "UpToDate"}});
  ASSERT_TRUE(v.ok()) << v.error();
  EXPECT_EQ(v->header["alg"], "PS384");
  EXPECT_EQ(v->header["typ"], "JWT");
  EXPECT_EQ(v->header["kid"], svc_.server->signing_key().kid());
  const auto& c = v->claims;
  EXPECT_EQ(c["ver"], "2.0.0");
  ASSERT_TRUE(c.contains("tdx"));
  EXPECT_EQ(c["tdx"]["attester_held_data"], Base64Encode(*der));
  EXPECT_EQ(c["tdx"]["attester_type"], "TDX");
  EXPECT_EQ(c["tdx"]["dbgstat"], "disabled");
  EXPECT_EQ(c["tdx"]["tdx_mrtd"].get<std::string>().size(), 96u);
  EXPECT_EQ(c["exp"].get<int64_t>() - c["iat"].get<int64_t>(), 300);
  EXPECT_EQ(c["iss"], "tdxvirt Attestation Service");
  // REPORTDATA is SHA-512(val || iat || DER public key).
  auto nonce = NonceFromJson(c["tdx"]["verifier_nonce"], "nonce");
  ASSERT_TRUE(nonce.ok()) << nonce.error();
  EXPECT_EQ(c["tdx"]["tdx_report_data"], ToHex(BindReportData(&*nonce, *der)));
}

TEST_F(ServiceE2e, V1FlatBodyGivesFlatClaimsAndRs256) {
  auto ev = Evidence();
  nlohmann::json flat = ev["tdx"];
  flat["token_signing_alg"] = "RS256";
  auto r = Post(svc_, "/appraisal/v1/attest", flat.dump(), "test-api-key", {{"request-id", "abc 1/2.3_4-5"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers.find("request-id")->second, "abc 1/2.3_4-5");
  EXPECT_FALSE(r.headers.find("trace-id")->second.empty());
  auto token = nlohmann::json::parse(r.body)["token"].get<std::string>();
  auto v = Verify(svc_, token);
  ASSERT_TRUE(v.ok()) << v.error();
  EXPECT_EQ(v->header["alg"], "RS256");
  EXPECT_EQ(v->claims["ver"], "1.0.0");
  EXPECT_FALSE(v->claims.contains("tdx"));
  EXPECT_TRUE(v->claims.contains("tdx_mrtd"));
  EXPECT_TRUE(v->claims.contains("tdx_rtmr3"));
  EXPECT_TRUE(v->claims.contains("verifier_nonce"));
}

TEST_F(ServiceE2e, ReplayedNonceIsRefused) {
  auto ev = Evidence();
  auto first = Post(svc_, "/appraisal/v2/attest", ev.dump());
  ASSERT_EQ(first.status, 200) << first.body;
  auto again = Post(svc_, "/appraisal/v2/attest", ev.dump());
  EXPECT_EQ(again.status, 400);
  EXPECT_EQ(Message(again),
            "verifier_nonce: already used (a nonce is good for one attest request); get a fresh nonce");
}

TEST_F(ServiceE2e, ExpiredNonceIsRefused) {
  auto ev = Evidence();
  auto nonce = NonceFromJson(ev["tdx"]["verifier_nonce"], "nonce");
  ASSERT_TRUE(nonce.ok()) << nonce.error();
  svc_.now->fetch_add(121);
  auto r = Post(svc_, "/appraisal/v2/attest", ev.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Message(r), "verifier_nonce: expired (issued " + std::string(AsString(nonce->iat)) +
                            ", valid for 120 s); get a fresh nonce");
}

TEST_F(ServiceE2e, NonceFromAnotherServiceIsRefused) {
  TestService other({}, /*use_other_key=*/true);
  ASSERT_TRUE(other.server);
  auto client = other.Client();
  auto provider = SimProvider();
  auto ev = CollectEvidence(client, *provider, {});
  ASSERT_TRUE(ev.ok()) << ev.error();
  auto r = Post(svc_, "/appraisal/v2/attest", ev->dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Message(r),
            "verifier_nonce: signature does not verify: the nonce was not issued by this service (or "
            "was altered); get one from GET /appraisal/v2/nonce of this service");
  // A replica with the same signing key accepts it.
  TestService replica;
  ASSERT_TRUE(replica.server);
  auto ev2 = Evidence();
  auto ok = Post(replica, "/appraisal/v2/attest", ev2.dump());
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(ServiceE2e, WrongOrMissingApiKeyIs401) {
  auto r = Get(svc_, "/appraisal/v2/nonce", "wrong-key");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Message(r), "x-api-key: not a valid API key for this service");
  auto m = Get(svc_, "/appraisal/v2/nonce", "");
  EXPECT_EQ(m.status, 401);
  EXPECT_EQ(Message(m), "x-api-key: missing; send the attestation API key");
  auto a = Post(svc_, "/appraisal/v2/attest", Evidence().dump(), "wrong-key");
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(Message(a), "x-api-key: not a valid API key for this service");
  auto client = svc_.Client("wrong-key");
  auto n = client.GetNonce();
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error(), "nonce: HTTP 401: x-api-key: not a valid API key for this service");
  // The key never reaches the log.
  for (const auto& line : svc_.Logs()) EXPECT_FALSE(Contains(line, "wrong-key")) << line;
  for (const auto& line : svc_.Logs()) EXPECT_FALSE(Contains(line, "test-api-key")) << line;
}

TEST_F(ServiceE2e, ReportDataNotBoundIsRefused) {
  auto ev = Evidence();
  ev["tdx"]["runtime_data"] = Base64Encode(AsBytes("not what the quote was made for"));
  auto r = Post(svc_, "/appraisal/v2/attest", ev.dump());
  EXPECT_EQ(r.status, 400);
  // The message shows the first 8 bytes of what the quote holds and of what was expected.
  auto raw = Base64Decode(ev["tdx"]["quote"].get<std::string>(), "quote");
  ASSERT_TRUE(raw.ok());
  auto quote = evidence::ParseQuote(*raw);
  ASSERT_TRUE(quote.ok()) << quote.error();
  auto nonce = NonceFromJson(ev["tdx"]["verifier_nonce"], "nonce");
  ASSERT_TRUE(nonce.ok()) << nonce.error();
  std::string want = ToHex(BindReportData(&*nonce, AsBytes("not what the quote was made for")));
  EXPECT_EQ(Message(r),
            "quote: REPORTDATA is not SHA-512(verifier_nonce.val || verifier_nonce.iat || runtime_data); "
            "the quote was not made for this nonce and runtime_data (REPORTDATA " +
                ToHex(quote->body.report_data).substr(0, 16) + "..., expected " + want.substr(0, 16) +
                "...)");
}

TEST_F(ServiceE2e, TamperedQuoteIsRefused) {
  auto ev = Evidence();
  auto quote = Base64Decode(ev["tdx"]["quote"].get<std::string>(), "quote");
  ASSERT_TRUE(quote.ok());
  (*quote)[48 + 16 + 48 + 48 + 8 + 8 + 8 + 5] ^= 1;  // a byte of MRTD
  ev["tdx"]["quote"] = Base64Encode(*quote);
  auto r = Post(svc_, "/appraisal/v2/attest", ev.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Message(r),
            "quote verification failed: quote_signature: the quote signature does not verify with the "
            "attestation key: header or TD report was altered");
  // Truncated garbage is a parse error, not a crash.
  ev["tdx"]["quote"] = Base64Encode(ByteSpan(quote->data(), 100));
  auto t = Post(svc_, "/appraisal/v2/attest", ev.dump());
  EXPECT_EQ(t.status, 400);
  EXPECT_EQ(Message(t),
            "quote: quote: truncated: field body.mr_seam at offset 64 needs 48 bytes but 36 remain; supply "
            "the complete quote");
}

TEST_F(ServiceE2e, PolicyMismatchesGiveEachReason) {
  WritePolicy("strict.yaml",
              "id: 5712c7a0-0001-4000-8000-000000000001\nversion: v1\nmrtd: " + Hex48('a') + "\ntcb_status: [OutOfDate]\n");
  WritePolicy("any.json", R"({"id": "5712c7a0-0002-4000-8000-000000000002", "tcb_status": ["UpToDate"]})");
  WaitForPolicy("5712c7a0-0001-4000-8000-000000000001");
  WaitForPolicy("5712c7a0-0002-4000-8000-000000000002");
  TokenRequestOptions o;
  o.policy_ids = {"5712c7a0-0001-4000-8000-000000000001", "5712c7a0-0002-4000-8000-000000000002"};
  auto client = svc_.Client();
  auto provider = SimProvider();
  auto token = CollectToken(client, *provider, o);
  ASSERT_TRUE(token.ok()) << token.error();
  auto v = Verify(svc_, *token);
  ASSERT_TRUE(v.ok()) << v.error();
  ASSERT_EQ(v->claims["policy_ids_matched"].size(), 1u);
  EXPECT_EQ(v->claims["policy_ids_matched"][0]["id"], "5712c7a0-0002-4000-8000-000000000002");
  ASSERT_EQ(v->claims["policy_ids_unmatched"].size(), 1u);
  auto reasons = v->claims["policy_ids_unmatched"][0]["reasons"].dump();
  const std::string mrtd_reason =
      "mrtd: " + v->claims["tdx"]["tdx_mrtd"].get<std::string>() + " is not an allowed value (" + Hex48('a') + ")";
  EXPECT_EQ(reasons, nlohmann::json({"tcb_status: UpToDate is not allowed (OutOfDate)", mrtd_reason}).dump());

  // policy_must_match turns a mismatch into 403 with the reasons.
  o.policy_must_match = true;
  auto refused = CollectToken(client, *provider, o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error(), "attest: HTTP 403: policy_must_match: 5712c7a0-0001-4000-8000-000000000001: tcb_status: UpToDate is not allowed "
                             "(OutOfDate); 5712c7a0-0001-4000-8000-000000000001: " + mrtd_reason);

  // A debuggable TD fails a policy unless it allows debug.
  WritePolicy("debug.yaml", "id: 5712c7a0-0003-4000-8000-000000000003\nallow_debug: true\n");
  WaitForPolicy("5712c7a0-0003-4000-8000-000000000003");
  o.policy_ids = {"5712c7a0-0002-4000-8000-000000000002", "5712c7a0-0003-4000-8000-000000000003"};
  auto debug_provider = SimProvider(F().debug_td);
  auto dbg = CollectToken(client, *debug_provider, o);
  ASSERT_FALSE(dbg.ok());
  EXPECT_EQ(dbg.error(), "attest: HTTP 403: policy_must_match: 5712c7a0-0002-4000-8000-000000000002: td_attributes: the TD is debuggable (bit 0 set) "
                         "and allow_debug is false");
  o.policy_ids = {"5712c7a0-0003-4000-8000-000000000003"};
  auto dbg_ok = CollectToken(client, *debug_provider, o);
  ASSERT_TRUE(dbg_ok.ok()) << dbg_ok.error();
  auto dv = Verify(svc_, *dbg_ok, {{"tdx_is_debuggable", true}, {"dbgstat", "enabled"}});
  EXPECT_TRUE(dv.ok()) << dv.error();
}

TEST_F(ServiceE2e, PolicyReloadReplacesChangedFiles) {
  WritePolicy("p.json", R"({"id": "5712c7a0-0011-4000-8000-000000000011"})");
  WaitForPolicy("5712c7a0-0011-4000-8000-000000000011");
  WritePolicy("p.json", R"({"id": "5712c7a0-0012-4000-8000-000000000012"})");
  WaitForPolicy("5712c7a0-0012-4000-8000-000000000012");
  auto r = Post(svc_, "/appraisal/v2/attest", Evidence({.policy_ids = {"5712c7a0-0011-4000-8000-000000000011"}}).dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Message(r), "policy_ids: unknown policy id \"5712c7a0-0011-4000-8000-000000000011\"; this service has 1 policies (see its policy directory)");
  // A broken file keeps the previous set in force.
  WritePolicy("broken.yaml", "id: [not, a, string]\n");
  ASSERT_TRUE(svc_.WaitForLog("policy_reload_error")) << "the broken policy file was never reloaded";
  auto ok = Post(svc_, "/appraisal/v2/attest", Evidence({.policy_ids = {"5712c7a0-0012-4000-8000-000000000012"}}).dump());
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(ServiceE2e, UnknownPolicyIdIsRefused) {
  auto ev = Evidence();
  ev["policy_ids"] = {"5712c7a0-00ff-4000-8000-0000000000ff"};
  auto r = Post(svc_, "/appraisal/v2/attest", ev.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Message(r), "policy_ids: unknown policy id \"5712c7a0-00ff-4000-8000-0000000000ff\"; this service has 0 policies (see its "
                        "policy directory)");
}

TEST_F(ServiceE2e, OversizedBodyIs413) {
  std::string big = R"({"quote":")" + std::string(2 << 20, 'A') + "\"}";
  auto r = Post(svc_, "/appraisal/v2/attest", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(Message(r), "request body: larger than 1048576 bytes") << r.body.substr(0, 200);
}

TEST_F(ServiceE2e, MalformedBodiesNameTheField) {
  struct Case {
    std::string body, want;
  } cases[] = {
      {"{not json", "request body: malformed JSON"},
      {"[]", "request body: expected a JSON object"},
      {R"({"tdx":{}})", "tdx.quote: missing; send the TD quote in base64"},
      {R"({"quote":"@@@@"})", "quote: not standard base64 (bad character at offset 0)"},
      {R"({"quote":"AAAA","surprise":1})", "request body: unknown field \"surprise\""},
      {R"({"tdx":{"quote":"AAAA"},"token_signing_alg":"HS256"})",
       "token_signing_alg: \"HS256\" is not supported; use PS384 or RS256"},
      {R"({"tdx":{"quote":"AAAA","verifier_nonce":{"val":"AAAA"}}})",
       "tdx.verifier_nonce: val, iat and signature are all required (as returned by GET /appraisal/v2/nonce)"},
      {R"({"tpm":{}})", "tpm: this service appraises TDX evidence only; omit \"tpm\""},
  };
  for (const auto& c : cases) {
    auto r = Post(svc_, "/appraisal/v2/attest", c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_EQ(Message(r), c.want) << c.body;
  }
}

TEST_F(ServiceE2e, TamperedTokenIsRefused) {
  auto client = svc_.Client();
  auto provider = SimProvider();
  auto token = CollectToken(client, *provider, {});
  ASSERT_TRUE(token.ok()) << token.error();
  auto jwks = client.GetCerts();
  ASSERT_TRUE(jwks.ok());
  // Change one claim: the payload no longer matches the signature.
  size_t d1 = token->find('.'), d2 = token->rfind('.');
  auto payload = Base64UrlDecode(token->substr(d1 + 1, d2 - d1 - 1), "p");
  auto claims = nlohmann::json::parse(AsString(*payload));
  claims["tdx"]["tdx_is_debuggable"] = true;
  std::string forged = token->substr(0, d1 + 1) + Base64UrlEncode(AsBytes(claims.dump())) + token->substr(d2);
  VerifyTokenOptions o;
  o.now = svc_.now->load();
  auto v = VerifyToken(forged, *jwks, o);
  ASSERT_FALSE(v.ok());
  const std::string kid = svc_.server->signing_key().kid();
  EXPECT_EQ(v.error(), "token signature: does not verify with JWKS key " + kid);
  auto err = [&](const std::string& t, const std::string& keys) {
    auto r = VerifyToken(t, keys, o);
    return r.ok() ? std::string("(valid)") : r.error();
  };
  // Expired, wrong issuer, wrong expected claim, alg none.
  o.now += 301;
  EXPECT_EQ(err(*token, *jwks), "token: expired at exp=" + std::to_string(claims["exp"].get<int64_t>()) +
                                    " (now " + std::to_string(o.now) + "); get a new token");
  o.now -= 301;
  o.issuer = "someone else";
  EXPECT_EQ(err(*token, *jwks), "token: iss is \"tdxvirt Attestation Service\", expected \"someone else\"");
  o.issuer.clear();
  o.expected_claims["tdx_mrtd"] = Hex48('1');
  EXPECT_EQ(err(*token, *jwks), "claim tdx_mrtd: is \"" + claims["tdx"]["tdx_mrtd"].get<std::string>() +
                                    "\", expected \"" + Hex48('1') + "\"");
  o.expected_claims.clear();
  std::string none = Base64UrlEncode(AsBytes(R"({"alg":"none","kid":"x"})")) + token->substr(d1);
  EXPECT_EQ(err(none, *jwks), "token header: alg \"none\" refused (only PS384 and RS256 are accepted)");
  // A JWKS from another service does not verify it.
  TestService other({}, true);
  auto other_jwks = other.Client().GetCerts();
  ASSERT_TRUE(other_jwks.ok());
  EXPECT_EQ(err(*token, *other_jwks), "token header: kid " + kid + " is not in the JWKS");
}

TEST_F(ServiceE2e, OperationsEndpointsAndLogs) {
  EXPECT_EQ(Get(svc_, "/healthz").status, 200);
  EXPECT_EQ(Get(svc_, "/readyz").status, 200);
  auto certs = Get(svc_, "/certs", "");
  ASSERT_EQ(certs.status, 200);
  auto jwks = nlohmann::json::parse(certs.body);
  ASSERT_EQ(jwks["keys"].size(), 2u);  // the key once per algorithm, as Intel's C fixture
  EXPECT_EQ(jwks["keys"][0]["kid"], svc_.server->signing_key().kid());
  EXPECT_EQ(jwks["keys"][0]["alg"], "PS384");
  EXPECT_EQ(jwks["keys"][1]["kid"], svc_.server->signing_key().kid());
  EXPECT_EQ(jwks["keys"][1]["alg"], "RS256");
  EXPECT_EQ(jwks["keys"][0]["x5c"].size(), 3u);
  auto ev = Evidence();
  ASSERT_EQ(Post(svc_, "/appraisal/v2/attest", ev.dump()).status, 200);
  Post(svc_, "/appraisal/v2/attest", ev.dump());  // replay: a nonce outcome
  auto m = Get(svc_, "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_TRUE(Contains(m.body, "tdxvirt_attestation_requests_total{endpoint=\"attest\",outcome=\"ok\"} 1"))
      << m.body;
  EXPECT_TRUE(Contains(m.body, "tdxvirt_attestation_requests_total{endpoint=\"attest\",outcome=\"nonce\"} 1"))
      << m.body;
  EXPECT_TRUE(Contains(m.body, "tdxvirt_attestation_verify_seconds_count 1")) << m.body;
  EXPECT_EQ(Get(svc_, "/nope").status, 404);
  auto bad_id = Get(svc_, "/appraisal/v2/nonce", "test-api-key", {{"request-id", "bad\x01id"}});
  EXPECT_EQ(bad_id.status, 400);
  EXPECT_EQ(Message(bad_id), "request: bad value");
  // Every request logged as one JSON object; no nonce, quote or token in them.
  std::string quote_b64 = ev["tdx"]["quote"].get<std::string>().substr(0, 40);
  std::string nonce_val = ev["tdx"]["verifier_nonce"]["val"].get<std::string>();
  std::vector<std::string> requests;
  for (const auto& line : svc_.Logs()) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    if (j["event"] == "request")
      requests.push_back(j["path"].get<std::string>() + " " + std::to_string(j["status"].get<int>()));
    EXPECT_FALSE(Contains(line, quote_b64)) << line;
    EXPECT_FALSE(Contains(line, nonce_val)) << line;
  }
  // Every response with its real status, probes and the server's own 404 included.
  EXPECT_EQ(requests, (std::vector<std::string>{
                          "/healthz 200", "/readyz 200", "/certs 200", "/appraisal/v2/nonce 200",
                          "/appraisal/v2/attest 200", "/appraisal/v2/attest 400", "/metrics 200",
                          "/nope 404", "/appraisal/v2/nonce 400"}));
  EXPECT_TRUE(Contains(Get(svc_, "/metrics").body, "tdxvirt_attestation_responses_total{code=\"404\"} 1"));
  svc_.server->Stop();
  EXPECT_FALSE(svc_.server->ready());
}

TEST(ServiceHttps, TokenOverTlsWithCaFile) {
  TempDir d;
  SigningKeyOptions so;
  so.common_name = "127.0.0.1";
  so.subject_alt_names = "IP:127.0.0.1,DNS:localhost";
  so.key_bits = 2048;
  auto tls = CreateSigningKeyPem(so);
  ASSERT_TRUE(tls.ok()) << tls.error();
  WriteFile(d.File("tls.key"), tls->first);
  WriteFile(d.File("tls.pem"), tls->second);
  ServerOptions o;
  o.tls_cert_path = d.File("tls.pem");
  o.tls_key_path = d.File("tls.key");
  TestService svc(o);
  ASSERT_TRUE(svc.server);
  EXPECT_EQ(svc.server->base_url().rfind("https://", 0), 0u);
  auto cfg = svc.Config();
  cfg.allow_http = false;
  // Without the CA: the certificate is refused.
  auto untrusted = TrustAuthorityClient::Create(cfg);
  ASSERT_TRUE(untrusted.ok());
  auto untrusted_nonce = untrusted->GetNonce();
  ASSERT_FALSE(untrusted_nonce.ok());
  EXPECT_EQ(untrusted_nonce.error(), "nonce: " + svc.server->base_url() + "/appraisal/v2/nonce: SSLServerVerification");
  cfg.ca_file = d.File("tls.pem");
  auto client = TrustAuthorityClient::Create(cfg);
  ASSERT_TRUE(client.ok());
  auto provider = SimProvider();
  auto token = CollectToken(*client, *provider, {});
  ASSERT_TRUE(token.ok()) << token.error();
  // http:// is refused unless allowed.
  cfg.trustauthority_api_url = "http://127.0.0.1:1";
  auto refused = TrustAuthorityClient::Create(cfg);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error(), "trustauthority_api_url: \"http://127.0.0.1:1\" must be an https:// URL (plain "
                             "http only with --allow-http, for loopback tests)");
}

}  // namespace
}  // namespace tdxvirt::service
