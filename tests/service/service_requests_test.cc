// Requests as Intel's clients and Trustee send them, over a real socket (ita-ecosystem.md §2):
// null for absent, the C client's URL-safe base64, empty runtime_data, policy_ids [] and
// policy_must_match always; UUID policy ids; the nonce's fate after a retryable failure (Intel's
// retry behaviour: docs/service.md "Retries"); 405; the per-API-key rate limit; and the token's
// claims compared with a real Trust Authority TDX token.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "common/hex.h"
#include "common/openssl.h"
#include "replay/redis_test_server.h"
#include "replay/replay_store.h"
#include "service/rate_limit.h"
#include "service_test_util.h"
#include "simulator/pcs.h"

namespace tdxvirt::service {
namespace {

using namespace testing;
using nlohmann::json;

struct Reply {
  int status = 0;
  std::string body;
  httplib::Headers headers;
  std::string Message() const {
    auto j = json::parse(body, nullptr, false);
    return j.is_object() && j.contains("message") ? j["message"].get<std::string>() : body;
  }
  // The token's claims (signature not checked here; the e2e tests verify tokens).
  json Claims() const {
    auto j = json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("token")) return json();
    std::string t = j["token"];
    size_t a = t.find('.'), b = t.find('.', a + 1);
    auto payload = Base64UrlDecode(t.substr(a + 1, b - a - 1), "payload");
    return payload.ok() ? json::parse(AsString(*payload), nullptr, false) : json();
  }
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

Reply Send(const std::string& base_url, const std::string& method, const std::string& path,
           const std::string& body = "", const std::string& api_key = "test-api-key") {
  httplib::Client c(base_url);
  c.set_read_timeout(60, 0);
  httplib::Headers h = {{"x-api-key", api_key}};
  httplib::Result r = method == "GET"    ? c.Get(path.c_str(), h)
                      : method == "POST" ? c.Post(path.c_str(), h, body, "application/json")
                                         : c.Put(path.c_str(), h, body, "application/json");
  if (!r) return {-1, httplib::to_string(r.error()), {}};
  return {r->status, r->body, r->headers};
}
Reply Post(const TestService& s, const std::string& path, const json& body) {
  return Send(s.server->base_url(), "POST", path, body.dump());
}

std::string UrlSafe(std::string b64) {
  for (char& c : b64) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return b64;
}

// What a client holds before it builds a body: the service's nonce (as JSON, the three base64
// strings) and a quote whose REPORTDATA binds that nonce and `runtime_data`.
struct Made {
  json nonce;
  std::string quote;  // standard base64
  Bytes quote_bytes;
};
Made MakeEvidence(const TestService& s, ByteSpan runtime_data, bool with_nonce = true) {
  Made m;
  VerifierNonce n;
  if (with_nonce) {
    auto r = Send(s.server->base_url(), "GET", "/appraisal/v2/nonce");
    EXPECT_EQ(r.status, 200) << r.body;
    m.nonce = json::parse(r.body);
    auto parsed = NonceFromJson(m.nonce, "nonce");
    EXPECT_TRUE(parsed.ok()) << parsed.error();
    n = *parsed;
  }
  auto provider = SimProvider();
  auto q = provider->GetQuote(BindReportData(with_nonce ? &n : nullptr, runtime_data));
  EXPECT_TRUE(q.ok()) << q.error();
  m.quote_bytes = *q;
  m.quote = Base64Encode(*q);
  return m;
}

const std::string kPolicyA = "4f2a7c1e-0b6d-4e3a-9c85-1d2e3f4a5b6c";

class ServiceRequests : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(svc_.policies.File("a.yaml"), "id: " + kPolicyA + "\nname: up-to-date\ntcb_status: [UpToDate]\n");
    // The Go connector's composite fixture names the nil UUID.
    WriteFile(svc_.policies.File("nil.yaml"),
              "id: 00000000-0000-0000-0000-000000000000\nname: go-fixture\ntcb_status: [UpToDate]\n");
    ASSERT_TRUE(svc_.server);
    for (int i = 0; i < 600 && svc_.server->MetricsText().find("tdxvirt_attestation_policies 2\n") ==
                                   std::string::npos;
         ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_NE(svc_.server->MetricsText().find("tdxvirt_attestation_policies 2\n"), std::string::npos);
  }
  TestService svc_;
};

// ---- 1. body shapes, one per client ----

TEST_F(ServiceRequests, EveryClientsBodyShapeGetsAToken) {
  // Bytes whose base64 has '+' and '/' (so the URL-safe form differs), as an RSA key would.
  static const char kKey[] = "\x01\x00\x01\x00 an RSA public key would be here \xfb\xff\xfe\xfb";
  std::string key_text(kKey, sizeof kKey - 1);
  Bytes key_data(key_text.begin(), key_text.end());
  struct Shape {
    std::string client, path;
    json body;
    json expect_held_data;  // attester_held_data in the token, or null for none
  };
  std::vector<Shape> shapes;
  {  // Go GetToken (flat): omitempty, so what is empty is absent.
    Made m = MakeEvidence(svc_, key_data);
    shapes.push_back({"go flat", "/appraisal/v1/attest",
                      {{"quote", m.quote}, {"verifier_nonce", m.nonce}, {"runtime_data", Base64Encode(key_data)},
                       {"policy_ids", {kPolicyA}}, {"token_signing_alg", "RS256"}, {"policy_must_match", true}},
                      Base64Encode(key_data)});
  }
  {  // Go composite (tdx-cli token): runtime_data has no omitempty, so null without user data.
    Made m = MakeEvidence(svc_, {});
    shapes.push_back({"go composite", "/appraisal/v2/attest",
                      {{"policy_ids", {kPolicyA}}, {"policy_must_match", true},
                       {"tdx", {{"runtime_data", nullptr}, {"quote", m.quote}, {"verifier_nonce", m.nonce}}}},
                      nullptr});
  }
  {  // The Go connector's composite fixture: the adapter's object ("test" there) is "tdx" here;
     // no nonce, user_data sent but not bound.
    std::ifstream f(tdxvirt::testing::TestdataPath("ita/go-connector-composite-evidence-expected.json"));
    json fixture = json::parse(f);
    ASSERT_TRUE(fixture.contains("test"));
    json body = fixture;
    body.erase("test");
    Made m = MakeEvidence(svc_, {}, /*with_nonce=*/false);
    body["tdx"] = fixture["test"];
    body["tdx"]["quote"] = m.quote;
    shapes.push_back({"go fixture", "/appraisal/v2/attest", body, nullptr});
  }
  {  // Python get_token (v1): null for every argument the caller left unset.
    Made m = MakeEvidence(svc_, {});
    shapes.push_back({"python v1", "/appraisal/v1/attest",
                      {{"quote", m.quote}, {"verifier_nonce", m.nonce}, {"runtime_data", nullptr},
                       {"policy_ids", nullptr}, {"token_signing_alg", nullptr}, {"policy_must_match", nullptr}},
                      nullptr});
  }
  {  // pycli attest (v2): runtime_data "" without -u, policy_must_match false.
    Made m = MakeEvidence(svc_, {});
    shapes.push_back({"python v2", "/appraisal/v2/attest",
                      {{"policy_ids", nullptr}, {"token_signing_alg", nullptr}, {"policy_must_match", false},
                       {"tdx", {{"quote", m.quote}, {"verifier_nonce", m.nonce}, {"runtime_data", ""}}}},
                      nullptr});
  }
  {  // C v1: policy_ids [] and policy_must_match always.
    Made m = MakeEvidence(svc_, key_data);
    shapes.push_back({"c v1", "/appraisal/v1/attest",
                      {{"quote", m.quote}, {"verifier_nonce", m.nonce}, {"runtime_data", Base64Encode(key_data)},
                       {"policy_must_match", false}, {"policy_ids", json::array()}},
                      Base64Encode(key_data)});
  }
  {  // C v2: quote, runtime_data and user_data URL-safe with padding, the nonce standard.
    Made m = MakeEvidence(svc_, key_data);
    std::string q = UrlSafe(m.quote), rd = UrlSafe(Base64Encode(key_data));
    EXPECT_NE(q.find_first_of("-_"), std::string::npos) << "the quote must exercise the URL-safe alphabet";
    EXPECT_NE(rd.find_first_of("-_"), std::string::npos);
    EXPECT_EQ(rd.back(), '=');
    shapes.push_back({"c v2", "/appraisal/v2/attest",
                      {{"tdx", {{"quote", q}, {"runtime_data", rd}, {"user_data", UrlSafe(Base64Encode(key_data))},
                                {"verifier_nonce", m.nonce}}},
                       {"policy_must_match", false}, {"policy_ids", json::array()}},
                      Base64Encode(key_data)});
  }
  {  // Trustee's ITA plugin: no verifier_nonce; runtime_data is the base64 of its JSON challenge.
    std::string challenge = R"({"tee-pubkey":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},"nonce":"bm9uY2U=","additional-evidence":""})";
    Made m = MakeEvidence(svc_, AsBytes(challenge), /*with_nonce=*/false);
    shapes.push_back({"trustee", "/appraisal/v2/attest",
                      {{"policy_ids", {kPolicyA}}, {"policy_must_match", true},
                       {"tdx", {{"quote", m.quote}, {"runtime_data", Base64Encode(AsBytes(challenge))}}}},
                      Base64Encode(AsBytes(challenge))});
  }
  for (const auto& s : shapes) {
    SCOPED_TRACE(s.client);
    auto r = Post(svc_, s.path, s.body);
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) continue;
    json c = r.Claims();
    ASSERT_TRUE(c.is_object()) << r.body;
    const json& tdx = s.path.find("/v1/") != std::string::npos ? c : c["tdx"];
    EXPECT_EQ(tdx["attester_type"], "TDX");
    if (s.expect_held_data.is_null())
      EXPECT_FALSE(tdx.contains("attester_held_data")) << tdx.dump();
    else
      EXPECT_EQ(tdx["attester_held_data"], s.expect_held_data);
  }
  // The fixture's RS256 and the nil-UUID policy made it into the token.
  auto fixture_token = json::parse(Post(svc_, "/appraisal/v2/attest", shapes[2].body).body);
  ASSERT_TRUE(fixture_token.contains("token"));
  auto header = Base64UrlDecode(fixture_token["token"].get<std::string>().substr(
                                    0, fixture_token["token"].get<std::string>().find('.')),
                                "header");
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(json::parse(AsString(*header))["alg"], "RS256");
  // Trustee reads the TEE key at /tdx/attester_runtime_data/tee-pubkey.
  auto trustee = Post(svc_, "/appraisal/v2/attest", shapes[7].body).Claims();
  EXPECT_EQ(trustee[json::json_pointer("/tdx/attester_runtime_data/tee-pubkey/kty")], "EC");
  EXPECT_EQ(trustee["policy_ids_matched"][0]["id"], kPolicyA);
}

TEST_F(ServiceRequests, RefusalsForPolicyIdsAndBase64Alphabets) {
  Made m = MakeEvidence(svc_, {}, false);
  auto attest = [&](json extra) {
    json b = {{"tdx", {{"quote", m.quote}}}};
    b.update(extra);
    return Post(svc_, "/appraisal/v2/attest", b);
  };
  auto r = attest({{"policy_ids", {kPolicyA, "prod-web"}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Message(),
            "policy_ids[1]: \"prod-web\" is not a UUID (8-4-4-4-12 hex digits, e.g. "
            "\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"), as Trust Authority policy ids are");
  json eleven = json::array();
  for (int i = 0; i < 11; ++i) eleven.push_back(kPolicyA);
  r = attest({{"policy_ids", eleven}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Message(), "policy_ids: 11 ids; at most 10 per request (Trust Authority's limit)");
  // Upper case names the same policy; the token carries the id in lower case.
  std::string upper = kPolicyA;
  for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
  r = attest({{"policy_ids", {upper}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Claims()["policy_ids_matched"][0]["id"], kPolicyA);
  // One value, one alphabet.
  json b = {{"tdx", {{"quote", m.quote}, {"runtime_data", "ab-/"}}}};
  r = Post(svc_, "/appraisal/v2/attest", b);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Message(), "tdx.runtime_data: mixes the standard (+ /) and URL-safe (- _) base64 alphabets; use one");
  b["tdx"]["runtime_data"] = "ab-";
  r = Post(svc_, "/appraisal/v2/attest", b);
  EXPECT_EQ(r.Message(), "tdx.runtime_data: not URL-safe base64 (length 3 is not a multiple of 4)");
  // null is absent, but a wrong type is still refused by name.
  b["tdx"].erase("runtime_data");
  b["policy_must_match"] = "yes";
  EXPECT_EQ(Post(svc_, "/appraisal/v2/attest", b).Message(), "policy_must_match: expected true or false");
}

// ---- 3. nonces and retries ----
//
// Intel's clients resend the identical body on 500, 503 and 504 (Go: 2 more tries after 2 s and
// 4 s; Python: 1 more after 2 s; C: retry_max more after retry_wait_time): docs/service.md
// "Retries". The nonce must survive a failure that is ours.

std::unique_ptr<simulator::SimPcsServer> PcsOn(int port) {
  auto platform = simulator::SimPlatform::Load(F().sim_dir);
  EXPECT_TRUE(platform.ok()) << platform.error();
  auto pcs = std::make_unique<simulator::SimPcsServer>(std::move(*platform));
  auto p = pcs->Start("127.0.0.1", port);
  EXPECT_TRUE(p.ok()) << p.error();
  return pcs;
}

void RetryAfterCollateral503Succeeds(std::shared_ptr<replay::ReplayStore> store) {
  // A PCS that is down for the first request and back for the retry (same port).
  auto probe = PcsOn(0);
  std::string pcs_url = probe->base_url();
  int port = std::stoi(pcs_url.substr(pcs_url.rfind(':') + 1));
  probe->Stop();
  TempDir cache;
  ServerOptions o;
  o.pcs.base_url = pcs_url;
  o.pcs.cache_dir = cache.path();
  o.pcs.retry.max_attempts = 1;
  o.appraisal.replay_store = store;
  TestService svc(std::move(o));
  ASSERT_TRUE(svc.server);
  Made m = MakeEvidence(svc, {});
  std::string body = json{{"tdx", {{"quote", m.quote}, {"verifier_nonce", m.nonce}}}}.dump();
  auto first = Send(svc.server->base_url(), "POST", "/appraisal/v2/attest", body);
  ASSERT_EQ(first.status, 503) << first.body;
  EXPECT_EQ(first.Message(), "fetching collateral for FMSPC 00a06f000000 (platform CA): GET " + pcs_url +
                                 "/tdx/certification/v4/tcb?fmspc=00a06f000000: cannot connect");
  auto pcs = PcsOn(port);
  auto retry = Send(svc.server->base_url(), "POST", "/appraisal/v2/attest", body);  // identical
  ASSERT_EQ(retry.status, 200) << retry.body;
  // Used now: the token consumed it.
  auto again = Send(svc.server->base_url(), "POST", "/appraisal/v2/attest", body);
  EXPECT_EQ(again.status, 400);
  EXPECT_EQ(again.Message(), "verifier_nonce: already used (a nonce is good for one attest request); get a fresh nonce");
}

TEST(ServiceRetries, IdenticalRetryAfterA503SucceedsInMemory) {
  RetryAfterCollateral503Succeeds(nullptr);
}

TEST(ServiceRetries, IdenticalRetryAfterA503SucceedsWithRedis) {
  SKIP_WITHOUT_REDIS_SERVER();
  tdxvirt::testing::RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  auto url = replay::ParseRedisUrl(redis.url());
  ASSERT_TRUE(url.ok());
  replay::RedisOptions ro;
  ro.url = *url;
  ro.retry_interval = std::chrono::milliseconds(0);
  std::shared_ptr<replay::ReplayStore> store = replay::NewRedisReplayStore(ro);
  ASSERT_TRUE(store->Connect(int64_t(std::time(nullptr))).ok());
  RetryAfterCollateral503Succeeds(store);
}

TEST(ServiceRetries, AClientErrorUsesTheNonceUp) {
  TestService svc;
  ASSERT_TRUE(svc.server);
  Bytes data = {'b', 'o', 'u', 'n', 'd'};
  Made m = MakeEvidence(svc, data);
  // The wrong runtime_data: REPORTDATA does not match, 400, which no retry can change.
  json wrong = {{"tdx", {{"quote", m.quote}, {"verifier_nonce", m.nonce}, {"runtime_data", Base64Encode(AsBytes("other"))}}}};
  auto r = Post(svc, "/appraisal/v2/attest", wrong);
  ASSERT_EQ(r.status, 400);
  json right = wrong;
  right["tdx"]["runtime_data"] = Base64Encode(data);
  auto after = Post(svc, "/appraisal/v2/attest", right);
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(after.Message(), "verifier_nonce: already used (a nonce is good for one attest request); get a fresh nonce");
}

TEST(ServiceRetries, TwoConcurrentIdenticalRequestsGetOneToken) {
  TestService svc;
  ASSERT_TRUE(svc.server);
  for (int round = 0; round < 5; ++round) {
    Made m = MakeEvidence(svc, {});
    std::string body = json{{"tdx", {{"quote", m.quote}, {"verifier_nonce", m.nonce}}}}.dump();
    Reply a, b;
    std::thread t([&] { a = Send(svc.server->base_url(), "POST", "/appraisal/v2/attest", body); });
    b = Send(svc.server->base_url(), "POST", "/appraisal/v2/attest", body);
    t.join();
    int tokens = (a.status == 200) + (b.status == 200);
    EXPECT_EQ(tokens, 1) << a.body << "\n" << b.body;
    const Reply& loser = a.status == 200 ? b : a;
    EXPECT_EQ(loser.status, 400);
    EXPECT_EQ(loser.Message(), "verifier_nonce: already used (a nonce is good for one attest request); get a fresh nonce");
  }
}

// ---- 4. 405 ----

TEST_F(ServiceRequests, WrongMethodOnAKnownPathIs405WithAllow) {
  auto r = Send(svc_.server->base_url(), "GET", "/appraisal/v2/attest");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "POST");
  EXPECT_EQ(r.Message(), "GET /appraisal/v2/attest: use POST");
  r = Send(svc_.server->base_url(), "PUT", "/appraisal/v1/nonce", "{}");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "GET");
  EXPECT_EQ(r.Message(), "PUT /appraisal/v1/nonce: use GET");
  r = Send(svc_.server->base_url(), "POST", "/certs", "{}");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "GET");
  EXPECT_EQ(Send(svc_.server->base_url(), "GET", "/appraisal/v3/attest").status, 404);
}

// ---- 5. rate limit ----

TEST(RateLimit, ParsesTheFlag) {
  auto r = ParseRateLimit("1000/300");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->requests, 1000u);
  EXPECT_EQ(r->seconds, 300);
  const std::string form = "\": expected REQUESTS/SECONDS per API key, e.g. 1000/300 (REQUESTS 1..1000000, SECONDS 1..86400)";
  for (std::string bad : {"10", "0/1", "10/0", "10/86401", "a/1", "1/1s", "-1/1", "/1", "1/"})
    EXPECT_EQ(ParseRateLimit(bad).error(), "--rate-limit \"" + bad + form) << bad;
}

TEST(RateLimit, BucketRefillsAndMemoryIsBounded) {
  RateLimiter l({3, 60}, /*max_keys=*/2);
  constexpr int64_t t = 1'800'000'000;
  EXPECT_EQ(l.Take("k1", t), 0);
  EXPECT_EQ(l.Take("k1", t), 0);
  EXPECT_EQ(l.Take("k1", t), 0);
  EXPECT_EQ(l.Take("k1", t), 20);  // one request per 20 s on average
  EXPECT_EQ(l.Take("k1", t + 19), 1);
  EXPECT_EQ(l.Take("k1", t + 20), 0);
  EXPECT_EQ(l.Take("k2", t + 20), 0);
  // Full (2 keys, neither refilled): new keys share one overflow bucket, nothing grows.
  EXPECT_EQ(l.Take("k3", t + 20), 0);
  EXPECT_EQ(l.Take("k4", t + 20), 0);
  EXPECT_EQ(l.Take("k5", t + 20), 0);
  EXPECT_GT(l.Take("k6", t + 20), 0);
  EXPECT_EQ(l.keys(), 2u);
  // Refilled buckets are dropped to make room.
  EXPECT_EQ(l.Take("k7", t + 200), 0);
  EXPECT_EQ(l.keys(), 1u);
}

// The header alone, then the response, with a receive watchdog: 429 arrives without a body byte.
std::string HeaderOnlyExchange(int port, const std::string& head) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "connect failed";
  }
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  std::string got;
  char buf[4096];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, size_t(n));
  }
  close(fd);
  return got;
}

TEST(ServiceRateLimit, PerApiKey429WithRetryAfterBeforeTheBody) {
  ServerOptions o;
  o.api_keys = {"test-api-key", "other-key"};
  o.rate_limit = {2, 60};
  TestService svc(std::move(o));
  ASSERT_TRUE(svc.server);
  std::string url = svc.server->base_url();
  EXPECT_EQ(Send(url, "GET", "/appraisal/v2/nonce").status, 200);
  EXPECT_EQ(Send(url, "GET", "/appraisal/v1/nonce").status, 200);
  auto r = Send(url, "GET", "/appraisal/v2/nonce");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Header("Retry-After"), "30");
  EXPECT_EQ(r.Message(), "x-api-key: more than 2 requests in 60 s with this API key; retry after 30 s");
  // Another key has its own budget; endpoints without a key (certs, probes) are not limited.
  EXPECT_EQ(Send(url, "GET", "/appraisal/v2/nonce", "", "other-key").status, 200);
  EXPECT_EQ(Send(url, "GET", "/certs").status, 200);
  // Checked on the header: a 1 MB attest body that never comes is refused at once.
  std::string head = "POST /appraisal/v2/attest HTTP/1.1\r\nHost: t\r\nx-api-key: test-api-key\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";
  std::string got = HeaderOnlyExchange(svc.server->port(), head);
  EXPECT_TRUE(got.starts_with("HTTP/1.1 429 ")) << got;
  EXPECT_NE(got.find("Retry-After: 30\r\n"), std::string::npos) << got;
  // The bucket refills with the (test) clock.
  *svc.now += 30;
  EXPECT_EQ(Send(url, "GET", "/appraisal/v2/nonce").status, 200);
  EXPECT_EQ(Send(url, "GET", "/appraisal/v2/nonce").status, 429);
  EXPECT_NE(svc.server->MetricsText().find("tdxvirt_attestation_rate_limited_total 3\n"), std::string::npos)
      << svc.server->MetricsText();
  ASSERT_TRUE(svc.WaitForLog("\"rate_limited\""));
  for (const auto& line : svc.Logs()) EXPECT_EQ(line.find("test-api-key"), std::string::npos) << line;
}

// ---- 6. claims like Trust Authority's ----

// Every claim of the ITA pilot's v1 TDX token is in ours with the same JSON type; tdx_collateral
// has the same seven 64-hex hashes.
TEST_F(ServiceRequests, V1ClaimsHaveTheRealTokensNamesAndTypes) {
  std::ifstream f(tdxvirt::testing::TestdataPath("ita/kbs-pilot-tdx-token.payload.json"));
  json intel = json::parse(f);
  Bytes key_data(388, 0x5a);
  Made m = MakeEvidence(svc_, key_data);
  auto r = Post(svc_, "/appraisal/v1/attest",
                {{"quote", m.quote}, {"verifier_nonce", m.nonce}, {"runtime_data", Base64Encode(key_data)}});
  ASSERT_EQ(r.status, 200) << r.body;
  json ours = r.Claims();
  // Deliberate differences: none in names or types. (Values differ: iss is this service's,
  // eat_profile Intel's public profile, verifier_instance_ids one UUID per service.)
  for (auto it = intel.begin(); it != intel.end(); ++it) {
    SCOPED_TRACE(it.key());
    ASSERT_TRUE(ours.contains(it.key())) << ours.dump();
    EXPECT_EQ(std::string(ours[it.key()].type_name()), std::string(it.value().type_name()));
  }
  ASSERT_EQ(ours["tdx_collateral"].size(), intel["tdx_collateral"].size());
  for (auto it = intel["tdx_collateral"].begin(); it != intel["tdx_collateral"].end(); ++it) {
    ASSERT_TRUE(ours["tdx_collateral"].contains(it.key())) << it.key();
    EXPECT_EQ(ours["tdx_collateral"][it.key()].get<std::string>().size(), 64u) << it.key();
  }
  EXPECT_EQ(ours["tdx_collateral"]["quotehash"], ToHex(ossl::Sha256(m.quote_bytes)));
  EXPECT_EQ(ours["tdx_collateral"]["qeidcerthash"], ours["tdx_collateral"]["tcbinfocerthash"]);
  EXPECT_EQ(ours["tdx_collateral"]["qeidcrlhash"], ours["tdx_collateral"]["tcbinfocrlhash"]);
  EXPECT_EQ(ours["ver"], "1.0.0");
  EXPECT_EQ(ours["intuse"], "generic");
  EXPECT_EQ(ours["verifier_nonce"], m.nonce);
  for (const char* k : {"jti"}) {
    std::string v = ours[k];
    EXPECT_TRUE(ParsePolicyId(v).ok()) << k << " " << v;  // a UUID
  }
  EXPECT_TRUE(ParsePolicyId(ours["verifier_instance_ids"][0].get<std::string>()).ok());
  // Absent like in the real token when no policy was asked for and there are no advisories.
  for (const char* k : {"policy_ids_matched", "policy_ids_unmatched", "policy_defined_claims",
                        "attester_advisory_ids", "attester_runtime_data"})
    EXPECT_FALSE(ours.contains(k)) << k;
}

// With policies asked for, empty lists are null as Intel writes them (the C client's dev token).
TEST_F(ServiceRequests, EmptyPolicyListsAreNull) {
  Made m = MakeEvidence(svc_, {});
  auto r = Post(svc_, "/appraisal/v1/attest", {{"quote", m.quote}, {"verifier_nonce", m.nonce}, {"policy_ids", {kPolicyA}}});
  ASSERT_EQ(r.status, 200) << r.body;
  json c = r.Claims();
  EXPECT_EQ(c["policy_ids_matched"][0]["id"], kPolicyA);
  ASSERT_TRUE(c.contains("policy_ids_unmatched"));
  EXPECT_TRUE(c["policy_ids_unmatched"].is_null()) << c["policy_ids_unmatched"].dump();
  ASSERT_TRUE(c.contains("policy_defined_claims"));
  EXPECT_TRUE(c["policy_defined_claims"].is_null());
}

// tdx_collateral's inputs, checked against the ITA pilot token's values: the cert hashes are
// SHA-256 of the issuer chain PEM, the CRL hashes SHA-256 of the root CA CRL as hex text, for the
// PCS collateral current when that token was issued (February 2024).
TEST(CollateralHashes, ReproduceTheRealTokensCertAndCrlHashes) {
  auto pcs = verify::LoadCollateral(tdxvirt::testing::TestdataPath("quotes/tdx-v4-spr-e4-pcs-2023"));
  ASSERT_TRUE(pcs.ok()) << pcs.error();
  json h = CollateralHashes(*pcs);
  std::ifstream f(tdxvirt::testing::TestdataPath("ita/kbs-pilot-tdx-token.payload.json"));
  json intel = json::parse(f)["tdx_collateral"];
  for (const char* k : {"qeidcerthash", "tcbinfocerthash", "qeidcrlhash", "tcbinfocrlhash"})
    EXPECT_EQ(h[k], intel[k]) << k;
}

}  // namespace
}  // namespace tdxvirt::service
