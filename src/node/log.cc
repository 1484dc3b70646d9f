#include "node/log.h"

#include <unistd.h>

#include <ctime>

#include <nlohmann/json.hpp>

#include "common/time.h"

namespace tdxvirt::node {

std::string LogLine(const std::string& level, const std::string& component,
                    const std::string& event, const std::string& detail) {
  nlohmann::ordered_json j;
  j["time"] = FormatRfc3339(int64_t(std::time(nullptr)));
  j["level"] = level;
  j["component"] = component;
  j["event"] = event;
  j["detail"] = detail;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void LogToStderr(const std::string& line) {
  std::string l = line + "\n";
  (void)!write(STDERR_FILENO, l.data(), l.size());
}

}  // namespace tdxvirt::node
