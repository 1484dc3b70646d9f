// An optional per-API-key request rate limit for the attestation service (429 + Retry-After), as
// Trust Authority limits each key (1,000 requests per 5 min; ita-ecosystem.md §6). Checked on the
// request header, before any body byte is read (http::Route::admit).
//
// A token bucket per key: `requests` may come at once, then one more every seconds/requests.
// Arithmetic in whole units of 1/requests of a second, so no rounding drifts. Keys are held as
// SHA-256 digests (never the key itself), and at most `max_keys` of them: when full, buckets that
// have refilled completely are dropped (they equal a new one); should that not free a slot, new
// keys share one overflow bucket, so memory stays bounded even when any key is accepted (a service
// without --api-key-file).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"

namespace tdxvirt::service {

struct RateLimit {
  uint64_t requests = 0;  // 0: no limit
  int64_t seconds = 0;
  bool enabled() const { return requests > 0; }
};

// "N/SECONDS", e.g. "1000/300" (Trust Authority's 1,000 per 5 minutes) or "2/1"; N 1..1000000,
// SECONDS 1..86400. The error names the flag's form.
Result<RateLimit> ParseRateLimit(std::string_view text);

class RateLimiter {
 public:
  explicit RateLimiter(RateLimit limit, size_t max_keys = 10000);
  // Takes one request for `api_key` at `now` (Unix seconds). 0 when admitted; otherwise the whole
  // seconds until the next request will be (Retry-After), at least 1.
  int64_t Take(std::string_view api_key, int64_t now);
  size_t keys() const;

 private:
  struct Bucket {
    uint64_t units = 0;  // requests available times `seconds` (see Take)
    int64_t at = 0;      // when `units` was last brought up to date
  };
  const RateLimit limit_;
  const size_t max_keys_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;  // by SHA-256 of the key
  Bucket overflow_;
  bool overflow_used_ = false;
};

}  // namespace tdxvirt::service
