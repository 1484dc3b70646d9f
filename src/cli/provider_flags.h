// The quote-provider flags every in-TD command that gets a quote shares (`attest token`,
// `attest evidence`, `attest secret`): --provider, --qgs, --sim-dir, --td, --root-dir,
// --configfs-entry, --quote-version.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "common/result.h"
#include "guest/quote_provider.h"

namespace tdxvirt::cli {

struct ProviderFlags {
  std::string provider = "auto", qgs, sim_dir, td, root_dir = "/", configfs_entry;
  int quote_version = 4;
};
void AddProviderFlags(CLI::App* cmd, ProviderFlags& p);
// The provider the flags select ($DCAP_TDX_QUOTE_CONFIGFS_PATH as `attest quote` reads it).
Result<std::unique_ptr<guest::QuoteProvider>> MakeProvider(const ProviderFlags& p);

}  // namespace tdxvirt::cli
