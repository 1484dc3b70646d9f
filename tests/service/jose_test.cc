// service/jose against references from outside this project: the RFCs' published vectors, a
// verifier written here with raw OpenSSL EVP calls (not VerifyToken), and a real Intel Trust
// Authority token. Vectors typed from RFC 7515 Appendix A.2 and RFC 7520 §3.3/§4.2.
#include "service/jose.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <fstream>
#include <sstream>

#include "test_util.h"

namespace tdxvirt::service {
namespace {

// base64url without padding, decoded by OpenSSL's base64 (not ours).
Bytes B64u(std::string s) {
  for (char& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4) s += '=';
  Bytes out(s.size() / 4 * 3);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(s.data()), int(s.size()));
  EXPECT_GE(n, 0) << s;
  size_t pad = s.size() - s.find_last_not_of('=') - 1;
  out.resize(size_t(n < 0 ? 0 : n) - pad);
  return out;
}

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};

// An RSA key from JWK members (base64url big-endian integers), through EVP_PKEY_fromdata.
ossl::PkeyPtr RsaFromJwk(const std::vector<std::pair<const char*, const char*>>& members) {
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  std::vector<std::unique_ptr<BIGNUM, BnFree>> keep;
  bool priv = false;
  for (const auto& [name, value] : members) {
    Bytes b = B64u(value);
    keep.emplace_back(BN_bin2bn(b.data(), int(b.size()), nullptr));
    OSSL_PARAM_BLD_push_BN(bld, name, keep.back().get());
    priv = priv || std::string(name) == OSSL_PKEY_PARAM_RSA_D;
  }
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* key = nullptr;
  EXPECT_EQ(EVP_PKEY_fromdata_init(ctx), 1);
  EXPECT_EQ(EVP_PKEY_fromdata(ctx, &key, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params), 1);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return ossl::PkeyPtr(key);
}

// RFC 7515 Appendix A.2.1: the RSA key (JWK members n, e, d, p, q, dp, dq, qi).
ossl::PkeyPtr Rfc7515A2Key() {
  return RsaFromJwk({
      {OSSL_PKEY_PARAM_RSA_N,
       "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-"
       "SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-"
       "KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-"
       "DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"},
      {OSSL_PKEY_PARAM_RSA_E, "AQAB"},
      {OSSL_PKEY_PARAM_RSA_D,
       "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_"
       "GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_"
       "0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_"
       "RQyGWSeWjnczT0QU91p1DhOVRuOopznQ"},
      {OSSL_PKEY_PARAM_RSA_FACTOR1,
       "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KK"
       "DcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc"},
      {OSSL_PKEY_PARAM_RSA_FACTOR2,
       "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_"
       "HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc"},
      {OSSL_PKEY_PARAM_RSA_EXPONENT1,
       "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAk"
       "tV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0"},
      {OSSL_PKEY_PARAM_RSA_EXPONENT2,
       "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-"
       "NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU"},
      {OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
       "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJt"
       "oOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U"},
  });
}

TEST(JoseReference, Rs256ReproducesRfc7515AppendixA2) {
  auto key = Rfc7515A2Key();
  ASSERT_TRUE(key);
  // A.2.1: the JWS Signing Input, ASCII(BASE64URL(header) || '.' || BASE64URL(payload)).
  const std::string input =
      "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0c"
      "nVlfQ";
  const std::string want =
      "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr"
      "7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--"
      "xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_"
      "IoypGlUPQGe77Rw";
  auto sig = RsaSign(key.get(), JwsAlg::kRS256, AsBytes(input));
  ASSERT_TRUE(sig.ok()) << sig.error();
  EXPECT_EQ(*sig, B64u(want));  // PKCS#1 v1.5 is deterministic: byte for byte
  EXPECT_EQ(Base64UrlEncode(*sig), want);
  EXPECT_TRUE(RsaVerify(key.get(), JwsAlg::kRS256, AsBytes(input), B64u(want)));
}

TEST(JoseReference, Ps384VerifiesRfc7520Section42) {
  // RFC 7520 §3.3, Figure 3: the public key of bilbo.baggins@hobbiton.example.
  auto key = RsaFromJwk({{OSSL_PKEY_PARAM_RSA_N,
                          "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_"
                          "AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-"
                          "oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-"
                          "tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw"},
                         {OSSL_PKEY_PARAM_RSA_E, "AQAB"}});
  ASSERT_TRUE(key);
  // Figure 18 (JWS Signing Input) and Figure 19 (JWS Signature).
  const std::string input =
      "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9."
      "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5"
      "kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4";
  Bytes sig = B64u(
      "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_"
      "1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9s"
      "hnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ"
      "6oD4ifKo8DYM-X72Eaw");
  ASSERT_EQ(sig.size(), 256u);
  EXPECT_TRUE(RsaVerify(key.get(), JwsAlg::kPS384, AsBytes(input), sig));
  EXPECT_FALSE(RsaVerify(key.get(), JwsAlg::kRS256, AsBytes(input), sig));  // the alg matters
  sig[100] ^= 1;
  EXPECT_FALSE(RsaVerify(key.get(), JwsAlg::kPS384, AsBytes(input), sig));
}

// A JWS checked with EVP calls written here: PS384 = RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48
// (RFC 7518 §3.5); RS256 = PKCS#1 v1.5 with SHA-256 (§3.3).
bool EvpVerifyJws(EVP_PKEY* key, const std::string& token, const std::string& alg) {
  size_t a = token.find('.'), b = token.rfind('.');
  if (a == std::string::npos || a == b) return false;
  std::string input = token.substr(0, b);
  Bytes sig = B64u(token.substr(b + 1));
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  bool pss = alg == "PS384";
  bool ok = EVP_DigestVerifyInit(md, &pctx, pss ? EVP_sha384() : EVP_sha256(), nullptr, key) == 1;
  if (ok && pss)
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) == 1 && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) == 1;
  ok = ok && EVP_DigestVerify(md, sig.data(), sig.size(), reinterpret_cast<const unsigned char*>(input.data()),
                              input.size()) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

std::string DecodedPart(const std::string& token, int index) {
  size_t a = token.find('.'), b = token.rfind('.');
  std::string part = index == 0 ? token.substr(0, a) : token.substr(a + 1, b - a - 1);
  Bytes raw = B64u(part);
  return std::string(raw.begin(), raw.end());
}

TEST(JoseReference, OurTokensVerifyWithRawEvp) {
  auto pem = CreateSigningKeyPem({.key_bits = 2048});
  ASSERT_TRUE(pem.ok()) << pem.error();
  auto key = SigningKey::FromPem(pem->first, pem->second);
  ASSERT_TRUE(key.ok()) << key.error();
  nlohmann::json claims = {{"iss", "tdxvirt"}, {"tdx_mrtd", std::string(96, 'a')}, {"exp", 2000000000}};
  for (auto [alg, name] : {std::pair{JwsAlg::kPS384, "PS384"}, std::pair{JwsAlg::kRS256, "RS256"}}) {
    auto token = key->Sign(claims, alg);
    ASSERT_TRUE(token.ok()) << token.error();
    EXPECT_TRUE(EvpVerifyJws(key->key(), *token, name)) << name;
    auto header = nlohmann::json::parse(DecodedPart(*token, 0));
    EXPECT_EQ(header["alg"], name);
    EXPECT_EQ(header["typ"], "JWT");
    EXPECT_EQ(header["kid"], key->kid());
    EXPECT_EQ(nlohmann::json::parse(DecodedPart(*token, 1)), claims);
    // The other algorithm's check, and a changed payload, fail.
    EXPECT_FALSE(EvpVerifyJws(key->key(), *token, std::string(name) == "PS384" ? "RS256" : "PS384"));
    std::string edited = *token;
    edited[edited.find('.') + 3] ^= 1;
    EXPECT_FALSE(EvpVerifyJws(key->key(), edited, name));
  }
}

std::string ReadText(const std::string& relative) {
  std::ifstream in(testing::TestdataPath(relative));
  EXPECT_TRUE(in.good()) << relative;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(JoseReference, RealTrustAuthorityTokenInOurClaimModel) {
  // A real ITA pilot TDX token (v1 flat claims, PS384). Its JWKS was never published, so its
  // signature cannot be checked; its structure and claims can.
  std::string token = ReadText("ita/kbs-pilot-tdx-token.jwt");
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  std::string header_text = ReadText("ita/kbs-pilot-tdx-token.header.json");
  std::string payload_text = ReadText("ita/kbs-pilot-tdx-token.payload.json");
  auto strip = [](std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  };
  size_t a = token.find('.'), b = token.rfind('.');
  ASSERT_NE(a, b);
  auto header = Base64UrlDecode(token.substr(0, a), "header");
  auto payload = Base64UrlDecode(token.substr(a + 1, b - a - 1), "payload");
  auto sig = Base64UrlDecode(token.substr(b + 1), "signature");
  ASSERT_TRUE(header.ok() && payload.ok() && sig.ok());
  EXPECT_EQ(std::string(AsString(*header)), strip(header_text));  // our decoder, their bytes
  EXPECT_EQ(std::string(AsString(*payload)), strip(payload_text));
  auto h = nlohmann::json::parse(AsString(*header));
  EXPECT_EQ(ParseJwsAlg(h["alg"].get<std::string>()).ok(), true);
  EXPECT_EQ(h["alg"], "PS384");
  auto claims = nlohmann::json::parse(AsString(*payload));

  // Our verifier's claim model reads their claims: the same claims, signed by our key, verify with
  // the expectations a relying party writes against ITA's names (v1: top level).
  auto pem = CreateSigningKeyPem({.key_bits = 2048});
  ASSERT_TRUE(pem.ok());
  auto key = SigningKey::FromPem(pem->first, pem->second);
  ASSERT_TRUE(key.ok());
  auto ours = key->Sign(claims, JwsAlg::kPS384);
  ASSERT_TRUE(ours.ok());
  VerifyTokenOptions o;
  o.issuer = "Intel Trust Authority";
  o.now = claims["iat"].get<int64_t>() + 1;
  o.expected_claims = {{"tdx_mrtd", claims["tdx_mrtd"]},
                       {"attester_tcb_status", "UpToDate"},
                       {"tdx_is_debuggable", false},
                       {"attester_type", "TDX"}};
  auto verified = VerifyToken(*ours, key->jwks().dump(), o);
  ASSERT_TRUE(verified.ok()) << verified.error();
  EXPECT_EQ(verified->claims, claims);
  o.now = claims["exp"].get<int64_t>() + 1;
  auto expired = VerifyToken(*ours, key->jwks().dump(), o);  // their exp is honoured
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error(), "token: expired at exp=" + std::to_string(claims["exp"].get<int64_t>()) + " (now " +
                                 std::to_string(o.now) + "); get a new token");
}

}  // namespace
}  // namespace tdxvirt::service
