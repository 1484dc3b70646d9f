// `tdxvirt eventlog inspect|replay`: a TD's measured-boot log (CCEL), decoded and replayed to the
// RTMRs, optionally judged against a quote. Exit codes of `replay`: 0 every register the log
// covers matches (and every bound event binds), 1 a mismatch or a broken event, 2 bad input.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "common/file.h"
#include "common/hex.h"
#include "eventlog/decode.h"
#include "eventlog/replay.h"
#include "evidence/quote.h"

namespace tdxvirt::cli {
namespace {

using json = nlohmann::ordered_json;
using namespace tdxvirt::eventlog;

struct LogOptions {
  std::string ccel;
  std::string table;
};

struct LoadedLog {
  std::optional<CcelTable> table;
  EventLog log;
};

Result<LoadedLog> LoadLog(const LogOptions& o) {
  LoadedLog out;
  ParseOptions parse;
  if (!o.table.empty()) {
    auto raw = ReadFile(o.table, 4096);
    if (!raw.ok()) return Error{"--table " + o.table + ": " + raw.error()};
    auto t = ParseCcelTable(*raw);
    if (!t.ok()) return Error{"--table " + o.table + ": " + t.error()};
    out.table = *t;
    parse.laml = t->laml;
  }
  auto data = ReadFile(o.ccel, kMaxEventLogBytes);
  if (!data.ok()) return Error{"--ccel " + o.ccel + ": " + data.error()};
  auto log = ParseEventLog(*data, parse);
  if (!log.ok()) return Error{"--ccel " + o.ccel + ": " + log.error()};
  out.log = std::move(*log);
  return out;
}

std::string AlgName(uint16_t id) {
  switch (id) {
    case kAlgSha1: return "sha1";
    case kAlgSha256: return "sha256";
    case kAlgSha384: return "sha384";
    case kAlgSha512: return "sha512";
    case kAlgSm3: return "sm3";
    default: return "unknown";
  }
}

json ItemJson(const std::optional<MeasuredItem>& m) {
  if (!m) return nullptr;
  json j;
  j["digest"] = ToHex(m->digest);
  j["binding"] = std::string(BindingName(m->binding));
  j["event"] = m->event;
  j["source"] = m->source;
  if (m->text) j["text"] = *m->text;
  return j;
}

json SummaryJson(const BootMeasurements& s) {
  json j;
  j["secure_boot"] = s.secure_boot ? json(*s.secure_boot) : json(nullptr);
  j["kernel"] = ItemJson(s.kernel);
  j["initrd"] = ItemJson(s.initrd);
  j["cmdline"] = ItemJson(s.cmdline);
  j["boot_path"] = s.boot_path;
  j["boot_attempts"] = s.boot_attempts;
  j["warnings"] = s.warnings;
  return j;
}

int RunInspect(const LogOptions& o, bool compact) {
  auto loaded = LoadLog(o);
  if (!loaded.ok()) return InputError(loaded.error());
  const EventLog& log = loaded->log;
  auto decoded = DecodeEvents(log);
  json j;
  if (loaded->table) {
    const auto& t = *loaded->table;
    j["table"] = {{"cc_type", t.cc_type}, {"cc_subtype", t.cc_subtype}, {"laml", t.laml},
                  {"lasa", t.lasa}};
  } else {
    j["table"] = nullptr;
  }
  json spec;
  const auto& s = log.spec_id;
  spec["platform_class"] = s.platform_class;
  spec["spec_version"] = std::to_string(s.version_major) + "." + std::to_string(s.version_minor) +
                         "." + std::to_string(s.errata);
  spec["uintn_size"] = s.uintn_size;
  json algs = json::array();
  for (const auto& a : s.algorithms)
    algs.push_back({{"id", "0x" + ToHex(Bytes{uint8_t(a.id >> 8), uint8_t(a.id)})}, {"name", AlgName(a.id)}, {"digest_size", a.digest_size}});
  spec["algorithms"] = algs;
  spec["vendor_info"] = ToHex(s.vendor_info);
  j["spec_id"] = spec;
  j["log_bytes"] = log.log_bytes;
  j["fill"] = log.fill ? json("0x" + ToHex(Bytes{*log.fill})) : json(nullptr);
  json events = json::array();
  for (size_t i = 0; i < log.events.size(); ++i)
    events.push_back(EventToJson(log.events[i], decoded[i]));
  j["events"] = events;
  j["summary"] = SummaryJson(Summarize(log, decoded));
  std::cout << j.dump(compact ? -1 : 2) << "\n";
  return kExitOk;
}

struct ReplayOptions {
  LogOptions log;
  std::string quote;
  std::string ima;
  bool json = false;
};

int RunReplay(const ReplayOptions& o) {
  auto loaded = LoadLog(o.log);
  if (!loaded.ok()) return InputError(loaded.error());
  const EventLog& log = loaded->log;
  std::optional<Continuation> ima;
  if (!o.ima.empty()) {
    auto raw = ReadFile(o.ima, 64 << 20);
    if (!raw.ok()) return InputError("--ima " + o.ima + ": " + raw.error());
    auto c = ParseImaLog(*raw);
    if (!c.ok()) return InputError("--ima " + o.ima + ": " + c.error());
    ima = std::move(*c);
  }
  std::optional<Rtmrs> quote_rtmrs;
  if (!o.quote.empty()) {
    auto raw = ReadBinaryOrHex(o.quote);
    if (!raw.ok()) return InputError("--quote " + o.quote + ": " + raw.error());
    auto q = evidence::ParseQuote(*raw);
    if (!q.ok()) return InputError("--quote " + o.quote + ": " + q.error());
    if (q->body.type == evidence::BodyType::kSgxEnclave)
      return InputError("--quote " + o.quote +
                        ": an SGX enclave quote has no RTMRs; supply a TD quote");
    Rtmrs r;
    for (size_t i = 0; i < 4; ++i) r[i] = q->body.td.rtmr[i];
    quote_rtmrs = r;
  }

  Replayed replayed = Replay(log);
  const Continuation* cont = ima ? &*ima : nullptr;
  // Judge folds the continuation in; against zeros it also gives the replayed values alone.
  auto verdicts = Judge(replayed, quote_rtmrs.value_or(Rtmrs{}), cont);
  auto decoded = DecodeEvents(log);

  json out;
  json rtmrs = json::array(), extends = json::array();
  for (size_t i = 0; i < 4; ++i) {
    rtmrs.push_back(ToHex(verdicts[i].replayed));
    extends.push_back(replayed.extends[i] + (cont ? cont->extends[i].size() : 0));
  }
  out["rtmrs"] = rtmrs;
  out["extends"] = extends;
  std::vector<std::string> problems;
  if (quote_rtmrs) {
    json matches = json::array(), vs = json::array();
    for (size_t i = 0; i < 4; ++i) {
      const auto& v = verdicts[i];
      matches.push_back(v.verdict == Verdict::kMatch      ? json(true)
                        : v.verdict == Verdict::kMismatch ? json(false)
                                                          : json(nullptr));
      json vj = {{"register", "rtmr" + std::to_string(i)},
                 {"verdict", std::string(VerdictName(v.verdict))},
                 {"replayed", ToHex(v.replayed)},
                 {"quote", ToHex((*quote_rtmrs)[i])}};
      if (!v.reason.empty()) vj["reason"] = v.reason;
      vs.push_back(vj);
      if (v.verdict == Verdict::kMismatch) problems.push_back(v.reason);
    }
    out["matches"] = matches;
    out["verdicts"] = vs;
  }
  json broken = json::array();
  for (size_t i = 0; i < decoded.size(); ++i) {
    if (decoded[i].binding != Binding::kBroken) continue;
    std::string what = DescribeEvent(log.events[i], decoded[i]);
    broken.push_back({{"event", log.events[i].number}, {"description", what},
                      {"problem", decoded[i].problem}});
    problems.push_back(what + " is broken: " + decoded[i].problem);
  }
  out["broken"] = broken;

  if (o.json) {
    std::cout << out.dump(2) << "\n";
  } else {
    for (size_t i = 0; i < 4; ++i) {
      std::cout << "rtmr" << i << " " << rtmrs[i].get<std::string>() << " ("
                << extends[i].get<size_t>() << " extends)";
      if (quote_rtmrs) std::cout << " " << VerdictName(verdicts[i].verdict);
      std::cout << "\n";
    }
    for (const auto& b : broken) std::cout << "broken: " << b["description"].get<std::string>() << "\n";
  }
  for (const auto& p : problems) std::cerr << "tdxvirt: " << p << "\n";
  return problems.empty() ? kExitOk : kExitNegative;
}

void AddLogOptions(CLI::App* cmd, LogOptions& o) {
  cmd->add_option("--ccel", o.ccel,
                  "the event log: /sys/firmware/acpi/tables/data/CCEL (0xFF fill may be trimmed)")
      ->required();
  cmd->add_option("--table", o.table,
                  "the CCEL ACPI table (/sys/firmware/acpi/tables/CCEL): must be TDX; its LAML "
                  "bounds the log");
}

}  // namespace

void AddEventlogCommands(CLI::App& app, int& exit_code) {
  auto* el = app.add_subcommand("eventlog", "TD measured-boot event logs (CCEL): inspect, replay");
  el->require_subcommand(1);

  auto inspect = std::make_shared<std::pair<LogOptions, bool>>();
  auto* ins = el->add_subcommand(
      "inspect", "Print the CCEL table, the Spec ID event, every event decoded and a boot summary "
                 "as JSON; exit 2 on a malformed log");
  AddLogOptions(ins, inspect->first);
  ins->add_flag("--compact", inspect->second, "one line of JSON");
  ins->callback([&exit_code, inspect] { exit_code = RunInspect(inspect->first, inspect->second); });

  auto replay = std::make_shared<ReplayOptions>();
  auto* rep = el->add_subcommand(
      "replay",
      "Replay the log to RTMR0-3 and, with --quote, judge each register (match / mismatch / "
      "unexplained).\nExit 0 all covered registers match and every bound event binds, 1 a "
      "mismatch or a broken event, 2 bad input");
  AddLogOptions(rep, replay->log);
  rep->add_option("--quote", replay->quote, "a TD quote (v4 or v5; binary or hex) to judge against");
  rep->add_option("--ima", replay->ima,
                  "IMA's binary_runtime_measurements_sha384, replayed on top of the log");
  rep->add_flag("--json", replay->json, "print JSON");
  rep->callback([&exit_code, replay] { exit_code = RunReplay(*replay); });
}

}  // namespace tdxvirt::cli
