// Replay memory for verifier nonces: "has this nonce been used for an attest request already?".
//
// A nonce is an HMAC under a key every replica shares, so any replica accepts any replica's nonce;
// the memory of used nonces must therefore be as wide as that key (all replicas) and outlive a
// replica's restart for the nonce lifetime. The in-memory store is neither: it is the embedded
// default for one replica. The Redis store is shared and survives restarts of the service.
//
// Three answers are kept apart because they call for different replies: a replayed nonce is the
// client's fault (400), an unavailable store is ours (503, and no token is issued without the
// check: failing open would turn a Redis outage into a replay window).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"

namespace tdxvirt::replay {

enum class Verdict {
  kFresh,        // not seen before; now recorded as used
  kReplayed,     // used before (or possibly used: issued before this store's memory began)
  kUnavailable,  // the store could not answer; nothing was recorded
};

struct MarkResult {
  Verdict verdict = Verdict::kUnavailable;
  std::string detail;  // kReplayed: why, when not simply "already used"; kUnavailable: the error
};

class ReplayStore {
 public:
  virtual ~ReplayStore() = default;

  // Records `nonce` (its random value) as used until `expires_at` if it is not recorded yet.
  // `issued_at`, `expires_at` and `now` are Unix seconds of the service's clock. Thread-safe.
  virtual MarkResult Mark(ByteSpan nonce, int64_t issued_at, int64_t expires_at, int64_t now) = 0;

  // Forgets `nonce` again: the attest request that marked it failed for a reason a retry can fix
  // (a 5xx), and Intel's clients retry with the identical body. Only the request that got kFresh
  // for it may call this. An error leaves the nonce used (the safe side).
  virtual Status Release(ByteSpan nonce) = 0;

  // Where the memory lives, safe to log (never a password): "memory", "redis://HOST:PORT/DB".
  virtual std::string Describe() const = 0;

  // Connects ahead of the first request (Redis: so the store's memory begins before this
  // replica issues nonces). An error is not fatal: Mark connects again.
  virtual Status Connect(int64_t now) { (void)now; return OkStatus(); }

  // Answers kUnavailable so far (connection, timeout, Redis error, memory full): for a metric,
  // e.g. tdxvirt_attestation_replay_store_errors_total.
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

 protected:
  std::atomic<uint64_t> errors_{0};
};

// ---- in memory (one replica, forgotten on restart) ----

// Remembers up to `max_entries` nonces within their lifetime; when full (an attacker cannot fill
// it faster than nonces expire without valid nonces, but a burst can), Mark answers kUnavailable
// rather than growing without bound.
std::unique_ptr<ReplayStore> NewMemoryReplayStore(size_t max_entries);

// ---- Redis (shared by replicas, kept across their restarts) ----

// redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]; PORT defaults to 6379, DB to 0. Userinfo may be
// percent-encoded. HOST is a name, an IPv4 address or [IPv6].
struct RedisUrl {
  std::string host;
  int port = 6379;
  int db = 0;
  std::string user, password;  // empty user: AUTH with the password alone (requirepass)
  std::string Describe() const;  // without user and password
};
// Refusals name the part of the URL that is wrong and the fix; they never repeat the password.
Result<RedisUrl> ParseRedisUrl(std::string_view url);

struct RedisOptions {
  RedisUrl url;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{1000};
  // After a failed connect, requests fail fast for this long instead of each waiting out the
  // connect timeout against a Redis that is down (a thread held per request is what a hostile
  // client would otherwise get for free).
  std::chrono::milliseconds retry_interval{1000};
  size_t max_connections = 16;  // requests beyond it wait (up to command_timeout) for one
  std::string key_prefix = "tdxvirt:nonce:";
};
std::unique_ptr<ReplayStore> NewRedisReplayStore(RedisOptions options);

// "" or "memory": in memory with `max_memory_entries`; "redis://...": Redis with default timeouts.
// The error names the URL part and the fix (without the password).
Result<std::unique_ptr<ReplayStore>> OpenReplayStore(std::string_view url, size_t max_memory_entries);

}  // namespace tdxvirt::replay
