// The node agent's log lines: one JSON object per line on stderr, as the other daemons write them
// ({"time","level","component","event","detail"}). Nothing secret goes into a detail.
#pragma once

#include <string>

namespace tdxvirt::node {

std::string LogLine(const std::string& level, const std::string& component,
                    const std::string& event, const std::string& detail);
void LogToStderr(const std::string& line);  // one write(2) per line, so threads do not interleave

}  // namespace tdxvirt::node
