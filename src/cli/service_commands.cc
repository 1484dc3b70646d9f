// `tdxvirt serve attestation` (the Trust Authority-compatible appraisal service) and the in-TD
// client steps `attest create-key-pair|decrypt|evidence|token|verify`, with the flags, outputs and
// config file keys of Intel's trustauthority-cli.
#include <openssl/crypto.h>
#include <signal.h>

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/daemon_flags.h"
#include "cli/provider_flags.h"
#include "common/file.h"
#include "common/log.h"
#include "guest/quote_provider.h"
#include "replay/replay_store.h"
#include "service/client.h"
#include "service/jose.h"
#include "service/policy.h"
#include "service/server.h"
#include "service/token_chain.h"

namespace tdxvirt::cli {

namespace {

// ---- serve attestation ----

struct ServeOptions {
  std::string listen = "0.0.0.0:8443";
  std::string tls_cert, tls_key;
  bool plain_http = false;
  std::string token_pki, public_url;
  std::string signing_key, signing_chain;
  bool init_signing_key = false;
  std::string policy_dir;
  double policy_reload_s = 2;
  std::string collateral, pcs, pcs_cache;
  bool pcs_offline = false;
  std::string root;
  std::string api_key_file;
  int64_t token_lifetime = 300, nonce_lifetime = 120;
  std::string issuer = "tdxvirt Attestation Service";
  std::string jku;
  bool require_nonce = false, no_crl = false;
  size_t max_body_size = 1 << 20;
  HttpDaemonFlags http;
  std::string replay_store;
  std::string rate_limit;
};

int RunServe(const ServeOptions& o) {
  if (o.init_signing_key) {
    if (o.signing_key.empty() || o.signing_chain.empty())
      return InputError("--init-signing-key needs --signing-key and --signing-chain (for Intel's "
                        "clients prefer `tdxvirt token-pki init`)");
    auto init = service::InitSigningKeyFiles(o.signing_key, o.signing_chain);
    if (!init.ok()) return InputError(init.error());
    auto key = service::SigningKey::Load(o.signing_key, o.signing_chain);
    if (!key.ok()) return InputError(key.error());
    std::cout << nlohmann::json({{"signing_key", o.signing_key}, {"signing_chain", o.signing_chain},
                                 {"kid", key->kid()},
                                 {"created", *init == service::SigningKeyInit::kCreated
                                                 ? "key and chain"
                                                 : "chain for the existing key"}}).dump()
              << "\n";
    return kExitOk;
  }
  auto listen = ParseListen(o.listen);
  if (!listen.ok()) return InputError(listen.error());
  service::ServerOptions so;
  std::tie(so.host, so.port) = *listen;
  so.tls_cert_path = o.tls_cert;
  so.tls_key_path = o.tls_key;
  so.plain_http = o.plain_http;
  so.token_pki_dir = o.token_pki;
  so.public_url = o.public_url;
  so.signing_key_path = o.signing_key;
  so.signing_chain_path = o.signing_chain;
  so.policy_dir = o.policy_dir;
  if (o.policy_reload_s <= 0 || o.policy_reload_s > 3600)
    return InputError("--policy-reload must be in (0, 3600] seconds");
  so.policy_reload_interval = std::chrono::milliseconds(int64_t(std::llround(o.policy_reload_s * 1000)));
  if (!o.collateral.empty() && !o.pcs.empty())
    return InputError("give either --collateral (offline) or --pcs, not both");
  so.collateral_path = o.collateral;
  so.pcs.base_url = o.pcs;
  so.pcs.cache_dir = o.pcs_cache;
  so.pcs.offline = o.pcs_offline;
  so.root_pem_path = o.root;
  if (!o.api_key_file.empty()) {
    auto keys = ReadApiKeys(o.api_key_file);
    if (!keys.ok()) return InputError(keys.error());
    so.api_keys = std::move(*keys);
  }
  if (o.token_lifetime <= 0 || o.token_lifetime > 86400 * 30)
    return InputError("--token-lifetime must be 1..2592000 seconds");
  if (o.nonce_lifetime <= 0 || o.nonce_lifetime > 3600)
    return InputError("--nonce-lifetime must be 1..3600 seconds");
  so.appraisal.token_lifetime_seconds = o.token_lifetime;
  so.appraisal.nonce_lifetime_seconds = o.nonce_lifetime;
  so.appraisal.issuer = o.issuer;
  so.appraisal.jku = o.jku;
  so.appraisal.require_nonce = o.require_nonce;
  so.appraisal.check_crl = !o.no_crl;
  so.max_body_size = o.max_body_size;
  if (!o.rate_limit.empty()) {
    auto rl = service::ParseRateLimit(o.rate_limit);
    if (!rl.ok()) return InputError(rl.error());
    so.rate_limit = *rl;
  }
  if (Status st = ApplyHttpDaemonFlags(o.http, so.limits); !st.ok()) return InputError(st.error());
  if (!o.replay_store.empty()) {
    auto store = replay::OpenReplayStore(o.replay_store, so.appraisal.max_replay_entries);
    if (!store.ok()) return InputError("--replay-store: " + store.error());
    // Unreachable now is not fatal (Redis may start after us): attest answers 503 until it is.
    if (Status s = (*store)->Connect(int64_t(std::time(nullptr))); !s.ok())
      LogToStderr(LogLine("warn", "attestation", "replay_store_unavailable",
                          (*store)->Describe() + ": " + s.error() + "; attest answers 503 until it is reachable"));
    so.appraisal.replay_store = std::move(*store);
  }

  sigset_t stop_signals = BlockStopSignals();

  auto server = service::AttestationServer::Create(std::move(so));
  if (!server.ok()) return InputError(server.error());
  if ((*server)->signing_key().kid().empty()) return InputError("signing key has no kid");
  auto port = (*server)->Start();
  if (!port.ok()) return InputError(port.error());
  return ServeUntilSignal(stop_signals, *port, o.http.port_file, [&] { (*server)->Stop(); });
}

// ---- the client steps ----

struct ClientOptions {
  std::string config;
  std::string ca_file;
  bool allow_http = false;
  double timeout_s = 30;
};

struct TokenFlags {
  ClientOptions client;
  ProviderFlags provider;
  std::string user_data, pub_path, policy_ids, request_id, alg;
  bool policy_must_match = false, no_verifier_nonce = false, tdx = false;
  bool ccel = false;
  std::string ccel_dir = service::kAcpiTablesDir;
};

Result<service::TrustAuthorityClient> MakeClient(const ClientOptions& o) {
  auto text = ReadFile(o.config, 1 << 20);
  if (!text.ok()) return Error{"--config: " + text.error()};
  auto c = service::ParseClientConfig(AsString(*text));
  if (!c.ok()) return Error{"--config " + o.config + ": " + c.error()};
  c->ca_file = o.ca_file;
  c->allow_http = o.allow_http;
  if (o.timeout_s <= 0 || o.timeout_s > 3600) return Error{"--timeout must be in (0, 3600] seconds"};
  c->timeout = std::chrono::seconds(int64_t(std::ceil(o.timeout_s)));
  return service::TrustAuthorityClient::Create(std::move(*c));
}

void AddClientFlags(CLI::App* cmd, ClientOptions& c) {
  cmd->add_option("-c,--config", c.config,
                  "config JSON: trustauthority_url, trustauthority_api_url, trustauthority_api_key")
      ->required();
  cmd->add_option("--ca-file", c.ca_file, "PEM CA bundle to trust for the service's TLS certificate");
  cmd->add_flag("--allow-http", c.allow_http, "allow http:// URLs (loopback tests only)");
  cmd->add_option("--timeout", c.timeout_s, "seconds per HTTP request (default 30)");
}

}  // namespace

void AddProviderFlags(CLI::App* cmd, ProviderFlags& p) {
  cmd->add_option("--provider", p.provider, "quote provider: auto, configfs, tdx-guest, qgs or sim")
      ->check(CLI::IsMember({"auto", "configfs", "tdx-guest", "qgs", "sim"}))
      ->capture_default_str();
  cmd->add_option("--qgs", p.qgs, "QGS address for the tdx-guest/qgs providers");
  cmd->add_option("--sim-dir", p.sim_dir, "simulator directory (tdxvirt sim init)");
  cmd->add_option("--td", p.td, "simulated TD configuration JSON");
  cmd->add_option("--root-dir", p.root_dir, "prefix of /sys/kernel/config and /dev/tdx_guest");
  cmd->add_option("--configfs-entry", p.configfs_entry, "configfs-tsm entry name or path");
  cmd->add_option("--quote-version", p.quote_version, "simulator quote version, 4 or 5")
      ->check(CLI::IsMember({4, 5}));
}

namespace {

void AddTokenFlags(CLI::App* cmd, TokenFlags& t) {
  AddClientFlags(cmd, t.client);
  AddProviderFlags(cmd, t.provider);
  cmd->add_option("-u,--user-data", t.user_data, "user data, base64 (sent as runtime_data; wins over --pub-path)");
  cmd->add_option("-f,--pub-path", t.pub_path,
                  "public key PEM whose DER is the runtime data bound into REPORTDATA");
  cmd->add_option("-p,--policy-ids", t.policy_ids, "policy ids, comma separated");
  cmd->add_option("-r,--request-id", t.request_id, "request-id header (^[a-zA-Z0-9_ /.-]{1,128}$; default a random UUID)");
  cmd->add_option("-a,--token-signing-alg", t.alg, "PS384 (default) or RS256")
      ->check(CLI::IsMember({"PS384", "RS256"}));
  cmd->add_flag("--policy-must-match", t.policy_must_match, "fail unless every policy matches");
  cmd->add_flag("--no-verifier-nonce", t.no_verifier_nonce, "attest without the service's nonce");
  cmd->add_flag("--tdx", t.tdx, "TDX evidence (the default and only kind)");
  cmd->add_flag("--ccel", t.ccel,
                "include the TD's event log (the CCEL ACPI table and data/CCEL under --ccel-dir), "
                "sent as tdx.event_log, as Intel's CLI");
  cmd->add_option("--ccel-dir", t.ccel_dir,
                  "where --ccel reads CCEL and data/CCEL (for tests and the simulator: sim boot "
                  "--ccel-table-out/--ccel-out)")
      ->capture_default_str();
}

Result<service::TokenRequestOptions> TokenRequest(const TokenFlags& t) {
  service::TokenRequestOptions r;
  // As tdx-cli: --user-data wins over --pub-path (the file is then not read).
  if (!t.user_data.empty()) {
    auto ud = Base64Decode(t.user_data, "--user-data");
    if (!ud.ok()) return Error{ud.error()};
    r.runtime_data = std::move(*ud);
  } else if (!t.pub_path.empty()) {
    auto pem = ReadFile(t.pub_path, 1 << 20);
    if (!pem.ok()) return Error{"--pub-path: " + pem.error()};
    auto der = service::PublicKeyDerFromPem(AsString(*pem));
    if (!der.ok()) return Error{"--pub-path " + t.pub_path + ": " + der.error()};
    r.runtime_data = std::move(*der);
  }
  // As tdx-cli's parsePolicyIds: every comma-separated element a UUID (an empty one too is refused),
  // sent in lower case as Go's uuid.UUID prints it.
  if (!t.policy_ids.empty()) {
    std::stringstream ss(t.policy_ids + ",");
    for (std::string id; std::getline(ss, id, ',');) {
      auto uuid = service::ParsePolicyId(id);
      if (!uuid.ok()) return Error{"--policy-ids: Policy Id:\"" + id + "\" is not a valid UUID"};
      r.policy_ids.push_back(*uuid);
    }
  }
  // As tdx-cli: the log is read (and checked) before anything is sent.
  if (!t.ccel && t.ccel_dir != service::kAcpiTablesDir) return Error{"--ccel-dir: give --ccel as well"};
  if (t.ccel) {
    auto log = service::ReadCcelEventLog(t.ccel_dir);
    if (!log.ok()) return Error{"--ccel: " + log.error()};
    r.event_log = std::move(*log);
  }
  r.policy_must_match = t.policy_must_match;
  r.token_signing_alg = t.alg;
  r.no_verifier_nonce = t.no_verifier_nonce;
  // As tdx-cli: the given request-id must fit Intel's rule; without one, a random UUID.
  if (!t.request_id.empty()) {
    if (Status st = service::CheckRequestId(t.request_id); !st.ok()) return Error{"--request-id: " + st.error()};
    r.request_id = t.request_id;
  } else {
    r.request_id = service::RandomUuid();
  }
  return r;
}

}  // namespace

Result<std::unique_ptr<guest::QuoteProvider>> MakeProvider(const ProviderFlags& p) {
  guest::ProviderOptions po;
  auto kind = guest::ParseProviderKind(p.provider);
  if (!kind.ok()) return Error{"--provider: " + kind.error()};
  po.kind = *kind;
  po.root_dir = p.root_dir;
  po.configfs_entry = p.configfs_entry;
  if (po.configfs_entry.empty())
    if (const char* env = secure_getenv(guest::kIntelConfigfsPathEnv); env && *env)
      po.configfs_entry = env;
  po.qgs_address = p.qgs;
  po.sim_dir = p.sim_dir;
  po.td_config_path = p.td;
  po.quote_version = p.quote_version;
  return guest::SelectQuoteProvider(po);
}

namespace {

int RunEvidenceOrToken(const TokenFlags& t, bool token) {
  auto client = MakeClient(t.client);
  if (!client.ok()) return InputError(client.error());
  auto req = TokenRequest(t);
  if (!req.ok()) return InputError(req.error());
  auto provider = MakeProvider(t.provider);
  if (!provider.ok()) return InputError(provider.error());
  if (!token) {
    auto ev = service::CollectEvidence(*client, **provider, *req);
    if (!ev.ok()) return InputError(ev.error());
    std::cout << ev->dump() << "\n";
    return kExitOk;
  }
  service::ResponseIds ids;
  auto tok = service::CollectToken(*client, **provider, *req, &ids);
  // tdx-cli prints these from the attest answer, also when it is an error.
  if (ids.answered) {
    std::cerr << "Trace Id: " << ids.trace_id << "\n";
    std::cerr << "Request Id: " << ids.request_id << "\n";
  }
  if (!tok.ok()) {
    std::cerr << "tdxvirt: error: " << tok.error() << "\n";
    // The service judged the evidence (4xx): a negative result, not a usage error.
    return tok.error().find("attest: HTTP 4") == 0 && tok.error().find("HTTP 401") == std::string::npos
               ? kExitNegative
               : kExitUsage;
  }
  std::cout << *tok;  // no newline, as tdx-cli
  std::cout.flush();
  return kExitOk;
}

struct VerifyFlags {
  std::string config, jwks, token, issuer, at, trusted_root, ca_file, crl_cache;
  std::vector<std::string> expect;
  bool allow_http = false, no_crl = false, no_crl_cache = false, claims_only = false, unverified_ok = false;
  int64_t leeway = 0;
};

// --claims-only: the token decoded, nothing checked (e.g. a token whose JWKS is gone).
int PrintClaimsOnly(const std::string& token, bool unverified_ok) {
  size_t d1 = token.find('.');
  size_t d2 = d1 == std::string::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string::npos) {
    std::cerr << "tdxvirt: token invalid: token: not a JWS compact serialization (header.payload.signature)\n";
    return kExitNegative;
  }
  auto payload = Base64UrlDecode(std::string_view(token).substr(d1 + 1, d2 - d1 - 1), "token payload");
  auto claims = payload.ok() ? nlohmann::json::parse(AsString(*payload), nullptr, false) : nlohmann::json();
  if (!payload.ok() || !claims.is_object()) {
    std::cerr << "tdxvirt: token invalid: " << (payload.ok() ? "token payload: not a JSON object" : payload.error())
              << "\n";
    return kExitNegative;
  }
  std::cout << claims.dump() << "\n";
  std::cerr << "tdxvirt: claims only: the signature, certificate chain and CRLs were NOT checked\n";
  return unverified_ok ? kExitOk : kExitNegative;
}

int RunVerify(const VerifyFlags& v) {
  std::string token = v.token;
  if (token == "-" || (!token.empty() && token[0] == '@')) {
    auto t = ReadFile(token == "-" ? "-" : token.substr(1), 1 << 20);
    if (!t.ok()) return InputError("--token: " + t.error());
    token = std::string(AsString(*t));
  }
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (v.claims_only) return PrintClaimsOnly(token, v.unverified_ok);
  if (v.unverified_ok) return InputError("--unverified-ok goes with --claims-only");
  std::string jwks;
  service::ClientConfig client_config;
  if (!v.jwks.empty()) {
    auto j = ReadFile(v.jwks, 1 << 20);
    if (!j.ok()) return InputError("--jwks: " + j.error());
    jwks = std::string(AsString(*j));
  } else if (!v.config.empty()) {
    auto client = MakeClient({v.config, v.ca_file, v.allow_http, 30});
    if (!client.ok()) return InputError(client.error());
    if (client->config().trustauthority_url.empty())
      return InputError("--config " + v.config + ": trustauthority_url is required (the JWKS is at {trustauthority_url}/certs)");
    auto certs = client->GetCerts();
    if (!certs.ok()) return InputError(certs.error());
    jwks = std::move(*certs);
  } else {
    return InputError("give --config (JWKS from {trustauthority_url}/certs) or --jwks FILE");
  }
  service::VerifyTokenOptions vo;
  vo.issuer = v.issuer;
  vo.leeway_seconds = v.leeway;
  int64_t real_now = int64_t(std::time(nullptr));
  vo.now = real_now;
  if (!v.at.empty()) {
    auto t = ParseTimeOption("--at", v.at);
    if (!t.ok()) return InputError(t.error());
    vo.now = *t;
  }
  service::ChainCheckOptions chain;
  chain.now = vo.now;
  chain.check_crls = !v.no_crl;
  if (!v.trusted_root.empty()) {
    auto pem = ReadFile(v.trusted_root, 1 << 20);
    if (!pem.ok()) return InputError("--trusted-root: " + pem.error());
    chain.trusted_root_pem = std::string(AsString(*pem));
  }
  service::CrlFetchOptions fo;
  fo.cache_dir = v.no_crl_cache ? "" : !v.crl_cache.empty() ? v.crl_cache : service::DefaultCrlCacheDir();
  fo.now = real_now;
  fo.ca_file = v.ca_file;
  service::HttpCrlFetcher fetcher(fo);
  vo.jwk_key = [&](const nlohmann::json& jwk) { return service::CheckTokenSigningJwk(jwk, chain, fetcher); };
  for (const auto& e : v.expect) {
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) return InputError("--expect: use CLAIM=VALUE (" + e + ")");
    std::string value = e.substr(eq + 1);
    auto parsed = nlohmann::json::parse(value, nullptr, false);
    // JSON literals (true, 3, "x") as such; anything else is a string.
    vo.expected_claims[e.substr(0, eq)] =
        parsed.is_discarded() || parsed.is_object() || parsed.is_array() ? nlohmann::json(value) : parsed;
  }
  auto r = service::VerifyToken(token, jwks, vo);
  if (!r.ok()) {
    std::cerr << "tdxvirt: token invalid: " << r.error() << "\n";
    return kExitNegative;
  }
  // tdx-cli's line (Go's Println puts a space between its two operands, hence the two spaces),
  // then the claims.
  auto iss = r->claims.value("iss", nlohmann::json());
  std::cout << "Token is valid and issued by Intel Trust Authority hosted at  "
            << (iss.is_string() ? iss.get<std::string>() : iss.is_null() ? "<nil>" : iss.dump()) << "\n";
  std::cout << r->claims.dump() << "\n";
  return kExitOk;
}

struct DecryptFlags {
  std::string in, key_path, key;
};

int RunDecrypt(const DecryptFlags& d) {
  if (d.key_path.empty() && d.key.empty()) return InputError("One of the --key-path or --key are required");
  auto ciphertext = Base64Decode(d.in, "--in");
  if (!ciphertext.ok()) return InputError(ciphertext.error());
  Result<ossl::PkeyPtr> key = Error{""};
  if (!d.key.empty()) {  // as tdx-cli: --key wins over --key-path
    auto der = Base64Decode(d.key, "--key");
    if (!der.ok()) return InputError(der.error());
    key = service::ParseRsaPrivateKey(*der);
    OPENSSL_cleanse(der->data(), der->size());
    if (!key.ok()) return InputError("--key: " + key.error());
  } else {
    auto pem = ReadRegularFile(d.key_path, 1 << 20);
    if (!pem.ok()) return InputError("--key-path: " + pem.error());
    key = service::ParseRsaPrivateKey(*pem);
    OPENSSL_cleanse(pem->data(), pem->size());
    if (!key.ok()) return InputError("--key-path " + d.key_path + ": " + key.error());
  }
  auto plain = service::DecryptRsaOaepSha256(key->get(), *ciphertext);
  if (!plain.ok()) {
    std::cerr << "tdxvirt: error: " << plain.error() << "\n";
    return kExitNegative;
  }
  std::string text = service::GoByteList(*plain);
  OPENSSL_cleanse(plain->data(), plain->size());
  std::cout << text << "\n";
  OPENSSL_cleanse(text.data(), text.size());
  return kExitOk;
}

}  // namespace

void AddServiceCommands(CLI::App& app, int& exit_code) {
  auto* serve = ServeCommand(app);
  auto so = std::make_shared<ServeOptions>();
  auto* s = serve->add_subcommand(
      "attestation", "Attestation service with the Intel Trust Authority appraisal API");
  s->footer(
      "Serves GET /appraisal/v{1,2}/nonce, POST /appraisal/v{1,2}/attest (x-api-key), GET /certs,\n"
      "/crl/ats-ca-crl.der, /crl/root-ca-crl.der, /.well-known/openid-configuration, /healthz,\n"
      "/readyz, /metrics. Tokens are signed by --token-pki DIR (`tdxvirt token-pki init`), whose\n"
      "CRLs it serves at --public-url. Logs one JSON line per request to stderr; SIGTERM or SIGINT\n"
      "stops it cleanly. --signing-key/--signing-chain bring your own chain instead (without CRLs\n"
      "Intel's clients refuse its tokens); --init-signing-key creates those two files and exits.\n"
      "Exit codes: 0 stopped by a signal or key created; 2 bad usage or configuration.");
  s->add_option("--listen", so->listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();
  s->add_option("--tls-cert", so->tls_cert, "HTTPS certificate chain (PEM)");
  s->add_option("--tls-key", so->tls_key, "HTTPS private key (PEM)");
  s->add_flag("--plain-http", so->plain_http, "serve plain HTTP (loopback tests only)");
  s->add_option("--token-pki", so->token_pki,
                "token PKI directory (a Secret; create it with `tdxvirt token-pki init`)");
  s->add_option("--public-url", so->public_url,
                "this service's external base URL: jku, CRL distribution points, OpenID issuer");
  s->add_option("--signing-key", so->signing_key, "or your own token signing RSA key (PEM)");
  s->add_option("--signing-chain", so->signing_chain, "its certificate chain, leaf first (PEM)");
  s->add_flag("--init-signing-key", so->init_signing_key, "create the signing key and chain, then exit");
  s->add_option("--policy-dir", so->policy_dir, "directory of policy files (*.json, *.yaml)");
  s->add_option("--policy-reload", so->policy_reload_s, "seconds between policy directory checks")
      ->capture_default_str();
  s->add_option("--collateral", so->collateral, "offline collateral: bundle file or PCS response dir");
  s->add_option("--pcs", so->pcs, "Intel PCS or PCCS base URL for collateral");
  s->add_option("--pcs-cache", so->pcs_cache, "collateral cache directory (with --pcs)");
  s->add_flag("--pcs-offline", so->pcs_offline, "use only the --pcs-cache entries");
  s->add_option("--root", so->root, "trusted root CA PEM instead of Intel's (the simulator's root)");
  s->add_option("--api-key-file", so->api_key_file, "accepted x-api-key values, one per line");
  s->add_option("--token-lifetime", so->token_lifetime, "token lifetime, seconds")->capture_default_str();
  s->add_option("--nonce-lifetime", so->nonce_lifetime, "nonce lifetime, seconds")->capture_default_str();
  s->add_option("--issuer", so->issuer, "token iss")->capture_default_str();
  s->add_option("--jku", so->jku, "JWKS URL put in token headers (https://.../certs)");
  s->add_flag("--require-nonce", so->require_nonce, "refuse attest requests without verifier_nonce");
  s->add_flag("--no-crl", so->no_crl, "skip CRL checks in quote verification");
  s->add_option("--max-body-size", so->max_body_size, "largest attest body, bytes")->capture_default_str();
  AddHttpDaemonFlags(s, so->http);
  s->add_option("--rate-limit", so->rate_limit,
                "REQUESTS/SECONDS per API key, e.g. 1000/300; 429 with Retry-After beyond (default: none)");
  s->add_option("--replay-store", so->replay_store,
                "used-nonce memory shared by replicas: redis://[:PASSWORD@]HOST:PORT[/DB] "
                "(default: in this process)");
  s->callback([&exit_code, so] { exit_code = RunServe(*so); });

  auto* attest = AttestCommand(app);

  struct KeyPairFlags {
    std::string pub_path, key_path;
  };
  auto kp = std::make_shared<KeyPairFlags>();
  auto* ckp = attest->add_subcommand("create-key-pair", "Create an RSA-3072 key pair (PEM)");
  ckp->add_option("-f,--pub-path", kp->pub_path, "public key file to write (PEM)")->required();
  ckp->add_option("-k,--key-path", kp->key_path,
                  "private key file to create (0600, PKCS#1); default: print it to stdout as Intel's CLI");
  ckp->footer("The private key is PKCS#1 (\"RSA PRIVATE KEY\"), the form Intel's `decrypt` reads.");
  ckp->callback([&exit_code, kp] {
    auto pair = service::CreateRsaKeyPair(3072);
    if (!pair.ok()) {
      exit_code = InputError(pair.error());
      return;
    }
    auto priv = service::PrivateKeyPemPkcs1(pair->private_pem);
    OPENSSL_cleanse(pair->private_pem.data(), pair->private_pem.size());
    if (!priv.ok()) {
      exit_code = InputError(priv.error());
      return;
    }
    if (!kp->key_path.empty()) {
      // 0600 from creation; an existing key is never replaced.
      Status st = WriteFileAtomic(kp->key_path, AsBytes(*priv), 0600, /*replace_existing=*/false);
      if (!st.ok()) {
        OPENSSL_cleanse(priv->data(), priv->size());
        exit_code = InputError("--key-path: " + st.error());
        return;
      }
    }
    if (Status st = WriteFileAtomic(kp->pub_path, AsBytes(pair->public_pem), 0644); !st.ok()) {
      OPENSSL_cleanse(priv->data(), priv->size());
      exit_code = InputError("--pub-path: " + st.error());
      return;
    }
    if (kp->key_path.empty()) std::cout << *priv << "\n";  // Go's Println of the PEM
    OPENSSL_cleanse(priv->data(), priv->size());
    exit_code = kExitOk;
  });

  auto df = std::make_shared<DecryptFlags>();
  auto* dc = attest->add_subcommand("decrypt", "Decrypt a base64 RSA-OAEP (SHA-256) blob with the private key");
  dc->add_option("--in", df->in, "base64 encrypted blob")->required();
  dc->add_option("-f,--key-path", df->key_path, "private key file (PEM: PKCS#1 as Intel's CLI, or PKCS#8)");
  dc->add_option("-k,--key", df->key, "private key, base64 DER (PKCS#1 or PKCS#8); wins over --key-path");
  dc->footer("Prints the plaintext as Intel's CLI does: Go's byte list, e.g. [104 105].\n"
             "Exit codes: 0 decrypted; 1 decryption failed; 2 usage or input error.");
  dc->callback([&exit_code, df] { exit_code = RunDecrypt(*df); });

  auto ev = std::make_shared<TokenFlags>();
  auto* evc = attest->add_subcommand(
      "evidence", "Print the /appraisal/v2/attest body (nonce, bound quote) without attesting");
  AddTokenFlags(evc, *ev);
  evc->callback([&exit_code, ev] { exit_code = RunEvidenceOrToken(*ev, false); });

  auto tk = std::make_shared<TokenFlags>();
  auto* tkc = attest->add_subcommand(
      "token", "Get an attestation token: nonce -> REPORTDATA -> quote -> attest");
  tkc->footer(
      "REPORTDATA = SHA-512(nonce.val || nonce.iat || runtime data), the runtime data being the DER\n"
      "public key of --pub-path (or --user-data). Prints the JWT on stdout.\n"
      "Exit codes: 0 token; 1 the service rejected the evidence; 2 usage, config or transport error.");
  AddTokenFlags(tkc, *tk);
  tkc->callback([&exit_code, tk] { exit_code = RunEvidenceOrToken(*tk, true); });

  auto vf = std::make_shared<VerifyFlags>();
  auto* vc = attest->add_subcommand("verify", "Verify an attestation token as Intel's client does");
  vc->add_option("-c,--config", vf->config, "config JSON (trustauthority_url: JWKS at /certs)");
  vc->add_option("--jwks", vf->jwks, "JWKS file instead of fetching {trustauthority_url}/certs");
  vc->add_option("-t,--token", vf->token, "the JWT, @FILE, or - for stdin")->required();
  vc->add_option("--issuer", vf->issuer, "required iss");
  vc->add_option("--expect", vf->expect, "CLAIM=VALUE that must hold (repeatable; tdx_* hex any case)");
  vc->add_option("--at", vf->at, "verification time for exp/nbf, certificates and CRLs (RFC 3339 or Unix seconds)");
  vc->add_option("--leeway", vf->leeway, "seconds of clock skew allowed for exp/nbf");
  vc->add_option("--trusted-root,--root-ca", vf->trusted_root,
                 "verify the x5c chain to this root (PEM) instead of the x5c Root CA");
  vc->add_option("--ca-file", vf->ca_file, "PEM CA bundle for the service's (and https CDPs') TLS certificate");
  vc->add_flag("--allow-http", vf->allow_http, "allow an http:// trustauthority_url (loopback tests only)");
  vc->add_flag("--no-crl", vf->no_crl, "skip the CRLs (a service whose certificates have no CRL distribution point)");
  vc->add_option("--crl-cache", vf->crl_cache, "CRL cache directory (default $XDG_CACHE_HOME/tdxvirt/crl)");
  vc->add_flag("--no-crl-cache", vf->no_crl_cache, "fetch every CRL, keep none");
  vc->add_flag("--claims-only", vf->claims_only, "print the claims WITHOUT checking anything (exit 1)");
  vc->add_flag("--unverified-ok", vf->unverified_ok, "with --claims-only: exit 0");
  vc->footer(
      "Checks as Intel's Go client: kid in the JWKS, alg PS384 or RS256, the x5c chain (leaf <- Signing CA\n"
      "<- Root CA by CN; signatures and dates), the CRLs at the Signing CA's and the leaf's first CRL\n"
      "distribution point (DER, signed by the issuer, nextUpdate not past, serial not listed), the\n"
      "signature with the leaf key, exp/nbf. Prints Intel's success line, then the claims as JSON.\n"
      "Exit codes: 0 valid; 1 invalid token (or --claims-only); 2 usage or input error.");
  vc->callback([&exit_code, vf] { exit_code = RunVerify(*vf); });
}

}  // namespace tdxvirt::cli
