// Tokens as Intel Trust Authority issues them: JWTs signed PS384 (RS256 on request) by an RSA key
// whose certificate chain (leaf, "Signing CA", "Root CA") is published as x5c in a JWKS at /certs.
//
// The signing key is a file (a Kubernetes Secret), so replicas sharing it issue interchangeable
// tokens: the kid is derived from the leaf certificate, not from the process.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base64.h"  // JOSE uses base64url; Intel's JSON bodies standard base64
#include "common/bytes.h"
#include "common/openssl.h"
#include "common/result.h"
#include "tokenpki/tokenpki.h"

namespace tdxvirt::service {

enum class JwsAlg { kPS384, kRS256 };
Result<JwsAlg> ParseJwsAlg(std::string_view name);  // "PS384" | "RS256"
std::string_view JwsAlgName(JwsAlg alg);

// RSA signature of `data` (PS384: RSASSA-PSS, SHA-384, MGF1-SHA-384, salt = 48 bytes; RS256:
// PKCS#1 v1.5 SHA-256), and its verification (false for any malformed input).
Result<Bytes> RsaSign(EVP_PKEY* key, JwsAlg alg, ByteSpan data);
bool RsaVerify(EVP_PKEY* key, JwsAlg alg, ByteSpan data, ByteSpan signature);

// The token-signing identity: RSA key + certificate chain (leaf first).
class SigningKey {
 public:
  // `key_pem`: an RSA private key (PKCS#8 or PKCS#1, >= 2048 bits); `chain_pem`: leaf first, the
  // leaf's public key must be the key's.
  static Result<SigningKey> FromPem(std::string_view key_pem, std::string_view chain_pem);
  static Result<SigningKey> Load(const std::string& key_path, const std::string& chain_path);
  // The token PKI's leaf; the JWKS also lists the previous leaf (tokens signed before a rotate
  // stay verifiable) and the nonce MAC key comes from the Signing CA key, so nonces issued by a
  // replica still on the old leaf are accepted by one on the new leaf during a rollout.
  static Result<SigningKey> FromTokenPki(const tokenpki::Pki& pki);

  EVP_PKEY* key() const { return key_.get(); }
  const std::string& kid() const { return kid_; }  // lowercase hex SHA-384 of the leaf DER
  // {"keys":[{"kty":"RSA","kid","n","e","alg":"PS384","x5c":[...],"use":"sig"}, the same with
  // "alg":"RS256", ...]}: each certificate listed once per algorithm with the same kid, as Intel's
  // C client fixture (that client requires kty, kid, n, e, alg and x5c on every key).
  const nlohmann::json& jwks() const { return jwks_; }
  // A key for nonce MACs that every replica with this signing key derives alike.
  const ByteArray<48>& nonce_mac_key() const { return nonce_mac_key_; }

  // header.payload.signature with {"alg","jku"?,"kid","typ":"JWT"}.
  Result<std::string> Sign(const nlohmann::json& claims, JwsAlg alg, const std::string& jku = "") const;

 private:
  std::shared_ptr<EVP_PKEY> key_;
  std::string kid_;
  nlohmann::json jwks_;
  ByteArray<48> nonce_mac_key_{};
};

// Creates an RSA-3072 token-signing key and its chain: a fresh "Root CA" and "Signing CA" (P-384,
// their private keys discarded) issuing the leaf, or, when `ca_cert_pem`/`ca_key_pem` are given,
// a leaf issued directly by that CA. Writes `key_path` (0600) and `chain_path` (leaf, CAs).
struct SigningKeyOptions {
  std::string common_name = "tdxvirt Attestation Token Signing Certificate";
  int64_t not_before = 0;        // 0 = now - 1 h
  int64_t validity_days = 3650;
  int key_bits = 3072;           // RSA modulus of the leaf (tests use 2048: faster to generate)
  std::string ca_cert_pem;       // optional issuing CA (chain, leaf-most first)
  std::string ca_key_pem;
  // subjectAltName of the leaf, e.g. "DNS:attestation.tdxvirt.svc,IP:127.0.0.1": set it to use the
  // same routine for an HTTPS serving certificate (quickstart, tests).
  std::string subject_alt_names;
};
Status CreateSigningKeyFiles(const std::string& key_path, const std::string& chain_path,
                             const SigningKeyOptions& options = {});
// `--init-signing-key`: creates the key and chain unless they exist, the key first, each file
// atomically, so a kill at any moment leaves nothing, the key alone, or both. The key alone (an
// interrupted init) is completed with a fresh chain for that key: sound because no chain of it was
// ever written, so none can be trusted instead. Both present, a chain without its key, or a key
// that is not a usable RSA key are refused with how to fix them.
enum class SigningKeyInit { kCreated, kChainCompleted };
Result<SigningKeyInit> InitSigningKeyFiles(const std::string& key_path, const std::string& chain_path,
                                           const SigningKeyOptions& options = {});
// The same in memory: {key PEM, chain PEM}.
Result<std::pair<std::string, std::string>> CreateSigningKeyPem(const SigningKeyOptions& options = {});

// An RSA key pair for the in-TD client (trustauthority-cli create-key-pair): RSA-3072.
struct RsaKeyPairPem {
  std::string private_pem;  // PKCS#8 "PRIVATE KEY"
  std::string public_pem;   // SubjectPublicKeyInfo "PUBLIC KEY"
};
Result<RsaKeyPairPem> CreateRsaKeyPair(int bits = 3072);
// The DER SubjectPublicKeyInfo of the first PEM block of a public (or private) key: what the
// Intel client sends as runtime_data with --pub-path.
Result<Bytes> PublicKeyDerFromPem(std::string_view pem);

struct VerifyTokenOptions {
  std::string issuer;  // required "iss" when non-empty
  int64_t now = 0;
  int64_t leeway_seconds = 0;  // allowed clock skew for exp and nbf
  // Claims that must be present with these values; looked up at the top level, then under "tdx"
  // (v2 tokens). Strings compare case-insensitively (hex measurements).
  std::map<std::string, nlohmann::json> expected_claims;
  // When set, the JWK's x5c chain must verify to this root (PEM); otherwise the JWKS is trusted as
  // fetched (over TLS from the issuer).
  std::string trusted_root_pem;
  // When set, gives the key that checks the signature for the JWK with the token's kid, instead of
  // the above: `attest verify` plugs in Intel's chain and CRL checks here (token_chain.h).
  std::function<Result<ossl::PkeyPtr>(const nlohmann::json& jwk)> jwk_key;
};
struct VerifiedToken {
  nlohmann::json header;
  nlohmann::json claims;
};
// Checks the JWS signature against the (first, as Go's LookupKeyID) key with the token's kid in
// `jwks_text`, alg (PS384 or RS256 only), exp/nbf, issuer and expected claims. Errors name the
// failed check.
Result<VerifiedToken> VerifyToken(std::string_view token, std::string_view jwks_text,
                                  const VerifyTokenOptions& options);

}  // namespace tdxvirt::service
