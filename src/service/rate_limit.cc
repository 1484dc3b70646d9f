#include "service/rate_limit.h"

#include <charconv>

#include "common/openssl.h"

namespace tdxvirt::service {

Result<RateLimit> ParseRateLimit(std::string_view text) {
  auto fail = [&] {
    return Error{"--rate-limit \"" + std::string(text.substr(0, 64)) +
                 "\": expected REQUESTS/SECONDS per API key, e.g. 1000/300 (REQUESTS 1..1000000, "
                 "SECONDS 1..86400)"};
  };
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return fail();
  auto number = [](std::string_view s, uint64_t max, uint64_t& out) {
    if (s.empty() || s.size() > 7) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && out >= 1 && out <= max;
  };
  uint64_t n = 0, secs = 0;
  if (!number(text.substr(0, slash), 1000000, n) || !number(text.substr(slash + 1), 86400, secs))
    return fail();
  return RateLimit{n, int64_t(secs)};
}

RateLimiter::RateLimiter(RateLimit limit, size_t max_keys) : limit_(limit), max_keys_(max_keys) {}

size_t RateLimiter::keys() const {
  std::lock_guard l(mu_);
  return buckets_.size();
}

// Units: one request costs `seconds` units, a bucket holds at most requests * seconds, and each
// second adds `requests` units. Exactly requests per seconds on average, bursts up to requests.
int64_t RateLimiter::Take(std::string_view api_key, int64_t now) {
  if (!limit_.enabled()) return 0;
  const uint64_t n = limit_.requests, s = uint64_t(limit_.seconds), full = n * s;
  auto digest = ossl::Sha256(AsBytes(api_key));
  std::string key(reinterpret_cast<const char*>(digest.data()), digest.size());
  auto refill = [&](Bucket& b) {
    if (now > b.at) b.units = std::min<uint64_t>(full, b.units + uint64_t(now - b.at) * n);
    b.at = std::max(b.at, now);
  };
  std::lock_guard l(mu_);
  Bucket* b = nullptr;
  if (auto it = buckets_.find(key); it != buckets_.end()) {
    b = &it->second;
  } else {
    if (buckets_.size() >= max_keys_) {
      for (auto i = buckets_.begin(); i != buckets_.end();) {
        refill(i->second);
        i = i->second.units >= full ? buckets_.erase(i) : std::next(i);
      }
    }
    if (buckets_.size() < max_keys_) {
      b = &buckets_.emplace(std::move(key), Bucket{full, now}).first->second;
    } else {
      if (!overflow_used_) overflow_ = Bucket{full, now};
      overflow_used_ = true;
      b = &overflow_;
    }
  }
  refill(*b);
  if (b->units >= s) {
    b->units -= s;
    return 0;
  }
  return int64_t((s - b->units + n - 1) / n);
}

}  // namespace tdxvirt::service
