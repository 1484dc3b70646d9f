// `tdxvirt quote ...` and `tdxvirt report ...`: evidence inspection.
#include <ctime>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "common/file.h"
#include "evidence/quote.h"
#include "evidence/quote_json.h"
#include "evidence/td_report.h"
#include "verify/verifier.h"

namespace tdxvirt::cli {

namespace {

struct InspectOptions {
  std::string file;
  bool compact = false;
};

// FILE may also be given as `flag` (--quote, --report), the way `quote verify` takes it.
CLI::App* AddInspect(CLI::App& parent, const std::string& what, const std::string& flag,
                     InspectOptions& opts) {
  auto* cmd = parent.add_subcommand("inspect", "Print every field of a " + what + " as JSON");
  cmd->add_option("FILE," + flag, opts.file, what + " file: binary, or hex text with or without 0x; - for stdin")
      ->required();
  cmd->add_flag("--compact", opts.compact, "one line of JSON instead of indented");
  return cmd;
}

void Print(const nlohmann::ordered_json& j, bool compact) {
  std::cout << j.dump(compact ? -1 : 2) << "\n";
}

struct VerifyOptions {
  std::string quote;
  std::string collateral;
  std::string at;
  std::string root;
  bool no_crl = false;
  bool compact = false;
};

int RunVerify(const VerifyOptions& o) {
  auto now = o.at.empty() ? Result<int64_t>(int64_t(time(nullptr))) : ParseTimeOption("--at", o.at);
  if (!now.ok()) return InputError(now.error());
  auto raw = ReadBinaryOrHex(o.quote);
  if (!raw.ok()) return InputError(raw.error());
  if (auto q = evidence::ParseQuote(*raw); !q.ok()) return InputError(q.error());
  auto collateral = verify::LoadCollateral(o.collateral);
  if (!collateral.ok()) return InputError(collateral.error());
  Result<verify::TrustedRoot> root = verify::TrustedRoot::IntelSgxRootCa();
  if (!o.root.empty()) {
    auto pem = ReadFile(o.root);
    if (!pem.ok()) return InputError(pem.error());
    root = verify::TrustedRoot::FromPem(AsString(*pem));
  }
  if (!root.ok()) return InputError(root.error());
  auto prepared = verify::PreparedCollateral::Prepare(*collateral, *root);
  verify::QuoteVerifier verifier(*root);
  auto result = verifier.Verify(*raw, *prepared, {.now = *now, .check_crl = !o.no_crl});
  Print(verify::VerificationResultToJson(result), o.compact);
  return result.verified ? kExitOk : kExitNegative;
}

}  // namespace

void AddQuoteCommands(CLI::App& app, int& exit_code) {
  auto* quote = app.add_subcommand("quote", "TD quotes (v4, v5): inspect and verify");
  quote->require_subcommand(1);
  auto quote_opts = std::make_shared<InspectOptions>();
  AddInspect(*quote, "TD quote", "--quote", *quote_opts)->callback([&exit_code, quote_opts] {
    auto data = ReadBinaryOrHex(quote_opts->file);
    if (!data.ok()) return void(exit_code = InputError(data.error()));
    auto q = evidence::ParseQuote(*data);
    if (!q.ok()) return void(exit_code = InputError(q.error()));
    Print(evidence::QuoteToJson(*q), quote_opts->compact);
  });

  auto verify_opts = std::make_shared<VerifyOptions>();
  auto* verify_cmd = quote->add_subcommand(
      "verify",
      "Verify a TD quote with DCAP collateral to Intel's root: signatures, chains, CRLs, TCB status.\n"
      "Prints JSON; exit 0 verified, 1 not verified, 2 bad input");
  verify_cmd->add_option("--quote", verify_opts->quote, "TD quote: binary or hex; - for stdin")->required();
  verify_cmd->add_option("--collateral", verify_opts->collateral,
                     "collateral bundle JSON file, or a directory of raw PCS responses")
      ->required();
  verify_cmd->add_option("--at", verify_opts->at,
                     "judge validity at this time (RFC 3339 or Unix seconds; default now)");
  verify_cmd->add_option("--root", verify_opts->root,
                     "trust this root CA (PEM) instead of the built-in Intel SGX Root CA");
  verify_cmd->add_flag("--no-crl", verify_opts->no_crl, "skip CRL signature, date and revocation checks");
  verify_cmd->add_flag("--compact", verify_opts->compact, "one line of JSON");
  verify_cmd->callback([&exit_code, verify_opts] { exit_code = RunVerify(*verify_opts); });

  auto* report = app.add_subcommand("report", "TDREPORTs (1024 bytes from TDG.MR.REPORT)");
  report->require_subcommand(1);
  auto report_opts = std::make_shared<InspectOptions>();
  AddInspect(*report, "TDREPORT", "--report", *report_opts)->callback([&exit_code, report_opts] {
    auto data = ReadBinaryOrHex(report_opts->file);
    if (!data.ok()) return void(exit_code = InputError(data.error()));
    auto r = evidence::ParseTdReport(*data);
    if (!r.ok()) return void(exit_code = InputError(r.error()));
    Print(evidence::TdReportToJson(*r), report_opts->compact);
  });
}

}  // namespace tdxvirt::cli
