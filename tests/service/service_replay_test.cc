// Replay memory shared through a real redis-server: a nonce used on one replica is refused by
// another and by the same replica after a restart; with Redis down attest answers 503 naming the
// replay store and issues no token; with Redis back it works again. Also the --replay-store flag
// of `tdxvirt serve attestation`, as two processes sharing one Redis.
#include <httplib.h>

#include <fstream>
#include <thread>

#include "common/time.h"
#include "replay/redis_test_server.h"
#include "replay/replay_store.h"
#include "service_test_util.h"

namespace tdxvirt::service {
namespace {

using namespace testing;
using tdxvirt::testing::RedisTestServer;

struct Reply {
  int status = 0;
  std::string body;
  std::string Message() const {
    auto j = nlohmann::json::parse(body, nullptr, false);
    return j.is_object() && j.contains("message") ? j["message"].get<std::string>() : body;
  }
  bool HasToken() const { return body.find("\"token\"") != std::string::npos; }
};

Reply PostAttest(const std::string& base_url, const std::string& body) {
  httplib::Client c(base_url);
  c.set_read_timeout(60, 0);
  auto r = c.Post("/appraisal/v2/attest", {{"x-api-key", "test-api-key"}}, body, "application/json");
  if (!r) return {-1, httplib::to_string(r.error())};
  return {r->status, r->body};
}

// A service whose used nonces live in `redis`, as `tdxvirt serve attestation --replay-store` sets
// it up (the store connects before the service hands out nonces).
std::unique_ptr<TestService> Replica(const RedisTestServer& redis, std::shared_ptr<replay::ReplayStore>* store_out = nullptr) {
  auto url = replay::ParseRedisUrl(redis.url());
  EXPECT_TRUE(url.ok()) << url.error();
  replay::RedisOptions ro;
  ro.url = *url;
  ro.retry_interval = std::chrono::milliseconds(0);
  std::shared_ptr<replay::ReplayStore> store = replay::NewRedisReplayStore(ro);
  EXPECT_TRUE(store->Connect(int64_t(std::time(nullptr))).ok());
  if (store_out) *store_out = store;
  ServerOptions o;
  o.appraisal.replay_store = store;
  auto s = std::make_unique<TestService>(std::move(o));
  EXPECT_TRUE(s->server);
  return s;
}

std::string Evidence(const TestService& s) {
  auto client = s.Client();
  auto provider = SimProvider();
  auto ev = CollectEvidence(client, *provider, {});
  EXPECT_TRUE(ev.ok()) << ev.error();
  return ev.ok() ? ev->dump() : "";
}

const std::string kAlreadyUsed =
    "verifier_nonce: already used (a nonce is good for one attest request); get a fresh nonce";

TEST(ServiceReplay, NonceUsedOnOneReplicaIsRefusedByAnother) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  auto a = Replica(redis), b = Replica(redis);
  ASSERT_TRUE(a->server && b->server);
  std::string ev = Evidence(*a);  // nonce issued by A; B accepts it (shared key) unless used
  auto first = PostAttest(a->server->base_url(), ev);
  ASSERT_EQ(first.status, 200) << first.body;
  auto on_b = PostAttest(b->server->base_url(), ev);
  EXPECT_EQ(on_b.status, 400) << on_b.body;
  EXPECT_EQ(on_b.Message(), kAlreadyUsed);
  EXPECT_FALSE(on_b.HasToken());
  // And the other way round, with a nonce B issued.
  std::string ev_b = Evidence(*b);
  ASSERT_EQ(PostAttest(b->server->base_url(), ev_b).status, 200);
  EXPECT_EQ(PostAttest(a->server->base_url(), ev_b).Message(), kAlreadyUsed);
}

// MAC and age are checked before the nonce is marked: a forged request carrying someone's nonce
// value cannot burn that nonce for its owner.
TEST(ServiceReplay, ARequestWithAForgedNonceDoesNotConsumeIt) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  auto a = Replica(redis);
  ASSERT_TRUE(a->server);
  std::string ev = Evidence(*a);
  auto forged = nlohmann::json::parse(ev);
  auto& sig = forged["tdx"]["verifier_nonce"]["signature"];
  std::string text = sig.get<std::string>();
  text[0] = text[0] == 'A' ? 'B' : 'A';
  sig = text;
  auto refused = PostAttest(a->server->base_url(), forged.dump());
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_EQ(refused.Message(),
            "verifier_nonce: signature does not verify: the nonce was not issued by this service (or "
            "was altered); get one from GET /appraisal/v2/nonce of this service");
  EXPECT_EQ(tdxvirt::testing::RedisRaw(redis.port(), {"DBSIZE"}), ":1");  // memory-begins only
  auto owner = PostAttest(a->server->base_url(), ev);
  EXPECT_EQ(owner.status, 200) << owner.body;
}

TEST(ServiceReplay, UsedNonceIsRefusedAfterTheReplicaRestarts) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  auto a = Replica(redis);
  ASSERT_TRUE(a->server);
  std::string ev = Evidence(*a);
  ASSERT_EQ(PostAttest(a->server->base_url(), ev).status, 200);
  a.reset();  // the replica stops; its process memory is gone
  auto restarted = Replica(redis);
  ASSERT_TRUE(restarted->server);
  auto again = PostAttest(restarted->server->base_url(), ev);
  EXPECT_EQ(again.status, 400) << again.body;
  EXPECT_EQ(again.Message(), kAlreadyUsed);
}

TEST(ServiceReplay, RedisDownIs503WithoutATokenAndRecovers) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  std::shared_ptr<replay::ReplayStore> store;
  auto a = Replica(redis, &store);
  ASSERT_TRUE(a->server);
  ASSERT_EQ(PostAttest(a->server->base_url(), Evidence(*a)).status, 200);  // a pooled connection

  redis.Kill();
  std::string ev = Evidence(*a);
  auto down = PostAttest(a->server->base_url(), ev);
  EXPECT_EQ(down.status, 503) << down.body;
  EXPECT_EQ(down.Message(), "replay store redis://127.0.0.1:" + std::to_string(redis.port()) +
                                "/0 unavailable: connect: Connection refused; no token is issued "
                                "without the nonce replay check, retry later");
  EXPECT_FALSE(down.HasToken());
  EXPECT_EQ(store->errors(), 1u);
  bool logged = false;
  for (const auto& line : a->Logs()) logged |= Contains(line, "\"status\":503");
  EXPECT_TRUE(logged);

  // Redis comes back empty (no persistence). The nonce issued while it was down predates its new
  // memory and is refused; a fresh one gets a token.
  ASSERT_TRUE(redis.Start());
  a->now->fetch_add(5);
  auto stale = PostAttest(a->server->base_url(), ev);
  EXPECT_EQ(stale.status, 400) << stale.body;
  auto nonce = NonceFromJson(nlohmann::json::parse(ev)["tdx"]["verifier_nonce"], "nonce");
  ASSERT_TRUE(nonce.ok()) << nonce.error();
  EXPECT_EQ(stale.Message(), "verifier_nonce: issued at " + std::string(AsString(nonce->iat)) +
                                 ", before the replay store's memory began (" + FormatRfc3339(a->now->load()) +
                                 ": Redis restarted or was flushed), so it may have been used; get a fresh nonce");
  auto back = PostAttest(a->server->base_url(), Evidence(*a));
  EXPECT_EQ(back.status, 200) << back.body;
  EXPECT_TRUE(back.HasToken());
}

// The flag end to end: two `tdxvirt serve attestation --replay-store` processes, one Redis.
TEST(ServiceReplay, TwoServeProcessesShareRedisThroughTheFlag) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  TempDir d;
  WriteFile(d.File("keys"), "test-api-key\n");
  std::vector<pid_t> pids;
  std::vector<std::string> urls;
  for (const char* name : {"a", "b"}) {
    std::string port_file = d.File(std::string(name) + ".port");
    pids.push_back(tdxvirt::testing::SpawnTdxvirt(
        {"serve", "attestation", "--plain-http", "--listen", "127.0.0.1:0", "--port-file", port_file,
         "--signing-key", F().key, "--signing-chain", F().chain, "--collateral",
         F().sim_dir + "/collateral.json", "--root", F().sim_dir + "/root_ca.pem", "--api-key-file",
         d.File("keys"), "--replay-store", redis.url()},
        d.File(std::string(name) + ".err")));
    ASSERT_GT(pids.back(), 0);
    std::string port;
    for (int i = 0; i < 3000 && port.empty(); ++i) {  // watchdog; ends when the port is written
      std::ifstream in(port_file);
      std::getline(in, port);
      if (port.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_FALSE(port.empty()) << tdxvirt::testing::ReadFileText(d.File(std::string(name) + ".err"));
    urls.push_back("http://127.0.0.1:" + port);
  }
  ClientConfig c;
  c.trustauthority_url = c.trustauthority_api_url = urls[0];
  c.trustauthority_api_key = "test-api-key";
  c.allow_http = true;
  auto client = TrustAuthorityClient::Create(c);
  ASSERT_TRUE(client.ok()) << client.error();
  auto provider = SimProvider();
  auto ev = CollectEvidence(*client, *provider, {});
  ASSERT_TRUE(ev.ok()) << ev.error();
  auto on_a = PostAttest(urls[0], ev->dump());
  EXPECT_EQ(on_a.status, 200) << on_a.body;
  auto on_b = PostAttest(urls[1], ev->dump());
  EXPECT_EQ(on_b.status, 400) << on_b.body;
  EXPECT_EQ(on_b.Message(), kAlreadyUsed);
  for (pid_t p : pids) EXPECT_EQ(tdxvirt::testing::TerminateAndWait(p), 0);
}

TEST(ServiceReplay, BadReplayStoreUrlIsAUsageError) {
  auto r = tdxvirt::testing::RunTdxvirt("serve attestation --plain-http --signing-key " + F().key + " --signing-chain " +
                      F().chain + " --collateral " + F().sim_dir + "/collateral.json --replay-store "
                      "redis://:hunter2@redis:0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --replay-store: replay store URL \"redis://***@redis:0\": port \"0\": "
                   "expected a number 1..65535\n");
}

}  // namespace
}  // namespace tdxvirt::service
