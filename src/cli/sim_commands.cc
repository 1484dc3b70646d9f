// `tdxvirt sim ...`: the TDX simulator (platform PKI and collateral, TD reports, quotes).
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/file.h"
#include "common/hex.h"
#include "simulator/platform.h"
#include "simulator/quoting_enclave.h"
#include "simulator/td.h"

namespace tdxvirt::cli {

namespace {

struct InitOptions {
  std::string dir;
  std::string scenario = "uptodate";
  std::string at;
  std::string fmspc;
  int collateral_days = 30;
  bool pck_revoked = false;
};

int RunInit(const InitOptions& o) {
  simulator::PlatformConfig config;
  auto scenario = simulator::ParseTcbScenario(o.scenario);
  if (!scenario.ok()) return InputError("--scenario: " + scenario.error());
  config.scenario = *scenario;
  if (!o.at.empty()) {
    auto at = ParseTimeOption("--at", o.at);
    if (!at.ok()) return InputError(at.error());
    config.issued_at = *at;
  }
  if (!o.fmspc.empty()) {
    auto fmspc = FromHexFixed<6>(o.fmspc, "--fmspc");
    if (!fmspc.ok()) return InputError(fmspc.error());
    config.fmspc = *fmspc;
  }
  if (o.collateral_days < 1) return InputError("--collateral-days must be at least 1");
  config.collateral_days = o.collateral_days;
  config.pck_revoked = o.pck_revoked;
  auto platform = simulator::SimPlatform::Create(config);
  if (!platform.ok()) return InputError(platform.error());
  Status s = platform->Save(o.dir);
  if (!s.ok()) return InputError(s.error());
  nlohmann::ordered_json j = {{"dir", o.dir},
                              {"root", o.dir + "/root_ca.pem"},
                              {"collateral", o.dir + "/collateral.json"},
                              {"fmspc", ToHex(platform->config().fmspc)},
                              {"scenario", simulator::TcbScenarioName(config.scenario)}};
  std::cout << j.dump(2) << "\n";
  return kExitOk;
}

struct ReportOptions {
  std::string dir;
  std::string td;
  std::string report_data;
  std::string out;
};

int RunReport(const ReportOptions& o) {
  auto platform = simulator::SimPlatform::Load(o.dir);
  if (!platform.ok()) return InputError(platform.error());
  auto cfg = simulator::LoadTdConfigFile(o.td);
  if (!cfg.ok()) return InputError(cfg.error());
  evidence::ReportData data{};
  if (!o.report_data.empty()) {
    auto bytes = FromHex(o.report_data);
    if (!bytes.ok() || bytes->size() > data.size())
      return InputError("--report-data: up to 64 bytes of hex (it is zero-padded to 64)");
    std::copy(bytes->begin(), bytes->end(), data.begin());
  }
  simulator::SimTd td(*platform, *cfg);
  auto report = td.ReportBytes(data);
  Status s = WriteFileAtomic(o.out, report);
  if (!s.ok()) return InputError(s.error());
  return kExitOk;
}

struct QuoteOptions {
  std::string dir;
  std::string report;
  std::string out;
  int version = 4;
};

int RunQuote(const QuoteOptions& o) {
  auto platform = simulator::SimPlatform::Load(o.dir);
  if (!platform.ok()) return InputError(platform.error());
  auto report = ReadBinaryOrHex(o.report);
  if (!report.ok()) return InputError(report.error());
  auto quote = simulator::SimQuotingEnclave(*platform).Quote(*report, o.version);
  if (!quote.ok()) return InputError(quote.error());
  Status s = WriteFileAtomic(o.out, *quote);
  if (!s.ok()) return InputError(s.error());
  return kExitOk;
}

}  // namespace

void AddSimCommands(CLI::App& app, int& exit_code) {
  auto* sim = app.add_subcommand(
      "sim", "TDX simulator: a platform (test PKI, collateral), TD reports and quotes in the real formats");
  sim->require_subcommand(1);

  auto init = std::make_shared<InitOptions>();
  auto* init_cmd = sim->add_subcommand("init", "Create a simulated platform in a directory (keys 0600)");
  init_cmd->add_option("--dir", init->dir, "directory to create or overwrite")->required();
  init_cmd->add_option("--scenario", init->scenario,
                       "TCB level the platform meets: uptodate, outofdate or revoked")
      ->capture_default_str();
  init_cmd->add_option("--at", init->at, "collateral issue time (RFC 3339 or Unix seconds; default now)");
  init_cmd->add_option("--fmspc", init->fmspc, "platform FMSPC, 12 hex digits (default 00a06f000000)");
  init_cmd->add_option("--collateral-days", init->collateral_days, "days until the collateral's nextUpdate")
      ->capture_default_str();
  init_cmd->add_flag("--pck-revoked", init->pck_revoked, "list the PCK certificate on the PCK CRL");
  init_cmd->callback([&exit_code, init] { exit_code = RunInit(*init); });

  auto report = std::make_shared<ReportOptions>();
  auto* report_cmd = sim->add_subcommand("report", "Write a TDREPORT (TDG.MR.REPORT) for a simulated TD");
  report_cmd->add_option("--dir", report->dir, "simulator directory (sim init)")->required();
  report_cmd->add_option("--td", report->td,
                         "TD configuration JSON (mr_td, mr_config_id, rtmr0..3, td_attributes, xfam, debug, td15)");
  report_cmd->add_option("--report-data", report->report_data, "REPORTDATA, up to 64 bytes hex");
  report_cmd->add_option("--out", report->out, "output file (1024 bytes)")->required();
  report_cmd->callback([&exit_code, report] { exit_code = RunReport(*report); });

  auto quote = std::make_shared<QuoteOptions>();
  auto* quote_cmd = sim->add_subcommand("quote", "Turn a TDREPORT from this platform into a signed TD quote");
  quote_cmd->add_option("--dir", quote->dir, "simulator directory (sim init)")->required();
  quote_cmd->add_option("--report", quote->report, "TDREPORT file (binary or hex)")->required();
  quote_cmd->add_option("--quote-version", quote->version, "quote version, 4 or 5")
      ->check(CLI::IsMember({4, 5}))
      ->capture_default_str();
  quote_cmd->add_option("--out", quote->out, "output quote file")->required();
  quote_cmd->callback([&exit_code, quote] { exit_code = RunQuote(*quote); });
}

}  // namespace tdxvirt::cli
