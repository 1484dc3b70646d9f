#include "service/measured_boot.h"

#include "common/hex.h"
#include "common/openssl.h"
#include "common/utf8.h"

namespace tdxvirt::service {

std::string MeasuredBoot::Describe(size_t n) const {
  if (n >= log.events.size() || n >= decoded.size()) return "";
  return PrintableText(eventlog::DescribeEvent(log.events[n], decoded[n]));
}

int MeasuredBoot::RegisterOf(size_t n) const {
  if (n >= log.events.size()) return -1;
  uint32_t mr = log.events[n].mr_index;
  return mr >= 1 && mr <= 4 ? int(mr) - 1 : -1;
}

Result<MeasuredBoot> AppraiseEventLog(ByteSpan event_log, const eventlog::Rtmrs& quote_rtmrs,
                                      const std::string& field) {
  auto log = eventlog::ParseEventLog(event_log);
  if (!log.ok()) {
    std::string e = log.error();
    if (e.rfind("event log: ", 0) == 0) e.erase(0, 11);  // the field name says it already
    return Error{field + ": " + PrintableText(e)};
  }
  MeasuredBoot mb;
  mb.log = std::move(*log);
  mb.decoded = eventlog::DecodeEvents(mb.log);
  for (size_t i = 0; i < mb.decoded.size() && i < mb.log.events.size(); ++i)
    if (mb.decoded[i].binding == eventlog::Binding::kBroken)
      return Error{field + ": " + mb.Describe(i) + ": " +
                   (mb.decoded[i].problem.empty() ? "digest is not SHA-384 of the event data"
                                                  : PrintableText(mb.decoded[i].problem)) +
                   "; the log contradicts itself, send it as the TD's firmware wrote it"};
  mb.summary = eventlog::Summarize(mb.log, mb.decoded);
  mb.quote_rtmrs = quote_rtmrs;
  mb.verdicts = eventlog::Judge(eventlog::Replay(mb.log), quote_rtmrs);
  mb.log_sha384 = ossl::Sha384(event_log);
  return mb;
}

std::string PrintableText(std::string_view text) {
  std::string out;
  while (auto bad = FirstInvalidUtf8(text)) {
    out.append(text.substr(0, *bad));
    static const char* kHex = "0123456789abcdef";
    uint8_t b = uint8_t(text[*bad]);
    out += std::string("\\x") + kHex[b >> 4] + kHex[b & 15];
    text.remove_prefix(*bad + 1);
  }
  out.append(text);
  return out;
}

namespace {

nlohmann::json ItemClaim(const std::optional<eventlog::MeasuredItem>& item, bool with_text) {
  if (!item) return nullptr;
  nlohmann::json j = {{"digest", ToHex(item->digest)},
                      {"binding", std::string(eventlog::BindingName(item->binding))},
                      {"event", item->event},
                      {"source", PrintableText(item->source)}};
  if (with_text) j["text"] = item->text ? nlohmann::json(PrintableText(*item->text)) : nlohmann::json(nullptr);
  return j;
}

}  // namespace

nlohmann::json MeasuredBootClaim(const MeasuredBoot& mb) {
  nlohmann::json c;
  c["event_log_sha384"] = ToHex(mb.log_sha384);
  nlohmann::json rtmrs = nlohmann::json::object();
  for (int i = 0; i < 4; ++i)
    rtmrs["rtmr" + std::to_string(i)] = std::string(eventlog::VerdictName(mb.verdicts[i].verdict));
  c["rtmrs"] = rtmrs;
  c["secure_boot"] = mb.summary.secure_boot ? nlohmann::json(*mb.summary.secure_boot) : nlohmann::json(nullptr);
  c["kernel"] = ItemClaim(mb.summary.kernel, false);
  c["initrd"] = ItemClaim(mb.summary.initrd, false);
  c["cmdline"] = ItemClaim(mb.summary.cmdline, true);
  c["boot_attempts"] = mb.summary.boot_attempts;
  return c;
}

}  // namespace tdxvirt::service
