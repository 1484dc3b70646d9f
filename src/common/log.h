// The daemons' structured logs: one JSON object per line on stderr,
// {"time","level","component","event", ...fields}, time in RFC 3339 UTC with milliseconds.
// Log collectors (Loki, Fluent Bit, Cloud Logging) read these fields without a parser of ours.
// Nothing secret goes into a record: callers log outcomes and reasons, never keys or tokens.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tdxvirt {

// A record with the four fields every line has; callers add their own after them.
nlohmann::ordered_json LogRecord(std::string_view level, std::string_view component,
                                 std::string_view event);
// The line for a record. Invalid UTF-8 from outside (peer names, paths) is replaced, not thrown.
std::string LogLine(const nlohmann::ordered_json& record);
// A record with one "detail" field (omitted when empty), as a line.
std::string LogLine(std::string_view level, std::string_view component, std::string_view event,
                    std::string_view detail);
// One write(2) per line, so lines from several threads never interleave.
void LogToStderr(const std::string& line);
// "2026-11-28T11:10:28.123Z".
std::string NowRfc3339Ms();

}  // namespace tdxvirt
