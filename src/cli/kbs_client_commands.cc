// `tdxvirt attest secret`: the TD's side of a key transfer from a key broker speaking Intel Trust
// Authority KBS's API (`tdxvirt serve kbs`, or Intel's): background-check (the broker gets a nonce
// and a token for this TD's quote) or passport (--token), then the released key is unwrapped with
// the TD's private key and written to --out (0600, created new) or stdout.
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/provider_flags.h"
#include "common/file.h"
#include "kbs/client.h"
#include "service/client.h"

namespace tdxvirt::cli {

namespace {

struct SecretFlags {
  std::string kbs, key_id, out, key_path, token, ca_file, save_response;
  ProviderFlags provider;
  bool ccel = false;
  std::string ccel_dir = service::kAcpiTablesDir;
  bool allow_http = false;
  double timeout_s = 30;
};

// Writes all of `data` to `fd`; false on any short or failed write.
bool WriteAll(int fd, ByteSpan data, std::string* why) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *why = n < 0 ? std::strerror(errno) : "short write";
      return false;
    }
    done += size_t(n);
  }
  return true;
}

// The secret into a new file, 0600 from creation (O_EXCL|O_NOFOLLOW: an existing file or a link
// planted there is refused), whole or not at all: on any failure the file is removed.
Status WriteSecretFile(const std::string& path, ByteSpan secret) {
  auto fd = CreateNewFile(path, 0600);
  if (!fd.ok()) return Error{"--out: " + fd.error()};
  std::string why;
  bool ok = WriteAll(*fd, secret, &why);
  if (ok && ::fsync(*fd) != 0) {
    why = std::string("fsync: ") + std::strerror(errno);
    ok = false;
  }
  if (::close(*fd) != 0 && ok) {
    why = std::string("close: ") + std::strerror(errno);
    ok = false;
  }
  if (!ok) {
    ::unlink(path.c_str());
    return Error{"--out " + path + ": " + why + " (the file was removed)"};
  }
  return OkStatus();
}

Result<ossl::PkeyPtr> TdKey(const std::string& path) {
  if (path.empty()) {
    // A fresh key that lives only in this process: the broker wraps the secret to it, and nothing
    // else can open the answer (also not a saved --save-response).
    ossl::PkeyPtr key(EVP_RSA_gen(3072));
    if (!key) return Error{"cannot generate an RSA-3072 key: " + ossl::LastError()};
    return key;
  }
  auto pem = ReadRegularFile(path, 1 << 20);
  if (!pem.ok()) return Error{"--key: " + pem.error()};
  auto key = service::ParseRsaPrivateKey(*pem);
  OPENSSL_cleanse(pem->data(), pem->size());
  if (!key.ok()) return Error{"--key " + path + ": " + key.error()};
  return key;
}

int RunSecret(const SecretFlags& f) {
  if (f.timeout_s <= 0 || f.timeout_s > 3600) return InputError("--timeout must be in (0, 3600] seconds");
  kbs::KbsClientOptions o;
  o.url = f.kbs;
  o.ca_file = f.ca_file;
  o.allow_http = f.allow_http;
  o.timeout = std::chrono::seconds(int64_t(std::ceil(f.timeout_s)));
  bool passport = !f.token.empty();
  if (passport && f.key_path.empty())
    return InputError("--token: passport mode needs --key, the private key whose public key the token "
                      "carries as attester_held_data (the broker wraps the secret to it)");
  if (passport && f.ccel) return InputError("--ccel: not used with --token (the token already carries the evidence)");
  if (!f.ccel && f.ccel_dir != service::kAcpiTablesDir) return InputError("--ccel-dir: give --ccel as well");

  auto key = TdKey(f.key_path);
  if (!key.ok()) return InputError(key.error());

  int status = 0;
  Result<kbs::TransferResult> transfer = Error{""};
  std::string mode;
  if (passport) {
    mode = "passport";
    auto text = ReadFile(f.token, 1 << 20);
    if (!text.ok()) return InputError("--token: " + text.error());
    std::string token(AsString(*text));
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
    transfer = kbs::TransferWithToken(o, f.key_id, token, &status);
  } else {
    mode = "background";
    Bytes event_log;
    if (f.ccel) {
      auto log = service::ReadCcelEventLog(f.ccel_dir);
      if (!log.ok()) return InputError("--ccel: " + log.error());
      event_log = std::move(*log);
    }
    auto provider = MakeProvider(f.provider);
    if (!provider.ok()) return InputError(provider.error());
    transfer = kbs::TransferWithEvidence(o, f.key_id, **provider, key->get(), event_log, &status);
  }
  if (!transfer.ok()) {
    bool refused = status >= 400 && status < 500;
    std::cerr << "tdxvirt: " << (refused ? "refused: " : "error: ") << transfer.error() << "\n";
    return refused ? kExitNegative : kExitUsage;
  }
  if (!f.save_response.empty()) {
    // The answer is wrapped to the TD's key; kept 0600 all the same.
    Status st = WriteFileAtomic(f.save_response, AsBytes(transfer->response.dump() + "\n"), 0600);
    if (!st.ok()) return InputError("--save-response: " + st.error());
  }
  auto secret = kbs::UnwrapSecret(transfer->wrapped, key->get());
  if (!secret.ok())
    return InputError("the broker's answer does not open with the TD's key: " + secret.error() +
                      (passport ? " (was the token obtained with this --key's public key?)" : ""));
  Status written = OkStatus();
  if (f.out.empty()) {
    std::string why;
    if (!WriteAll(STDOUT_FILENO, *secret, &why)) written = Error{"cannot write the secret to stdout: " + why};
  } else {
    written = WriteSecretFile(f.out, *secret);
  }
  size_t size = secret->size();
  OPENSSL_cleanse(secret->data(), secret->size());
  if (!written.ok()) return InputError(written.error());
  if (!f.out.empty())
    std::cerr << "tdxvirt: key " << f.key_id << " released (" << mode << "), " << size << " bytes written to "
              << f.out << "\n";
  return kExitOk;
}

}  // namespace

void AddKbsClientCommands(CLI::App& app, int& exit_code) {
  auto* attest = AttestCommand(app);
  auto f = std::make_shared<SecretFlags>();
  auto* c = attest->add_subcommand(
      "secret", "Get a key from a key broker (Intel Trust Authority KBS API): attest, unwrap, write it");
  c->add_option("--kbs", f->kbs, "the broker's base URL, e.g. https://kbs.example:9443 (routes under /kbs/v1)")
      ->required();
  c->add_option("--key-id", f->key_id, "the key's id (a UUID)")->required();
  c->add_option("--out", f->out,
                "file to create for the secret (0600; an existing file is refused); default: raw to stdout");
  c->add_option("--key", f->key_path,
                "the TD's RSA private key (PEM, PKCS#1 or PKCS#8; > 2048 bits); default: a fresh RSA-3072 "
                "key kept in memory only");
  AddProviderFlags(c, f->provider);
  c->add_flag("--ccel", f->ccel, "send the TD's event log (CCEL) as event_log, as `attest token --ccel`");
  c->add_option("--ccel-dir", f->ccel_dir, "where --ccel reads CCEL and data/CCEL")->capture_default_str();
  c->add_option("--token", f->token,
                "passport mode: an attestation token file (- for stdin) obtained with --key's public key "
                "as runtime data");
  c->add_option("--ca-file", f->ca_file, "PEM CA bundle to trust for the broker's TLS certificate");
  c->add_flag("--allow-http", f->allow_http, "allow an http:// broker URL (loopback tests only)");
  c->add_option("--timeout", f->timeout_s, "seconds per HTTP request (default 30)");
  c->add_option("--save-response", f->save_response,
                "also write the broker's JSON answer {wrapped_key, wrapped_swk} here (0600)");
  c->footer(
      "Background-check (default): POST /kbs/v1/keys/ID/transfer gets a nonce; the quote's REPORTDATA is\n"
      "SHA-512(nonce.val || nonce.iat || user_data), user_data being the TD's public key (u32le exponent ||\n"
      "modulus, Intel's layout); the second POST (Attestation-Type: TDX) sends quote, nonce, user_data.\n"
      "Passport (--token): POST {\"attestation_token\"}. The answer's wrapped_swk is RSA-OAEP-SHA-256 to the\n"
      "TD's key (`attest decrypt --in <wrapped_swk> -f KEY` prints it, as Intel's tdx-cli) and opens\n"
      "wrapped_key (AES-256-GCM).\n"
      "Exit codes: 0 released; 1 refused by the broker (4xx, its error printed); 2 usage, transport or\n"
      "broker failure.");
  c->callback([&exit_code, f] { exit_code = RunSecret(*f); });
}

}  // namespace tdxvirt::cli
