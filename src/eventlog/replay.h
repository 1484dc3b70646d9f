// Replaying a TD event log to RTMR values, and judging a quote's RTMRs register by register.
// RTMR[i] starts at 48 zero bytes; each event with MR index i+1, in log order, extends it as
// SHA-384(RTMR || event's SHA-384 digest). EV_NO_ACTION and MR index 0 are never replayed.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "eventlog/abi.h"

namespace tdxvirt::eventlog {

using Rtmrs = std::array<evidence::Sha384Digest, 4>;

// TDG.MR.RTMR.EXTEND: rtmr = SHA-384(rtmr || digest). The one definition the replay, the log
// writer and the simulated TD share.
void ExtendRtmr(evidence::Sha384Digest& rtmr, const evidence::Sha384Digest& digest);

struct Replayed {
  Rtmrs rtmrs{};
  std::array<size_t, 4> extends{};  // events replayed into each register
};
Replayed Replay(const EventLog& log);

// Measurements made after the log was written, replayed on top of it: e.g. IMA's log (index 2,
// Intel's IMA-on-RTMR kernels, or PCR 10 by the CC-MR mapping of UEFI 2.10 §38.4.1: RTMR2).
struct Continuation {
  std::array<std::vector<evidence::Sha384Digest>, 4> extends;
  std::string source;  // "ima", named in verdict reasons
};
// IMA's log, SHA-384 bank, in either form securityfs gives it: binary_runtime_measurements_sha384
// (per entry PCR u32, template digest (48 bytes), template name (u32 length + text), template data
// (u32 length + bytes)) or ascii_runtime_measurements_sha384 (per line "PCR HASH NAME ..."). A
// violation (zero digest) extends all ones, as Linux does. Bounded like ParseEventLog.
Result<Continuation> ParseImaLog(ByteSpan data);

enum class Verdict {
  kMatch,        // the log (and continuation) replays to the quote's value
  kMismatch,     // the log covers the register and replays to another value
  kUnexplained,  // the log has no event for it and the quote's value is not zero, e.g. RTMR3
                 // extended at run time; the log can neither confirm nor refute it
};
std::string_view VerdictName(Verdict v);  // "match", "mismatch", "unexplained"

struct RegisterVerdict {
  Verdict verdict = Verdict::kMatch;
  evidence::Sha384Digest replayed{};  // log (+ continuation) value
  std::string reason;                 // for mismatch/unexplained: "rtmr1: log replays to ..., quote has ..."
};
// A register with no event in the log nor continuation: match when the quote's value is zero,
// otherwise unexplained. Otherwise match or mismatch.
std::array<RegisterVerdict, 4> Judge(const Replayed& log, const Rtmrs& quote,
                                     const Continuation* continuation = nullptr);

}  // namespace tdxvirt::eventlog
