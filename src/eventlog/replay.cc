#include "eventlog/replay.h"

#include <string>

#include "common/hex.h"
#include "common/openssl.h"

namespace tdxvirt::eventlog {

void ExtendRtmr(evidence::Sha384Digest& rtmr, const evidence::Sha384Digest& digest) {
  ByteArray<96> buf;
  std::copy(rtmr.begin(), rtmr.end(), buf.begin());
  std::copy(digest.begin(), digest.end(), buf.begin() + 48);
  rtmr = ossl::Sha384(buf);
}

namespace {

// The register an IMA entry extends. Two kernels write IMA logs in a TD:
// - IMA on a TPM-like CC measurement: the entry names a PCR, which Linux's Kconfig confines to
//   8..14 (IMA_MEASURE_PCR_IDX, default 10); UEFI 2.10 §38.4.1 maps PCR 8-15 to RTMR2.
// - Intel's IMA-on-RTMR patches ("change the default index to store measurement from 10 to 2"):
//   the entry names the RTMR itself, 0..3.
// The two ranges do not overlap, so the index tells which.
int RtmrOfImaIndex(uint32_t index) {
  if (index <= 3) return int(index);
  if (index >= 8 && index <= 15) return 2;
  return -1;
}
constexpr const char* kImaIndexRule =
    " names no RTMR (an RTMR index 0-3, as Intel's IMA-on-RTMR kernels write, or a PCR 8-15, "
    "which UEFI 2.10 38.4.1 maps to RTMR2)";

constexpr size_t kMaxImaLogBytes = 64 << 20;
constexpr uint32_t kMaxImaTemplateName = 255;  // TCG_EVENT_NAME_LEN_MAX in Linux
constexpr uint32_t kMaxImaTemplateData = 1 << 20;

}  // namespace

Replayed Replay(const EventLog& log) {
  Replayed out;
  for (const auto& e : log.events) {
    if (e.number == 0 || e.type == kEvNoAction || e.mr_index < 1 || e.mr_index > 4) continue;
    ExtendRtmr(out.rtmrs[e.mr_index - 1], e.sha384);
    ++out.extends[e.mr_index - 1];
  }
  return out;
}

// ascii_runtime_measurements_sha384: one entry per line, "PCR TEMPLATE-HASH TEMPLATE-NAME ...".
Result<Continuation> ParseImaAsciiLog(std::string_view text) {
  Continuation c;
  c.source = "ima";
  size_t line = 0, start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(start, end - start);
    // Linux prints the index as "%2d ": one digit comes with a leading space.
    size_t lead = l.find_first_not_of(' ');
    size_t line_start = start;
    if (lead != std::string_view::npos && lead <= 1) l.remove_prefix(lead);
    auto where = [&] {
      return "IMA log: line " + std::to_string(line + 1) + " (offset " + std::to_string(line_start) + "): ";
    };
    size_t sp1 = l.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : l.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos)
      return Error{where() + "expected \"PCR TEMPLATE-HASH TEMPLATE-NAME ...\"; supply "
                   "ascii_runtime_measurements_sha384 or binary_runtime_measurements_sha384"};
    std::string_view pcr_text = l.substr(0, sp1), hash = l.substr(sp1 + 1, sp2 - sp1 - 1);
    uint32_t pcr = 0;
    if (pcr_text.empty() || pcr_text.size() > 2 ||
        pcr_text.find_first_not_of("0123456789") != std::string_view::npos)
      return Error{where() + "PCR \"" + std::string(pcr_text.substr(0, 8)) + "\" is not a number"};
    for (char ch : pcr_text) pcr = pcr * 10 + uint32_t(ch - '0');
    int rtmr = RtmrOfImaIndex(pcr);
    if (rtmr < 0) return Error{where() + "index " + std::to_string(pcr) + kImaIndexRule};
    auto digest = FromHex(hash);
    if (!digest.ok() || digest->size() != 48)
      return Error{where() + "the template hash has " + std::to_string(hash.size()) +
                   " characters, not 96 hex digits of SHA-384; supply "
                   "ascii_runtime_measurements_sha384 (the sha1 file cannot extend an RTMR)"};
    evidence::Sha384Digest d;
    std::copy(digest->begin(), digest->end(), d.begin());
    if (IsAllZero(d)) d.fill(0xFF);  // a violation, as in the binary form
    c.extends[rtmr].push_back(d);
    ++line;
    start = end + 1;
  }
  return c;
}

Result<Continuation> ParseImaLog(ByteSpan data) {
  if (data.size() > kMaxImaLogBytes)
    return Error{"IMA log: " + std::to_string(data.size()) + " bytes, more than the " +
                 std::to_string(kMaxImaLogBytes) + " accepted"};
  // The binary form starts with a little-endian index of at most 15; the text form with a digit
  // or, for a one-digit index, a space.
  if (!data.empty() && ((data[0] >= '0' && data[0] <= '9') || data[0] == ' '))
    return ParseImaAsciiLog(AsString(data));
  Continuation c;
  c.source = "ima";
  ByteReader r(data, "IMA log");
  size_t entry = 0;
  try {
    while (r.remaining() > 0) {
      size_t start = r.offset();
      auto where = [&] {
        return "IMA log: entry " + std::to_string(entry) + " (offset " + std::to_string(start) + "): ";
      };
      uint32_t pcr = r.U32("PCR");
      int rtmr = RtmrOfImaIndex(pcr);
      if (rtmr < 0)
        return Error{where() + "index " + std::to_string(pcr) + kImaIndexRule +
                     "; supply binary_runtime_measurements_sha384"};
      evidence::Sha384Digest d;
      r.Read(d, "template digest");
      size_t name_off = r.offset();
      uint32_t name_len = r.U32("template name length");
      if (name_len == 0 || name_len > kMaxImaTemplateName)
        return Error{where() + "template name length at offset " + std::to_string(name_off) +
                     " is " + std::to_string(name_len) + ", not 1.." +
                     std::to_string(kMaxImaTemplateName) +
                     "; is this the sha384 binary log (binary_runtime_measurements_sha384)?"};
      r.Take(name_len, "template name");
      size_t data_off = r.offset();
      uint32_t data_len = r.U32("template data length");
      if (data_len > kMaxImaTemplateData)
        return Error{where() + "template data length at offset " + std::to_string(data_off) +
                     " is " + std::to_string(data_len) + ", above the limit of " +
                     std::to_string(kMaxImaTemplateData)};
      r.Take(data_len, "template data");
      // A violation is logged with a zero digest and extended as all ones (Linux ima_add_violation).
      if (IsAllZero(d)) d.fill(0xFF);
      c.extends[rtmr].push_back(d);
      ++entry;
    }
  } catch (const ParseError& e) {
    return Error{"entry " + std::to_string(entry) + ": " + e.what() +
                 " (the IMA log is truncated: supply the whole binary_runtime_measurements_sha384)"};
  }
  return c;
}

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kMatch: return "match";
    case Verdict::kMismatch: return "mismatch";
    case Verdict::kUnexplained: return "unexplained";
  }
  return "?";
}

std::array<RegisterVerdict, 4> Judge(const Replayed& log, const Rtmrs& quote,
                                     const Continuation* continuation) {
  std::array<RegisterVerdict, 4> out;
  for (size_t i = 0; i < 4; ++i) {
    auto& v = out[i];
    v.replayed = log.rtmrs[i];
    size_t extends = log.extends[i];
    size_t more = 0;
    if (continuation) {
      for (const auto& d : continuation->extends[i]) ExtendRtmr(v.replayed, d);
      more = continuation->extends[i].size();
    }
    std::string name = "rtmr" + std::to_string(i);
    if (extends + more == 0) {
      if (IsAllZero(quote[i])) {
        v.verdict = Verdict::kMatch;
      } else {
        v.verdict = Verdict::kUnexplained;
        v.reason = name + ": the log has no event for it, the quote has " + ToHex(quote[i]) +
                   " (extended at run time or by a log not supplied)";
      }
      continue;
    }
    if (v.replayed == quote[i]) {
      v.verdict = Verdict::kMatch;
      continue;
    }
    v.verdict = Verdict::kMismatch;
    std::string what = std::to_string(extends) + " event log event" + (extends == 1 ? "" : "s");
    if (continuation && more)
      what += " + " + std::to_string(more) + " " + continuation->source + " entr" +
              (more == 1 ? "y" : "ies");
    v.reason = name + ": log replays to " + ToHex(v.replayed) + " (" + what + "), quote has " +
               ToHex(quote[i]);
  }
  return out;
}

}  // namespace tdxvirt::eventlog
