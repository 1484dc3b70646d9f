// Time as Intel's collateral writes it (RFC 3339, UTC) and as the verifier judges it (Unix seconds).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tdxvirt {

// RFC 3339 date-time to seconds since the epoch: "2025-06-19T10:16:03Z", optional fractional
// seconds (truncated) and a numeric offset ("+00:00", "-05:30"). Leap second 60 is rejected.
Result<int64_t> ParseRfc3339(std::string_view text);
// "2025-06-19T10:16:03Z". Times outside years 0000..9999 are clamped to that range.
std::string FormatRfc3339(int64_t unix_seconds);

}  // namespace tdxvirt
