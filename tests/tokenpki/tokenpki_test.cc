// The token PKI without a server: the certificate profile Intel's clients need (checked with
// OpenSSL, field by field), CRLs, revocations.json, and the directory (init, load, rotate, revoke).
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "common/hex.h"
#include "service/jose.h"
#include "test_util.h"
#include "tokenpki/tokenpki.h"

namespace tdxvirt::tokenpki {
namespace {

using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;
using tdxvirt::testing::WriteFile;

constexpr int64_t kNow = 1764928800;  // 2025-12-05T10:00:00Z
const std::string kUrl = "http://127.0.0.1:8081";

// -1 absent, else 0/1 = critical.
int Critical(X509* c, int nid) {
  int i = X509_get_ext_by_NID(c, nid, -1);
  return i < 0 ? -1 : X509_EXTENSION_get_critical(X509_get_ext(c, i));
}

std::string Cdp(X509* c) {
  auto* dps = static_cast<CRL_DIST_POINTS*>(X509_get_ext_d2i(c, NID_crl_distribution_points, nullptr, nullptr));
  std::string out;
  if (dps && sk_DIST_POINT_num(dps) == 1) {
    GENERAL_NAMES* names = sk_DIST_POINT_value(dps, 0)->distpoint->name.fullname;
    if (sk_GENERAL_NAME_num(names) == 1) {
      auto* uri = sk_GENERAL_NAME_value(names, 0)->d.uniformResourceIdentifier;
      out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)), size_t(ASN1_STRING_length(uri)));
    }
  }
  CRL_DIST_POINTS_free(dps);
  return out;
}

std::string KeyId(const ASN1_OCTET_STRING* s) {
  return s ? ToHex(ByteSpan(ASN1_STRING_get0_data(s), size_t(ASN1_STRING_length(s)))) : "";
}

const Pki& SharedPki() {
  static Pki pki = [] {
    auto p = CreatePki({.public_url = kUrl + "/", .key_bits = 2048, .now = kNow});
    EXPECT_TRUE(p.ok()) << p.error();
    return std::move(*p);
  }();
  return pki;
}

struct Expect {
  X509* cert;
  X509* issuer;
  const char* cn;
  bool ca;
  long pathlen;  // -1: none
  uint32_t key_usage;
  int key_usage_critical;
  std::string cdp;
};

TEST(TokenPkiProfile, EachCertificateAsIntelsFixtures) {
  const Pki& p = SharedPki();
  EXPECT_EQ(p.public_url, kUrl);  // the trailing slash dropped
  for (const Expect& e :
       {Expect{p.root_ca.get(), p.root_ca.get(), kRootCaCn, true, -1, KU_KEY_CERT_SIGN | KU_CRL_SIGN, 1, ""},
        Expect{p.signing_ca.get(), p.root_ca.get(), kSigningCaCn, true, 0, KU_KEY_CERT_SIGN | KU_CRL_SIGN, 1,
               kUrl + "/crl/root-ca-crl.der"},
        Expect{p.leaf.get(), p.signing_ca.get(), kLeafCn, false, -1,
               KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION | KU_KEY_ENCIPHERMENT | KU_DATA_ENCIPHERMENT, 0,
               kUrl + "/crl/ats-ca-crl.der"}}) {
    SCOPED_TRACE(e.cn);
    X509* c = e.cert;
    EXPECT_EQ(ossl::CommonName(X509_get_subject_name(c)), e.cn);
    EXPECT_EQ(X509_get_signature_nid(c), NID_sha512WithRSAEncryption);
    EXPECT_TRUE(EVP_PKEY_is_a(X509_get0_pubkey(c), "RSA"));
    EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(c)), 2048);
    EXPECT_EQ(X509_get_version(c), 2);  // v3
    EXPECT_EQ(X509_verify(c, X509_get0_pubkey(e.issuer)), 1);
    EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(c), X509_get_subject_name(e.issuer)), 0);
    EXPECT_EQ(Critical(c, NID_basic_constraints), 1);
    EXPECT_EQ(X509_check_ca(c) != 0, e.ca);
    EXPECT_EQ(X509_get_pathlen(c), e.pathlen);
    EXPECT_EQ(Critical(c, NID_key_usage), e.key_usage_critical);
    EXPECT_EQ(X509_get_key_usage(c), e.key_usage);
    EXPECT_EQ(Critical(c, NID_subject_key_identifier), 0);
    EXPECT_EQ(Critical(c, NID_authority_key_identifier), 0);
    EXPECT_EQ(KeyId(X509_get0_authority_key_id(c)), KeyId(X509_get0_subject_key_id(e.issuer)));
    EXPECT_EQ(Critical(c, NID_ext_key_usage), -1);  // Go's verifier wants serverAuth or none
    EXPECT_EQ(Critical(c, NID_crl_distribution_points), e.cdp.empty() ? -1 : 0);
    EXPECT_EQ(Cdp(c), e.cdp);
    auto nb = ossl::TimeToUnix(X509_get0_notBefore(c));
    ASSERT_TRUE(nb.ok());
    EXPECT_EQ(*nb, kNow - 3600);
  }
  auto na = [](X509* c) { return *ossl::TimeToUnix(X509_get0_notAfter(c)); };
  EXPECT_EQ(na(p.root_ca.get()), kNow - 3600 + kRootDays * 86400);
  EXPECT_EQ(na(p.signing_ca.get()), kNow - 3600 + kSigningCaDays * 86400);
  EXPECT_EQ(na(p.leaf.get()), kNow - 3600 + kLeafDays * 86400);
}

TEST(TokenPkiProfile, DefaultKeysAre3072Bits) {
  TempDir d;
  auto r = RunTdxvirt("token-pki init --dir " + d.File("pki") + " --public-url https://attest.example");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto p = LoadDirectory(d.File("pki"), "https://attest.example", 0);
  ASSERT_TRUE(p.ok()) << p.error();
  for (EVP_PKEY* k : {p->root_ca_key.get(), p->signing_ca_key.get(), p->leaf_key.get()})
    EXPECT_EQ(EVP_PKEY_get_bits(k), 3072);
}

TEST(TokenPkiUrl, RefusesWhatIsNotABaseUrl) {
  EXPECT_EQ(NormalizePublicUrl("ftp://x").error(), "--public-url: \"ftp://x\" must start with https:// (or http:// for tests)");
  EXPECT_EQ(NormalizePublicUrl("http:///a").error(), "--public-url: \"http:///a\" has no host");
  EXPECT_EQ(NormalizePublicUrl("https://a/b?c").error(),
            "--public-url: \"https://a/b?c\" must be a plain base URL (no white space, query or fragment)");
  EXPECT_EQ(*NormalizePublicUrl("https://a/b//"), "https://a/b");
}

// ---- CRLs ----

ossl::X509CrlPtr ParseCrl(const Bytes& der) {
  auto c = ossl::ParseDerCrl(der);
  EXPECT_TRUE(c.ok()) << c.error();
  return c.ok() ? std::move(*c) : nullptr;
}

int64_t CrlNumber(X509_CRL* crl) {
  auto* n = static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr));
  int64_t v = -1;
  if (n) ASN1_INTEGER_get_int64(&v, n);
  ASN1_INTEGER_free(n);
  return v;
}

std::vector<std::string> RevokedSerials(X509_CRL* crl) {
  std::vector<std::string> out;
  STACK_OF(X509_REVOKED)* revs = X509_CRL_get_REVOKED(crl);
  for (int i = 0; i < sk_X509_REVOKED_num(revs); ++i) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revs, i)), nullptr);
    char* h = BN_bn2hex(bn);
    out.push_back(*NormalizeSerial(h));
    OPENSSL_free(h);
    BN_free(bn);
  }
  return out;
}

TEST(TokenPkiCrl, SignedByItsIssuerListingItsRevocationsOnly) {
  const Pki& p = SharedPki();
  std::vector<Revocation> revs = {{"1f", Issuer::kSigningCa, kNow - 10, ""},
                                  {"abcdef0123", Issuer::kRootCa, kNow - 20, ""},
                                  {"2", Issuer::kSigningCa, kNow - 30, ""}};
  auto leaf_crl = SignCrl(p.signing_ca.get(), p.signing_ca_key.get(), Issuer::kSigningCa, revs, kNow, 42);
  auto root_crl = SignCrl(p.root_ca.get(), p.root_ca_key.get(), Issuer::kRootCa, revs, kNow, 42);
  ASSERT_TRUE(leaf_crl.ok() && root_crl.ok());
  auto l = ParseCrl(*leaf_crl), r = ParseCrl(*root_crl);
  EXPECT_EQ(X509_CRL_verify(l.get(), X509_get0_pubkey(p.signing_ca.get())), 1);
  EXPECT_EQ(X509_CRL_verify(r.get(), X509_get0_pubkey(p.root_ca.get())), 1);
  EXPECT_NE(X509_CRL_verify(l.get(), X509_get0_pubkey(p.root_ca.get())), 1);
  for (X509_CRL* c : {l.get(), r.get()}) {
    EXPECT_EQ(X509_CRL_get_version(c), 1);  // v2
    EXPECT_EQ(X509_CRL_get_signature_nid(c), NID_sha512WithRSAEncryption);
    EXPECT_EQ(CrlNumber(c), 42);
    EXPECT_EQ(*ossl::TimeToUnix(X509_CRL_get0_lastUpdate(c)), kNow - 300);
    EXPECT_EQ(*ossl::TimeToUnix(X509_CRL_get0_nextUpdate(c)), kNow + 86400);
  }
  EXPECT_EQ(RevokedSerials(l.get()), (std::vector<std::string>{"2", "1f"}));  // sorted by serial
  EXPECT_EQ(RevokedSerials(r.get()), (std::vector<std::string>{"abcdef0123"}));
}

TEST(TokenPkiCrl, PublisherResignsAfterHalfItsLifeWithAGrowingNumber) {
  TempDir d;
  auto pki = CreatePki({.public_url = kUrl, .key_bits = 2048, .now = kNow});
  ASSERT_TRUE(pki.ok());
  auto pub = CrlPublisher::Create(std::move(*pki), d.File("none.json"), kNow);
  ASSERT_TRUE(pub.ok()) << pub.error();
  Bytes first = (*pub)->LeafCrl(kNow);
  EXPECT_EQ(CrlNumber(ParseCrl(first).get()), kNow);
  EXPECT_EQ((*pub)->LeafCrl(kNow + 43199), first);  // not yet half way
  Bytes second = (*pub)->LeafCrl(kNow + 43200);
  auto c = ParseCrl(second);
  EXPECT_EQ(CrlNumber(c.get()), kNow + 43200);
  EXPECT_EQ(*ossl::TimeToUnix(X509_CRL_get0_nextUpdate(c.get())), kNow + 43200 + 86400);
  EXPECT_EQ(CrlNumber(ParseCrl((*pub)->RootCrl(kNow + 43200)).get()), kNow + 43200);
}

TEST(TokenPkiCrl, ReloadResignsWhenRevocationsChangeEvenInTheSameSecond) {
  TempDir d;
  auto pki = CreatePki({.public_url = kUrl, .key_bits = 2048, .now = kNow});
  ASSERT_TRUE(pki.ok());
  std::string serial = SerialHex(pki->leaf.get());
  WriteFile(d.File("r.json"), RevocationsToJson({}));
  auto pub = CrlPublisher::Create(std::move(*pki), d.File("r.json"), kNow);
  ASSERT_TRUE(pub.ok());
  bool changed = true;
  ASSERT_TRUE((*pub)->Reload(kNow, &changed).ok());
  EXPECT_FALSE(changed);
  WriteFile(d.File("r.json"), RevocationsToJson({{serial, Issuer::kSigningCa, kNow, ""}}));
  ASSERT_TRUE((*pub)->Reload(kNow, &changed).ok());
  EXPECT_TRUE(changed);
  auto c = ParseCrl((*pub)->LeafCrl(kNow));
  EXPECT_EQ(RevokedSerials(c.get()), std::vector<std::string>{serial});
  EXPECT_EQ(CrlNumber(c.get()), kNow + 1);  // strictly above the first one, signed at kNow too
  // A broken file keeps the previous list.
  WriteFile(d.File("r.json"), "{\"revoked\": 7}");
  Status s = (*pub)->Reload(kNow + 1, &changed);
  EXPECT_EQ(s.error(), "revocations.json: \"revoked\" must be an array (use [] for none)");
  EXPECT_EQ(RevokedSerials(ParseCrl((*pub)->LeafCrl(kNow + 1)).get()), std::vector<std::string>{serial});
}

// ---- revocations.json ----

TEST(TokenPkiRevocations, RefusesEachBrokenEntryNamingIt) {
  auto err = [](const std::string& json) { return ParseRevocations(json).error(); };
  EXPECT_EQ(err("[]"), "revocations.json: not a JSON object; expected {\"revoked\": [...]}");
  EXPECT_EQ(err(R"({"revoked":[],"x":1})"), "revocations.json: unknown field \"x\"; expected only \"revoked\"");
  EXPECT_EQ(err(R"({"revoked":[{"issuer":"root-ca","revoked_at":1}]})"),
            "revocations.json: revoked[0].serial: missing; give the certificate serial as hex");
  EXPECT_EQ(err(R"({"revoked":[{"serial":"zz","issuer":"root-ca","revoked_at":1}]})"),
            "revocations.json: revoked[0].serial: \"zz\" is not hex (as `openssl x509 -serial` prints it)");
  EXPECT_EQ(err(R"({"revoked":[{"serial":"1","issuer":"leaf","revoked_at":1}]})"),
            "revocations.json: revoked[0].issuer: \"leaf\" is not \"signing-ca\" or \"root-ca\"");
  EXPECT_EQ(err(R"({"revoked":[{"serial":"1","issuer":"root-ca","revoked_at":-1}]})"),
            "revocations.json: revoked[0].revoked_at: must be Unix seconds (0..253402300799)");
  EXPECT_EQ(err(R"({"revoked":[{"serial":"1","issuer":"root-ca","revoked_at":1,"reason":2}]})"),
            "revocations.json: revoked[0]: unknown field \"reason\"");
  EXPECT_EQ(err(R"({"revoked":[{"serial":"0x0A","issuer":"root-ca","revoked_at":1},{"serial":"a","issuer":"root-ca","revoked_at":2}]})"),
            "revocations.json: revoked[1].serial: a is listed twice");
  EXPECT_EQ(err(R"({"revoked":[{"serial":")" + std::string(41, 'f') + R"(","issuer":"root-ca","revoked_at":1}]})"),
            "revocations.json: revoked[0].serial: more than 20 bytes (RFC 5280 limit)");
  std::string many = R"({"revoked":[)";
  for (size_t i = 0; i <= kMaxRevocations; ++i)
    many += (i ? "," : "") + std::string(R"({"serial":"1","issuer":"root-ca","revoked_at":1})");
  EXPECT_EQ(err(many + "]}"), "revocations.json: more than 10000 revocations");
}

TEST(TokenPkiRevocations, RoundTripsCanonically) {
  auto r = ParseRevocations(R"({"revoked":[{"serial":"00:0A:bC","issuer":"root-ca","revoked_at":5,"subject":"CN=x"}]})");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(RevocationsToJson(*r),
            "{\n  \"revoked\": [\n    {\n      \"serial\": \"abc\",\n      \"issuer\": \"root-ca\",\n"
            "      \"revoked_at\": 5,\n      \"subject\": \"CN=x\"\n    }\n  ]\n}\n");
}

// ---- the directory ----

mode_t Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

struct PkiDir {
  TempDir tmp;
  std::string dir = tmp.File("pki");
  PkiDir() {
    Status s = InitDirectory(dir, {.public_url = kUrl, .key_bits = 2048});
    EXPECT_TRUE(s.ok()) << s.error();
  }
  std::string F(const char* name) const { return dir + "/" + name; }
};

TEST(TokenPkiDir, InitWritesKeys0600AndRefusesExistingFiles) {
  PkiDir d;
  EXPECT_EQ(Mode(d.dir), 0700u);
  for (const char* k : {kRootCaKey, kSigningCaKey, kLeafKey}) EXPECT_EQ(Mode(d.F(k)), 0600u) << k;
  for (const char* c : {kRootCaCert, kSigningCaCert, kLeafCert, kRevocationsFile}) EXPECT_EQ(Mode(d.F(c)), 0644u) << c;
  EXPECT_EQ(tdxvirt::testing::ReadFileText(d.F(kRevocationsFile)), "{\n  \"revoked\": []\n}\n");
  EXPECT_TRUE(LoadDirectory(d.dir, kUrl, 0).ok());
  // Any single file of a PKI makes init refuse, before it writes anything.
  for (const char* name : {kRootCaCert, kLeafKey, kRevocationsFile, kPreviousLeafCert}) {
    TempDir t;
    WriteFile(t.File(name), "x");
    auto r = RunTdxvirt("token-pki init --key-bits 2048 --dir " + t.path() + " --public-url " + kUrl);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.err, "tdxvirt: error: " + t.File(name) +
                         " exists; refusing to overwrite a token PKI (use `tdxvirt token-pki rotate` for a new "
                         "signing key, or an empty --dir)\n");
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(t.path()), {}), 1);
  }
}

TEST(TokenPkiDir, LoaderRefusesEachBrokenDirectoryWithTheFix) {
  const std::string hint = "create the directory with `tdxvirt token-pki init --dir ";
  {  // a missing file
    PkiDir d;
    std::filesystem::remove(d.F(kSigningCaKey));
    EXPECT_EQ(LoadDirectory(d.dir, kUrl, 0).error(),
              d.F(kSigningCaKey) + ": missing; " + hint + d.dir + " --public-url URL`");
  }
  {  // a key that is not its certificate's
    PkiDir d;
    std::filesystem::copy_file(d.F(kLeafKey), d.F(kSigningCaKey), std::filesystem::copy_options::overwrite_existing);
    EXPECT_EQ(LoadDirectory(d.dir, kUrl, 0).error(),
              d.F(kSigningCaKey) + " does not match " + d.F(kSigningCaCert) +
                  "; restore the pair written together by `tdxvirt token-pki init` or `rotate`");
  }
  {  // CDPs not under --public-url
    PkiDir d;
    EXPECT_EQ(LoadDirectory(d.dir, "https://attest.example/", 0).error(),
              d.F(kSigningCaCert) + ": CRL distribution point \"" + kUrl +
                  "/crl/root-ca-crl.der\" is not https://attest.example/crl/root-ca-crl.der; Intel's clients "
                  "fetch it from there. Pass the --public-url the PKI was created with, or create a new PKI "
                  "for https://attest.example with `tdxvirt token-pki init`");
  }
  {  // a chain that does not verify: the Signing CA (and its key) of another PKI
    PkiDir d, other;
    for (const char* f : {kSigningCaCert, kSigningCaKey})
      std::filesystem::copy_file(other.F(f), d.F(f), std::filesystem::copy_options::overwrite_existing);
    EXPECT_EQ(LoadDirectory(d.dir, kUrl, 0).error(),
              d.F(kSigningCaCert) + ": not signed by " + d.F(kRootCaCert) +
                  " (files of different PKIs); restore the files of one, or " + hint + d.dir + " --public-url URL`");
    std::filesystem::copy_file(other.F(kRootCaCert), d.F(kRootCaCert), std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(other.F(kRootCaKey), d.F(kRootCaKey), std::filesystem::copy_options::overwrite_existing);
    EXPECT_EQ(LoadDirectory(d.dir, kUrl, 0).error(),
              d.F(kLeafCert) + ": not signed by " + d.F(kSigningCaCert) +
                  " (files of different PKIs); restore the files of one, or " + hint + d.dir + " --public-url URL`");
  }
  {  // an expired leaf: rotate
    PkiDir d;
    EXPECT_EQ(LoadDirectory(d.dir, kUrl, int64_t(std::time(nullptr)) + (kLeafDays + 1) * 86400).error(),
              d.F(kLeafCert) + ": the chain token-signing.crt <- signing-ca.crt <- root-ca.crt does not verify: "
                               "certificate has expired; run `tdxvirt token-pki rotate --dir " + d.dir + "`");
  }
  {  // a bad revocations.json
    PkiDir d;
    WriteFile(d.F(kRevocationsFile), "{}");
    EXPECT_EQ(LoadDirectory(d.dir, kUrl, 0).error(),
              d.dir + "/revocations.json: \"revoked\" must be an array (use [] for none)");
  }
  {  // a previous certificate of another Signing CA
    PkiDir d, other;
    std::filesystem::copy_file(other.F(kLeafCert), d.F(kPreviousLeafCert));
    EXPECT_EQ(LoadDirectory(d.dir, kUrl, 0).error(),
              d.F(kPreviousLeafCert) + ": not issued by " + d.F(kSigningCaCert) +
                  "; remove it (it only keeps tokens of the previous key verifiable)");
  }
}

std::vector<std::pair<std::string, std::string>> KidsAndAlgs(const nlohmann::json& jwks) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& k : jwks["keys"]) out.emplace_back(k["kid"], k["alg"]);
  return out;
}

std::string KidOf(X509* c) {
  int n = i2d_X509(c, nullptr);
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  i2d_X509(c, &p);
  return ToHex(ossl::Sha384(der));
}

TEST(TokenPkiDir, RotateKeepsThePreviousCertificatePublishedAndSignsWithTheNewKey) {
  PkiDir d;
  auto before = LoadDirectory(d.dir, kUrl, 0);
  ASSERT_TRUE(before.ok());
  std::string old_kid = KidOf(before->leaf.get());
  auto r = RunTdxvirt("token-pki rotate --dir " + d.dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["previous_token_signing_serial"], SerialHex(before->leaf.get()));
  EXPECT_EQ(Mode(d.F(kLeafKey)), 0600u);
  EXPECT_FALSE(std::filesystem::exists(d.F(kLeafKey) + ".next"));
  auto after = LoadDirectory(d.dir, kUrl, 0);
  ASSERT_TRUE(after.ok()) << after.error();
  EXPECT_EQ(out["token_signing_serial"], SerialHex(after->leaf.get()));
  EXPECT_EQ(X509_cmp(after->previous_leaf.get(), before->leaf.get()), 0);
  EXPECT_NE(EVP_PKEY_eq(after->leaf_key.get(), before->leaf_key.get()), 1);
  EXPECT_EQ(EVP_PKEY_get_bits(after->leaf_key.get()), 2048);  // the old key's size
  std::string new_kid = KidOf(after->leaf.get());

  auto key = service::SigningKey::FromTokenPki(*after);
  ASSERT_TRUE(key.ok()) << key.error();
  EXPECT_EQ(key->kid(), new_kid);
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(KidsAndAlgs(key->jwks()), (std::vector<P>{{new_kid, "PS384"}, {new_kid, "RS256"},
                                                      {old_kid, "PS384"}, {old_kid, "RS256"}}));
  auto token = key->Sign({{"exp", 4102444800}}, service::JwsAlg::kPS384, kUrl + "/certs");
  ASSERT_TRUE(token.ok());
  auto v = service::VerifyToken(*token, key->jwks().dump(), {});
  ASSERT_TRUE(v.ok()) << v.error();
  EXPECT_EQ(v->header["kid"], new_kid);
  // A token of the old key still verifies against the new JWKS.
  auto old_key = service::SigningKey::FromTokenPki(*before);
  auto old_token = old_key->Sign({{"exp", 4102444800}}, service::JwsAlg::kRS256, kUrl + "/certs");
  EXPECT_TRUE(service::VerifyToken(*old_token, key->jwks().dump(), {}).ok());
  // Nonces: the MAC key comes from the Signing CA, so it survives the rotation.
  EXPECT_EQ(key->nonce_mac_key(), old_key->nonce_mac_key());
}

// Rotation is the fix for an expired leaf, so it works on one.
TEST(TokenPkiDir, RotateRenewsAnExpiredLeaf) {
  PkiDir d;
  int64_t later = int64_t(std::time(nullptr)) + (kLeafDays + 30) * 86400;
  ASSERT_FALSE(LoadDirectory(d.dir, kUrl, later).ok());
  auto r = RotateDirectory(d.dir, later);
  ASSERT_TRUE(r.ok()) << r.error();
  auto p = LoadDirectory(d.dir, kUrl, later);
  ASSERT_TRUE(p.ok()) << p.error();
  // Five more years would pass the Signing CA's end: capped there.
  EXPECT_EQ(*ossl::TimeToUnix(X509_get0_notAfter(p->leaf.get())),
            *ossl::TimeToUnix(X509_get0_notAfter(p->signing_ca.get())));
  // Past the Signing CA's life a new leaf would outlive its issuer: refused.
  int64_t too_late = int64_t(std::time(nullptr)) + kSigningCaDays * 86400;
  EXPECT_EQ(RotateDirectory(d.dir, too_late).error(),
            d.F(kSigningCaCert) + ": expires within a day; a new token-signing certificate cannot outlive it: "
                                  "create the directory with `tdxvirt token-pki init --dir " + d.dir + " --public-url URL`");
}

// A rotate killed between renaming the new key and the new certificate: the loader names the
// fix, and rotate run again finishes that rotation (no third key).
TEST(TokenPkiDir, InterruptedRotateIsFinishedByRotate) {
  PkiDir d;
  auto before = LoadDirectory(d.dir, kUrl, 0);
  ASSERT_TRUE(before.ok());
  auto key = NewRsaKey(2048);
  auto leaf = IssueLeaf(*before, key->get(), 0);
  ASSERT_TRUE(leaf.ok());
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, leaf->get());
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  WriteFile(d.F(kLeafCert) + std::string(".next"), std::string(data, size_t(n)));
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key->get(), nullptr, nullptr, 0, nullptr, nullptr);
  n = BIO_get_mem_data(b, &data);
  ASSERT_TRUE(WriteFileAtomic(d.F(kLeafKey), AsBytes(std::string_view(data, size_t(n))), 0600).ok());
  BIO_free(b);
  std::filesystem::copy_file(d.F(kLeafCert), d.F(kPreviousLeafCert));
  EXPECT_EQ(LoadDirectory(d.dir, kUrl, 0).error(),
            d.F(kLeafKey) + " does not match " + d.F(kLeafCert) +
                "; restore the pair written together by `tdxvirt token-pki init` or `rotate` (an interrupted "
                "`tdxvirt token-pki rotate --dir " + d.dir + "`: run it again to finish)");
  auto r = RotateDirectory(d.dir, 0);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r->completed_interrupted);
  auto after = LoadDirectory(d.dir, kUrl, 0);
  ASSERT_TRUE(after.ok()) << after.error();
  EXPECT_EQ(X509_cmp(after->leaf.get(), leaf->get()), 0);
  EXPECT_EQ(EVP_PKEY_eq(after->leaf_key.get(), key->get()), 1);
  EXPECT_EQ(X509_cmp(after->previous_leaf.get(), before->leaf.get()), 0);
}

TEST(TokenPkiDir, RevokeRecordsTheIssuerAndRefusesTheRoot) {
  PkiDir d;
  auto p = LoadDirectory(d.dir, kUrl, 0);
  ASSERT_TRUE(p.ok());
  // By certificate: the Signing CA goes to the Root's CRL.
  auto r = RunTdxvirt("token-pki revoke --dir " + d.dir + " --cert " + d.F(kSigningCaCert));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "tdxvirt: warning: this is the Signing CA: verifiers will refuse every token of this PKI; "
                   "create a new one with `tdxvirt token-pki init`\n");
  EXPECT_EQ(nlohmann::json::parse(r.out)["crl"], "root-ca-crl.der");
  // By serial, as `openssl x509 -serial` prints it: a leaf goes to the Signing CA's.
  std::string serial = SerialHex(p->leaf.get());
  std::string upper = serial;
  for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
  r = RunTdxvirt("token-pki revoke --dir " + d.dir + " --serial " + upper);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "tdxvirt: warning: this is the current token-signing certificate: verifiers will refuse every "
                   "token the service signs until `tdxvirt token-pki rotate --dir " + d.dir + "` and a restart\n");
  EXPECT_EQ(nlohmann::json::parse(r.out)["crl"], "ats-ca-crl.der");
  r = RunTdxvirt("token-pki revoke --dir " + d.dir + " --serial " + serial);
  EXPECT_EQ(nlohmann::json::parse(r.out)["already_revoked"], true);
  auto revs = ParseRevocations(tdxvirt::testing::ReadFileText(d.F(kRevocationsFile)));
  ASSERT_TRUE(revs.ok());
  ASSERT_EQ(revs->size(), 2u);
  EXPECT_EQ((*revs)[0].serial, SerialHex(p->signing_ca.get()));
  EXPECT_EQ((*revs)[0].issuer, Issuer::kRootCa);
  EXPECT_EQ((*revs)[1].serial, serial);
  EXPECT_EQ((*revs)[1].issuer, Issuer::kSigningCa);
  EXPECT_EQ((*revs)[1].subject, "O=tdxvirt,CN=tdxvirt Attestation Token Signing Certificate");

  r = RunTdxvirt("token-pki revoke --dir " + d.dir + " --cert " + d.F(kRootCaCert));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --cert: the Root CA cannot be revoked; distrust it by creating a new PKI "
                   "with `tdxvirt token-pki init`\n");
  PkiDir other;
  r = RunTdxvirt("token-pki revoke --dir " + d.dir + " --cert " + other.F(kLeafCert));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --cert: O=tdxvirt,CN=tdxvirt Attestation Token Signing Certificate was issued "
                   "by neither " + d.F(kRootCaCert) + " nor " + d.F(kSigningCaCert) +
                   "; only their certificates can be listed in this PKI's CRLs\n");
  r = RunTdxvirt("token-pki revoke --dir " + d.dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: give exactly one of --cert PEMFILE and --serial HEX\n");
  r = RunTdxvirt("token-pki revoke --dir " + d.dir + " --serial xyz");
  EXPECT_EQ(r.err, "tdxvirt: error: --serial: \"xyz\" is not hex (as `openssl x509 -serial` prints it)\n");
}

}  // namespace
}  // namespace tdxvirt::tokenpki
