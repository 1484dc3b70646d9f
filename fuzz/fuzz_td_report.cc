// TDREPORT parser: parse or fail cleanly; round-trip exactly.
#include <cstdlib>

#include "evidence/quote_json.h"
#include "evidence/td_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto report = tdxvirt::evidence::ParseTdReport(tdxvirt::ByteSpan(data, size));
  if (!report.ok()) return 0;
  auto out = tdxvirt::evidence::SerializeTdReport(*report);
  if (!std::equal(out.begin(), out.end(), data)) std::abort();
  (void)tdxvirt::evidence::TdReportToJson(*report).dump();
  return 0;
}
