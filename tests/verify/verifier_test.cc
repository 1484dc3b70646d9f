#include "verify/verifier.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>

#include "common/file.h"
#include "test_util.h"

namespace tdxvirt::verify {
namespace {

using testing::ReadTestdata;
using testing::TestdataPath;

constexpr int64_t kUpToDateAt = 1752919234;  // 2025-07-19T10:00:34Z
constexpr int64_t kV5At = 1773000000;
constexpr int64_t kSprAt = 1688173200;

Collateral Load(const std::string& relative) {
  auto c = LoadCollateral(TestdataPath(relative));
  EXPECT_TRUE(c.ok()) << c.error();
  return c.ok() ? *c : Collateral{};
}

VerificationResult Verify(const Bytes& quote, const Collateral& c, int64_t at, bool crl = true) {
  auto root = TrustedRoot::IntelSgxRootCa();
  EXPECT_TRUE(root.ok()) << root.error();
  auto prepared = PreparedCollateral::Prepare(c, *root);
  QuoteVerifier verifier(*root);
  return verifier.Verify(quote, *prepared, {.now = at, .check_crl = crl});
}

std::vector<std::string> FailedChecks(const VerificationResult& r) {
  std::vector<std::string> out;
  for (const auto& c : r.checks)
    if (!c.ok) out.push_back(c.name);
  return out;
}

using Failures = std::vector<std::pair<std::string, std::string>>;

// Every failed check with its detail, in the order the verifier reports them.
Failures FailedWithDetail(const VerificationResult& r) {
  Failures out;
  for (const auto& c : r.checks)
    if (!c.ok) out.emplace_back(c.name, c.detail);
  return out;
}

// The quote with its PCK certificate chain (certification data type 5) replaced by `pem`. The
// chain is covered by neither the quote signature nor the QE report, so only the chain checks see it.
Bytes WithPckChain(const Bytes& quote, const std::string& pem) {
  auto q = evidence::ParseQuote(quote);
  EXPECT_TRUE(q.ok()) << q.error();
  if (!q.ok()) return {};
  q->signature_data.qe_certification.certification_data.data.assign(pem.begin(), pem.end());
  return evidence::SerializeQuote(*q);
}

// The PEM blocks of a chain, in file order.
std::vector<std::string> PemBlocks(std::string_view pem) {
  std::vector<std::string> out;
  const std::string_view end = "-----END CERTIFICATE-----";
  for (size_t from = 0;;) {
    size_t b = pem.find("-----BEGIN CERTIFICATE-----", from);
    if (b == std::string_view::npos) break;
    size_t e = pem.find(end, b);
    if (e == std::string_view::npos) break;
    out.emplace_back(pem.substr(b, e + end.size() - b));
    out.back() += "\n";
    from = e + end.size();
  }
  return out;
}

const char kNotEvaluated[] = "not evaluated: the PCK chain, TCB Info or QE Identity is unusable";
const char kNoPckCrl[] = "no verified PCK CRL to check the PCK certificate against";

const char* const kUpToDateQuote = "quotes/tdx-v4-uptodate/quote.bin";
const char* const kUpToDateCollateral = "quotes/tdx-v4-uptodate/collateral.json";

TEST(Verifier, RealUpToDateQuote) {
  auto r = Verify(ReadTestdata(kUpToDateQuote), Load(kUpToDateCollateral), kUpToDateAt);
  EXPECT_TRUE(r.verified) << r.error;
  EXPECT_EQ(r.error, "");
  ASSERT_TRUE(r.tcb_status);
  EXPECT_EQ(*r.tcb_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.tcb_date, "2024-03-13T00:00:00Z");
  EXPECT_TRUE(r.advisory_ids.empty());
  EXPECT_EQ(r.qe_tcb_status, TcbStatus::kUpToDate);
  EXPECT_EQ(r.module_tcb_status, TcbStatus::kUpToDate);
  // Every check Intel's QVL makes is present and passed.
  for (const char* name :
       {"quote_format", "qe_vendor_id", "pck_chain", "pck_chain_validity", "root_ca_crl_signature",
        "root_ca_crl_validity", "pck_crl_issuer_chain", "pck_crl_signature", "pck_crl_validity",
        "pck_revocation", "tcb_info_issuer_chain", "tcb_info_signature", "tcb_info_format",
        "tcb_info_validity", "qe_identity_issuer_chain", "qe_identity_signature", "qe_identity_validity",
        "tcb_info_platform", "tdx_module", "qe_report_signature", "qe_report_data", "qe_identity",
        "quote_signature", "tcb_status"}) {
    const Check* c = r.find(name);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_TRUE(c->ok) << name << ": " << c->detail;
  }
}

TEST(Verifier, V5QuoteWithNoMatchingTcbLevel) {
  auto r = Verify(ReadTestdata("quotes/tdx-v5-no-tcb-level/quote.bin"),
                  Load("quotes/tdx-v5-no-tcb-level/collateral.json"), kV5At);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedChecks(r), std::vector<std::string>{"tcb_status"});
  EXPECT_EQ(r.tcb_status, TcbStatus::kTcbNotSupported);
  EXPECT_EQ(r.error.rfind("tcb_status: TCBNotSupported", 0), 0u) << r.error;
}

TEST(Verifier, RawPcsResponsesDirectory) {
  auto r = Verify(ReadTestdata("quotes/tdx-v4-spr-e4-pcs-2023/quote.bin"),
                  Load("quotes/tdx-v4-spr-e4-pcs-2023"), kSprAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedChecks(r), std::vector<std::string>{"tcb_status"});
  EXPECT_EQ(r.tcb_status, TcbStatus::kTcbNotSupported);
}

TEST(Verifier, MrtdBitFlipBreaksQuoteSignature) {
  auto r = Verify(ReadTestdata("quotes/negative/tdx_quote_mrtd_bitflip"), Load(kUpToDateCollateral),
                  kUpToDateAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedChecks(r), std::vector<std::string>{"quote_signature"});
  EXPECT_EQ(r.error.rfind("quote_signature: the quote signature does not verify", 0), 0u) << r.error;
}

TEST(Verifier, QuoteSignatureBitFlip) {
  auto r = Verify(ReadTestdata("quotes/negative/tdx_quote_quotesig_bitflip"),
                  Load(kUpToDateCollateral), kUpToDateAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedChecks(r), std::vector<std::string>{"quote_signature"});
}

TEST(Verifier, PckCrlSignatureFlipIsRejected) {
  auto c = Load("quotes/negative/tdx_quote_collateral_pckcrl_sigflip.json");
  auto r = Verify(ReadTestdata(kUpToDateQuote), c, kUpToDateAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedWithDetail(r), (Failures{{"pck_crl_signature",
                                             "the pck_crl signature does not verify with the key of \"Intel "
                                             "SGX PCK Platform CA\"; the CRL is corrupt or forged"},
                                            {"pck_revocation", kNoPckCrl}}));
  // Without CRL checks the same collateral verifies: the flip is only in the CRL.
  auto no_crl = Verify(ReadTestdata(kUpToDateQuote), c, kUpToDateAt, /*crl=*/false);
  EXPECT_TRUE(no_crl.verified) << no_crl.error;
  EXPECT_EQ(no_crl.find("pck_crl_signature"), nullptr);
  EXPECT_EQ(no_crl.find("pck_revocation"), nullptr);
}

TEST(Verifier, EditedTcbInfoIsRejected) {
  auto c = Load(kUpToDateCollateral);
  auto pos = c.tcb_info.find("\"UpToDate\"");
  ASSERT_NE(pos, std::string::npos);
  c.tcb_info.replace(pos, 10, "\"Revoked\" ");  // same length, still valid JSON
  auto r = Verify(ReadTestdata(kUpToDateQuote), c, kUpToDateAt);
  EXPECT_FALSE(r.verified);
  std::vector<std::string> failed = FailedChecks(r);
  ASSERT_GE(failed.size(), 1u);
  EXPECT_EQ(failed.front(), "tcb_info_signature");
}

TEST(Verifier, EditedQeIdentityIsRejected) {
  auto c = Load(kUpToDateCollateral);
  c.qe_identity_signature[5] ^= 1;
  auto r = Verify(ReadTestdata(kUpToDateQuote), c, kUpToDateAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedWithDetail(r),
            (Failures{{"qe_identity_signature",
                       "the qe_identity signature does not verify over its exact JSON text; the document was "
                       "edited or the signature belongs to another document"},
                      {"tcb_status", kNotEvaluated}}));
}

TEST(Verifier, PckCrlMissingFromTheCollateral) {
  auto c = Load(kUpToDateCollateral);
  c.pck_crl.clear();
  auto r = Verify(ReadTestdata(kUpToDateQuote), c, kUpToDateAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedWithDetail(r),
            (Failures{{"pck_crl_signature",
                       "the collateral has no pck_crl; supply it (tdxvirt collateral fetch) or skip CRL checks "
                       "with --no-crl"},
                      {"pck_revocation", kNoPckCrl}}));
}

TEST(Verifier, ExtraCertificateNotOnThePath) {
  // The quote's chain with the TCB Signing certificate appended: it verifies, but a certificate
  // that is not on the path is a tampered chain.
  auto c = Load(kUpToDateCollateral);
  auto quote = ReadTestdata(kUpToDateQuote);
  auto q = evidence::ParseQuote(quote);
  ASSERT_TRUE(q.ok());
  auto pem = evidence::PckCertChainPem(*q);
  ASSERT_TRUE(pem.ok());
  auto blocks = PemBlocks(*pem);
  ASSERT_EQ(blocks.size(), 3u);
  std::string chain = blocks[0] + blocks[1] + blocks[2] + PemBlocks(c.tcb_info_issuer_chain).at(0);
  auto r = Verify(WithPckChain(quote, chain), c, kUpToDateAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedWithDetail(r), (Failures{{"pck_chain",
                                            "certificate 4 of the chain (\"Intel SGX TCB Signing\") is not on "
                                            "the path to the trusted root; the chain was altered"},
                                           {"tcb_status", kNotEvaluated}}));
}

TEST(Verifier, PckChainWithoutItsCa) {
  auto quote = ReadTestdata(kUpToDateQuote);
  auto q = evidence::ParseQuote(quote);
  ASSERT_TRUE(q.ok());
  auto pem = evidence::PckCertChainPem(*q);
  ASSERT_TRUE(pem.ok());
  auto r = Verify(WithPckChain(quote, PemBlocks(*pem).at(0)), Load(kUpToDateCollateral), kUpToDateAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedWithDetail(r), (Failures{{"pck_chain", "PCK certificate chain has no issuing CA"},
                                           {"tcb_status", kNotEvaluated}}));
}

TEST(Verifier, SigningChainWithoutTheTcbSigningCertificate) {
  // TCB Info "signed" under the PCK CRL's chain: the PCK Platform CA is no TCB signer.
  auto c = Load(kUpToDateCollateral);
  c.tcb_info_issuer_chain = c.pck_crl_issuer_chain;
  auto r = Verify(ReadTestdata(kUpToDateQuote), c, kUpToDateAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedWithDetail(r), (Failures{{"tcb_info_issuer_chain",
                                            "issuer chain has no \"SGX TCB Signing\" certificate (it starts "
                                            "with \"Intel SGX PCK Platform CA\"); supply the chain PCS sent"},
                                           {"tcb_status", kNotEvaluated}}));
}

TEST(Verifier, TruncatedQuote) {
  Bytes quote = ReadTestdata(kUpToDateQuote);
  quote.resize(600);
  auto parsed = evidence::ParseQuote(quote);
  ASSERT_FALSE(parsed.ok());
  auto r = Verify(quote, Load(kUpToDateCollateral), kUpToDateAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedWithDetail(r), (Failures{{"quote_format", parsed.error()}}));
  EXPECT_EQ(r.error, "quote_format: " + parsed.error());
}

TEST(Verifier, DatesOutsideTheCollateralWindow) {
  auto quote = ReadTestdata(kUpToDateQuote);
  auto c = Load(kUpToDateCollateral);
  auto late = Verify(quote, c, 1753000000);
  EXPECT_FALSE(late.verified);
  const Check* tcb = late.find("tcb_info_validity");
  ASSERT_NE(tcb, nullptr);
  EXPECT_FALSE(tcb->ok);
  EXPECT_NE(tcb->detail.find("expired at 2025-07-19T10:16:03Z"), std::string::npos) << tcb->detail;
  auto early = Verify(quote, c, 1750000000);
  EXPECT_FALSE(early.verified);
  tcb = early.find("tcb_info_validity");
  ASSERT_NE(tcb, nullptr);
  EXPECT_FALSE(tcb->ok);
  EXPECT_NE(tcb->detail.find("not valid until 2025-06-19T10:16:03Z"), std::string::npos) << tcb->detail;
}

// What the service's readiness asks of its collateral (CollateralUsable): the first failed static
// check, or a window that does not hold `now`; CRL checks and windows only with check_crl.
TEST(CollateralUsable, NamesWhatWouldFailEveryVerification) {
  auto root = TrustedRoot::IntelSgxRootCa();
  ASSERT_TRUE(root.ok()) << root.error();
  auto fresh = PreparedCollateral::Prepare(Load(kUpToDateCollateral), *root);
  ASSERT_NE(fresh, nullptr);
  EXPECT_TRUE(CollateralUsable(*fresh, kUpToDateAt, true).ok());
  Status late = CollateralUsable(*fresh, 1753000000, true);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error(), "pck_crl_validity: pck_crl expired at 2025-07-19T10:00:35Z; fetch "
                          "fresh collateral");
  // Without CRL checks the CRL's window is not asked; the TCB Info's still is.
  Status late_no_crl = CollateralUsable(*fresh, 1753000000, false);
  ASSERT_FALSE(late_no_crl.ok());
  EXPECT_EQ(late_no_crl.error(), "tcb_info_validity: TCB Info issueDate..nextUpdate expired at "
                                 "2025-07-19T10:16:03Z; "
                                 "fetch fresh collateral");
  Status early = CollateralUsable(*fresh, 1750000000, true);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error(), "pck_crl_validity: pck_crl is not valid until 2025-06-19T10:00:35Z");

  auto flipped = PreparedCollateral::Prepare(
      Load("quotes/negative/tdx_quote_collateral_pckcrl_sigflip.json"), *root);
  ASSERT_NE(flipped, nullptr);
  Status crl = CollateralUsable(*flipped, kUpToDateAt, true);
  ASSERT_FALSE(crl.ok());
  EXPECT_EQ(crl.error(), "pck_crl_signature: the pck_crl signature does not verify with the key of "
                         "\"Intel SGX PCK Platform CA\"; the CRL is corrupt or forged");
  EXPECT_TRUE(CollateralUsable(*flipped, kUpToDateAt, false).ok());  // --no-crl skips CRLs
}

TEST(Verifier, QeReportTamperingIsCaught) {
  Bytes quote = ReadTestdata(kUpToDateQuote);
  auto q = evidence::ParseQuote(quote);
  ASSERT_TRUE(q.ok());
  // QE report starts at 636 + 134 = 770 in a v4 quote; byte 258 of it is isv_svn.
  Bytes report = quote;
  report[770 + 258] ^= 1;
  auto r = Verify(report, Load(kUpToDateCollateral), kUpToDateAt);
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(FailedChecks(r).front(), "qe_report_signature");
  // QE auth data: the attestation key binding breaks.
  Bytes auth = quote;
  auth[770 + 384 + 64 + 2] ^= 1;
  r = Verify(auth, Load(kUpToDateCollateral), kUpToDateAt);
  EXPECT_EQ(FailedChecks(r), std::vector<std::string>{"qe_report_data"});
  // Attestation key: both the binding and the quote signature break.
  Bytes key = quote;
  key[636 + 64] ^= 1;
  r = Verify(key, Load(kUpToDateCollateral), kUpToDateAt);
  EXPECT_EQ(FailedChecks(r), (std::vector<std::string>{"qe_report_data", "quote_signature"}));
}

TEST(Verifier, CollateralForAnotherPlatform) {
  auto r = Verify(ReadTestdata(kUpToDateQuote), Load("quotes/tdx-v5-no-tcb-level/collateral.json"),
                  kUpToDateAt);
  EXPECT_FALSE(r.verified);
  const Check* c = r.find("tcb_info_platform");
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->ok);
  EXPECT_NE(c->detail.find("PCK FMSPC b0c06f000000 differs from TCB Info FMSPC 90c06f000000"),
            std::string::npos);
}

// A self-signed P-256 CA made here, standing in for a root the quote does not chain to.
std::string MakeOtherRootPem() {
  ossl::PkeyPtr key(EVP_EC_gen("prime256v1"));
  ossl::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Other Root CA"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, "critical,CA:TRUE");
  X509_add_ext(cert.get(), bc, -1);
  X509_EXTENSION_free(bc);
  X509_sign(cert.get(), key.get(), EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, size_t(len));
  BIO_free(bio);
  return pem;
}

TEST(Verifier, OtherTrustedRootRejectsIntelEvidence) {
  auto root = TrustedRoot::FromPem(MakeOtherRootPem());
  ASSERT_TRUE(root.ok()) << root.error();
  auto prepared = PreparedCollateral::Prepare(Load(kUpToDateCollateral), *root);
  QuoteVerifier verifier(*root);
  auto r = verifier.Verify(ReadTestdata(kUpToDateQuote), *prepared, {.now = kUpToDateAt});
  EXPECT_FALSE(r.verified);
  const Check* c = r.find("pck_chain");
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->ok);
  EXPECT_NE(c->detail.find("is not the trusted root"), std::string::npos) << c->detail;
  EXPECT_FALSE(r.find("tcb_info_issuer_chain")->ok);
}

TEST(Verifier, CollateralPreparedForAnotherRootIsRefused) {
  auto intel = TrustedRoot::IntelSgxRootCa();
  auto other = TrustedRoot::FromPem(MakeOtherRootPem());
  ASSERT_TRUE(intel.ok() && other.ok());
  auto prepared = PreparedCollateral::Prepare(Load(kUpToDateCollateral), *other);
  auto r = QuoteVerifier(*intel).Verify(ReadTestdata(kUpToDateQuote), *prepared, {.now = kUpToDateAt});
  EXPECT_FALSE(r.verified);
  ASSERT_NE(r.find("collateral_root"), nullptr);
  EXPECT_EQ(r.find("collateral_root")->detail,
            "the collateral was prepared for another trusted root; prepare it with this verifier's root");
  EXPECT_FALSE(r.find("collateral_root")->ok);
}

TEST(Verifier, CachedChainGivesTheSameAnswer) {
  auto root = TrustedRoot::IntelSgxRootCa();
  auto prepared = PreparedCollateral::Prepare(Load(kUpToDateCollateral), *root);
  QuoteVerifier verifier(*root);
  auto first = verifier.Verify(ReadTestdata(kUpToDateQuote), *prepared, {.now = kUpToDateAt});
  auto second = verifier.Verify(ReadTestdata(kUpToDateQuote), *prepared, {.now = kUpToDateAt});
  auto bad = verifier.Verify(ReadTestdata("quotes/negative/tdx_quote_mrtd_bitflip"), *prepared,
                             {.now = kUpToDateAt});
  EXPECT_TRUE(first.verified);
  EXPECT_EQ(first.checks, second.checks);
  EXPECT_FALSE(bad.verified);  // the cache holds the chain, never the per-quote checks
}

// Intel QVL's sample-app file names, and a directory without CRLs.
TEST(Verifier, QvlDirectoryLayoutAndMissingCrls) {
  Collateral c = Load(kUpToDateCollateral);
  testing::TempDir dir;
  ASSERT_TRUE(WriteCollateralDirectory(c, dir.path()).ok());
  auto rename = [&](const char* from, const char* to) {
    ASSERT_EQ(std::rename(dir.File(from).c_str(), dir.File(to).c_str()), 0) << from;
  };
  rename("tcb_info.json", "tcbInfo.json");
  rename("qe_identity.json", "qeIdentity.json");
  rename("tcb_info_issuer_chain.pem", "tcbSignChain.pem");
  rename("pck_crl_issuer_chain.pem", "pckSignChain.pem");
  rename("pck_crl.der", "intermediateCaCrl.der");
  rename("root_ca_crl.der", "rootCaCrl.der");
  std::remove(dir.File("qe_identity_issuer_chain.pem").c_str());
  auto qvl = LoadCollateral(dir.path());
  ASSERT_TRUE(qvl.ok()) << qvl.error();
  EXPECT_TRUE(Verify(ReadTestdata(kUpToDateQuote), *qvl, kUpToDateAt).verified);

  std::remove(dir.File("rootCaCrl.der").c_str());
  std::remove(dir.File("intermediateCaCrl.der").c_str());
  std::remove(dir.File("pckSignChain.pem").c_str());
  auto no_crls = LoadCollateral(dir.path());
  ASSERT_TRUE(no_crls.ok()) << no_crls.error();
  auto strict = Verify(ReadTestdata(kUpToDateQuote), *no_crls, kUpToDateAt);
  EXPECT_FALSE(strict.verified);
  EXPECT_EQ(FailedWithDetail(strict),
            (Failures{{"root_ca_crl_signature",
                       "the collateral has no root_ca_crl; supply it (tdxvirt collateral fetch) or skip CRL "
                       "checks with --no-crl"},
                      {"pck_crl_issuer_chain", "the collateral has no PCK CRL issuer chain; supply it or use --no-crl"},
                      {"pck_revocation", kNoPckCrl}}));
  auto lax = Verify(ReadTestdata(kUpToDateQuote), *no_crls, kUpToDateAt, /*crl=*/false);
  EXPECT_TRUE(lax.verified) << lax.error;
}

TEST(TrustedRoot, BuiltInIntelRootMatchesTestdata) {
  auto builtin = TrustedRoot::IntelSgxRootCa();
  ASSERT_TRUE(builtin.ok()) << builtin.error();
  EXPECT_EQ(builtin->fingerprint(), kIntelSgxRootCaSha256);
  auto pem = ReadTestdata("quotes/intel_sgx_root_ca.pem");
  auto file = TrustedRoot::FromPem(AsString(pem));
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->der(), builtin->der());
}

TEST(TrustedRoot, RejectsNonRoots) {
  auto c = Load(kUpToDateCollateral);
  auto two = TrustedRoot::FromPem(c.tcb_info_issuer_chain);  // signing cert + root
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.error().find("exactly one certificate, found 2"), std::string::npos);
  auto chain = ossl::ParsePemChain(c.tcb_info_issuer_chain);
  ASSERT_TRUE(chain.ok());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, chain->front().get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  auto leaf = TrustedRoot::FromPem(std::string(data, size_t(len)));
  BIO_free(bio);
  ASSERT_FALSE(leaf.ok());
  EXPECT_NE(leaf.error().find("not self-issued"), std::string::npos);
}

}  // namespace
}  // namespace tdxvirt::verify
