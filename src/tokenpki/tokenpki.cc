#include "tokenpki/tokenpki.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <cctype>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "common/file.h"

namespace tdxvirt::tokenpki {

namespace {

struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };
using BioPtr = std::unique_ptr<BIO, BioFree>;
struct CtxFree { void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); } };
struct StoreFree { void operator()(X509_STORE* s) const { X509_STORE_free(s); } };
struct StoreCtxFree { void operator()(X509_STORE_CTX* s) const { X509_STORE_CTX_free(s); } };
struct SkFree { void operator()(STACK_OF(X509)* s) const { sk_X509_free(s); } };

int64_t Now(int64_t now) { return now ? now : int64_t(std::time(nullptr)); }

// Intel's profile (reference §8): Root and Signing CA critical BC + critical KU keyCertSign,
// cRLSign; the leaf CA:FALSE, non-critical KU, no EKU (Go's verifier defaults to serverAuth, so an
// EKU without it would fail there). `cdp` "" = none (the Root).
enum class Role { kRoot, kSigningCa, kLeaf };
Result<ossl::X509Ptr> Issue(Role role, const std::string& cn, EVP_PKEY* subject_key, X509* issuer,
                            EVP_PKEY* issuer_key, int64_t not_before, int64_t not_after,
                            const std::string& cdp) {
  ossl::X509Ptr c(X509_new());
  X509_set_version(c.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return Error{"no randomness for a serial number"};
  serial[0] &= 0x7f;
  serial[0] |= 0x01;  // positive, 16 bytes, never zero
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get()));
  BN_free(bn);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("tdxvirt"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
  ASN1_TIME_set(X509_getm_notBefore(c.get()), time_t(not_before));
  ASN1_TIME_set(X509_getm_notAfter(c.get()), time_t(not_after));
  X509_set_pubkey(c.get(), subject_key);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer ? issuer : c.get(), c.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    if (!ext) return false;
    X509_add_ext(c.get(), ext, -1);
    X509_EXTENSION_free(ext);
    return true;
  };
  const char* bc = role == Role::kRoot        ? "critical,CA:TRUE"
                   : role == Role::kSigningCa ? "critical,CA:TRUE,pathlen:0"
                                              : "critical,CA:FALSE";
  const char* ku = role == Role::kLeaf
                       ? "digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment"
                       : "critical,keyCertSign,cRLSign";
  bool ok = add(NID_basic_constraints, bc) && add(NID_subject_key_identifier, "hash") &&
            add(NID_authority_key_identifier, "keyid:always") && add(NID_key_usage, ku) &&
            (cdp.empty() || add(NID_crl_distribution_points, "URI:" + cdp));
  if (!ok) return Error{"certificate extensions: " + ossl::LastError()};
  if (X509_sign(c.get(), issuer_key, EVP_sha512()) <= 0)
    return Error{"cannot sign the certificate: " + ossl::LastError()};
  return c;
}

int64_t NotAfter(const X509* c) {
  auto t = ossl::TimeToUnix(X509_get0_notAfter(c));
  return t.ok() ? *t : 0;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string InitHint(const std::string& dir) {
  return "create the directory with `tdxvirt token-pki init --dir " + dir + " --public-url URL`";
}

}  // namespace

Result<std::string> NormalizePublicUrl(std::string_view url) {
  std::string u(url);
  while (!u.empty() && u.back() == '/') u.pop_back();
  std::string_view rest;
  if (u.starts_with("https://")) rest = std::string_view(u).substr(8);
  else if (u.starts_with("http://")) rest = std::string_view(u).substr(7);
  else return Error{"--public-url: \"" + std::string(url) + "\" must start with https:// (or http:// for tests)"};
  if (rest.empty() || rest.front() == '/') return Error{"--public-url: \"" + std::string(url) + "\" has no host"};
  if (u.size() > 1024) return Error{"--public-url: longer than 1024 characters"};
  for (char ch : u)
    if (ch <= ' ' || ch == 0x7f || ch == '?' || ch == '#' || ch == '"' || ch == '\\')
      return Error{"--public-url: \"" + std::string(url) +
                   "\" must be a plain base URL (no white space, query or fragment)"};
  return u;
}

// ---- revocations ----

Result<std::string> NormalizeSerial(std::string_view hex) {
  std::string_view s = hex;
  if (s.starts_with("0x") || s.starts_with("0X")) s.remove_prefix(2);
  std::string out;
  for (char ch : s) {
    if (ch == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(ch)))
      return Error{"serial: \"" + std::string(hex) + "\" is not hex (as `openssl x509 -serial` prints it)"};
    out.push_back(char(std::tolower(static_cast<unsigned char>(ch))));
  }
  size_t nz = out.find_first_not_of('0');
  out = nz == std::string::npos ? (out.empty() ? "" : "0") : out.substr(nz);
  if (out.empty()) return Error{"serial: empty"};
  if (out.size() > 40) return Error{"serial: more than 20 bytes (RFC 5280 limit)"};
  return out;
}

std::string SerialHex(const X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  if (!bn) return "";
  char* h = BN_bn2hex(bn);
  BN_free(bn);
  std::string s = h ? h : "";
  OPENSSL_free(h);
  auto n = NormalizeSerial(s);
  return n.ok() ? *n : s;
}

Result<std::vector<Revocation>> ParseRevocations(std::string_view json) {
  const std::string f = std::string(kRevocationsFile);
  if (json.size() > (4 << 20)) return Error{f + ": larger than 4 MiB"};
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error{f + ": not a JSON object; expected {\"revoked\": [...]}"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "revoked") return Error{f + ": unknown field \"" + it.key() + "\"; expected only \"revoked\""};
  if (!j.contains("revoked") || !j["revoked"].is_array())
    return Error{f + ": \"revoked\" must be an array (use [] for none)"};
  const auto& list = j["revoked"];
  if (list.size() > kMaxRevocations)
    return Error{f + ": more than " + std::to_string(kMaxRevocations) + " revocations"};
  std::vector<Revocation> out;
  std::set<std::pair<std::string, Issuer>> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& e = list[i];
    std::string where = f + ": revoked[" + std::to_string(i) + "]";
    if (!e.is_object()) return Error{where + ": not an object"};
    for (auto it = e.begin(); it != e.end(); ++it)
      if (it.key() != "serial" && it.key() != "issuer" && it.key() != "revoked_at" && it.key() != "subject")
        return Error{where + ": unknown field \"" + it.key() + "\""};
    Revocation r;
    if (!e.contains("serial") || !e["serial"].is_string())
      return Error{where + ".serial: missing; give the certificate serial as hex"};
    auto serial = NormalizeSerial(e["serial"].get<std::string>());
    if (!serial.ok()) return Error{where + "." + serial.error()};
    r.serial = *serial;
    if (!e.contains("issuer") || !e["issuer"].is_string())
      return Error{where + ".issuer: missing; use \"signing-ca\" (a token-signing certificate) or \"root-ca\" (a Signing CA)"};
    std::string issuer = e["issuer"].get<std::string>();
    if (issuer == "signing-ca") r.issuer = Issuer::kSigningCa;
    else if (issuer == "root-ca") r.issuer = Issuer::kRootCa;
    else return Error{where + ".issuer: \"" + issuer + "\" is not \"signing-ca\" or \"root-ca\""};
    if (!e.contains("revoked_at") || !e["revoked_at"].is_number_integer() || e["revoked_at"].get<int64_t>() < 0 ||
        e["revoked_at"].get<int64_t>() > 253402300799)
      return Error{where + ".revoked_at: must be Unix seconds (0..253402300799)"};
    r.revoked_at = e["revoked_at"].get<int64_t>();
    if (e.contains("subject")) {
      if (!e["subject"].is_string() || e["subject"].get<std::string>().size() > 1024)
        return Error{where + ".subject: must be a string of at most 1024 bytes"};
      r.subject = e["subject"].get<std::string>();
    }
    if (!seen.insert({r.serial, r.issuer}).second)
      return Error{where + ".serial: " + r.serial + " is listed twice"};
    out.push_back(std::move(r));
  }
  return out;
}

std::string RevocationsToJson(const std::vector<Revocation>& revocations) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& r : revocations) {
    nlohmann::ordered_json e;
    e["serial"] = r.serial;
    e["issuer"] = r.issuer == Issuer::kRootCa ? "root-ca" : "signing-ca";
    e["revoked_at"] = r.revoked_at;
    if (!r.subject.empty()) e["subject"] = r.subject;
    list.push_back(e);
  }
  nlohmann::ordered_json j;
  j["revoked"] = list;
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// ---- creation ----

Result<ossl::PkeyPtr> NewRsaKey(int bits) {
  if (bits < 2048 || bits > 8192) return Error{"--key-bits: " + std::to_string(bits) + " is not in 2048..8192"};
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) <= 0 || EVP_PKEY_generate(ctx.get(), &key) <= 0)
    return Error{"RSA key generation: " + ossl::LastError()};
  return ossl::PkeyPtr(key);
}

Result<ossl::X509Ptr> IssueLeaf(const Pki& pki, EVP_PKEY* leaf_key, int64_t now) {
  int64_t nb = Now(now) - 3600;
  int64_t na = std::min(nb + kLeafDays * 86400, NotAfter(pki.signing_ca.get()));
  return Issue(Role::kLeaf, kLeafCn, leaf_key, pki.signing_ca.get(), pki.signing_ca_key.get(), nb, na,
               pki.public_url + kLeafCrlPath);
}

Result<Pki> CreatePki(const CreateOptions& o) {
  auto url = NormalizePublicUrl(o.public_url);
  if (!url.ok()) return Error{url.error()};
  Pki p;
  p.public_url = *url;
  for (auto* k : {&p.root_ca_key, &p.signing_ca_key, &p.leaf_key}) {
    auto key = NewRsaKey(o.key_bits);
    if (!key.ok()) return Error{key.error()};
    *k = std::move(*key);
  }
  int64_t nb = Now(o.now) - 3600;
  auto root = Issue(Role::kRoot, kRootCaCn, p.root_ca_key.get(), nullptr, p.root_ca_key.get(), nb,
                    nb + kRootDays * 86400, "");
  if (!root.ok()) return Error{root.error()};
  p.root_ca = std::move(*root);
  auto ca = Issue(Role::kSigningCa, kSigningCaCn, p.signing_ca_key.get(), p.root_ca.get(),
                  p.root_ca_key.get(), nb, nb + kSigningCaDays * 86400, p.public_url + kRootCrlPath);
  if (!ca.ok()) return Error{ca.error()};
  p.signing_ca = std::move(*ca);
  auto leaf = IssueLeaf(p, p.leaf_key.get(), o.now);
  if (!leaf.ok()) return Error{leaf.error()};
  p.leaf = std::move(*leaf);
  return p;
}

Result<Bytes> SignCrl(X509* issuer, EVP_PKEY* issuer_key, Issuer which,
                      const std::vector<Revocation>& revocations, int64_t now, int64_t crl_number) {
  ossl::X509CrlPtr crl(X509_CRL_new());
  if (!crl) return Error{"CRL: out of memory"};
  X509_CRL_set_version(crl.get(), 1);  // v2
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer));
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> t(ASN1_TIME_new(), ASN1_TIME_free);
  ASN1_TIME_set(t.get(), time_t(now - 300));
  X509_CRL_set1_lastUpdate(crl.get(), t.get());
  ASN1_TIME_set(t.get(), time_t(now + kCrlLifetimeSeconds));
  X509_CRL_set1_nextUpdate(crl.get(), t.get());
  for (const auto& r : revocations) {
    if (r.issuer != which) continue;
    BIGNUM* bn = nullptr;
    if (!BN_hex2bn(&bn, r.serial.c_str())) return Error{"CRL: bad serial " + r.serial};
    X509_REVOKED* rev = X509_REVOKED_new();
    ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn, nullptr);
    BN_free(bn);
    ASN1_TIME_set(t.get(), time_t(r.revoked_at));
    X509_REVOKED_set_serialNumber(rev, serial);
    X509_REVOKED_set_revocationDate(rev, t.get());
    ASN1_INTEGER_free(serial);
    X509_CRL_add0_revoked(crl.get(), rev);
  }
  std::unique_ptr<ASN1_INTEGER, decltype(&ASN1_INTEGER_free)> number(ASN1_INTEGER_new(), ASN1_INTEGER_free);
  ASN1_INTEGER_set_int64(number.get(), crl_number);
  if (X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1)
    return Error{"CRL: cannot add the CRL Number: " + ossl::LastError()};
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer, nullptr, nullptr, crl.get(), 0);
  if (X509_EXTENSION* aki = X509V3_EXT_conf_nid(nullptr, &v3, NID_authority_key_identifier, "keyid:always")) {
    X509_CRL_add_ext(crl.get(), aki, -1);
    X509_EXTENSION_free(aki);
  } else {
    return Error{"CRL: authority key identifier: " + ossl::LastError()};
  }
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), issuer_key, EVP_sha512()) <= 0)
    return Error{"CRL: cannot sign: " + ossl::LastError()};
  int n = i2d_X509_CRL(crl.get(), nullptr);
  if (n <= 0) return Error{"CRL: cannot encode"};
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  i2d_X509_CRL(crl.get(), &p);
  return der;
}

// ---- the directory ----

namespace {

std::string Join(const std::string& dir, const char* name) { return dir + "/" + name; }

Status WriteKey(const std::string& path, EVP_PKEY* key, bool replace) {
  auto pem = ossl::PrivateKeyToPem(key);
  if (!pem.ok()) return Error{pem.error()};
  Status s = WriteFileAtomic(path, AsBytes(*pem), 0600, replace);
  OPENSSL_cleanse(pem->data(), pem->size());
  return s;
}

Status WriteCert(const std::string& path, const X509* cert, bool replace) {
  return WriteFileAtomic(path, AsBytes(ossl::CertToPem(cert)), 0644, replace);
}

// A file of the directory. Secrets mount their files as symbolic links into ..data/, so links
// are followed; a FIFO or device is refused (ReadRegularFile).
Result<std::string> ReadDirFile(const std::string& dir, const char* name) {
  std::string path = Join(dir, name);
  struct stat st;
  if (stat(path.c_str(), &st) != 0 && errno == ENOENT)
    return Error{path + ": missing; " + InitHint(dir)};
  auto b = ReadRegularFile(path, 1 << 20);
  if (!b.ok()) return Error{b.error()};
  return std::string(AsString(*b));
}

Result<ossl::X509Ptr> LoadCert(const std::string& dir, const char* name) {
  auto pem = ReadDirFile(dir, name);
  if (!pem.ok()) return Error{pem.error()};
  auto chain = ossl::ParsePemChain(*pem);
  if (!chain.ok()) return Error{Join(dir, name) + ": " + chain.error()};
  if (chain->size() != 1) return Error{Join(dir, name) + ": holds " + std::to_string(chain->size()) +
                                       " certificates; expected exactly one"};
  return std::move((*chain)[0]);
}

Result<ossl::PkeyPtr> LoadKey(const std::string& dir, const char* name, const char* cert_name,
                              X509* cert) {
  auto pem = ReadDirFile(dir, name);
  if (!pem.ok()) return Error{pem.error()};
  BioPtr b(BIO_new_mem_buf(pem->data(), int(pem->size())));
  ossl::PkeyPtr key(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  OPENSSL_cleanse(pem->data(), pem->size());
  ossl::LastError();
  if (!key) return Error{Join(dir, name) + ": not a PEM private key (unencrypted PKCS#8 or PKCS#1)"};
  if (!EVP_PKEY_is_a(key.get(), "RSA") || EVP_PKEY_get_bits(key.get()) < 2048)
    return Error{Join(dir, name) + ": must be an RSA key of at least 2048 bits (Intel's clients "
                 "check these signatures as RSA)"};
  if (EVP_PKEY_eq(X509_get0_pubkey(cert), key.get()) != 1)
    return Error{Join(dir, name) + " does not match " + Join(dir, cert_name) +
                 "; restore the pair written together by `tdxvirt token-pki init` or `rotate`"};
  return key;
}

// Issued by `issuer` (name and signature), as each client checks it.
bool IssuedBy(X509* cert, X509* issuer) {
  bool ok = X509_check_issued(issuer, cert) == X509_V_OK && X509_verify(cert, X509_get0_pubkey(issuer)) == 1;
  ossl::LastError();
  return ok;
}

}  // namespace

Status InitDirectory(const std::string& dir, const CreateOptions& options) {
  if (dir.empty()) return Error{"--dir: required"};
  for (const char* name : {kRootCaCert, kRootCaKey, kSigningCaCert, kSigningCaKey, kLeafCert, kLeafKey,
                           kPreviousLeafCert, kRevocationsFile})
    if (Exists(Join(dir, name)))
      return Error{Join(dir, name) + " exists; refusing to overwrite a token PKI (use `tdxvirt token-pki "
                                      "rotate` for a new signing key, or an empty --dir)"};
  if (auto url = NormalizePublicUrl(options.public_url); !url.ok()) return Error{url.error()};
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Error{"--dir: cannot create " + dir + ": " + std::strerror(errno)};
  auto pki = CreatePki(options);
  if (!pki.ok()) return Error{pki.error()};
  // Keys before certificates and revocations.json last: a killed init leaves files that init
  // refuses and the loader names ("missing"), so nothing half-made is ever served.
  for (auto [name, key] : {std::pair{kRootCaKey, pki->root_ca_key.get()},
                           std::pair{kSigningCaKey, pki->signing_ca_key.get()},
                           std::pair{kLeafKey, pki->leaf_key.get()}})
    if (Status s = WriteKey(Join(dir, name), key, false); !s.ok()) return s;
  for (auto [name, cert] : {std::pair{kRootCaCert, pki->root_ca.get()},
                            std::pair{kSigningCaCert, pki->signing_ca.get()},
                            std::pair{kLeafCert, pki->leaf.get()}})
    if (Status s = WriteCert(Join(dir, name), cert, false); !s.ok()) return s;
  return WriteFileAtomic(Join(dir, kRevocationsFile), AsBytes(RevocationsToJson({})), 0644, false);
}

namespace {

// `maintenance` (rotate, revoke): an expired leaf is what rotate is for, so the chain is checked
// at a moment the leaf was valid instead of now.
Result<Pki> Load(const std::string& dir, std::string_view public_url, int64_t now, bool maintenance) {
  Pki p;
  struct CertFile { const char* name; ossl::X509Ptr* cert; };
  for (auto [name, cert] : {CertFile{kRootCaCert, &p.root_ca}, CertFile{kSigningCaCert, &p.signing_ca},
                            CertFile{kLeafCert, &p.leaf}}) {
    auto c = LoadCert(dir, name);
    if (!c.ok()) return Error{c.error()};
    *cert = std::move(*c);
  }
  struct KeyFile { const char* name; const char* cert_name; X509* cert; ossl::PkeyPtr* key; };
  for (auto [name, cert_name, cert, key] :
       {KeyFile{kRootCaKey, kRootCaCert, p.root_ca.get(), &p.root_ca_key},
        KeyFile{kSigningCaKey, kSigningCaCert, p.signing_ca.get(), &p.signing_ca_key},
        KeyFile{kLeafKey, kLeafCert, p.leaf.get(), &p.leaf_key}}) {
    auto k = LoadKey(dir, name, cert_name, cert);
    if (!k.ok()) {
      // A rotate killed between its two renames leaves the new key beside the old certificate.
      if (std::string(name) == kLeafKey && Exists(Join(dir, kLeafCert) + ".next"))
        return Error{k.error() + " (an interrupted `tdxvirt token-pki rotate --dir " + dir +
                     "`: run it again to finish)"};
      return Error{k.error()};
    }
    *key = std::move(*k);
  }
  if (Exists(Join(dir, kPreviousLeafCert))) {
    auto c = LoadCert(dir, kPreviousLeafCert);
    if (!c.ok()) return Error{c.error()};
    if (!IssuedBy(c->get(), p.signing_ca.get()))
      return Error{Join(dir, kPreviousLeafCert) + ": not issued by " + Join(dir, kSigningCaCert) +
                   "; remove it (it only keeps tokens of the previous key verifiable)"};
    p.previous_leaf = std::move(*c);
  }
  auto rev_text = ReadDirFile(dir, kRevocationsFile);
  if (!rev_text.ok()) return Error{rev_text.error()};
  auto revs = ParseRevocations(*rev_text);
  if (!revs.ok()) return Error{Join(dir, "") + revs.error()};
  p.revocations = std::move(*revs);

  // What Intel's clients classify by (CN substrings) and fetch (the first CDP URI).
  std::string root_cn = ossl::CommonName(X509_get_subject_name(p.root_ca.get()));
  std::string ca_cn = ossl::CommonName(X509_get_subject_name(p.signing_ca.get()));
  std::string leaf_cn = ossl::CommonName(X509_get_subject_name(p.leaf.get()));
  if (root_cn.find("Root CA") == std::string::npos)
    return Error{Join(dir, kRootCaCert) + ": CN \"" + root_cn + "\" lacks \"Root CA\", which Intel's clients look for; " + InitHint(dir)};
  if (ca_cn.find("Signing CA") == std::string::npos)
    return Error{Join(dir, kSigningCaCert) + ": CN \"" + ca_cn + "\" lacks \"Signing CA\", which Intel's clients look for; " + InitHint(dir)};
  if (leaf_cn.find("Root CA") != std::string::npos || leaf_cn.find("Signing CA") != std::string::npos)
    return Error{Join(dir, kLeafCert) + ": CN \"" + leaf_cn + "\" would be taken for a CA by Intel's clients; " + InitHint(dir)};

  std::string ca_cdp = ossl::FirstCrlDistributionPointUri(p.signing_ca.get()), leaf_cdp = ossl::FirstCrlDistributionPointUri(p.leaf.get());
  std::string url;
  if (public_url.empty()) {
    if (!ca_cdp.ends_with(kRootCrlPath))
      return Error{Join(dir, kSigningCaCert) + ": no CRL distribution point ending in " + kRootCrlPath + "; " + InitHint(dir)};
    url = ca_cdp.substr(0, ca_cdp.size() - std::strlen(kRootCrlPath));
  } else {
    auto u = NormalizePublicUrl(public_url);
    if (!u.ok()) return Error{u.error()};
    url = *u;
  }
  for (auto [name, cdp, path] : {std::tuple{kSigningCaCert, ca_cdp, kRootCrlPath},
                                 std::tuple{kLeafCert, leaf_cdp, kLeafCrlPath}}) {
    if (cdp != url + path)
      return Error{Join(dir, name) + ": CRL distribution point \"" + cdp + "\" is not " + url + path +
                   "; Intel's clients fetch it from there. Pass the --public-url the PKI was created "
                   "with, or create a new PKI for " + url + " with `tdxvirt token-pki init`"};
  }
  p.public_url = url;

  // The chain as the C client checks it (X509_verify_cert, dates at `now`) and the Python client
  // (each signature by its issuer, which IssuedBy also checks).
  if (!IssuedBy(p.root_ca.get(), p.root_ca.get()))
    return Error{Join(dir, kRootCaCert) + ": not self-signed; " + InitHint(dir)};
  for (auto [name, cert, issuer_name, issuer] :
       {std::tuple{kSigningCaCert, p.signing_ca.get(), kRootCaCert, p.root_ca.get()},
        std::tuple{kLeafCert, p.leaf.get(), kSigningCaCert, p.signing_ca.get()}})
    if (!IssuedBy(cert, issuer))
      return Error{Join(dir, name) + ": not signed by " + Join(dir, issuer_name) +
                   " (files of different PKIs); restore the files of one, or " + InitHint(dir)};
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), p.root_ca.get());
  std::unique_ptr<STACK_OF(X509), SkFree> untrusted(sk_X509_new_null());
  sk_X509_push(untrusted.get(), p.signing_ca.get());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), p.leaf.get(), untrusted.get());
  int64_t at = Now(now);
  if (maintenance) {
    auto nb = ossl::TimeToUnix(X509_get0_notBefore(p.leaf.get()));
    if (nb.ok() && at > NotAfter(p.leaf.get())) at = *nb + 1;
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, time_t(at));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    X509* at = X509_STORE_CTX_get_current_cert(ctx.get());
    std::string which = at == p.root_ca.get()      ? kRootCaCert
                        : at == p.signing_ca.get() ? kSigningCaCert
                                                   : kLeafCert;
    ossl::LastError();
    std::string fix = err == X509_V_ERR_CERT_HAS_EXPIRED && which == kLeafCert
                          ? "run `tdxvirt token-pki rotate --dir " + dir + "`"
                          : InitHint(dir);
    return Error{Join(dir, which.c_str()) + ": the chain " + kLeafCert + " <- " + kSigningCaCert + " <- " +
                 kRootCaCert + " does not verify: " + X509_verify_cert_error_string(err) + "; " + fix};
  }
  return p;
}

}  // namespace

Result<Pki> LoadDirectory(const std::string& dir, std::string_view public_url, int64_t now) {
  return Load(dir, public_url, now, false);
}

Result<RotateResult> RotateDirectory(const std::string& dir, int64_t now, int key_bits) {
  const std::string key_path = Join(dir, kLeafKey), cert_path = Join(dir, kLeafCert);
  const std::string key_next = key_path + ".next", cert_next = cert_path + ".next";
  RotateResult out;
  auto finish_renames = [&]() -> Status {
    if (Exists(key_next) && rename(key_next.c_str(), key_path.c_str()) != 0)
      return Error{"cannot rename " + key_next + ": " + std::strerror(errno)};
    if (Status s = FsyncDirectory(dir); !s.ok()) return s;
    if (rename(cert_next.c_str(), cert_path.c_str()) != 0)
      return Error{"cannot rename " + cert_next + ": " + std::strerror(errno)};
    return FsyncDirectory(dir);
  };
  if (Exists(cert_next)) {
    // An interrupted rotate. Its staged certificate is finished only when its key is there too
    // (staged or already renamed); anything else is a leftover and is redone from scratch.
    auto staged = LoadCert(dir, (std::string(kLeafCert) + ".next").c_str());
    std::string key_file = Exists(key_next) ? std::string(kLeafKey) + ".next" : std::string(kLeafKey);
    if (staged.ok()) {
      auto key = LoadKey(dir, key_file.c_str(), (std::string(kLeafCert) + ".next").c_str(), staged->get());
      if (key.ok()) {
        // Killed before the key's rename: token-signing.crt is still the old certificate.
        if (Exists(key_next)) {
          auto current = LoadCert(dir, kLeafCert);
          if (!current.ok()) return Error{current.error()};
          if (Status s = WriteCert(Join(dir, kPreviousLeafCert), current->get(), true); !s.ok())
            return Error{s.error()};
        }
        if (Status s = finish_renames(); !s.ok()) return Error{s.error()};
        out.completed_interrupted = true;
        out.serial = SerialHex(staged->get());
        auto prev = LoadCert(dir, kPreviousLeafCert);
        if (prev.ok()) out.previous_serial = SerialHex(prev->get());
        return out;
      }
    }
    unlink(cert_next.c_str());
    unlink(key_next.c_str());
  } else if (Exists(key_next)) {
    unlink(key_next.c_str());  // staged key without its certificate: never used, redo
  }
  auto pki = Load(dir, "", now, true);
  if (!pki.ok()) return Error{pki.error()};
  if (NotAfter(pki->signing_ca.get()) < Now(now) + 86400)
    return Error{Join(dir, kSigningCaCert) + ": expires within a day; a new token-signing certificate "
                 "cannot outlive it: " + InitHint(dir)};
  int bits = key_bits ? key_bits : EVP_PKEY_get_bits(pki->leaf_key.get());
  auto key = NewRsaKey(bits);
  if (!key.ok()) return Error{key.error()};
  auto leaf = IssueLeaf(*pki, key->get(), now);
  if (!leaf.ok()) return Error{leaf.error()};
  // Staged key then certificate; previous-token-signing.crt; then the key and the certificate
  // renamed in place. Between the two renames the loader names the fix (run rotate again).
  if (Status s = WriteKey(key_next, key->get(), false); !s.ok()) return Error{s.error()};
  if (Status s = WriteCert(cert_next, leaf->get(), false); !s.ok()) return Error{s.error()};
  if (Status s = WriteCert(Join(dir, kPreviousLeafCert), pki->leaf.get(), true); !s.ok())
    return Error{s.error()};
  if (Status s = finish_renames(); !s.ok()) return Error{s.error()};
  out.previous_serial = SerialHex(pki->leaf.get());
  out.serial = SerialHex(leaf->get());
  return out;
}

Result<RevokeResult> RevokeInDirectory(const std::string& dir, const RevokeRequest& req) {
  if (req.cert_pem.empty() == req.serial.empty()) return Error{"give exactly one of --cert and --serial"};
  auto pki = Load(dir, "", req.now, true);
  if (!pki.ok()) return Error{pki.error()};
  RevokeResult out;
  Revocation& r = out.revocation;
  r.revoked_at = Now(req.now);
  const std::string root_serial = SerialHex(pki->root_ca.get());
  const std::string ca_serial = SerialHex(pki->signing_ca.get());
  if (!req.cert_pem.empty()) {
    auto certs = ossl::ParsePemChain(req.cert_pem);
    if (!certs.ok()) return Error{"--cert: " + certs.error()};
    X509* c = (*certs)[0].get();
    r.serial = SerialHex(c);
    r.subject = ossl::NameToString(X509_get_subject_name(c));
    if (X509_cmp(c, pki->root_ca.get()) == 0)
      return Error{"--cert: the Root CA cannot be revoked; distrust it by creating a new PKI with `tdxvirt token-pki init`"};
    if (IssuedBy(c, pki->root_ca.get())) r.issuer = Issuer::kRootCa;
    else if (IssuedBy(c, pki->signing_ca.get())) r.issuer = Issuer::kSigningCa;
    else return Error{"--cert: " + r.subject + " was issued by neither " + Join(dir, kRootCaCert) + " nor " +
                      Join(dir, kSigningCaCert) + "; only their certificates can be listed in this PKI's CRLs"};
  } else {
    auto s = NormalizeSerial(req.serial);
    if (!s.ok()) return Error{"--" + s.error()};
    r.serial = *s;
    if (r.serial == root_serial)
      return Error{"--serial: " + r.serial + " is the Root CA; it cannot be revoked; distrust it by creating a new PKI with `tdxvirt token-pki init`"};
    r.issuer = r.serial == ca_serial ? Issuer::kRootCa : Issuer::kSigningCa;
    for (X509* c : {pki->signing_ca.get(), pki->leaf.get(), pki->previous_leaf.get()})
      if (c && SerialHex(c) == r.serial) r.subject = ossl::NameToString(X509_get_subject_name(c));
  }
  if (r.serial == SerialHex(pki->leaf.get()) && r.issuer == Issuer::kSigningCa)
    out.warning = "this is the current token-signing certificate: verifiers will refuse every token "
                  "the service signs until `tdxvirt token-pki rotate --dir " + dir + "` and a restart";
  else if (r.serial == ca_serial && r.issuer == Issuer::kRootCa)
    out.warning = "this is the Signing CA: verifiers will refuse every token of this PKI; create a "
                  "new one with `tdxvirt token-pki init`";
  for (const auto& e : pki->revocations)
    if (e.serial == r.serial && e.issuer == r.issuer) {
      out.already = true;
      out.revocation = e;
      return out;
    }
  pki->revocations.push_back(r);
  if (Status s = WriteFileAtomic(Join(dir, kRevocationsFile), AsBytes(RevocationsToJson(pki->revocations)), 0644);
      !s.ok())
    return Error{s.error()};
  return out;
}

// ---- CrlPublisher ----

Result<std::unique_ptr<CrlPublisher>> CrlPublisher::Create(Pki pki, std::string revocations_path,
                                                           int64_t now) {
  std::unique_ptr<CrlPublisher> p(new CrlPublisher());
  p->pki_ = std::move(pki);
  p->revocations_path_ = std::move(revocations_path);
  p->revocations_text_ = RevocationsToJson(p->pki_.revocations);
  std::lock_guard l(p->mu_);
  if (Status s = p->SignLocked(now); !s.ok()) return Error{s.error()};
  return p;
}

Status CrlPublisher::SignLocked(int64_t now) {
  int64_t number = std::max(now, last_number_ + 1);
  auto leaf = SignCrl(pki_.signing_ca.get(), pki_.signing_ca_key.get(), Issuer::kSigningCa,
                      pki_.revocations, now, number);
  if (!leaf.ok()) return Error{leaf.error()};
  auto root = SignCrl(pki_.root_ca.get(), pki_.root_ca_key.get(), Issuer::kRootCa, pki_.revocations,
                      now, number);
  if (!root.ok()) return Error{root.error()};
  leaf_crl_ = std::move(*leaf);
  root_crl_ = std::move(*root);
  signed_at_ = now;
  last_number_ = number;
  return OkStatus();
}

void CrlPublisher::RefreshLocked(int64_t now) {
  // Half the life passed (or the clock went back past the signing time): sign anew. A failure
  // keeps the previous CRLs, which stay valid for the other half.
  if (now >= signed_at_ + kCrlLifetimeSeconds / 2 || now < signed_at_ - 300) (void)SignLocked(now);
}

Bytes CrlPublisher::LeafCrl(int64_t now) {
  std::lock_guard l(mu_);
  RefreshLocked(now);
  return leaf_crl_;
}

Bytes CrlPublisher::RootCrl(int64_t now) {
  std::lock_guard l(mu_);
  RefreshLocked(now);
  return root_crl_;
}

std::vector<Revocation> CrlPublisher::revocations() {
  std::lock_guard l(mu_);
  return pki_.revocations;
}

Status CrlPublisher::Reload(int64_t now, bool* changed) {
  if (changed) *changed = false;
  auto text = ReadRegularFile(revocations_path_, 4 << 20);
  {
    std::lock_guard l(mu_);
    RefreshLocked(now);
  }
  if (!text.ok()) return Error{text.error()};
  auto revs = ParseRevocations(AsString(*text));
  if (!revs.ok()) return Error{revs.error()};
  std::string canonical = RevocationsToJson(*revs);
  std::lock_guard l(mu_);
  if (canonical == revocations_text_) return OkStatus();
  auto old = std::move(pki_.revocations);
  pki_.revocations = std::move(*revs);
  if (Status s = SignLocked(now); !s.ok()) {
    pki_.revocations = std::move(old);
    return s;
  }
  revocations_text_ = std::move(canonical);
  if (changed) *changed = true;
  return OkStatus();
}

}  // namespace tdxvirt::tokenpki
