// `tdxvirt serve qgs`: the Quote Generation Service; `tdxvirt qgs ...`: a client for it (any QGS,
// Intel's included).
#include <linux/vm_sockets.h>
#include <pthread.h>
#include <signal.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/file.h"
#include "common/hex.h"
#include "qgs/backend.h"
#include "qgs/client.h"
#include "qgs/server.h"
#include "simulator/platform.h"
#include "simulator/sim_backend.h"
#include "verify/collateral.h"

namespace tdxvirt::cli {

namespace {

struct BackendOptions {
  std::string sim_dir;    // the simulator's platform directory (`tdxvirt sim init --dir`)
  int quote_version = 4;  // for TDX 1.0 reports; the simulator answers TDX 1.5 reports with v5
};

// Chooses the backend `serve qgs` quotes with: the simulator today. A hardware backend (Intel's
// quote library over the TD Quoting Enclave) would be chosen here too, by its own option.
Result<std::unique_ptr<qgs::QuoteBackend>> MakeBackend(const BackendOptions& o) {
  auto platform = simulator::SimPlatform::Load(o.sim_dir);
  if (!platform.ok()) return Error{"--sim-dir " + o.sim_dir + ": " + platform.error()};
  return std::unique_ptr<qgs::QuoteBackend>(
      std::make_unique<simulator::SimQuoteBackend>(std::move(*platform), o.quote_version));
}

struct ServeOptions {
  std::vector<std::string> unix_paths;
  std::vector<std::string> tcp;
  std::vector<uint32_t> vsock_ports;
  std::string sim_dir;
  int quote_version = 4;
  std::string socket_mode = "0660";
  size_t max_connections = 64;
  size_t max_connections_per_peer = 8;
  double request_timeout_s = 5;
  double write_timeout_s = 5;
};

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(int64_t(std::llround(seconds * 1000)));
}

Result<std::vector<qgs::QgsAddress>> ListenAddresses(const ServeOptions& o) {
  std::vector<qgs::QgsAddress> out;
  for (const std::string& p : o.unix_paths)
    out.push_back({.kind = qgs::QgsAddress::Kind::kUnix, .path = p});
  for (const std::string& t : o.tcp) {
    // A bare port listens on loopback only: the QGS has no authentication.
    std::string text = t.find(':') == std::string::npos ? "127.0.0.1:" + t : t;
    auto a = qgs::ParseQgsAddress(text);
    if (!a.ok() || a->kind != qgs::QgsAddress::Kind::kTcp)
      return Error{"--tcp " + t + ": " + (a.ok() ? "not a HOST:PORT" : a.error())};
    out.push_back(*a);
  }
  for (uint32_t port : o.vsock_ports)
    out.push_back({.kind = qgs::QgsAddress::Kind::kVsock, .cid = VMADDR_CID_ANY, .port = port});
  if (out.empty())
    out.push_back({.kind = qgs::QgsAddress::Kind::kUnix, .path = qgs::kDefaultUnixSocketPath});
  return out;
}

int RunServe(const ServeOptions& o) {
  auto addresses = ListenAddresses(o);
  if (!addresses.ok()) return InputError(addresses.error());
  mode_t mode = 0;
  try {
    size_t used = 0;
    mode = mode_t(std::stoul(o.socket_mode, &used, 8));
    if (used != o.socket_mode.size() || mode > 07777) throw std::invalid_argument("mode");
  } catch (const std::exception&) {
    return InputError("--socket-mode " + o.socket_mode + ": not an octal file mode such as 0660");
  }
  if (o.request_timeout_s <= 0 || o.request_timeout_s > 3600)
    return InputError("--request-timeout must be in (0, 3600] seconds");
  if (o.write_timeout_s <= 0 || o.write_timeout_s > 3600)
    return InputError("--write-timeout must be in (0, 3600] seconds");
  if (o.max_connections_per_peer >= o.max_connections)
    return InputError("--max-connections-per-peer " + std::to_string(o.max_connections_per_peer) +
                      " must be below --max-connections " + std::to_string(o.max_connections) +
                      ", so one peer cannot take every slot");
  auto backend = MakeBackend({.sim_dir = o.sim_dir, .quote_version = o.quote_version});
  if (!backend.ok()) return InputError(backend.error());

  sigset_t stop_signals = BlockStopSignals();  // before any thread starts

  qgs::ServerOptions so;
  so.request_timeout = Millis(o.request_timeout_s);
  so.write_timeout = Millis(o.write_timeout_s);
  so.max_connections = o.max_connections;
  so.max_connections_per_peer = o.max_connections_per_peer;
  so.unix_mode = mode;
  qgs::QgsServer server(**backend, so);
  if (Status s = server.Start(*addresses); !s.ok()) return InputError(s.error());
  int sig = 0;
  sigwait(&stop_signals, &sig);
  server.Stop();
  return kExitOk;
}

struct ClientCommon {
  std::string address;
  double timeout_s = 30;
};

Result<qgs::QgsClient> MakeClient(const ClientCommon& c) {
  auto a = qgs::ParseQgsAddress(c.address);
  if (!a.ok()) return Error{"--address: " + a.error()};
  if (c.timeout_s <= 0 || c.timeout_s > 3600)
    return Error{"--timeout must be in (0, 3600] seconds"};
  return qgs::QgsClient(*a, {.timeout = Millis(c.timeout_s)});
}

void AddClientOptions(CLI::App* cmd, ClientCommon& c) {
  cmd->add_option("--address", c.address,
                  "QGS address: unix:PATH, vsock:CID:PORT, HOST:PORT, or QEMU's JSON "
                  "{\"type\":\"vsock\",\"cid\":\"2\",\"port\":\"4050\"}")
      ->required();
  cmd->add_option("--timeout", c.timeout_s, "seconds for the whole exchange (default 30)");
}

struct GetQuoteOptions {
  ClientCommon client;
  std::string report;
  std::string out;
  bool raw = false;
};

int RunGetQuote(const GetQuoteOptions& o) {
  auto client = MakeClient(o.client);
  if (!client.ok()) return InputError(client.error());
  auto report = ReadBinaryOrHex(o.report, 1 << 20);
  if (!report.ok()) return InputError(report.error());
  auto quote = o.raw ? client->GetQuoteRaw(*report) : client->GetQuote(*report);
  if (!quote.ok()) return InputError(quote.error());
  if (o.out == "-") {
    std::cout.write(reinterpret_cast<const char*>(quote->data()), std::streamsize(quote->size()));
    return std::cout.flush() ? kExitOk : InputError("cannot write the quote to stdout");
  }
  if (Status s = WriteFileAtomic(o.out, *quote); !s.ok()) return InputError(s.error());
  nlohmann::ordered_json j;
  j["address"] = qgs::ToString(client->address());
  j["mode"] = o.raw ? "raw" : "framed";
  j["quote_bytes"] = quote->size();
  j["out"] = o.out;
  std::cout << j.dump(2) << "\n";
  return kExitOk;
}

struct GetCollateralOptions {
  ClientCommon client;
  std::string fmspc;
  std::string ca;
  std::string out;
};

int RunGetCollateral(const GetCollateralOptions& o) {
  auto client = MakeClient(o.client);
  if (!client.ok()) return InputError(client.error());
  auto fmspc = FromHex(o.fmspc);
  if (!fmspc.ok() || fmspc->empty()) return InputError("--fmspc: expected hex, e.g. 00906ED50000");
  auto collateral = client->GetCollateral(*fmspc, o.ca);
  if (!collateral.ok()) return InputError(collateral.error());
  std::error_code ec;
  if (o.out.ends_with('/') || std::filesystem::is_directory(o.out, ec)) {
    std::filesystem::create_directories(o.out, ec);
    if (ec) return InputError("cannot create " + o.out + ": " + ec.message());
    if (Status s = verify::WriteCollateralDirectory(*collateral, o.out); !s.ok())
      return InputError(s.error());
  } else {
    std::string bundle = verify::SerializeCollateralBundle(*collateral);
    if (Status s = WriteFileAtomic(o.out, AsBytes(bundle)); !s.ok()) return InputError(s.error());
  }
  nlohmann::ordered_json j;
  j["address"] = qgs::ToString(client->address());
  j["fmspc"] = ToHex(*fmspc);
  j["pck_ca_type"] = o.ca;
  j["out"] = o.out;
  std::cout << j.dump(2) << "\n";
  return kExitOk;
}

int RunPlatformInfo(const ClientCommon& c) {
  auto client = MakeClient(c);
  if (!client.ok()) return InputError(client.error());
  auto info = client->GetPlatformInfo();
  if (!info.ok()) return InputError(info.error());
  nlohmann::ordered_json j;
  j["tdqe_isvsvn"] = info->tdqe_isvsvn;
  j["pce_isvsvn"] = info->pce_isvsvn;
  j["platform_id"] = ToHex(info->platform_id);
  j["cpu_svn"] = ToHex(info->cpu_svn);
  std::cout << j.dump(2) << "\n";
  return kExitOk;
}

}  // namespace

void AddQgsCommands(CLI::App& app, int& exit_code) {
  auto so = std::make_shared<ServeOptions>();
  auto* serve = ServeCommand(app)->add_subcommand(
      "qgs",
      "TD Quote Generation Service: Intel's QGS protocol (framed and raw) for QEMU and guests");
  serve->footer(
      "Listens on every address given (default: --unix /var/run/tdx-qgs/qgs.socket, what libvirt\n"
      "and KubeVirt use). One request per connection, as Intel's QGS. Logs one JSON line per\n"
      "request to stderr; SIGTERM or SIGINT stops it cleanly. Exit codes: 0 stopped by a signal;\n"
      "2 bad usage, backend or listen failure.");
  serve->add_option("--unix", so->unix_paths, "listen on this UNIX socket path (repeatable)");
  serve->add_option("--tcp", so->tcp,
                    "listen on HOST:PORT, or PORT on 127.0.0.1 (repeatable; no authentication: "
                    "keep it on loopback)");
  serve->add_option("--vsock", so->vsock_ports,
                    "listen on this AF_VSOCK port, any CID (Intel's default: 4050)");
  serve
      ->add_option("--sim-dir", so->sim_dir,
                   "quote with the simulated platform in this directory (tdxvirt sim init)")
      ->required();
  serve
      ->add_option("--quote-version", so->quote_version,
                   "quote version for TDX 1.0 reports, 4 or 5 (TDX 1.5 reports always get 5)")
      ->check(CLI::IsMember({4, 5}))
      ->capture_default_str();
  serve->add_option("--socket-mode", so->socket_mode,
                    "UNIX socket file mode, octal (default 0660)");
  serve
      ->add_option("--max-connections", so->max_connections,
                   "connections served at once, in all; more wait in the backlog (default 64)")
      ->check(CLI::Range(size_t(2), size_t(4096)));
  serve
      ->add_option("--max-connections-per-peer", so->max_connections_per_peer,
                   "connections one peer (TCP source IP, vsock CID, UNIX peer pid: one TD) may "
                   "hold at once; more are closed at once and logged (default 8; must be below "
                   "--max-connections)")
      ->check(CLI::Range(size_t(1), size_t(4095)));
  serve->add_option("--request-timeout,--timeout", so->request_timeout_s,
                    "seconds from the accept to the last byte of the request; then the "
                    "connection is closed (default 5)");
  serve->add_option("--write-timeout", so->write_timeout_s,
                    "seconds to write the reply (default 5)");
  serve->callback([&exit_code, so] { exit_code = RunServe(*so); });

  auto* qgs = app.add_subcommand("qgs", "Talk to a Quote Generation Service (ours or Intel's)");
  qgs->require_subcommand(1);
  qgs->footer("Exit codes: 0 success; 2 bad usage or input, connection failure or a QGS error.");

  auto gq = std::make_shared<GetQuoteOptions>();
  auto* get_quote = qgs->add_subcommand("get-quote", "Send a TDREPORT, write the quote");
  AddClientOptions(get_quote, gq->client);
  get_quote->add_option("--report", gq->report, "1024-byte TDREPORT, binary or hex; - for stdin")
      ->required();
  get_quote->add_option("--out", gq->out, "quote file to write; - for stdout (binary, no summary)")
      ->required();
  get_quote->add_flag("--raw", gq->raw, "raw mode: bare TDREPORT in, bare quote out (no framing)");
  get_quote->callback([&exit_code, gq] { exit_code = RunGetQuote(*gq); });

  auto gc = std::make_shared<GetCollateralOptions>();
  auto* get_collateral =
      qgs->add_subcommand("get-collateral", "Fetch verification collateral through the QGS");
  AddClientOptions(get_collateral, gc->client);
  get_collateral->add_option("--fmspc", gc->fmspc, "platform FMSPC, 12 hex digits")->required();
  get_collateral->add_option("--ca", gc->ca, "PCK CA type: platform or processor")
      ->required()
      ->check(CLI::IsMember({"platform", "processor"}));
  get_collateral
      ->add_option("--out", gc->out,
                   "a bundle JSON file, or a directory (existing, or ending in /) of raw responses")
      ->required();
  get_collateral->callback([&exit_code, gc] { exit_code = RunGetCollateral(*gc); });

  auto pi = std::make_shared<ClientCommon>();
  auto* platform_info =
      qgs->add_subcommand("platform-info", "Print the QGS's platform info as JSON");
  AddClientOptions(platform_info, *pi);
  platform_info->callback([&exit_code, pi] { exit_code = RunPlatformInfo(*pi); });
}

}  // namespace tdxvirt::cli
