// Replay memory in Redis, shared by every replica: one key per used nonce, set only if absent,
// expiring with the nonce. hiredis 0.14 (Debian 12) is blocking, so the store keeps a small pool
// of connections, each used by one request thread at a time, with connect and command timeouts.
#include <hiredis/hiredis.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "common/hex.h"
#include "common/openssl.h"
#include "common/time.h"
#include "replay/replay_store.h"

namespace tdxvirt::replay {

// ---- the URL ----

namespace {

// The URL for messages: everything between "://" and the last '@' (the userinfo) hidden.
std::string Redact(std::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  size_t at = url.rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(url);
  return std::string(url.substr(0, start)) + "***" + std::string(url.substr(at));
}

Result<std::string> PercentDecode(std::string_view s, const std::string& part) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    auto hex = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    };
    if (i + 2 >= s.size() || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0)
      return Error{part + ": bad percent-encoding; write '%' itself as %25"};
    out += char(hex(s[i + 1]) * 16 + hex(s[i + 2]));
    i += 2;
  }
  return out;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

std::string RedisUrl::Describe() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "redis://" + h + ":" + std::to_string(port) + "/" + std::to_string(db);
}

Result<RedisUrl> ParseRedisUrl(std::string_view url) {
  const std::string shown = "replay store URL \"" + Redact(url) + "\": ";
  const std::string form = "redis://[:PASSWORD@]HOST:PORT[/DB]";
  if (url.size() > 2048) return Error{"replay store URL: longer than 2048 characters"};
  if (url.starts_with("rediss://"))
    return Error{shown + "TLS (rediss://) is not supported: Debian 12's hiredis 0.14 has no TLS; use " +
                 "redis:// to a Redis in the service's namespace, behind a NetworkPolicy and a password " +
                 "(docs/service.md)"};
  if (!url.starts_with("redis://"))
    return Error{shown + "expected " + form + " (or \"memory\")"};
  std::string_view rest = url.substr(8);
  RedisUrl u;
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      return Error{shown + "userinfo: give :PASSWORD@ (or USER:PASSWORD@) before the host"};
    auto user = PercentDecode(userinfo.substr(0, colon), "user");
    if (!user.ok()) return Error{shown + user.error()};
    auto password = PercentDecode(userinfo.substr(colon + 1), "password");
    if (!password.ok()) return Error{shown + password.error()};
    if (password->empty())
      return Error{shown + "password: empty; leave out \":@\" for a Redis without a password"};
    u.user = std::move(*user);
    u.password = std::move(*password);
  }
  if (rest.find_first_of("?#") != std::string_view::npos)
    return Error{shown + "query or fragment: not supported; the form is " + form};
  std::string_view hostport = rest, db;
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    db = rest.substr(slash + 1);
  }
  std::string_view host = hostport, port;
  if (hostport.starts_with("[")) {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return Error{shown + "host: \"[\" without \"]\"; write [IPv6]:PORT"};
    host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty() && !after.starts_with(":"))
      return Error{shown + "host: expected \":PORT\" after \"]\""};
    if (!after.empty()) port = after.substr(1);
    for (char c : host)
      if (!isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.')
        return Error{shown + "host: not an IPv6 address inside [...]"};
  } else {
    size_t colon = hostport.find(':');
    if (colon != std::string_view::npos) {
      host = hostport.substr(0, colon);
      port = hostport.substr(colon + 1);
      if (port.find(':') != std::string_view::npos)
        return Error{shown + "host: an IPv6 address goes in brackets, redis://[::1]:6379"};
      if (port.empty()) return Error{shown + "port: empty after \":\"; give 1..65535 or leave out \":\" for 6379"};
    }
    for (char c : host)
      if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_')
        return Error{shown + "host: unexpected character '" + std::string(1, c) +
                     "'; give a DNS name or an IP address (a password belongs in :PASSWORD@, percent-encoded)"};
  }
  if (host.empty()) return Error{shown + "host: missing; the form is " + form};
  if (host.size() > 253) return Error{shown + "host: longer than 253 characters"};
  u.host = std::string(host);
  if (!port.empty()) {
    if (!AllDigits(port) || port.size() > 5 || std::stoi(std::string(port)) < 1 ||
        std::stoi(std::string(port)) > 65535)
      return Error{shown + "port \"" + std::string(port) + "\": expected a number 1..65535"};
    u.port = std::stoi(std::string(port));
  }
  if (!db.empty()) {
    if (!AllDigits(db) || db.size() > 9)
      return Error{shown + "database \"" + std::string(db) + "\": expected a number, e.g. /0"};
    u.db = std::stoi(std::string(db));
  }
  return u;
}

// ---- the store ----

namespace {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

timeval ToTimeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

// One command as an argument vector (no format string: a password is never interpreted).
// Null with `error` set when the connection failed (it is then unusable).
ReplyPtr Command(redisContext* c, const std::vector<std::string>& args, std::string& error) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  // No SIGPIPE to fear from a connection Redis closed: hiredis writes a command in one write(2),
  // the first write after the peer's reset fails with ECONNRESET (Linux), and a connection is
  // dropped after its first error, never written to again.
  ReplyPtr r(static_cast<redisReply*>(redisCommandArgv(c, int(argv.size()), argv.data(), lens.data())));
  if (!r) error = c->err == REDIS_ERR_IO && errno == EAGAIN ? "no reply within the command timeout"
                                                            : std::string(c->errstr);
  return r;
}

// KEYS[1] the nonce's key, KEYS[2] the time (service clock) this Redis's memory began;
// ARGV[1] the key's lifetime in ms, ARGV[2] now, ARGV[3] the nonce's issue time.
// Returns {1 fresh | 0 replayed | -1 issued before the memory began, the memory's start}.
// The start is written when missing: on first use, and again after Redis restarted without
// persistence or was flushed. A nonce issued before it may have been used against the memory that
// was lost, so it is refused (the client gets a fresh nonce) instead of silently accepted.
constexpr const char* kMarkScript = R"lua(
local begins = redis.call('GET', KEYS[2])
if not begins then
  redis.call('SET', KEYS[2], ARGV[2])
  begins = ARGV[2]
end
if tonumber(ARGV[3]) < tonumber(begins) then return {-1, begins} end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return {1, begins} end
return {0, begins}
)lua";

class RedisReplayStore : public ReplayStore {
 public:
  explicit RedisReplayStore(RedisOptions o) : o_(std::move(o)), name_(o_.url.Describe()) {
    if (o_.max_connections == 0) o_.max_connections = 1;
  }
  ~RedisReplayStore() override {
    for (auto* c : idle_) redisFree(c);
  }

  std::string Describe() const override { return name_; }

  Status Connect(int64_t now) override {
    std::string error;
    redisContext* c = Acquire(error);
    if (!c) return Error{error};
    // Write where the memory begins now, before this replica hands out nonces.
    ReplyPtr r = Command(c, {"SET", o_.key_prefix + "memory-begins", std::to_string(now), "NX"}, error);
    if (r && r->type == REDIS_REPLY_ERROR) error = "SET: " + std::string(r->str, r->len);
    GiveBack(c, r != nullptr);
    if (!error.empty()) return Error{error};
    return OkStatus();
  }

  MarkResult Mark(ByteSpan nonce, int64_t issued_at, int64_t expires_at, int64_t now) override {
    // The key holds a hash, not the nonce: Redis never sees a value a client must present.
    std::string key = o_.key_prefix + ToHex(ossl::Sha256(nonce));
    int64_t ttl_ms = std::max<int64_t>(expires_at - now, 1) * 1000;  // relative: Redis's clock
    std::vector<std::string> args = {"EVAL", kMarkScript, "2", key, o_.key_prefix + "memory-begins",
                                     std::to_string(ttl_ms), std::to_string(now),
                                     std::to_string(issued_at)};
    std::string error;
    // A pooled connection may have died since (Redis restarted): one more try on a new one.
    // Should the lost attempt have been applied, the retry answers "replayed": a refusal, never
    // a second acceptance.
    for (int attempt = 0; attempt < 2; ++attempt) {
      error.clear();
      bool reused = false;
      redisContext* c = Acquire(error, &reused);
      if (!c) break;
      ReplyPtr r = Command(c, args, error);
      GiveBack(c, r != nullptr);
      if (!r) {
        if (reused) continue;
        break;
      }
      if (r->type == REDIS_REPLY_ERROR) {
        error = std::string(r->str, r->len);
        break;
      }
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER) {
        error = "unexpected reply to EVAL";
        break;
      }
      long long code = r->element[0]->integer;
      if (code == 1) return {Verdict::kFresh, ""};
      if (code == 0) return {Verdict::kReplayed, ""};
      std::string begins = r->element[1]->type == REDIS_REPLY_STRING
                               ? std::string(r->element[1]->str, r->element[1]->len)
                               : "?";
      int64_t b = AllDigits(begins) ? std::stoll(begins) : 0;
      return {Verdict::kReplayed, "issued at " + FormatRfc3339(issued_at) +
                                      ", before the replay store's memory began (" + FormatRfc3339(b) +
                                      ": Redis restarted or was flushed), so it may have been used"};
    }
    errors_.fetch_add(1, std::memory_order_relaxed);
    return {Verdict::kUnavailable, error};
  }

  Status Release(ByteSpan nonce) override {
    std::string key = o_.key_prefix + ToHex(ossl::Sha256(nonce));
    std::string error;
    for (int attempt = 0; attempt < 2; ++attempt) {  // as Mark: once more on a new connection
      error.clear();
      bool reused = false;
      redisContext* c = Acquire(error, &reused);
      if (!c) break;
      ReplyPtr r = Command(c, {"DEL", key}, error);
      GiveBack(c, r != nullptr);
      if (!r) {
        if (reused) continue;
        break;
      }
      if (r->type == REDIS_REPLY_ERROR) {
        error = "DEL: " + std::string(r->str, r->len);
        break;
      }
      return OkStatus();
    }
    errors_.fetch_add(1, std::memory_order_relaxed);
    return Error{error};
  }

 private:
  // An idle connection, or a new one (connected, authenticated, database selected); null with
  // `error` when none can be had. Within retry_interval of a failed connect, fails fast.
  redisContext* Acquire(std::string& error, bool* reused = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + o_.command_timeout;
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (!idle_.empty()) {
        redisContext* c = idle_.back();
        idle_.pop_back();
        if (reused) *reused = true;
        return c;
      }
      if (open_ < o_.max_connections) break;
      if (cv_.wait_until(l, deadline) == std::cv_status::timeout && idle_.empty() &&
          open_ >= o_.max_connections) {
        error = "all " + std::to_string(o_.max_connections) + " connections busy for the command timeout";
        return nullptr;
      }
    }
    if (std::chrono::steady_clock::now() < retry_at_) {
      error = last_connect_error_ + " (next connect attempt within " +
              std::to_string(o_.retry_interval.count()) + " ms)";
      return nullptr;
    }
    ++open_;
    l.unlock();
    redisContext* c = Open(error);
    l.lock();
    if (!c) {
      --open_;
      retry_at_ = std::chrono::steady_clock::now() + o_.retry_interval;
      last_connect_error_ = error;
      cv_.notify_one();
    }
    return c;
  }

  void GiveBack(redisContext* c, bool healthy) {
    std::lock_guard<std::mutex> l(mu_);
    if (healthy && c->err == 0) {
      idle_.push_back(c);
    } else {
      // The idle ones most likely share the fate (Redis restarted): drop them too, so the next
      // requests connect afresh instead of each failing once on a dead connection.
      redisFree(c);
      --open_;
      for (auto* i : idle_) redisFree(i);
      open_ -= idle_.size();
      idle_.clear();
    }
    cv_.notify_one();
  }

  redisContext* Open(std::string& error) {
    redisContext* c = redisConnectWithTimeout(o_.url.host.c_str(), o_.url.port, ToTimeval(o_.connect_timeout));
    if (!c || c->err) {
      error = "connect: " + std::string(c ? c->errstr : "out of memory");
      if (c) redisFree(c);
      return nullptr;
    }
    redisSetTimeout(c, ToTimeval(o_.command_timeout));
    auto step = [&](const std::vector<std::string>& args, const std::string& what) {
      ReplyPtr r = Command(c, args, error);
      if (r && r->type == REDIS_REPLY_ERROR) error = what + ": " + std::string(r->str, r->len);
      else if (!error.empty()) error = what + ": " + error;
      return error.empty();
    };
    bool ok = true;
    if (!o_.url.password.empty())
      ok = o_.url.user.empty() ? step({"AUTH", o_.url.password}, "AUTH")
                               : step({"AUTH", o_.url.user, o_.url.password}, "AUTH");
    if (ok && o_.url.db != 0) ok = step({"SELECT", std::to_string(o_.url.db)}, "SELECT");
    if (!ok) {
      redisFree(c);
      return nullptr;
    }
    return c;
  }

  RedisOptions o_;
  const std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<redisContext*> idle_;
  size_t open_ = 0;  // idle + in use
  std::chrono::steady_clock::time_point retry_at_{};
  std::string last_connect_error_;
};

}  // namespace

std::unique_ptr<ReplayStore> NewRedisReplayStore(RedisOptions options) {
  return std::make_unique<RedisReplayStore>(std::move(options));
}

}  // namespace tdxvirt::replay
