// `tdxvirt token-pki init|rotate|revoke`: the directory `serve attestation --token-pki` serves
// (tokenpki/tokenpki.h). Each prints one JSON line on success; errors name the flag and the fix.
#include <ctime>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/file.h"
#include "tokenpki/tokenpki.h"

namespace tdxvirt::cli {

namespace {

struct TokenPkiOptions {
  std::string dir, public_url, cert, serial;
  int key_bits = 3072;
  int rotate_key_bits = 0;
};

int RunInit(const TokenPkiOptions& o) {
  tokenpki::CreateOptions co;
  co.public_url = o.public_url;
  co.key_bits = o.key_bits;
  if (o.key_bits < 2048 || o.key_bits > 8192) return InputError("--key-bits: must be 2048..8192");
  if (Status s = tokenpki::InitDirectory(o.dir, co); !s.ok()) return InputError(s.error());
  auto pki = tokenpki::LoadDirectory(o.dir, o.public_url, int64_t(std::time(nullptr)));
  if (!pki.ok()) return InputError(pki.error());
  std::cout << nlohmann::json({{"dir", o.dir},
                               {"public_url", pki->public_url},
                               {"root_ca_serial", tokenpki::SerialHex(pki->root_ca.get())},
                               {"signing_ca_serial", tokenpki::SerialHex(pki->signing_ca.get())},
                               {"token_signing_serial", tokenpki::SerialHex(pki->leaf.get())}})
                   .dump()
            << "\n";
  return kExitOk;
}

int RunRotate(const TokenPkiOptions& o) {
  if (o.rotate_key_bits && (o.rotate_key_bits < 2048 || o.rotate_key_bits > 8192))
    return InputError("--key-bits: must be 2048..8192");
  auto r = tokenpki::RotateDirectory(o.dir, int64_t(std::time(nullptr)), o.rotate_key_bits);
  if (!r.ok()) return InputError(r.error());
  std::cout << nlohmann::json({{"dir", o.dir},
                               {"token_signing_serial", r->serial},
                               {"previous_token_signing_serial", r->previous_serial},
                               {"completed_interrupted_rotate", r->completed_interrupted}})
                   .dump()
            << "\n";
  return kExitOk;
}

int RunRevoke(const TokenPkiOptions& o) {
  if (o.cert.empty() == o.serial.empty())
    return InputError("give exactly one of --cert PEMFILE and --serial HEX");
  tokenpki::RevokeRequest req;
  req.serial = o.serial;
  req.now = int64_t(std::time(nullptr));
  if (!o.cert.empty()) {
    auto pem = ReadFile(o.cert, 1 << 20);
    if (!pem.ok()) return InputError("--cert: " + pem.error());
    req.cert_pem = std::string(AsString(*pem));
  }
  auto r = tokenpki::RevokeInDirectory(o.dir, req);
  if (!r.ok()) return InputError(r.error());
  if (!r->warning.empty()) std::cerr << "tdxvirt: warning: " << r->warning << "\n";
  std::cout << nlohmann::json({{"dir", o.dir},
                               {"serial", r->revocation.serial},
                               {"crl", r->revocation.issuer == tokenpki::Issuer::kRootCa
                                           ? "root-ca-crl.der"
                                           : "ats-ca-crl.der"},
                               {"already_revoked", r->already}})
                   .dump()
            << "\n";
  return kExitOk;
}

}  // namespace

void AddTokenPkiCommands(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "token-pki", "The attestation token PKI (Root CA, Signing CA, token-signing certificate)");
  cmd->require_subcommand(1);
  cmd->footer(
      "The directory is what `serve attestation --token-pki DIR --public-url URL` loads (a Secret).\n"
      "Exit codes: 0 done; 2 bad usage, or a directory that is missing, broken or already there.");
  auto o = std::make_shared<TokenPkiOptions>();

  auto* init = cmd->add_subcommand("init", "Create a new token PKI directory (refuses existing files)");
  init->add_option("--dir", o->dir, "directory to create (keys 0600)")->required();
  init->add_option("--public-url", o->public_url,
                   "the service's external base URL (https://...): CRL distribution points go under it")
      ->required();
  init->add_option("--key-bits", o->key_bits, "RSA modulus of every key")->capture_default_str();
  init->callback([&exit_code, o] { exit_code = RunInit(*o); });

  auto* rotate = cmd->add_subcommand(
      "rotate", "New token-signing key and certificate; the old certificate stays published");
  rotate->add_option("--dir", o->dir, "token PKI directory")->required();
  rotate->add_option("--key-bits", o->rotate_key_bits, "RSA modulus (default: the current key's)");
  rotate->callback([&exit_code, o] { exit_code = RunRotate(*o); });

  auto* revoke = cmd->add_subcommand(
      "revoke", "List a certificate in its issuer's CRL (revocations.json)");
  revoke->add_option("--dir", o->dir, "token PKI directory")->required();
  revoke->add_option("--cert", o->cert, "the certificate to revoke (PEM)");
  revoke->add_option("--serial", o->serial, "or its serial number, hex");
  revoke->callback([&exit_code, o] { exit_code = RunRevoke(*o); });
}

}  // namespace tdxvirt::cli
