// The key broker's commands: `tdxvirt serve kbs` (Intel Trust Authority KBS's key-transfer API,
// kbs/server.h) and, in the TD, `tdxvirt attest secret`.
#include <signal.h>

#include <ctime>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/daemon_flags.h"
#include "common/file.h"
#include "kbs/server.h"

namespace tdxvirt::cli {

namespace {

// ---- serve kbs ----

struct ServeKbsFlags {
  std::string listen = "0.0.0.0:9443";
  std::string tls_cert, tls_key;
  bool plain_http = false;
  std::string public_url;
  std::string store;
  bool store_read_only = false;
  std::string admin_credentials;
  std::string ta_url, ta_api_url, ta_api_key_file, ca_file;
  bool allow_http = false;
  double timeout_s = 30;
  std::string issuer, token_root, crl_cache, replay_store;
  bool no_crl = false;
  int64_t jwks_cache = 300, leeway = 0;
  size_t max_body_size = 1 << 20;
  HttpDaemonFlags http;
};

int RunServeKbs(const ServeKbsFlags& f) {
  auto listen = ParseListen(f.listen);
  if (!listen.ok()) return InputError(listen.error());
  kbs::KbsOptions o;
  std::tie(o.host, o.port) = *listen;
  o.tls_cert_path = f.tls_cert;
  o.tls_key_path = f.tls_key;
  o.plain_http = f.plain_http;
  o.public_url = f.public_url;
  o.store_dir = f.store;
  o.store_read_only = f.store_read_only;
  o.admin_credentials_path = f.admin_credentials;
  o.trust_authority.trustauthority_url = f.ta_url;
  o.trust_authority.trustauthority_api_url = f.ta_api_url;
  if (!f.ta_api_key_file.empty()) {
    auto keys = ReadApiKeys(f.ta_api_key_file);  // the first key is the one sent
    if (!keys.ok()) return InputError(keys.error());
    o.trust_authority.trustauthority_api_key = std::move(keys->front());
  }
  o.trust_authority.ca_file = f.ca_file;
  o.trust_authority.allow_http = f.allow_http;
  if (!(f.timeout_s >= 1 && f.timeout_s <= 600)) return InputError("--timeout must be 1..600 seconds");
  o.trust_authority.timeout = std::chrono::seconds(int64_t(f.timeout_s));
  o.token_issuer = f.issuer;
  o.token_root_pem_path = f.token_root;
  o.check_crls = !f.no_crl;
  o.crl_cache_dir = f.crl_cache;
  if (f.jwks_cache < 0 || f.jwks_cache > 86400) return InputError("--jwks-cache must be 0..86400 seconds");
  o.jwks_cache = std::chrono::seconds(f.jwks_cache);
  o.leeway_seconds = f.leeway;
  o.replay_store_url = f.replay_store;
  o.max_body_size = f.max_body_size;
  if (Status st = ApplyHttpDaemonFlags(f.http, o.limits); !st.ok()) return InputError(st.error());

  sigset_t stop_signals = BlockStopSignals();
  auto server = kbs::KbsServer::Create(std::move(o));
  if (!server.ok()) return InputError(server.error());
  auto port = (*server)->Start();
  if (!port.ok()) return InputError(port.error());
  return ServeUntilSignal(stop_signals, *port, f.http.port_file, [&] { (*server)->Stop(); });
}

void AddServeKbs(CLI::App& app, int& exit_code) {
  auto* serve = ServeCommand(app);
  auto f = std::make_shared<ServeKbsFlags>();
  auto* s = serve->add_subcommand("kbs", "Key broker with Intel Trust Authority KBS's key-transfer API");
  s->footer(
      "Serves POST /kbs/v1/keys/{id}/transfer (background-check: nonce, then evidence; passport:\n"
      "a token), the admin API (POST /kbs/v1/token, /kbs/v1/keys, /kbs/v1/key-transfer-policies)\n"
      "with --admin-credentials, and /healthz, /readyz, /metrics. Tokens are verified against the\n"
      "JWKS at {--trustauthority-url}/certs, their x5c chain and CRLs; the key's transfer policy\n"
      "decides; the key is wrapped to the token's attester_held_data. One JSON log line per request\n"
      "and one audit line per transfer decision on stderr; SIGTERM or SIGINT stops it cleanly.\n"
      "Exit codes: 0 stopped by a signal; 2 bad usage or configuration.");
  s->add_option("--listen", f->listen, "HOST:PORT to listen on (port 0: any free port)")->capture_default_str();
  s->add_option("--tls-cert", f->tls_cert, "HTTPS certificate chain (PEM)");
  s->add_option("--tls-key", f->tls_key, "HTTPS private key (PEM)");
  s->add_flag("--plain-http", f->plain_http, "serve plain HTTP (loopback tests only)");
  s->add_option("--public-url", f->public_url, "this broker's external base URL (transfer_link)");
  s->add_option("--store", f->store, "key store directory (a Secret mount, or writable)")->required();
  s->add_flag("--store-read-only", f->store_read_only, "never write the store (admin writes get 409)");
  s->add_option("--admin-credentials", f->admin_credentials,
                "admin API credentials file {\"username\",\"password\"} (default: no admin API)");
  s->add_option("--trustauthority-url", f->ta_url, "attestation service base URL (JWKS at /certs)")->required();
  s->add_option("--trustauthority-api-url", f->ta_api_url,
                "attestation API base URL for nonce and attest (default: --trustauthority-url)");
  s->add_option("--trustauthority-api-key-file,--api-key-file", f->ta_api_key_file,
                "file holding the attestation service's x-api-key (first non-comment line)");
  s->add_option("--ca-file", f->ca_file, "PEM bundle to trust for the attestation service and CDPs");
  s->add_flag("--allow-http", f->allow_http, "plain http attestation service URLs (loopback tests only)");
  s->add_option("--timeout", f->timeout_s, "seconds per attestation service request")->capture_default_str();
  s->add_option("--issuer", f->issuer, "required token iss (default: not checked)");
  s->add_option("--token-root", f->token_root, "pin the token-signing Root CA (PEM; default: the x5c root)");
  s->add_flag("--no-crl", f->no_crl, "skip the CRL checks of the token-signing chain");
  s->add_option("--crl-cache", f->crl_cache, "directory to cache CRLs in (default: memory only)");
  s->add_option("--jwks-cache", f->jwks_cache, "seconds to reuse the fetched JWKS")->capture_default_str();
  s->add_option("--leeway", f->leeway, "allowed clock skew for token exp/nbf, seconds")->capture_default_str();
  s->add_option("--replay-store", f->replay_store,
                "used passport tokens shared by replicas: redis://[:PASSWORD@]HOST:PORT[/DB] (default: memory)");
  s->add_option("--max-body-size", f->max_body_size, "largest transfer body, bytes")->capture_default_str();
  AddHttpDaemonFlags(s, f->http);
  s->callback([&exit_code, f] { exit_code = RunServeKbs(*f); });
}

}  // namespace

void AddKbsCommands(CLI::App& app, int& exit_code) { AddServeKbs(app, exit_code); }

}  // namespace tdxvirt::cli
