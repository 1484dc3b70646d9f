// The replay stores alone: the Redis URL parser's refusals, the in-memory store's bounds, and the
// Redis store against a real redis-server (fresh / replayed / expiry / shared by two stores /
// unavailable / restarted without persistence / password / database / many threads).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/hex.h"
#include "common/openssl.h"
#include "replay/redis_test_server.h"
#include "replay/replay_store.h"

namespace tdxvirt::replay {
namespace {

using testing::RedisRaw;
using testing::RedisTestServer;

Bytes Nonce(uint8_t fill) { return Bytes(32, fill); }
constexpr int64_t kT = 1'800'000'000;  // a service clock reading

// ---- URL ----

TEST(RedisUrl, AcceptsTheDocumentedForms) {
  auto a = ParseRedisUrl("redis://127.0.0.1:6380");
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(a->db, 0);
  EXPECT_EQ(a->password, "");
  auto b = ParseRedisUrl("redis://:p%40ss%2Fw@redis.tdxvirt.svc:6379/2");
  ASSERT_TRUE(b.ok()) << b.error();
  EXPECT_EQ(b->password, "p@ss/w");
  EXPECT_EQ(b->user, "");
  EXPECT_EQ(b->host, "redis.tdxvirt.svc");
  EXPECT_EQ(b->db, 2);
  EXPECT_EQ(b->Describe(), "redis://redis.tdxvirt.svc:6379/2");
  auto c = ParseRedisUrl("redis://svc:se:cret@[::1]:7000/");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->user, "svc");
  EXPECT_EQ(c->password, "se:cret");
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->Describe(), "redis://[::1]:7000/0");
  auto d = ParseRedisUrl("redis://redis");
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->port, 6379);
}

TEST(RedisUrl, RefusalsNameThePartAndTheFixAndNeverThePassword) {
  auto refusal = [](std::string_view url) {
    auto r = ParseRedisUrl(url);
    EXPECT_FALSE(r.ok()) << url;
    return r.ok() ? std::string() : r.error();
  };
  EXPECT_EQ(refusal("http://redis:6379"),
            "replay store URL \"http://redis:6379\": expected redis://[:PASSWORD@]HOST:PORT[/DB] (or \"memory\")");
  EXPECT_EQ(refusal("rediss://redis:6379"),
            "replay store URL \"rediss://redis:6379\": TLS (rediss://) is not supported: Debian 12's "
            "hiredis 0.14 has no TLS; use redis:// to a Redis in the service's namespace, behind a "
            "NetworkPolicy and a password (docs/service.md)");
  EXPECT_EQ(refusal("redis://"), "replay store URL \"redis://\": host: missing; the form is "
                                 "redis://[:PASSWORD@]HOST:PORT[/DB]");
  EXPECT_EQ(refusal("redis://redis:0"), "replay store URL \"redis://redis:0\": port \"0\": expected a number 1..65535");
  EXPECT_EQ(refusal("redis://redis:65536"),
            "replay store URL \"redis://redis:65536\": port \"65536\": expected a number 1..65535");
  EXPECT_EQ(refusal("redis://redis:"),
            "replay store URL \"redis://redis:\": port: empty after \":\"; give 1..65535 or leave out \":\" for 6379");
  EXPECT_EQ(refusal("redis://redis:6379/one"),
            "replay store URL \"redis://redis:6379/one\": database \"one\": expected a number, e.g. /0");
  EXPECT_EQ(refusal("redis://redis:6379?db=1"),
            "replay store URL \"redis://redis:6379?db=1\": query or fragment: not supported; the form is "
            "redis://[:PASSWORD@]HOST:PORT[/DB]");
  EXPECT_EQ(refusal("redis://::1:6379"),
            "replay store URL \"redis://::1:6379\": host: an IPv6 address goes in brackets, redis://[::1]:6379");
  EXPECT_EQ(refusal("redis://hunter2@redis:6379"),
            "replay store URL \"redis://***@redis:6379\": userinfo: give :PASSWORD@ (or USER:PASSWORD@) before the host");
  EXPECT_EQ(refusal("redis://:@redis:6379"),
            "replay store URL \"redis://***@redis:6379\": password: empty; leave out \":@\" for a Redis without a password");
  EXPECT_EQ(refusal("redis://:bad%zz@redis:6379"),
            "replay store URL \"redis://***@redis:6379\": password: bad percent-encoding; write '%' itself as %25");
  EXPECT_EQ(refusal("redis://:hunter2@redis:99999"),
            "replay store URL \"redis://***@redis:99999\": port \"99999\": expected a number 1..65535");
  EXPECT_EQ(refusal("redis://re dis:6379"),
            "replay store URL \"redis://re dis:6379\": host: unexpected character ' '; give a DNS name or an "
            "IP address (a password belongs in :PASSWORD@, percent-encoded)");
  auto open = OpenReplayStore("redis:/x", 8);
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.error(), "replay store URL \"redis:/x\": expected redis://[:PASSWORD@]HOST:PORT[/DB] (or \"memory\")");
}

TEST(OpenReplayStore, EmptyOrMemoryIsInProcess) {
  for (const char* url : {"", "memory"}) {
    auto s = OpenReplayStore(url, 8);
    ASSERT_TRUE(s.ok()) << s.error();
    EXPECT_EQ((*s)->Describe(), "memory");
  }
  auto r = OpenReplayStore("redis://:pw@127.0.0.1:6379/1", 8);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ((*r)->Describe(), "redis://127.0.0.1:6379/1");
}

// ---- memory ----

TEST(MemoryReplayStore, FreshThenReplayedUntilExpiry) {
  auto s = NewMemoryReplayStore(16);
  EXPECT_EQ(s->Mark(Nonce(1), kT, kT + 120, kT).verdict, Verdict::kFresh);
  EXPECT_EQ(s->Mark(Nonce(1), kT, kT + 120, kT + 1).verdict, Verdict::kReplayed);
  EXPECT_EQ(s->Mark(Nonce(2), kT, kT + 120, kT + 1).verdict, Verdict::kFresh);
  EXPECT_EQ(s->Mark(Nonce(1), kT, kT + 120, kT + 120).verdict, Verdict::kReplayed);
  EXPECT_EQ(s->Mark(Nonce(1), kT, kT + 120, kT + 121).verdict, Verdict::kFresh);  // expired entry
  EXPECT_EQ(s->errors(), 0u);
}

// Release (after a retryable 5xx) forgets the nonce: the identical retry is fresh again, once.
TEST(MemoryReplayStore, ReleasedNonceIsFreshOnceMore) {
  auto s = NewMemoryReplayStore(16);
  ASSERT_EQ(s->Mark(Nonce(1), kT, kT + 120, kT).verdict, Verdict::kFresh);
  ASSERT_EQ(s->Mark(Nonce(2), kT, kT + 120, kT).verdict, Verdict::kFresh);
  EXPECT_TRUE(s->Release(Nonce(1)).ok());
  EXPECT_EQ(s->Mark(Nonce(1), kT, kT + 120, kT + 1).verdict, Verdict::kFresh);
  EXPECT_EQ(s->Mark(Nonce(1), kT, kT + 120, kT + 2).verdict, Verdict::kReplayed);
  EXPECT_EQ(s->Mark(Nonce(2), kT, kT + 120, kT + 2).verdict, Verdict::kReplayed);  // others stay
  EXPECT_TRUE(s->Release(Nonce(7)).ok());  // never marked: nothing to forget
}

TEST(MemoryReplayStore, FullIsUnavailableNotUnbounded) {
  auto s = NewMemoryReplayStore(4);
  for (uint8_t i = 0; i < 4; ++i) EXPECT_EQ(s->Mark(Nonce(i), kT, kT + 120, kT).verdict, Verdict::kFresh);
  auto full = s->Mark(Nonce(9), kT, kT + 120, kT);
  EXPECT_EQ(full.verdict, Verdict::kUnavailable);
  EXPECT_EQ(full.detail, "full: 4 nonces used within their lifetime; retry when they expire, or give the "
                         "service more replay memory");
  EXPECT_EQ(s->errors(), 1u);
  // Once they expire they are purged and there is room again.
  EXPECT_EQ(s->Mark(Nonce(9), kT + 200, kT + 320, kT + 200).verdict, Verdict::kFresh);
}

// ---- Redis ----

RedisOptions Options(const RedisTestServer& r) {
  RedisOptions o;
  auto u = ParseRedisUrl(r.url());
  EXPECT_TRUE(u.ok()) << u.error();
  o.url = *u;
  o.retry_interval = std::chrono::milliseconds(0);
  return o;
}

std::string KeyOf(ByteSpan nonce) { return "tdxvirt:nonce:" + ToHex(ossl::Sha256(nonce)); }

TEST(RedisReplayStore, FreshThenReplayedAcrossTwoStoresKeyedByHashWithTheNonceLifetime) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  auto a = NewRedisReplayStore(Options(redis));
  auto b = NewRedisReplayStore(Options(redis));
  ASSERT_TRUE(a->Connect(kT).ok());
  EXPECT_EQ(a->Mark(Nonce(1), kT, kT + 120, kT).verdict, Verdict::kFresh);
  EXPECT_EQ(a->Mark(Nonce(1), kT, kT + 120, kT).verdict, Verdict::kReplayed);
  EXPECT_EQ(b->Mark(Nonce(1), kT, kT + 120, kT + 3).verdict, Verdict::kReplayed);  // another replica
  EXPECT_EQ(b->Mark(Nonce(2), kT, kT + 120, kT + 3).verdict, Verdict::kFresh);
  // The key is the nonce's SHA-256 under the prefix; it lives as long as the nonce has left.
  std::string pttl = RedisRaw(redis.port(), {"PTTL " + KeyOf(Nonce(2))});
  ASSERT_TRUE(pttl.starts_with(":")) << pttl;
  int64_t ms = std::stoll(pttl.substr(1));
  EXPECT_GT(ms, 110'000);
  EXPECT_LE(ms, 117'000);
  EXPECT_EQ(RedisRaw(redis.port(), {"EXISTS tdxvirt:nonce:" + ToHex(Nonce(2))}), ":0");
  EXPECT_EQ(RedisRaw(redis.port(), {"GET tdxvirt:nonce:memory-begins"}), std::to_string(kT));
  EXPECT_EQ(a->errors() + b->errors(), 0u);
}

TEST(RedisReplayStore, ReleasedNonceIsFreshOnceMoreOnEveryReplica) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  auto a = NewRedisReplayStore(Options(redis));
  auto b = NewRedisReplayStore(Options(redis));
  ASSERT_TRUE(a->Connect(kT).ok());
  ASSERT_EQ(a->Mark(Nonce(1), kT, kT + 120, kT).verdict, Verdict::kFresh);
  ASSERT_EQ(a->Mark(Nonce(2), kT, kT + 120, kT).verdict, Verdict::kFresh);
  ASSERT_TRUE(a->Release(Nonce(1)).ok());
  EXPECT_EQ(RedisRaw(redis.port(), {"EXISTS " + KeyOf(Nonce(1))}), ":0");
  EXPECT_EQ(RedisRaw(redis.port(), {"EXISTS " + KeyOf(Nonce(2))}), ":1");
  // The retry may land on another replica.
  EXPECT_EQ(b->Mark(Nonce(1), kT, kT + 120, kT + 1).verdict, Verdict::kFresh);
  EXPECT_EQ(a->Mark(Nonce(1), kT, kT + 120, kT + 2).verdict, Verdict::kReplayed);
  EXPECT_EQ(a->errors() + b->errors(), 0u);
  // Redis gone: the release fails, counted, and the nonce stays used (the safe side).
  redis.Kill();
  Status gone = a->Release(Nonce(2));
  EXPECT_FALSE(gone.ok());
  EXPECT_EQ(a->errors(), 1u);
}

TEST(RedisReplayStore, AnExpiredKeyIsForgotten) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  auto s = NewRedisReplayStore(Options(redis));
  ASSERT_EQ(s->Mark(Nonce(3), kT, kT + 1, kT).verdict, Verdict::kFresh);  // 1 s left
  // Wait for Redis to expire the key (the event itself), with a watchdog.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (RedisRaw(redis.port(), {"EXISTS " + KeyOf(Nonce(3))}) == ":1" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(RedisRaw(redis.port(), {"EXISTS " + KeyOf(Nonce(3))}), ":0");
  EXPECT_EQ(s->Mark(Nonce(3), kT, kT + 1, kT).verdict, Verdict::kFresh);
}

TEST(RedisReplayStore, UnreachableIsUnavailableAndRecordsNothing) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  redis.Kill();
  RedisOptions o = Options(redis);
  o.retry_interval = std::chrono::seconds(600);
  auto s = NewRedisReplayStore(o);
  auto r = s->Mark(Nonce(4), kT, kT + 120, kT);
  EXPECT_EQ(r.verdict, Verdict::kUnavailable);
  EXPECT_EQ(r.detail, "connect: Connection refused");
  // Within the retry interval it fails fast, saying so.
  auto again = s->Mark(Nonce(4), kT, kT + 120, kT);
  EXPECT_EQ(again.verdict, Verdict::kUnavailable);
  EXPECT_EQ(again.detail, "connect: Connection refused (next connect attempt within 600000 ms)");
  EXPECT_EQ(s->errors(), 2u);
  EXPECT_FALSE(s->Connect(kT).ok());
}

// Redis killed under a pooled connection and restarted empty: the store reconnects by itself
// (no SIGPIPE death on the dead connection), and a nonce issued before the new memory began is
// refused: it may have been used against the memory that was lost.
TEST(RedisReplayStore, RestartWithoutPersistenceRefusesNoncesIssuedBefore) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  auto s = NewRedisReplayStore(Options(redis));
  ASSERT_TRUE(s->Connect(kT).ok());
  ASSERT_EQ(s->Mark(Nonce(5), kT, kT + 120, kT).verdict, Verdict::kFresh);
  redis.Kill();
  EXPECT_EQ(s->Mark(Nonce(6), kT, kT + 120, kT + 1).verdict, Verdict::kUnavailable);
  ASSERT_TRUE(redis.Start());
  auto replay = s->Mark(Nonce(5), kT, kT + 120, kT + 10);  // used before the restart
  EXPECT_EQ(replay.verdict, Verdict::kReplayed);
  EXPECT_EQ(replay.detail, "issued at 2027-01-15T08:00:00Z, before the replay store's memory began "
                           "(2027-01-15T08:00:10Z: Redis restarted or was flushed), so it may have been used");
  EXPECT_EQ(s->Mark(Nonce(7), kT + 10, kT + 130, kT + 10).verdict, Verdict::kFresh);
  EXPECT_EQ(s->Mark(Nonce(7), kT + 10, kT + 130, kT + 11).verdict, Verdict::kReplayed);
  // FLUSHALL forgets too, and is treated the same way.
  EXPECT_EQ(RedisRaw(redis.port(), {"FLUSHALL"}), "+OK");
  EXPECT_EQ(s->Mark(Nonce(8), kT + 10, kT + 130, kT + 20).verdict, Verdict::kReplayed);
}

// After Redis restarts every pooled connection is dead: the first request after it must not
// fail on a second stale connection.
TEST(RedisReplayStore, ARestartedRedisServesTheNextRequestWhateverThePoolHeld) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  RedisOptions o = Options(redis);
  o.max_connections = 2;
  o.command_timeout = std::chrono::seconds(30);
  auto s = NewRedisReplayStore(o);
  // Two requests at once while Redis holds commands: the pool opens its second connection.
  ASSERT_EQ(RedisRaw(redis.port(), {"CLIENT PAUSE 1500 ALL"}), "+OK");
  std::thread t([&] { EXPECT_EQ(s->Mark(Nonce(1), kT, kT + 120, kT).verdict, Verdict::kFresh); });
  EXPECT_EQ(s->Mark(Nonce(2), kT, kT + 120, kT).verdict, Verdict::kFresh);
  t.join();
  // Connected clients: the pool's two and this one.
  EXPECT_EQ(RedisRaw(redis.port(), {"EVAL \"return tonumber(string.match(redis.call('INFO','clients'),"
                                    "'connected_clients:(%d+)'))\" 0"}),
            ":3");
  redis.Kill();
  ASSERT_TRUE(redis.Start());
  EXPECT_EQ(s->Mark(Nonce(3), kT, kT + 120, kT).verdict, Verdict::kFresh);
}

TEST(RedisReplayStore, PasswordAndDatabaseFromTheUrl) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis({"--requirepass", "s3cret/pw"});
  ASSERT_TRUE(redis.running());
  auto open = [&](const std::string& userinfo, const std::string& db) {
    auto u = ParseRedisUrl("redis://" + userinfo + "127.0.0.1:" + std::to_string(redis.port()) + db);
    EXPECT_TRUE(u.ok()) << u.error();
    RedisOptions o;
    o.url = *u;
    o.retry_interval = std::chrono::milliseconds(0);
    return NewRedisReplayStore(o);
  };
  auto good = open(":s3cret%2Fpw@", "/3");
  EXPECT_EQ(good->Mark(Nonce(1), kT, kT + 120, kT).verdict, Verdict::kFresh);
  EXPECT_EQ(RedisRaw(redis.port(), {"AUTH s3cret/pw", "SELECT 3", "EXISTS " + KeyOf(Nonce(1))}), ":1");
  EXPECT_EQ(RedisRaw(redis.port(), {"AUTH s3cret/pw", "EXISTS " + KeyOf(Nonce(1))}), ":0");

  auto wrong = open(":guess@", "");
  auto r = wrong->Mark(Nonce(2), kT, kT + 120, kT);
  EXPECT_EQ(r.verdict, Verdict::kUnavailable);
  EXPECT_EQ(r.detail, "AUTH: WRONGPASS invalid username-password pair or user is disabled.");
  auto none = open("", "");
  r = none->Mark(Nonce(2), kT, kT + 120, kT);
  EXPECT_EQ(r.verdict, Verdict::kUnavailable);
  EXPECT_EQ(r.detail, "NOAUTH Authentication required.");
}

TEST(RedisReplayStore, ManyThreadsOneWinnerPerNonce) {
  SKIP_WITHOUT_REDIS_SERVER();
  RedisTestServer redis;
  ASSERT_TRUE(redis.running());
  RedisOptions o = Options(redis);
  o.max_connections = 2;  // fewer connections than threads: requests wait for one
  o.command_timeout = std::chrono::seconds(30);
  auto s = NewRedisReplayStore(o);
  ASSERT_TRUE(s->Connect(kT).ok());
  std::atomic<int> fresh{0}, replayed{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (uint8_t i = 0; i < 50; ++i) {
        switch (s->Mark(Nonce(i), kT, kT + 120, kT).verdict) {
          case Verdict::kFresh: ++fresh; break;
          case Verdict::kReplayed: ++replayed; break;
          default: ++other;
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(fresh.load(), 50);
  EXPECT_EQ(replayed.load(), 7 * 50);
  EXPECT_EQ(other.load(), 0);
}

}  // namespace
}  // namespace tdxvirt::replay
