#include "service/token_chain.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/x509v3.h>

#include "common/base64.h"
#include "common/hex.h"

namespace tdxvirt::service {

namespace {

std::string Cn(X509* c) { return "\"" + ossl::CommonName(X509_get_subject_name(c)) + "\""; }

struct StoreFree { void operator()(X509_STORE* s) const { X509_STORE_free(s); } };
struct StoreCtxFree { void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); } };
struct SkX509Free { void operator()(STACK_OF(X509)* s) const { sk_X509_free(s); } };

std::string UnixToRfc3339(int64_t t) {
  ASN1_TIME* a = ASN1_TIME_set(nullptr, time_t(t));
  if (!a) return std::to_string(t);
  std::string s = ossl::TimeToRfc3339(a);
  ASN1_TIME_free(a);
  return s.empty() ? std::to_string(t) : s;
}

std::string SerialHex(X509* c) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), nullptr);
  if (!bn) return "?";
  char* hex = BN_bn2hex(bn);
  std::string s = hex ? hex : "?";
  OPENSSL_free(hex);
  BN_free(bn);
  return s;
}

Bytes StripLeadingZeros(Bytes b) {
  size_t i = 0;
  while (i + 1 < b.size() && b[i] == 0) ++i;
  return Bytes(b.begin() + std::ptrdiff_t(i), b.end());
}

Result<Bytes> RsaParam(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1 || !bn) return Error{"cannot read the RSA key"};
  Bytes out(static_cast<size_t>(BN_num_bytes(bn)));
  BN_bn2bin(bn, out.data());
  BN_free(bn);
  return out;
}

}  // namespace

Result<std::vector<Bytes>> JwkX5c(const nlohmann::json& jwk) {
  if (!jwk.is_object() || !jwk.contains("x5c"))
    return Error{"has no x5c certificate chain (Intel's verifier needs leaf, Signing CA and Root CA)"};
  const auto& x5c = jwk["x5c"];
  if (!x5c.is_array() || x5c.empty() || x5c.size() > 10)
    return Error{"x5c must be an array of 1..10 certificates"};
  std::vector<Bytes> out;
  for (size_t i = 0; i < x5c.size(); ++i) {
    if (!x5c[i].is_string()) return Error{"x5c[" + std::to_string(i) + "]: not a base64 string"};
    auto der = Base64Decode(x5c[i].get<std::string>(), "x5c[" + std::to_string(i) + "]");
    if (!der.ok()) return Error{der.error()};
    out.push_back(std::move(*der));
  }
  return out;
}

Result<TokenSigningChain> ClassifyX5c(const std::vector<Bytes>& x5c_der) {
  TokenSigningChain chain;
  for (size_t i = 0; i < x5c_der.size(); ++i) {
    auto cert = ossl::ParseDerCertificate(x5c_der[i]);
    if (!cert.ok()) return Error{"x5c[" + std::to_string(i) + "]: " + cert.error()};
    std::string cn = ossl::CommonName(X509_get_subject_name(cert->get()));
    // X509_check_ca > 0: basicConstraints CA:TRUE (Go: IsCA && BasicConstraintsValid).
    bool is_ca = (X509_get_extension_flags(cert->get()) & EXFLAG_BCONS) && X509_check_ca(cert->get()) > 0;
    ossl::X509Ptr* slot = nullptr;
    const char* role = nullptr;
    if (is_ca && cn.find("Root CA") != std::string::npos) {
      slot = &chain.root;
      role = "Root CA";
    } else if (cn.find("Signing CA") != std::string::npos) {
      slot = &chain.signing_ca;
      role = "Signing CA";
    } else {
      slot = &chain.leaf;
      role = "leaf";
    }
    if (*slot)
      return Error{std::string("x5c: two certificates in the role ") + role + " (" + Cn(slot->get()) +
                   " and \"" + cn + "\"); expected one Root CA, one Signing CA and one leaf"};
    *slot = std::move(*cert);
  }
  if (!chain.root)
    return Error{"x5c: no Root CA (a CA certificate whose CN contains \"Root CA\")"};
  if (!chain.signing_ca) return Error{"x5c: no Signing CA (a certificate whose CN contains \"Signing CA\")"};
  if (!chain.leaf) return Error{"x5c: no leaf (token signing) certificate"};
  return chain;
}

Result<ossl::X509Ptr> VerifyTokenSigningChain(const TokenSigningChain& chain, const ChainCheckOptions& o) {
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::vector<ossl::X509Ptr> pinned;
  if (!o.trusted_root_pem.empty()) {
    auto roots = ossl::ParsePemChain(o.trusted_root_pem);
    if (!roots.ok()) return Error{"--trusted-root: " + roots.error()};
    pinned = std::move(*roots);
    for (auto& r : pinned) X509_STORE_add_cert(store.get(), r.get());
  } else {
    X509_STORE_add_cert(store.get(), chain.root.get());
  }
  std::unique_ptr<STACK_OF(X509), SkX509Free> untrusted(sk_X509_new_null());
  sk_X509_push(untrusted.get(), chain.signing_ca.get());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx ||
      X509_STORE_CTX_init(ctx.get(), store.get(), chain.leaf.get(), untrusted.get()) != 1)
    return Error{"certificate chain: " + ossl::LastError()};
  X509_STORE_CTX_set_time(ctx.get(), 0, time_t(o.now));
  if (X509_verify_cert(ctx.get()) != 1) {
    int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    X509* at = X509_STORE_CTX_get_current_cert(ctx.get());
    std::string who = depth == 0 ? "leaf" : depth == 1 ? "Signing CA" : "root";
    std::string reason = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ossl::LastError();
    return Error{"certificate chain: " + who + (at ? " " + Cn(at) : std::string()) + ": " + reason +
                 " (verification time " + UnixToRfc3339(o.now) + ")" +
                 (o.trusted_root_pem.empty() ? "" : " (root pinned by --trusted-root)")};
  }
  STACK_OF(X509)* verified = X509_STORE_CTX_get0_chain(ctx.get());
  if (sk_X509_num(verified) != 3 || X509_cmp(sk_X509_value(verified, 1), chain.signing_ca.get()) != 0)
    return Error{"certificate chain: the leaf " + Cn(chain.leaf.get()) + " is not issued by the Signing CA " +
                 Cn(chain.signing_ca.get()) + " under the root (expected leaf <- Signing CA <- Root CA)"};
  X509* root = sk_X509_value(verified, 2);
  X509_up_ref(root);
  return ossl::X509Ptr(root);
}

Result<std::string> FirstCrlUri(X509* cert) {
  std::string uri = ossl::FirstCrlDistributionPointUri(cert);
  if (uri.empty()) return Error{"no CRL distribution point URI (Intel's verifier requires one)"};
  if (uri.rfind("http://", 0) != 0 && uri.rfind("https://", 0) != 0)
    return Error{"CRL distribution point \"" + uri + "\" is not an http:// or https:// URL"};
  return uri;
}

Status CheckCrl(ByteSpan crl_der, X509* subject, X509* issuer, int64_t now) {
  auto crl = ossl::ParseDerCrl(crl_der);
  if (!crl.ok()) return Error{crl.error()};
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl->get()), X509_get_subject_name(issuer)) != 0)
    return Error{"issued by \"" + ossl::CommonName(X509_CRL_get_issuer(crl->get())) + "\", not by " +
                 Cn(issuer)};
  EVP_PKEY* key = X509_get0_pubkey(issuer);
  if (!key || X509_CRL_verify(crl->get(), key) != 1) {
    ossl::LastError();
    return Error{"signature does not verify with the key of " + Cn(issuer)};
  }
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl->get());
  if (!next) return Error{"has no nextUpdate, so its freshness cannot be judged"};
  auto next_unix = ossl::TimeToUnix(next);
  if (!next_unix.ok()) return Error{"nextUpdate: " + next_unix.error()};
  if (*next_unix < now)
    return Error{"outdated: nextUpdate " + ossl::TimeToRfc3339(next) + " is before the verification time " +
                 UnixToRfc3339(now)};
  X509_REVOKED* entry = nullptr;
  if (X509_CRL_get0_by_serial(crl->get(), &entry, X509_get0_serialNumber(subject)) == 1)
    return Error{"lists serial " + SerialHex(subject) + ": the certificate is revoked"};
  return OkStatus();
}

Result<ossl::PkeyPtr> CheckTokenSigningJwk(const nlohmann::json& jwk, const ChainCheckOptions& o,
                                           CrlFetcher& fetcher) {
  auto x5c = JwkX5c(jwk);
  if (!x5c.ok()) return Error{x5c.error()};
  auto chain = ClassifyX5c(*x5c);
  if (!chain.ok()) return Error{chain.error()};
  auto root = VerifyTokenSigningChain(*chain, o);
  if (!root.ok()) return Error{root.error()};
  if (o.check_crls) {
    struct Step {
      const char* role;
      X509* subject;
      X509* issuer;
    };
    for (const Step& s : {Step{"Signing CA", chain->signing_ca.get(), root->get()},
                          Step{"leaf", chain->leaf.get(), chain->signing_ca.get()}}) {
      std::string who = std::string(s.role) + " " + Cn(s.subject);
      auto url = FirstCrlUri(s.subject);
      if (!url.ok()) return Error{who + ": " + url.error()};
      auto crl = fetcher.Fetch(*url);
      if (!crl.ok()) return Error{who + ": CRL " + *url + ": " + crl.error()};
      if (Status st = CheckCrl(crl->der, s.subject, s.issuer, o.now); !st.ok())
        return Error{who + ": CRL " + crl->source + ": " + st.error()};
    }
  }
  X509* leaf = chain->leaf.get();
  EVP_PKEY* key = X509_get0_pubkey(leaf);
  if (!key || !EVP_PKEY_is_a(key, "RSA"))
    return Error{"leaf " + Cn(leaf) + ": not an RSA key (tokens are signed PS384 or RS256)"};
  // Go verifies with the JWK's n/e and never compares them with the leaf; we verify with the leaf
  // the chain vouches for, and refuse a JWK whose n/e say otherwise.
  if (jwk.contains("n") || jwk.contains("e")) {
    auto n = RsaParam(key, OSSL_PKEY_PARAM_RSA_N);
    auto e = RsaParam(key, OSSL_PKEY_PARAM_RSA_E);
    if (!n.ok() || !e.ok()) return Error{"leaf " + Cn(leaf) + ": cannot read its RSA key"};
    auto jn = jwk.value("n", nlohmann::json()), je = jwk.value("e", nlohmann::json());
    Result<Bytes> dn = jn.is_string() ? Base64UrlDecode(jn.get<std::string>(), "JWK n") : Result<Bytes>(Error{"JWK n: not a string"});
    Result<Bytes> de = je.is_string() ? Base64UrlDecode(je.get<std::string>(), "JWK e") : Result<Bytes>(Error{"JWK e: not a string"});
    if (!dn.ok()) return Error{dn.error()};
    if (!de.ok()) return Error{de.error()};
    if (StripLeadingZeros(*dn) != StripLeadingZeros(*n) || StripLeadingZeros(*de) != StripLeadingZeros(*e))
      return Error{"JWK n/e are not the key of the leaf " + Cn(leaf)};
  }
  EVP_PKEY_up_ref(key);
  return ossl::PkeyPtr(key);
}

}  // namespace tdxvirt::service
