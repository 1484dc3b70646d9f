#include "common/log.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace tdxvirt {

nlohmann::ordered_json LogRecord(std::string_view level, std::string_view component,
                                 std::string_view event) {
  nlohmann::ordered_json j;
  j["time"] = NowRfc3339Ms();
  j["level"] = level;
  j["component"] = component;
  j["event"] = event;
  return j;
}

std::string LogLine(const nlohmann::ordered_json& record) {
  return record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string LogLine(std::string_view level, std::string_view component, std::string_view event,
                    std::string_view detail) {
  auto j = LogRecord(level, component, event);
  if (!detail.empty()) j["detail"] = detail;
  return LogLine(j);
}

void LogToStderr(const std::string& line) {
  std::string l = line + "\n";
  const char* p = l.data();
  size_t left = l.size();
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr closed: nothing better to do with a log line
    p += n;
    left -= size_t(n);
  }
}

std::string NowRfc3339Ms() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms));
  return buf;
}

}  // namespace tdxvirt
