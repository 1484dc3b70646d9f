// The embedded replay memory: a map of used nonces to their expiry, purged of expired entries
// when half full, refusing (kUnavailable) rather than growing when full.
#include <mutex>
#include <unordered_map>

#include "replay/replay_store.h"

namespace tdxvirt::replay {
namespace {

class MemoryReplayStore : public ReplayStore {
 public:
  explicit MemoryReplayStore(size_t max_entries) : max_entries_(max_entries) {}

  MarkResult Mark(ByteSpan nonce, int64_t, int64_t expires_at, int64_t now) override {
    std::string key(reinterpret_cast<const char*>(nonce.data()), nonce.size());
    std::lock_guard<std::mutex> l(mu_);
    if (used_.size() >= max_entries_ / 2) {
      for (auto it = used_.begin(); it != used_.end();)
        it = it->second < now ? used_.erase(it) : std::next(it);
    }
    auto it = used_.find(key);
    if (it != used_.end() && it->second >= now) return {Verdict::kReplayed, ""};
    if (it != used_.end()) {  // expired: the nonce's age check refuses it anyway
      it->second = expires_at;
      return {Verdict::kFresh, ""};
    }
    if (used_.size() >= max_entries_) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      return {Verdict::kUnavailable,
              "full: " + std::to_string(used_.size()) +
                  " nonces used within their lifetime; retry when they expire, or give the "
                  "service more replay memory"};
    }
    used_.emplace(std::move(key), expires_at);
    return {Verdict::kFresh, ""};
  }

  Status Release(ByteSpan nonce) override {
    std::lock_guard<std::mutex> l(mu_);
    used_.erase(std::string(reinterpret_cast<const char*>(nonce.data()), nonce.size()));
    return OkStatus();
  }

  std::string Describe() const override { return "memory"; }

 private:
  const size_t max_entries_;
  std::mutex mu_;
  std::unordered_map<std::string, int64_t> used_;  // nonce value -> expiry
};

}  // namespace

std::unique_ptr<ReplayStore> NewMemoryReplayStore(size_t max_entries) {
  return std::make_unique<MemoryReplayStore>(max_entries);
}

Result<std::unique_ptr<ReplayStore>> OpenReplayStore(std::string_view url, size_t max_memory_entries) {
  if (url.empty() || url == "memory") return NewMemoryReplayStore(max_memory_entries);
  auto parsed = ParseRedisUrl(url);
  if (!parsed.ok()) return Error{parsed.error()};
  RedisOptions o;
  o.url = std::move(*parsed);
  return NewRedisReplayStore(std::move(o));
}

}  // namespace tdxvirt::replay
