// `tdxvirt sim ...`: the TDX simulator (platform PKI and collateral, TD reports, quotes), and
// `tdxvirt serve sim-pcs`: its collateral served as Intel PCS serves it.
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/file.h"
#include "common/hex.h"
#include "common/log.h"
#include "simulator/pcs.h"
#include "simulator/platform.h"
#include "simulator/quoting_enclave.h"
#include "simulator/td.h"
#include "simulator/domain_boot.h"
#include "simulator/tdvf.h"

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

struct TdvfOptions {
  std::string out;
  std::string label = "tdxvirt-simulated-tdvf";
  uint32_t bfv_pages = 8;
};

int RunTdvf(const TdvfOptions& o) {
  Bytes fw = simulator::MakeSimulatedTdvf(o.label, o.bfv_pages);
  Status s = WriteFileAtomic(o.out, fw);
  if (!s.ok()) return InputError(s.error());
  auto mrtd = simulator::ComputeMrtdOfFirmware(fw);
  if (!mrtd.ok()) return InputError(mrtd.error());
  std::cout << nlohmann::json{{"firmware", o.out}, {"size", fw.size()}, {"mr_td", ToHex(*mrtd)}}.dump()
            << "\n";
  return kExitOk;
}

// The MRTD a TD booted from this firmware will have: owners predict it before the TD exists.
int RunMrtd(const std::string& firmware) {
  auto fw = ReadFile(firmware, size_t(64) << 20);
  if (!fw.ok()) return InputError(fw.error());
  auto sections = simulator::ParseTdvfMetadata(*fw);
  if (!sections.ok()) return InputError(firmware + ": " + sections.error());
  nlohmann::json out{{"firmware", firmware},
                     {"mr_td", ToHex(simulator::ComputeMrtd(*sections, *fw))},
                     {"sections", nlohmann::json::array()}};
  static const char* kTypes[] = {"BFV", "CFV", "TD_HOB", "TEMP_MEM"};
  for (const auto& sec : *sections)
    out["sections"].push_back({{"type", kTypes[sec.type]},
                               {"data_offset", sec.data_offset},
                               {"raw_data_size", sec.raw_data_size},
                               {"memory_address", sec.memory_address},
                               {"memory_data_size", sec.memory_data_size},
                               {"mr_extend", bool(sec.attributes & simulator::kTdvfAttrMrExtend)},
                               {"page_aug", bool(sec.attributes & simulator::kTdvfAttrPageAug)}});
  std::cout << out.dump(2) << "\n";
  return kExitOk;
}

struct BootOptions {
  std::string domain;
  std::string firmware;
  std::string out;
  std::string ccel_out;        // the log area (/sys/firmware/acpi/tables/data/CCEL)
  std::string ccel_table_out;  // the table (/sys/firmware/acpi/tables/CCEL)
};

// The TD a host would boot from a domain XML: its TD config (for sim report/quote, attest quote).
int RunBoot(const BootOptions& o) {
  auto xml = ReadFile(o.domain, 4 << 20);
  if (!xml.ok()) return InputError(xml.error());
  auto domain = simulator::ReadTdDomain(AsString(*xml));
  if (!domain.ok()) return InputError(o.domain + ": " + domain.error());
  std::string firmware = o.firmware.empty() ? domain->loader : o.firmware;
  auto fw = ReadFile(firmware, size_t(64) << 20);
  if (!fw.ok())
    return InputError(fw.error() + " (the domain's loader; give --firmware, e.g. from sim tdvf)");
  auto config = simulator::TdConfigForDomain(*domain, *fw);
  if (!config.ok()) return InputError(config.error());
  auto boot = simulator::SimulateBoot(*domain, *fw);  // the log the config's RTMRs replay
  if (!boot.ok()) return InputError(boot.error());
  std::string text = simulator::TdConfigToJson(*config).dump(2) + "\n";
  // Everything is computed before the first write; each file is written atomically.
  if (!o.ccel_out.empty())
    if (Status s = WriteFileAtomic(o.ccel_out, boot->ccel_data); !s.ok()) return InputError("--ccel-out: " + s.error());
  if (!o.ccel_table_out.empty())
    if (Status s = WriteFileAtomic(o.ccel_table_out, boot->ccel_table); !s.ok())
      return InputError("--ccel-table-out: " + s.error());
  if (o.out.empty()) {
    std::cout << text;
    return kExitOk;
  }
  Status s = WriteFileAtomic(o.out, AsBytes(text));
  if (!s.ok()) return InputError("--out: " + s.error());
  return kExitOk;
}

struct PcsOptions {
  std::string dir;
  std::string listen = "127.0.0.1:8081";
  std::string port_file;
};

int RunServePcs(const PcsOptions& o) {
  auto platform = simulator::SimPlatform::Load(o.dir);
  if (!platform.ok()) return InputError("--sim " + o.dir + ": " + platform.error());
  auto listen = ParseListen(o.listen);
  if (!listen.ok()) return InputError(listen.error());
  sigset_t stop = BlockStopSignals();  // before the server's threads start
  std::string fmspc = ToHex(platform->config().fmspc);
  simulator::SimPcsServer server(std::move(*platform));
  server.set_log(LogToStderr);
  auto bound = server.Start(listen->first, listen->second);
  if (!bound.ok()) return InputError(bound.error());
  if (!o.port_file.empty()) {
    if (Status s = WriteFileAtomic(o.port_file, AsBytes(std::to_string(*bound) + "\n")); !s.ok()) {
      server.Stop();
      return InputError("--port-file: " + s.error());
    }
  }
  LogToStderr(LogLine("info", "sim-pcs", "listening",
                      server.base_url() + " (FMSPC " + fmspc + "; give it to --pcs)"));
  int sig = 0;
  sigwait(&stop, &sig);
  server.Stop();
  LogToStderr(LogLine("info", "sim-pcs", "stopped", ""));
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

  auto tdvf = std::make_shared<TdvfOptions>();
  auto* tdvf_cmd = sim->add_subcommand(
      "tdvf", "Write a small firmware image with real TDVF metadata (a stand-in for OVMF.inteltdx.fd)");
  tdvf_cmd->add_option("--out", tdvf->out, "output firmware file")->required();
  tdvf_cmd->add_option("--label", tdvf->label, "seed of the image contents (different label, different MRTD)")
      ->capture_default_str();
  tdvf_cmd->add_option("--bfv-pages", tdvf->bfv_pages, "4 KiB pages in the boot firmware volume")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  tdvf_cmd->callback([&exit_code, tdvf] { exit_code = RunTdvf(*tdvf); });

  auto firmware = std::make_shared<std::string>();
  auto* mrtd_cmd = sim->add_subcommand(
      "mrtd", "Compute the MRTD of a TDVF firmware image (real OVMF.inteltdx.fd or sim tdvf)");
  mrtd_cmd->add_option("firmware", *firmware, "firmware file")->required();
  mrtd_cmd->callback([&exit_code, firmware] { exit_code = RunMrtd(*firmware); });

  auto boot = std::make_shared<BootOptions>();
  auto* boot_cmd = sim->add_subcommand(
      "boot", "Boot a libvirt TD domain on the simulated host: print the TD config (MRTD from the "
              "firmware, MRCONFIGID and attributes from launchSecurity, RTMRs from its event log)");
  boot_cmd->add_option("--domain", boot->domain, "domain XML with <launchSecurity type='tdx'>")->required();
  boot_cmd->add_option("--firmware", boot->firmware, "TDVF image (default: the domain's <loader>)");
  boot_cmd->add_option("--out", boot->out, "TD config JSON to write (default: stdout); use with --td");
  boot_cmd->add_option("--ccel-out", boot->ccel_out,
                       "write the TD's event log area, padded with 0xFF to LAML (as data/CCEL)");
  boot_cmd->add_option("--ccel-table-out", boot->ccel_table_out, "write the 56-byte CCEL ACPI table");
  boot_cmd->footer(
      "The RTMRs are the replay of the simulated firmware's event log (OVMF direct boot: <kernel>,\n"
      "<initrd>, <cmdline>, <loader secure='yes'>); see docs/simulator.md for its stand-in digests.\n"
      "Put --ccel-out and --ccel-table-out in DIR/data/CCEL and DIR/CCEL for attest --ccel-dir DIR.");
  boot_cmd->callback([&exit_code, boot] { exit_code = RunBoot(*boot); });

  auto pcs = std::make_shared<PcsOptions>();
  auto* pcs_cmd = ServeCommand(app)->add_subcommand(
      "sim-pcs", "Serve a simulated platform's collateral as Intel PCS v4 does (plain HTTP, loopback): "
                 "TCB Info, QE Identity, PCK CRL, root CA CRL, for --pcs of the attestation service");
  pcs_cmd->add_option("--sim", pcs->dir, "simulator directory (sim init)")->required();
  pcs_cmd->add_option("--listen", pcs->listen, "HOST:PORT (port 0: any free port)")->capture_default_str();
  pcs_cmd->add_option("--port-file", pcs->port_file, "write the bound port here once listening");
  pcs_cmd->callback([&exit_code, pcs] { exit_code = RunServePcs(*pcs); });
}

}  // namespace tdxvirt::cli
