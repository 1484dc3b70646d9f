#include "common/time.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace tdxvirt {

namespace {
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }
}  // namespace

Result<int64_t> ParseRfc3339(std::string_view s) {
  auto bad = [&](const std::string& why) {
    return Error{Quoted(s) + " is not an RFC 3339 date-time like 2025-06-19T10:16:03Z: " + why};
  };
  size_t i = 0;
  auto number = [&](size_t n, int& out) {
    if (i + n > s.size()) return false;
    out = 0;
    for (size_t k = 0; k < n; ++k, ++i) {
      if (!IsDigit(s[i])) return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  auto literal = [&](char c) {
    if (i >= s.size() || s[i] != c) return false;
    ++i;
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!number(4, year) || !literal('-') || !number(2, month) || !literal('-') || !number(2, day))
    return bad("expected the date as YYYY-MM-DD");
  if (!literal('T') && !literal('t')) return bad("expected 'T' between date and time");
  if (!number(2, hour) || !literal(':') || !number(2, minute) || !literal(':') ||
      !number(2, second))
    return bad("expected the time as hh:mm:ss");
  if (literal('.')) {
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start) return bad("expected digits after '.'");
  }
  int offset = 0;
  if (literal('Z') || literal('z')) {
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int sign = s[i++] == '-' ? -1 : 1;
    int off_hour, off_minute;
    if (!number(2, off_hour) || !literal(':') || !number(2, off_minute))
      return bad("expected the offset as +hh:mm");
    if (off_hour > 23 || off_minute > 59) return bad("offset out of range");
    offset = sign * (off_hour * 3600 + off_minute * 60);
  } else {
    return bad("expected 'Z' or an offset like +00:00 after the time");
  }
  if (i != s.size()) return bad("unexpected text after the time zone");

  using namespace std::chrono;
  year_month_day ymd{std::chrono::year(year), std::chrono::month(unsigned(month)),
                     std::chrono::day(unsigned(day))};
  if (!ymd.ok()) return bad("no such calendar date");
  if (hour > 23 || minute > 59 || second > 59) return bad("time of day out of range");
  int64_t days = sys_days(ymd).time_since_epoch().count();
  return days * 86400 + hour * 3600 + minute * 60 + second - offset;
}

std::string FormatRfc3339(int64_t unix_seconds) {
  using namespace std::chrono;
  // Years 0000..9999, the range RFC 3339 can write (and one the calendar maths cannot overflow).
  unix_seconds = std::clamp<int64_t>(unix_seconds, -62167219200, 253402300799);
  int64_t day_count = unix_seconds / 86400;
  int64_t secs = unix_seconds % 86400;
  if (secs < 0) {
    secs += 86400;
    --day_count;
  }
  year_month_day ymd{sys_days(days(day_count))};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), int(secs / 3600), int(secs / 60 % 60),
                int(secs % 60));
  return buf;
}

}  // namespace tdxvirt
