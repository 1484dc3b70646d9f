// `tdxvirt attest ...`: attestation from inside a trust domain. `attest quote` gets a TD quote for
// chosen REPORTDATA from whichever quote provider this machine has (src/guest).
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/file.h"
#include "common/hex.h"
#include "guest/quote_provider.h"

namespace tdxvirt::cli {

namespace {

struct QuoteOptions {
  std::string report_data;
  std::string provider = "auto";
  std::string qgs;
  std::string sim_dir;
  std::string td;
  std::string root_dir = "/";
  std::string configfs_entry;
  int quote_version = 4;
  double timeout_s = 30;
  std::string out;
};

int RunQuote(const QuoteOptions& o) {
  auto bytes = FromHex(o.report_data);
  evidence::ReportData report_data{};
  if (!bytes.ok() || bytes->size() > report_data.size())
    return InputError(
        "--report-data: up to 64 bytes of hex (zero-padded at the end to 64)" +
        (bytes.ok() ? ", got " + std::to_string(bytes->size()) + " bytes" : ": " + bytes.error()));
  std::copy(bytes->begin(), bytes->end(), report_data.begin());
  if (o.timeout_s <= 0 || o.timeout_s > 3600)
    return InputError("--timeout must be in (0, 3600] seconds");

  guest::ProviderOptions po;
  auto kind = guest::ParseProviderKind(o.provider);
  if (!kind.ok()) return InputError("--provider: " + kind.error());
  po.kind = *kind;
  po.root_dir = o.root_dir;
  po.configfs_entry = o.configfs_entry;
  // As Intel's guest library: the variable names the whole entry path. secure_getenv, so a
  // privileged caller's environment cannot redirect it.
  if (po.configfs_entry.empty())
    if (const char* env = secure_getenv(guest::kIntelConfigfsPathEnv); env && *env)
      po.configfs_entry = env;
  po.qgs_address = o.qgs;
  po.qgs_timeout = std::chrono::milliseconds(int64_t(std::llround(o.timeout_s * 1000)));
  po.sim_dir = o.sim_dir;
  po.td_config_path = o.td;
  po.quote_version = o.quote_version;

  std::string why;
  auto provider = guest::SelectQuoteProvider(po, &why);
  if (!provider.ok()) return InputError(provider.error());
  auto quote = (*provider)->GetQuote(report_data);
  if (!quote.ok())
    return InputError(std::string((*provider)->name()) + " provider: " + quote.error());

  if (o.out == "-") {
    std::cout.write(reinterpret_cast<const char*>(quote->data()), std::streamsize(quote->size()));
    return std::cout.flush() ? kExitOk : InputError("cannot write the quote to stdout");
  }
  if (Status s = WriteFileAtomic(o.out, *quote); !s.ok()) return InputError(s.error());
  nlohmann::ordered_json j;
  j["provider"] = (*provider)->name();
  j["quote_size"] = quote->size();
  j["out"] = o.out;
  j["reason"] = why;
  std::cout << j.dump() << "\n";
  return kExitOk;
}

}  // namespace

void AddAttestCommands(CLI::App& app, int& exit_code) {
  auto* attest = AttestCommand(app);

  auto qo = std::make_shared<QuoteOptions>();
  auto* quote = attest->add_subcommand(
      "quote", "Get a TD quote for REPORTDATA from this TD's quote provider");
  quote->footer(
      "Providers, tried in this order with --provider auto:\n"
      "  configfs   configfs-tsm: ROOT/sys/kernel/config/tsm/report (Linux >= 6.7)\n"
      "  tdx-guest  TDREPORT from ROOT/dev/tdx_guest, quoted by the QGS at --qgs (default "
      "vsock:2:4050)\n"
      "  qgs        TDREPORT from the simulator (--sim-dir), quoted by the QGS at --qgs\n"
      "  sim        the simulator in process (--sim-dir, --td)\n"
      "Without --configfs-entry, $DCAP_TDX_QUOTE_CONFIGFS_PATH names the configfs entry when set\n"
      "(Intel's variable); otherwise each request uses a private entry it removes afterwards.\n"
      "Prints {provider, quote_size, out, reason} as one JSON line.\n"
      "Exit codes: 0 quote written; 2 bad usage or input, no provider, or the provider failed.");
  quote
      ->add_option(
          "--report-data", qo->report_data,
          "REPORTDATA: up to 64 bytes of hex, zero-padded at the end to 64 (e.g. a nonce's "
          "SHA-512)")
      ->required();
  quote->add_option("--provider", qo->provider, "auto, configfs, tdx-guest, qgs or sim")
      ->check(CLI::IsMember({"auto", "configfs", "tdx-guest", "qgs", "sim"}))
      ->capture_default_str();
  quote->add_option("--qgs", qo->qgs,
                    "QGS address: unix:PATH, vsock:CID:PORT, HOST:PORT, or QEMU's JSON form");
  quote->add_option("--sim-dir", qo->sim_dir, "simulator directory (tdxvirt sim init)");
  quote->add_option("--td", qo->td, "simulated TD configuration JSON (as for tdxvirt sim report)");
  quote->add_option("--root-dir", qo->root_dir,
                    "prefix of /sys/kernel/config and /dev/tdx_guest (a prepared tree; default /)");
  quote->add_option("--configfs-entry", qo->configfs_entry,
                    "configfs-tsm entry: a name under the report directory (com.intel.dcap shares "
                    "Intel's) or an absolute entry path");
  quote->add_option("--quote-version", qo->quote_version, "simulator quote version, 4 or 5")
      ->check(CLI::IsMember({4, 5}))
      ->capture_default_str();
  quote->add_option("--timeout", qo->timeout_s, "seconds for the QGS exchange (default 30)");
  quote->add_option("--out", qo->out, "quote file to write; - for stdout (binary, no summary)")
      ->required();
  quote->callback([&exit_code, qo] { exit_code = RunQuote(*qo); });
}

}  // namespace tdxvirt::cli
