// `tdxvirt quote ...` and `tdxvirt report ...`: evidence inspection.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "common/file.h"
#include "evidence/quote.h"
#include "evidence/quote_json.h"
#include "evidence/td_report.h"

namespace tdxvirt::cli {

namespace {

struct InspectOptions {
  std::string file;
  bool compact = false;
};

CLI::App* AddInspect(CLI::App& parent, const std::string& what, InspectOptions& opts) {
  auto* cmd = parent.add_subcommand("inspect", "Print every field of a " + what + " as JSON");
  cmd->add_option("FILE", opts.file, what + " file: binary, or hex text with or without 0x; - for stdin")
      ->required();
  cmd->add_flag("--compact", opts.compact, "one line of JSON instead of indented");
  return cmd;
}

void Print(const nlohmann::ordered_json& j, bool compact) {
  std::cout << j.dump(compact ? -1 : 2) << "\n";
}

}  // namespace

void AddQuoteCommands(CLI::App& app, int& exit_code) {
  auto* quote = app.add_subcommand("quote", "TD quotes (v4, v5): inspect and verify");
  quote->require_subcommand(1);
  auto quote_opts = std::make_shared<InspectOptions>();
  AddInspect(*quote, "TD quote", *quote_opts)->callback([&exit_code, quote_opts] {
    auto data = ReadBinaryOrHex(quote_opts->file);
    if (!data.ok()) return void(exit_code = InputError(data.error()));
    auto q = evidence::ParseQuote(*data);
    if (!q.ok()) return void(exit_code = InputError(q.error()));
    Print(evidence::QuoteToJson(*q), quote_opts->compact);
  });

  auto* report = app.add_subcommand("report", "TDREPORTs (1024 bytes from TDG.MR.REPORT)");
  report->require_subcommand(1);
  auto report_opts = std::make_shared<InspectOptions>();
  AddInspect(*report, "TDREPORT", *report_opts)->callback([&exit_code, report_opts] {
    auto data = ReadBinaryOrHex(report_opts->file);
    if (!data.ok()) return void(exit_code = InputError(data.error()));
    auto r = evidence::ParseTdReport(*data);
    if (!r.ok()) return void(exit_code = InputError(r.error()));
    Print(evidence::TdReportToJson(*r), report_opts->compact);
  });
}

}  // namespace tdxvirt::cli
