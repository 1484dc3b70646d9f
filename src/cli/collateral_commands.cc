// `tdxvirt collateral fetch`: the DCAP collateral a quote needs, from Intel PCS / a PCCS or the
// local cache, written as one JSON bundle or as a directory of raw responses.
#include <climits>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/file.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "evidence/pck_cert.h"
#include "evidence/quote.h"
#include "verify/collateral.h"
#include "verify/pcs_client.h"
#include "common/time.h"

namespace tdxvirt::cli {

namespace {

struct FetchOptions {
  std::string quote;
  std::string fmspc;
  std::string ca_type;
  std::string pcs;
  bool offline = false;
  bool allow_stale = false;
  std::string out;
  std::string cache_dir;
  std::string at;
  std::string api_key;
  std::string ca_file;
  int timeout_s = 30;
};

struct PlatformKey {
  std::string fmspc;
  std::string ca_type;
};

// FMSPC and CA type come from the PCK leaf certificate in the quote's certification data.
Result<PlatformKey> KeyFromQuote(const std::string& path) {
  auto data = ReadBinaryOrHex(path);
  if (!data.ok()) return Error{data.error()};
  auto quote = evidence::ParseQuote(*data);
  if (!quote.ok()) return Error{quote.error()};
  auto pem = evidence::PckCertChainPem(*quote);
  if (!pem.ok()) return Error{pem.error()};
  auto chain = ossl::ParsePemChain(*pem);
  if (!chain.ok()) return Error{"PCK certificate chain: " + chain.error()};
  X509* leaf = chain->front().get();
  auto ext = evidence::ExtractPckExtensions(leaf);
  if (!ext.ok()) return Error{ext.error()};
  std::string ca_type = evidence::PckCaType(leaf);
  if (ca_type.empty())
    return Error{
        "the PCK certificate's issuer is neither the PCK Platform CA nor the Processor CA"};
  return PlatformKey{ToHex(ext->fmspc), ca_type};
}

bool IsDirectoryTarget(const std::string& out) {
  std::error_code ec;
  return out.ends_with('/') || std::filesystem::is_directory(out, ec);
}

int RunFetch(const FetchOptions& o) {
  PlatformKey key;
  if (!o.quote.empty()) {
    auto k = KeyFromQuote(o.quote);
    if (!k.ok()) return InputError(o.quote + ": " + k.error());
    key = std::move(*k);
  } else if (!o.fmspc.empty() && !o.ca_type.empty()) {
    key = {o.fmspc, o.ca_type};
  } else {
    return InputError("give --quote FILE, or --fmspc and --ca");
  }

  verify::PcsClientOptions opts;
  opts.base_url = o.pcs;
  opts.offline = o.offline;
  opts.allow_stale = o.allow_stale;
  opts.cache_dir = o.cache_dir;
  opts.api_key = o.api_key;
  opts.http.ca_file = o.ca_file;
  opts.http.read_timeout = std::chrono::seconds(o.timeout_s);
  opts.http.connect_timeout = std::chrono::seconds(std::min(o.timeout_s, 10));
  if (!o.at.empty()) {
    auto at = ParseTimeOption("--at", o.at);
    if (!at.ok()) return InputError(at.error());
    opts.now = *at;
  }
  auto client = verify::PcsClient::Create(std::move(opts));
  if (!client.ok()) return InputError(client.error());
  auto fetched = client->Fetch(key.fmspc, key.ca_type);
  if (!fetched.ok()) return InputError(fetched.error());
  if (!fetched->cache_error.empty())
    std::cerr << "tdxvirt: warning: not cached: " << fetched->cache_error << "\n";
  if (fetched->source == verify::CollateralSource::kStaleCache)
    std::cerr << "tdxvirt: warning: using expired cached collateral (--allow-stale)\n";

  if (IsDirectoryTarget(o.out)) {
    std::string dir = o.out;
    while (dir.size() > 1 && dir.ends_with('/')) dir.pop_back();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return InputError("cannot create " + dir + ": " + ec.message());
    Status s = verify::WriteCollateralDirectory(fetched->collateral, dir);
    if (!s.ok()) return InputError(s.error());
  } else {
    std::string bundle = verify::SerializeCollateralBundle(fetched->collateral);
    Status s = WriteFileAtomic(o.out, AsBytes(bundle));
    if (!s.ok()) return InputError(s.error());
  }

  nlohmann::ordered_json summary;
  summary["fmspc"] = ToHex(*FromHex(key.fmspc));
  summary["pck_ca_type"] = key.ca_type;
  summary["source"] = verify::ToString(fetched->source);
  // null when a CRL has no nextUpdate (the collateral is due again at once).
  if (fetched->next_update == INT64_MIN) {
    summary["next_update"] = nullptr;
  } else {
    summary["next_update"] = FormatRfc3339(fetched->next_update);
  }
  summary["out"] = o.out;
  if (!fetched->cache_entry.empty()) summary["cache_entry"] = fetched->cache_entry;
  std::cout << summary.dump(2) << "\n";
  return kExitOk;
}

}  // namespace

void AddCollateralCommands(CLI::App& app, int& exit_code) {
  auto* collateral = app.add_subcommand(
      "collateral", "DCAP collateral (TCB Info, QE Identity, CRLs) from Intel PCS or a PCCS");
  collateral->require_subcommand(1);

  auto o = std::make_shared<FetchOptions>();
  auto* fetch = collateral->add_subcommand(
      "fetch", "Fetch the collateral for a quote's platform from PCS/PCCS or the cache");
  fetch->footer(
      "The platform is the quote's PCK certificate's FMSPC and issuing CA (platform/processor).\n"
      "With --cache-dir, collateral is reused until its earliest nextUpdate (TCB Info, QE "
      "Identity,\n"
      "CRLs), judged at --at. Prints a JSON summary. Exit codes: 0 written; 2 bad usage or input,\n"
      "network or PCS error, or no usable cache entry offline.");
  auto* quote = fetch->add_option(
      "--quote", o->quote,
      "TD quote (binary or hex, - for stdin) whose PCK certificate names the platform");
  auto* fmspc =
      fetch->add_option("--fmspc", o->fmspc, "platform FMSPC, 12 hex digits (instead of --quote)");
  auto* ca =
      fetch->add_option("--ca", o->ca_type, "PCK CA type with --fmspc: platform or processor")
          ->check(CLI::IsMember({"platform", "processor"}));
  quote->excludes(fmspc)->excludes(ca);
  fmspc->needs(ca);
  ca->needs(fmspc);
  auto* pcs = fetch->add_option(
      "--pcs", o->pcs,
      "PCS or PCCS base URL, e.g. https://api.trustedservices.intel.com or https://pccs:8081");
  auto* offline =
      fetch->add_flag("--offline", o->offline, "use only the cache (needs --cache-dir)");
  pcs->excludes(offline);
  fetch
      ->add_option("--out", o->out,
                   "output: a bundle JSON file, or a directory (existing, or ending in /) of raw "
                   "responses")
      ->required();
  fetch->add_option("--cache-dir", o->cache_dir,
                    "cache directory (one entry per FMSPC and CA type)");
  fetch->add_option("--at", o->at,
                    "the time that decides cache freshness, RFC 3339 (default: now), e.g. "
                    "2023-07-01T01:00:00Z");
  fetch->add_flag("--allow-stale", o->allow_stale,
                  "with --offline: use an expired cache entry instead of failing");
  fetch
      ->add_option("--api-key", o->api_key,
                   "Intel PCS subscription key; sent only with PCK certificate requests, never "
                   "with collateral requests")
      ->envname("TDXVIRT_PCS_API_KEY");
  fetch
      ->add_option("--ca-file", o->ca_file,
                   "PEM CA bundle to verify an HTTPS PCS/PCCS (default: system CAs)")
      ->check(CLI::ExistingFile);
  fetch->add_option("--timeout", o->timeout_s, "read timeout per request, seconds")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  fetch->callback([&exit_code, o, pcs, offline] {
    if (pcs->count() == 0 && offline->count() == 0)
      return void(exit_code = InputError("give --pcs URL or --offline"));
    exit_code = RunFetch(*o);
  });
}

}  // namespace tdxvirt::cli
