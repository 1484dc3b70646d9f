// JSON views of evidence for people and scripts (`tdxvirt quote inspect`). Field names are
// snake_case, byte strings lower-case hex; docs/evidence.md lists every field.
#pragma once

#include <nlohmann/json.hpp>

#include "evidence/quote.h"
#include "evidence/td_report.h"

namespace tdxvirt::evidence {

nlohmann::ordered_json QuoteToJson(const Quote& quote);
nlohmann::ordered_json TdReportToJson(const TdReport& report);

}  // namespace tdxvirt::evidence
