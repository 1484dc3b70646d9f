// The token PKI: the certificates and CRLs that Intel Trust Authority's Go, Python and C clients
// need before they accept a token (docs/service.md, "Token PKI").
//
// Those clients take the Root CA from the JWKS x5c, classify certificates by CN ("Root CA",
// "Signing CA", anything else is the leaf), download the CRL at the first CRL distribution point
// of the Signing CA and of the leaf, and check CA signatures as RSA PKCS#1 v1.5. So all three keys
// are RSA, signatures are sha512WithRSAEncryption (as Intel's fixtures), the CA keys are kept (the
// service re-signs the CRLs), and the CDPs point at the service itself ({public URL}/crl/...).
//
// Everything lives in one directory (a Kubernetes Secret):
//   root-ca.crt root-ca.key signing-ca.crt signing-ca.key token-signing.crt token-signing.key
//   revocations.json [previous-token-signing.crt]
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/openssl.h"
#include "common/result.h"

namespace tdxvirt::tokenpki {

inline constexpr char kRootCaCn[] = "tdxvirt Attestation Token Root CA";
inline constexpr char kSigningCaCn[] = "tdxvirt Attestation Token Signing CA";
inline constexpr char kLeafCn[] = "tdxvirt Attestation Token Signing Certificate";
// CRL paths under the public URL: the leaf's CDP (signed by the Signing CA) and the Signing CA's
// CDP (signed by the Root CA). Intel's names, so a verifier configured for Intel finds them.
inline constexpr char kLeafCrlPath[] = "/crl/ats-ca-crl.der";
inline constexpr char kRootCrlPath[] = "/crl/root-ca-crl.der";

inline constexpr char kRootCaCert[] = "root-ca.crt";
inline constexpr char kRootCaKey[] = "root-ca.key";
inline constexpr char kSigningCaCert[] = "signing-ca.crt";
inline constexpr char kSigningCaKey[] = "signing-ca.key";
inline constexpr char kLeafCert[] = "token-signing.crt";
inline constexpr char kLeafKey[] = "token-signing.key";
inline constexpr char kPreviousLeafCert[] = "previous-token-signing.crt";
inline constexpr char kRevocationsFile[] = "revocations.json";

// Validity: Root 20 years, Signing CA 10, leaf 5 (Intel's leaf spans 5 years), never past its
// issuer; each notBefore is an hour back so a verifier with a slow clock accepts a fresh one.
inline constexpr int64_t kRootDays = 7305, kSigningCaDays = 3652, kLeafDays = 1826;
// CRLs: nextUpdate = signing time + 24 h; re-signed once half of that has passed (so a verifier
// that fetched one just before never holds an expired CRL for longer than 12 h of slack).
inline constexpr int64_t kCrlLifetimeSeconds = 86400;

// "http[s]://host[:port][/path]" with no trailing slash, query, fragment or white space; the base
// of every CDP, of jku ({URL}/certs) and of the OpenID issuer.
Result<std::string> NormalizePublicUrl(std::string_view url);

// ---- revocations.json ----
// {"revoked":[{"serial":"1f2e...","issuer":"signing-ca","revoked_at":1733390000,"subject":"CN=..."}]}
// serial: lowercase hex without leading zeros (as the CRL encodes it); issuer: which CA's CRL lists
// it ("signing-ca": a leaf in ats-ca-crl.der; "root-ca": a Signing CA in root-ca-crl.der);
// revoked_at: Unix seconds (the CRL's revocationDate); subject: informational, optional.
enum class Issuer { kSigningCa, kRootCa };
struct Revocation {
  std::string serial;
  Issuer issuer = Issuer::kSigningCa;
  int64_t revoked_at = 0;
  std::string subject;
};
inline constexpr size_t kMaxRevocations = 10000;
// The file comes from a Secret anyone with edit rights can change: strict (unknown fields, bad
// hex, duplicates refused) and bounded. Errors name the entry and field.
Result<std::vector<Revocation>> ParseRevocations(std::string_view json);
std::string RevocationsToJson(const std::vector<Revocation>& revocations);
// "0x0A:1b" -> "a1b": the canonical form above; error for anything but hex (and ':' separators).
Result<std::string> NormalizeSerial(std::string_view hex);
std::string SerialHex(const X509* cert);

// ---- the PKI in memory ----
struct Pki {
  std::string public_url;
  ossl::X509Ptr root_ca, signing_ca, leaf;
  ossl::X509Ptr previous_leaf;  // null when never rotated
  ossl::PkeyPtr root_ca_key, signing_ca_key, leaf_key;
  std::vector<Revocation> revocations;
};

struct CreateOptions {
  std::string public_url;  // required
  int key_bits = 3072;     // 2048..8192, every key
  int64_t now = 0;         // Unix seconds; 0 = the system clock
};
// A fresh Root CA, Signing CA and leaf with Intel's profile (reference §8).
Result<Pki> CreatePki(const CreateOptions& options);
// A new leaf for `leaf_key` issued by pki's Signing CA, CDP {public_url}/crl/ats-ca-crl.der.
Result<ossl::X509Ptr> IssueLeaf(const Pki& pki, EVP_PKEY* leaf_key, int64_t now);
Result<ossl::PkeyPtr> NewRsaKey(int bits);

// A DER CRL v2 by `issuer`: thisUpdate = now - 5 min (verifier clock skew), nextUpdate = now +
// kCrlLifetimeSeconds, CRL Number = `crl_number`, AKI, the revocations whose issuer is `which`.
Result<Bytes> SignCrl(X509* issuer, EVP_PKEY* issuer_key, Issuer which,
                      const std::vector<Revocation>& revocations, int64_t now, int64_t crl_number);

// ---- the directory ----
// Creates `dir` (0700) if needed and writes every file, keys 0600 from creation. Any of the files
// already present is refused before anything is written.
Status InitDirectory(const std::string& dir, const CreateOptions& options);

// Loads and checks the directory: all files present, each key matching its certificate, the CNs
// Intel's clients classify by, CDPs equal to {public_url}/crl/..., the chain verifying at `now`.
// `public_url` "" takes it from the Signing CA's CDP (rotate, revoke). Errors name the file and
// the fix.
Result<Pki> LoadDirectory(const std::string& dir, std::string_view public_url, int64_t now);

struct RotateResult {
  std::string previous_serial, serial;
  bool completed_interrupted = false;  // an earlier rotate was killed; this one finished it
};
// A new leaf key and certificate; the old certificate becomes previous-token-signing.crt (still
// published) and its key is gone. Staged as token-signing.{key,crt}.next and renamed, so a kill
// at any point is finished by running rotate again.
Result<RotateResult> RotateDirectory(const std::string& dir, int64_t now, int key_bits = 0);

// Records a revocation in revocations.json (atomically). `cert_pem` or `serial` (hex): the issuer
// is the CA that signed it (a serial alone: the Signing CA's serial is listed by the Root CA,
// anything else by the Signing CA). The Root CA itself cannot be revoked.
struct RevokeRequest {
  std::string cert_pem;
  std::string serial;
  int64_t now = 0;
};
struct RevokeResult {
  Revocation revocation;
  bool already = false;  // it was listed already; the file is unchanged
  std::string warning;   // revoking what the service signs with now
};
Result<RevokeResult> RevokeInDirectory(const std::string& dir, const RevokeRequest& request);

// ---- serving the CRLs ----
// Holds the signed CRLs of one loaded PKI and re-signs them when half their life has passed or
// when revocations.json changes (Reload). Thread-safe. CRL Number = signing time in Unix seconds
// (strictly increasing here), so replicas sharing the keys and restarts still publish growing
// numbers as long as clocks agree.
class CrlPublisher {
 public:
  // Signs both CRLs at `now`.
  static Result<std::unique_ptr<CrlPublisher>> Create(Pki pki, std::string revocations_path,
                                                      int64_t now);
  const Pki& pki() const { return pki_; }
  Bytes LeafCrl(int64_t now);  // ats-ca-crl.der
  Bytes RootCrl(int64_t now);  // root-ca-crl.der
  // Re-reads revocations.json; on a change re-signs both. A bad file keeps the previous list.
  Status Reload(int64_t now, bool* changed = nullptr);
  std::vector<Revocation> revocations();

 private:
  CrlPublisher() = default;
  Status SignLocked(int64_t now);
  void RefreshLocked(int64_t now);

  Pki pki_;
  std::string revocations_path_;
  std::mutex mu_;
  std::string revocations_text_;
  Bytes leaf_crl_, root_crl_;
  int64_t signed_at_ = 0, last_number_ = 0;
};

}  // namespace tdxvirt::tokenpki
