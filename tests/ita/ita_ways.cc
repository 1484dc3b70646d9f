#include "ita_ways.h"

#include <httplib.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "common/base64.h"
#include "common/openssl.h"
#include "test_util.h"

namespace tdxvirt::ita {
namespace {

using ossl::PkeyPtr;
using ossl::X509CrlPtr;
using ossl::X509Ptr;

struct StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
struct DistPointsFree {
  void operator()(STACK_OF(DIST_POINT) * p) const { sk_DIST_POINT_pop_free(p, DIST_POINT_free); }
};
struct X509StackFree {
  void operator()(STACK_OF(X509) * p) const { sk_X509_free(p); }
};
using StorePtr = std::unique_ptr<X509_STORE, StoreFree>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, StoreCtxFree>;
using DistPointsPtr = std::unique_ptr<STACK_OF(DIST_POINT), DistPointsFree>;

Error Refuse(const std::string& step, const std::string& reason) {
  return Error{step + ": " + reason};
}

// The three base64url parts of a compact JWS.
struct Jws {
  std::string header_b64, payload_b64, signature_b64;
  std::string signing_input() const { return header_b64 + "." + payload_b64; }
};
Result<Jws> SplitJws(const std::string& token) {
  size_t a = token.find('.');
  size_t b = a == std::string::npos ? a : token.find('.', a + 1);
  if (b == std::string::npos || token.find('.', b + 1) != std::string::npos)
    return Error{"token is not three dot-separated parts"};
  return Jws{token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1)};
}
Result<nlohmann::json> DecodeJsonPart(const std::string& b64, const std::string& what) {
  auto raw = Base64UrlDecode(b64, what);
  if (!raw.ok()) return Error{raw.error()};
  auto j = nlohmann::json::parse(AsString(*raw), nullptr, false);
  if (!j.is_object()) return Error{what + " is not a JSON object"};
  return j;
}

// RSA signature check over `data`: the primitive under every way's JWS step. Which key, which
// padding and which PSS salt rule is each way's own choice, made by its caller.
bool RsaVerify(EVP_PKEY* key, const EVP_MD* md, bool pss, int pss_saltlen, const std::string& data,
               ByteSpan sig) {
  ossl::MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key) != 1) return false;
  if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, pss_saltlen) != 1))
    return false;
  bool ok =
      EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), AsBytes(data).data(), data.size()) == 1;
  ERR_clear_error();
  return ok;
}

std::string CommonNameOf(X509* c) { return ossl::CommonName(X509_get_subject_name(c)); }

}  // namespace

Result<std::string> HttpGet(const std::string& url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return Error{"GET " + url + ": not an absolute URL"};
  size_t path_start = url.find('/', scheme_end + 3);
  std::string origin = url.substr(0, path_start);
  std::string path = path_start == std::string::npos ? "/" : url.substr(path_start);
  httplib::Client c(origin);
  c.set_connection_timeout(10, 0);
  c.set_read_timeout(10, 0);
  c.set_write_timeout(10, 0);
  auto r = c.Get(path.c_str());
  if (!r) return Error{"GET " + url + ": " + httplib::to_string(r.error())};
  if (r->status != 200) return Error{"GET " + url + ": HTTP " + std::to_string(r->status)};
  return r->body;
}

// ---------------------------------------------------------------------------------------------
// GoWay: go-connector token.go VerifyToken (golang-jwt v5 Parse with a keyfunc).
// ---------------------------------------------------------------------------------------------
namespace {

// crypto/x509 Certificate.CRLDistributionPoints: every URI full name of every DP, in order.
std::vector<std::string> GoCrlDistributionPoints(X509* c) {
  std::vector<std::string> uris;
  DistPointsPtr dps(static_cast<STACK_OF(DIST_POINT)*>(
      X509_get_ext_d2i(c, NID_crl_distribution_points, nullptr, nullptr)));
  if (!dps) return uris;
  for (int i = 0; i < sk_DIST_POINT_num(dps.get()); ++i) {
    DIST_POINT* dp = sk_DIST_POINT_value(dps.get(), i);
    if (!dp->distpoint || dp->distpoint->type != 0) continue;
    GENERAL_NAMES* names = dp->distpoint->name.fullname;
    for (int j = 0; j < sk_GENERAL_NAME_num(names); ++j) {
      GENERAL_NAME* n = sk_GENERAL_NAME_value(names, j);
      if (n->type != GEN_URI) continue;
      const ASN1_STRING* s = n->d.uniformResourceIdentifier;
      uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                        ASN1_STRING_length(s));
    }
  }
  return uris;
}

// token.go getCRL: the first CDP only, fetched, parsed as DER (x509.ParseRevocationList).
Result<X509CrlPtr> GoGetCrl(const std::vector<std::string>& cdps) {
  if (cdps.empty()) return Error{"Invalid CDP count present in the certificate"};
  auto body = HttpGet(cdps[0]);
  if (!body.ok()) return Error{body.error()};
  auto crl = ossl::ParseDerCrl(AsBytes(*body));
  if (!crl.ok())
    return Error{"Failed to parse revocation list: x509: malformed crl"};  // Go's words
  return std::move(*crl);
}

// token.go verifyCRL: RevocationList.CheckSignatureFrom(ca) (which first requires the parent to be
// a CA and, if it has KeyUsage, cRLSign), then NextUpdate, then the serial.
Status GoVerifyCrl(X509_CRL* crl, X509* cert, X509* ca, int64_t now) {
  uint32_t flags = X509_get_extension_flags(ca);
  bool bc_valid = flags & EXFLAG_BCONS, is_ca = flags & EXFLAG_CA;
  if ((X509_get_version(ca) == 2 && !bc_valid) || (bc_valid && !is_ca) ||
      ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(ca) & KU_CRL_SIGN)))
    return Error{
        "CRL signature verification failed: x509: invalid signature: parent certificate cannot "
        "sign this kind of certificate"};
  EVP_PKEY* ca_key = X509_get0_pubkey(ca);
  if (!ca_key || X509_CRL_verify(crl, ca_key) != 1) {
    ERR_clear_error();
    return Error{"CRL signature verification failed: crypto/rsa: verification error"};
  }
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl);
  auto next_unix =
      next ? ossl::TimeToUnix(next) : Result<int64_t>(int64_t(0));  // absent: zero time
  if (!next_unix.ok() || *next_unix < now) return Error{"Outdated CRL"};
  X509_REVOKED* entry = nullptr;
  if (X509_CRL_get0_by_serial(crl, &entry, X509_get_serialNumber(cert)) == 1)
    return Error{"Certificate was Revoked"};
  return OkStatus();
}

// jwk.Parse of the whole set (any malformed key fails all), each RSA key built from n/e.
struct GoJwk {
  std::string kid;
  PkeyPtr key;
  std::vector<Bytes> x5c;
};
Result<std::vector<GoJwk>> GoParseJwkSet(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("keys") || !j["keys"].is_array())
    return Error{"failed to unmarshal JWK set"};
  std::vector<GoJwk> out;
  for (const auto& k : j["keys"]) {
    if (!k.is_object() || !k.contains("kty") || !k["kty"].is_string())
      return Error{"failed to unmarshal JWK: invalid key type"};
    if (k["kty"] != "RSA") return Error{"failed to unmarshal JWK: unsupported kty"};
    if (!k.contains("n") || !k["n"].is_string() || !k.contains("e") || !k["e"].is_string())
      return Error{"failed to unmarshal JWK: required field n or e is missing"};
    auto n = Base64UrlDecode(k["n"].get<std::string>(), "n");
    auto e = Base64UrlDecode(k["e"].get<std::string>(), "e");
    if (!n.ok() || !e.ok()) return Error{"failed to unmarshal JWK: n or e is not base64url"};
    GoJwk g;
    if (k.contains("kid")) {
      if (!k["kid"].is_string()) return Error{"failed to unmarshal JWK: kid is not a string"};
      g.kid = k["kid"];
    }
    std::unique_ptr<BIGNUM, decltype(&BN_free)> bn_n(BN_bin2bn(n->data(), int(n->size()), nullptr),
                                                     BN_free);
    std::unique_ptr<BIGNUM, decltype(&BN_free)> bn_e(BN_bin2bn(e->data(), int(e->size()), nullptr),
                                                     BN_free);
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(),
                                                                        OSSL_PARAM_BLD_free);
    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get());
    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get());
    std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(
        OSSL_PARAM_BLD_to_param(bld.get()), OSSL_PARAM_free);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> pctx(
        EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr), EVP_PKEY_CTX_free);
    EVP_PKEY* raw = nullptr;
    if (!params || !pctx || EVP_PKEY_fromdata_init(pctx.get()) != 1 ||
        EVP_PKEY_fromdata(pctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
      return Error{"failed to unmarshal JWK: bad RSA key"};
    g.key.reset(raw);
    if (k.contains("x5c")) {
      if (!k["x5c"].is_array()) return Error{"failed to unmarshal JWK: x5c is not an array"};
      for (const auto& c : k["x5c"]) {
        if (!c.is_string()) return Error{"failed to unmarshal JWK: x5c entry is not a string"};
        auto der = Base64Decode(c.get<std::string>(), "x5c");
        if (!der.ok()) return Error{"failed to unmarshal JWK: " + der.error()};
        g.x5c.push_back(std::move(*der));
      }
    }
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace

Result<nlohmann::json> VerifyGoWay(const std::string& token, const WayOptions& o) {
  const std::string step = "Failed to verify jwt token";
  auto jws = SplitJws(token);
  if (!jws.ok()) return Refuse(step, "token is malformed: " + jws.error());
  auto header = DecodeJsonPart(jws->header_b64, "header");
  if (!header.ok()) return Refuse(step, "token is malformed: " + header.error());
  auto claims = DecodeJsonPart(jws->payload_b64, "claims");
  if (!claims.ok()) return Refuse(step, "token is malformed: " + claims.error());

  // The keyfunc.
  if (!header->contains("kid")) return Refuse(step, "kid field missing in token header");
  if (!(*header)["kid"].is_string())
    return Refuse(step, "kid field in jwt header is not a valid string");
  std::string kid = (*header)["kid"];
  if (!header->contains("alg")) return Refuse(step, "alg field missing in token header");
  if (!(*header)["alg"].is_string())
    return Refuse(step, "alg field in jwt header is not a valid string");
  std::string alg = (*header)["alg"];
  if (alg != "RS256" && alg != "PS384")
    return Refuse(step, "unsupported token signing algorithm, has to be RS256 or PS384");

  auto jwks = HttpGet(o.base_url + "/certs");
  if (!jwks.ok()) return Refuse(step, "Failed to get token signing certificates: " + jwks.error());
  auto set = GoParseJwkSet(*jwks);
  if (!set.ok())
    return Refuse(step, "Unable to unmarshal response into a JWT Key Set: " + set.error());
  const GoJwk* jwk = nullptr;
  for (const auto& k : *set)
    if (k.kid == kid) {
      jwk = &k;
      break;
    }
  if (!jwk) return Refuse(step, "Could not find Key matching the key id");
  if (jwk->x5c.size() > 10)
    return Refuse(step, "Token Signing Cert chain has more than 10 certificates");

  X509Ptr leaf, inter, root;
  for (size_t i = 0; i < jwk->x5c.size(); ++i) {
    auto c = ossl::ParseDerCertificate(jwk->x5c[i]);
    if (!c.ok())
      return Refuse(step,
                    "Failed to parse x509 certificate[" + std::to_string(i) + "]: " + c.error());
    uint32_t flags = X509_get_extension_flags(c->get());
    std::string cn = CommonNameOf(c->get());
    if ((flags & EXFLAG_CA) && (flags & EXFLAG_BCONS) && cn.find("Root CA") != std::string::npos)
      root = std::move(*c);
    else if (cn.find("Signing CA") != std::string::npos)
      inter = std::move(*c);
    else
      leaf = std::move(*c);  // the last one wins
  }
  if (!leaf || !inter || !root) return Refuse(step, "Invalid certificate chain");

  auto root_crl = GoGetCrl(GoCrlDistributionPoints(inter.get()));
  if (!root_crl.ok()) return Refuse(step, "Failed to get ROOT CA CRL Object: " + root_crl.error());
  if (Status s = GoVerifyCrl(root_crl->get(), inter.get(), root.get(), o.now); !s.ok())
    return Refuse(step, "Failed to check ATS CA Certificate against Root CA CRL: " + s.error());
  auto ats_crl = GoGetCrl(GoCrlDistributionPoints(leaf.get()));
  if (!ats_crl.ok()) return Refuse(step, "Failed to get ATS CRL Object: " + ats_crl.error());
  if (Status s = GoVerifyCrl(ats_crl->get(), leaf.get(), inter.get(), o.now); !s.ok())
    return Refuse(step, "Failed to check ATS Leaf certificate against ATS CRL: " + s.error());

  // leafCert.Verify(Roots: {root}, Intermediates: {inter}): the x5c root is the only anchor, every
  // certificate's validity is checked at `now`; OpenSSL builds and checks the path.
  StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root.get());
  std::unique_ptr<STACK_OF(X509), X509StackFree> untrusted(sk_X509_new_null());
  sk_X509_push(untrusted.get(), inter.get());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get());
  X509_STORE_CTX_set_time(ctx.get(), 0, time_t(o.now));
  if (X509_verify_cert(ctx.get()) != 1) {
    // Reported in crypto/x509's words for the errors it has words for.
    int err = X509_STORE_CTX_get_error(ctx.get());
    std::string why = X509_verify_cert_error_string(err);
    if (err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
        err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
        err == X509_V_ERR_CERT_SIGNATURE_FAILURE)
      why = "x509: certificate signed by unknown authority";
    if (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID)
      why = "x509: certificate has expired or is not yet valid";
    return Refuse(step, "Failed to verify cert chain: " + why);
  }
  // VerifyOptions.KeyUsages defaults to ExtKeyUsageServerAuth: every certificate of the chain that
  // carries an EKU must allow serverAuth or anyExtendedKeyUsage (crypto/x509
  // checkChainForKeyUsage).
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509* c = sk_X509_value(chain, i);
    if (!(X509_get_extension_flags(c) & EXFLAG_XKUSAGE)) continue;
    uint32_t xku = X509_get_extended_key_usage(c);
    if (!(xku & (XKU_SSL_SERVER | XKU_ANYEKU)))
      return Refuse(
          step,
          "Failed to verify cert chain: x509: certificate specifies an incompatible key usage");
  }

  // jwkKey.Raw: the key from the JWK's n/e (never compared with the leaf).
  const EVP_MD* md = alg == "RS256" ? EVP_sha256() : EVP_sha384();
  auto sig = Base64UrlDecode(jws->signature_b64, "signature");
  // golang-jwt PS384 verifies with rsa.PSSSaltLengthAuto.
  if (!sig.ok() || !RsaVerify(jwk->key.get(), md, alg == "PS384", RSA_PSS_SALTLEN_AUTO,
                              jws->signing_input(), *sig))
    return Refuse(step, "token signature is invalid: crypto/rsa: verification error");

  // golang-jwt v5 validator: exp and nbf when present (no leeway), iat not checked.
  if (claims->contains("exp")) {
    if (!(*claims)["exp"].is_number())
      return Refuse(step, "token has invalid claims: exp is invalid");
    if (!(o.now < (*claims)["exp"].get<double>()))
      return Refuse(step, "token has invalid claims: token is expired");
  }
  if (claims->contains("nbf")) {
    if (!(*claims)["nbf"].is_number())
      return Refuse(step, "token has invalid claims: nbf is invalid");
    if (o.now < (*claims)["nbf"].get<double>())
      return Refuse(step, "token has invalid claims: token is not valid yet");
  }
  return *claims;
}

// ---------------------------------------------------------------------------------------------
// CWay: C client token_verifier.c verify_token, util.c verify_jwks_cert_chain, libjwt jwt_decode.
// ---------------------------------------------------------------------------------------------
namespace {

struct CJwk {
  std::string kty, kid, n, e, alg;
  std::vector<std::string> x5c;
};

// json.c json_unmarshal_token_signing_cert: every key must carry n, e, an x5c array of strings, and
// string kty, kid, alg (the C code strlen()s them; a missing one is a crash there, a refusal here).
Result<std::vector<CJwk>> CUnmarshalJwks(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return Error{"STATUS_JSON_SIGN_CERT_PARSING_ERROR"};
  if (!j.is_object() || !j.contains("keys"))
    return Error{"STATUS_JSON_SIGN_CERT_PARSING_KEYS_FIELD_NOT_FOUND_ERROR"};
  if (!j["keys"].is_array())
    return Error{"STATUS_JSON_SIGN_CERT_PARSING_KEYS_FIELD_NOT_AN_ARRAY_ERROR"};
  std::vector<CJwk> out;
  for (const auto& k : j["keys"]) {
    auto str = [&](const char* f) { return k.is_object() && k.contains(f) && k[f].is_string(); };
    if (!k.is_object() || !k.contains("n"))
      return Error{"STATUS_JSON_SIGN_CERT_PARSING_MODULUS_MISSING_ERROR"};
    if (!k.contains("e")) return Error{"STATUS_JSON_SIGN_CERT_PARSING_EXPONENT_MISSING_ERROR"};
    if (!k.contains("x5c") || !k["x5c"].is_array())
      return Error{"STATUS_JSON_SIGN_CERT_PARSING_KEYS_X5C_FIELD_NOT_AN_ARRAY_ERROR"};
    CJwk c;
    for (const auto& x : k["x5c"]) {
      if (!x.is_string()) return Error{"STATUS_JSON_SIGN_CERT_PARSING_KEYS_X5C_OBJECT_ERROR"};
      c.x5c.push_back(x);
    }
    for (const char* f : {"kty", "kid", "n", "e", "alg"})
      if (!str(f)) return Error{std::string("key field \"") + f + "\" is not a string"};
    c.kty = k["kty"], c.kid = k["kid"], c.n = k["n"], c.e = k["e"], c.alg = k["alg"];
    out.push_back(std::move(c));
  }
  return out;
}

// The x5c entry wrapped in PEM armour on one line and read with PEM_read_bio_X509, as util.c does.
X509Ptr CDecodeX5c(const std::string& b64) {
  std::string pem = "-----BEGIN CERTIFICATE-----\n" + b64 + "\n-----END CERTIFICATE-----\n";
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), int(pem.size())),
                                                BIO_free);
  X509Ptr c(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return c;
}

// util.c get_crl: every URI full name of every DP downloaded (DER) and added to the store; the
// last one is kept for verify_crl.
Result<X509CrlPtr> CGetCrl(X509* cert, X509_STORE* store) {
  DistPointsPtr dps(static_cast<STACK_OF(DIST_POINT)*>(
      X509_get_ext_d2i(cert, NID_crl_distribution_points, nullptr, nullptr)));
  if (!dps) return Error{"STATUS_CRL_DP_NOT_PRESENT"};
  X509CrlPtr last;
  for (int i = 0; i < sk_DIST_POINT_num(dps.get()); ++i) {
    DIST_POINT* dp = sk_DIST_POINT_value(dps.get(), i);
    if (!dp->distpoint || dp->distpoint->type != 0) continue;
    GENERAL_NAMES* names = dp->distpoint->name.fullname;
    for (int j = 0; j < sk_GENERAL_NAME_num(names); ++j) {
      GENERAL_NAME* n = sk_GENERAL_NAME_value(names, j);
      if (n->type != GEN_URI) continue;
      std::string uri(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)));
      auto body = HttpGet(uri);
      if (!body.ok()) return Error{"STATUS_CRL_DOWNLOAD_ERROR: " + body.error()};
      const unsigned char* p = AsBytes(*body).data();
      X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, long(body->size())));
      if (!crl) {
        ERR_clear_error();
        return Error{"STATUS_CRL_DOWNLOAD_ERROR: " + uri + " is not a DER CRL"};
      }
      if (X509_STORE_add_crl(store, crl.get()) != 1) return Error{"STATUS_CRL_STORE_ERROR"};
      last = std::move(crl);
    }
  }
  return last;
}

// util.c verify_crl: nextUpdate must be after now, then the signature with the CA's key. (The
// serial is not looked up here; X509_V_FLAG_CRL_CHECK does that, for the leaf only.)
Status CVerifyCrl(X509_CRL* crl, X509* ca, int64_t now) {
  if (!crl || !ca) return Error{"no CRL or no CA certificate"};
  EVP_PKEY* key = X509_get0_pubkey(ca);
  if (!key) return Error{"STATUS_EXTRACT_PUBKEY_ERROR"};
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl);
  time_t t = time_t(now);
  if (!next || X509_cmp_time(next, &t) <= 0) return Error{"STATUS_CRL_EXPIRED"};
  if (X509_CRL_verify(crl, key) <= 0) {
    ERR_clear_error();
    return Error{"STATUS_CRL_VERIFICATION_ERROR"};
  }
  return OkStatus();
}

}  // namespace

Result<nlohmann::json> VerifyCWay(const std::string& token, const WayOptions& o) {
  const std::string step = "verify_token";
  // parse_token_header_for_kid
  auto jws = SplitJws(token);
  if (!jws.ok()) return Refuse(step, "STATUS_TOKEN_INVALID_ERROR");
  auto header = DecodeJsonPart(jws->header_b64, "header");
  if (!header.ok()) return Refuse(step, "STATUS_TOKEN_DECODE_ERROR");
  if (!header->contains("kid") || !(*header)["kid"].is_string())
    return Refuse(step, "STATUS_TOKEN_KID_NULL_ERROR");
  std::string kid = (*header)["kid"];

  std::string base = o.base_url;
  if (!base.empty() && base.back() == '/') base.pop_back();
  auto jwks_text = HttpGet(base + "/certs");
  if (!jwks_text.ok()) return Refuse(step, "STATUS_GET_SIGNING_CERT_ERROR: " + jwks_text.error());
  auto keys = CUnmarshalJwks(*jwks_text);
  if (!keys.ok()) return Refuse(step, "STATUS_JSON_SIGN_CERT_UNMARSHALING_ERROR: " + keys.error());
  const CJwk* jwk = nullptr;
  for (const auto& k : *keys)
    if (k.kid == kid) {
      jwk = &k;
      break;
    }
  if (!jwk) return Refuse(step, "STATUS_KID_NOT_MATCHING_ERROR");
  if (jwk->x5c.size() > 10) return Refuse(step, "STATUS_JSON_NO_OF_SIGN_CERT_EXCEEDING_ERROR");

  // verify_jwks_cert_chain
  const std::string chain_step = "STATUS_VERIFYING_CERT_CHAIN_ERROR: ";
  StorePtr store(X509_STORE_new());
  X509Ptr leaf, inter, root;
  X509CrlPtr leaf_crl, inter_crl;
  for (const auto& b64 : jwk->x5c) {
    X509Ptr cert = CDecodeX5c(b64);
    if (!cert) return Refuse(step, chain_step + "STATUS_DECODE_CERTIFICATE_ERROR");
    char cn[256];
    int len = X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn,
                                        sizeof(cn));
    if (len == -1) return Refuse(step, chain_step + "STATUS_GET_COMMON_NAME_ERROR");
    if (std::strstr(cn, "Root CA") || std::strstr(cn, "Signing CA")) {
      if (X509_STORE_add_cert(store.get(), cert.get()) != 1)
        return Refuse(step, chain_step + "STATUS_ADD_CERT_TO_STORE_ERROR");
      if (std::strstr(cn, "Root CA")) {
        root = std::move(cert);
      } else {
        auto crl = CGetCrl(cert.get(), store.get());
        if (!crl.ok()) return Refuse(step, chain_step + "STATUS_ROOT_CRL_ERROR: " + crl.error());
        inter_crl = std::move(*crl);
        inter = std::move(cert);
      }
    } else {
      auto crl = CGetCrl(cert.get(), store.get());
      if (!crl.ok())
        return Refuse(step, chain_step + "STATUS_INTERMEDIATE_CRL_ERROR: " + crl.error());
      leaf_crl = std::move(*crl);
      leaf = std::move(cert);
    }
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
  }
  if (Status s = CVerifyCrl(leaf_crl.get(), inter.get(), o.now); !s.ok())
    return Refuse(step, chain_step + "STATUS_INTERMEDIATE_CRL_VERIFICATION_ERROR: " + s.error());
  if (Status s = CVerifyCrl(inter_crl.get(), root.get(), o.now); !s.ok())
    return Refuse(step, chain_step + "STATUS_ROOT_CRL_VERIFICATION_ERROR: " + s.error());
  if (!leaf) return Refuse(step, chain_step + "no leaf certificate");
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr);  // no purpose set
  X509_STORE_CTX_set_time(ctx.get(), 0, time_t(o.now));
  if (X509_verify_cert(ctx.get()) != 1)
    return Refuse(step,
                  chain_step + X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));

  // extract_pubkey_from_certificate(x5c[0]): the signing key is the FIRST x5c certificate.
  X509Ptr first = CDecodeX5c(jwk->x5c[0]);
  EVP_PKEY* key = first ? X509_get0_pubkey(first.get()) : nullptr;
  if (!key) return Refuse(step, "STATUS_EXTRACT_PUBKEY_ERROR");
  // libjwt jwt_decode: the header's alg picks the algorithm; no exp/nbf/iat check.
  std::string alg = header->value("alg", "");
  const EVP_MD* md = nullptr;
  bool pss = alg.size() == 5 && alg[0] == 'P';
  if (alg == "RS256" || alg == "PS256") md = EVP_sha256();
  if (alg == "RS384" || alg == "PS384") md = EVP_sha384();
  if (alg == "RS512" || alg == "PS512") md = EVP_sha512();
  auto sig = Base64UrlDecode(jws->signature_b64, "signature");
  auto claims = DecodeJsonPart(jws->payload_b64, "claims");
  if (!md || !sig.ok() || !claims.ok() ||
      !RsaVerify(key, md, pss, RSA_PSS_SALTLEN_AUTO, jws->signing_input(), *sig))
    return Refuse(step, "STATUS_TOKEN_VERIFICATION_FAILED_ERROR");
  return *claims;
}

// ---------------------------------------------------------------------------------------------
// PythonWay: python_way.py under /usr/bin/python3.
// ---------------------------------------------------------------------------------------------
Result<nlohmann::json> VerifyPythonWay(const std::string& token, const WayOptions& o) {
  testing::TempDir dir;
  std::string token_file = dir.File("token.jwt"), out_file = dir.File("out.txt");
  testing::WriteFile(token_file, token);
  std::string cmd = "/usr/bin/python3 '" TDXVIRT_ITA_PYTHON_WAY "' --base-url '" + o.base_url +
                    "' --now " + std::to_string(o.now) + " --token-file '" + token_file + "' >'" +
                    out_file + "' 2>&1";
  int rc = std::system(cmd.c_str());
  std::string out = testing::ReadFileText(out_file);
  // The last line is "OK <claims JSON>" or "REFUSED <step>: <reason>".
  while (!out.empty() && out.back() == '\n') out.pop_back();
  std::string last = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
  if (rc == 0 && last.rfind("OK ", 0) == 0) {
    auto j = nlohmann::json::parse(last.substr(3), nullptr, false);
    if (j.is_object()) return j;
  }
  if (last.rfind("REFUSED ", 0) == 0) return Error{last.substr(8)};
  return Error{"python_way.py failed (exit " + std::to_string(rc) + "): " + out};
}

}  // namespace tdxvirt::ita
