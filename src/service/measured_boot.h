// The TD event log of an attest request, appraised against the verified quote: parsed, decoded,
// summarized (kernel, initrd, command line, Secure Boot) and replayed to a verdict per RTMR. The
// appraisal builds it only after DCAP verification succeeded, so the RTMRs it is judged against
// are the TD's own; policies (policy.h) read it and the token carries it as tdx_measured_boot.
#pragma once

#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/result.h"
#include "eventlog/abi.h"
#include "eventlog/decode.h"
#include "eventlog/replay.h"

namespace tdxvirt::service {

struct MeasuredBoot {
  eventlog::EventLog log;
  std::vector<eventlog::DecodedEvent> decoded;  // one per log.events[i]
  eventlog::BootMeasurements summary;
  std::array<eventlog::RegisterVerdict, 4> verdicts;
  eventlog::Rtmrs quote_rtmrs{};
  evidence::Sha384Digest log_sha384{};  // of the event_log bytes as received (fill included)

  // "event 18 (EV_EVENT_TAG LOADED_IMAGE::LoadOptions, RTMR2, offset 1834)"; "" when no such event.
  std::string Describe(size_t event_number) const;
  // The register index (0..3) event `event_number` extends; -1 when none (MR index 0).
  int RegisterOf(size_t event_number) const;
};

// Refuses a log that does not parse ("event_log: <what CORE's parser says, with the offset>") or has an event whose
// data does not match its digest ("event_log: event N (...): digest is not SHA-384 of the event
// data"): in both cases the client sent evidence that contradicts itself (a 400). A log that parses
// but replays to other registers than the quote's is not refused here: the verdicts say so.
// `field` names the request field in errors ("event_log" or "tdx.event_log").
Result<MeasuredBoot> AppraiseEventLog(ByteSpan event_log, const eventlog::Rtmrs& quote_rtmrs,
                                      const std::string& field = "event_log");

// Text from a log as it may appear in JSON (claims, reasons): nlohmann::json throws on dump() of
// invalid UTF-8, so such bytes become \xNN.
std::string PrintableText(std::string_view text);

// The tdx_measured_boot claim (docs/service.md "Measured boot"):
//   {"event_log_sha384", "rtmrs": {"rtmr0": "match", ...}, "secure_boot": bool|null,
//    "kernel"|"initrd": {"digest","binding","event","source"}|null,
//    "cmdline": {..., "text": str|null}|null, "boot_attempts": N}
nlohmann::json MeasuredBootClaim(const MeasuredBoot& mb);

}  // namespace tdxvirt::service
