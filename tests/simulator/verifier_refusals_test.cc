// The verifier's refusals that need keys Intel would never lend us: collateral and evidence from a
// simulated platform carrying one fault each (PlatformFaults), a forged or misissued set the
// verifier must refuse. Each test asserts the complete list of failed checks with their exact
// details, so disabling any one check makes it fail (scripts/mutate.sh; docs/verification.md).
#include <gtest/gtest.h>

#include <cctype>
#include <utility>
#include <vector>

#include "common/hex.h"
#include "common/openssl.h"
#include "evidence/pck_cert.h"
#include "simulator/platform.h"
#include "simulator/quoting_enclave.h"
#include "simulator/td.h"
#include "verify/tcb_info.h"
#include "verify/verifier.h"

namespace tdxvirt::simulator {
namespace {

constexpr int64_t kIssued = 1767225600;  // 2026-01-01T00:00:00Z
constexpr int64_t kAt = kIssued + 3600;

using Failures = std::vector<std::pair<std::string, std::string>>;

SimPlatform MakePlatform(const PlatformFaults& faults = {}) {
  PlatformConfig c;
  c.issued_at = kIssued;
  c.faults = faults;
  auto p = SimPlatform::Create(c);
  EXPECT_TRUE(p.ok()) << p.error();
  return std::move(*p);
}

Bytes QuoteFor(const SimPlatform& p) {
  evidence::ReportData nonce{};
  nonce.fill(0x5a);
  auto quote = SimQuotingEnclave(p).Quote(SimTd(p, DefaultTdConfig()).ReportBytes(nonce));
  EXPECT_TRUE(quote.ok()) << quote.error();
  return quote.ok() ? *quote : Bytes{};
}

verify::VerificationResult Verify(const SimPlatform& p, const verify::Collateral& c, const Bytes& quote) {
  auto root = verify::TrustedRoot::FromPem(p.root_pem());
  EXPECT_TRUE(root.ok()) << root.error();
  auto prepared = verify::PreparedCollateral::Prepare(c, *root);
  return verify::QuoteVerifier(*root).Verify(quote, *prepared, {.now = kAt});
}
verify::VerificationResult Verify(const SimPlatform& p) { return Verify(p, p.collateral(), QuoteFor(p)); }

// Every failed check, in the order the verifier reports them, with its detail.
Failures Failed(const verify::VerificationResult& r) {
  Failures out;
  for (const auto& c : r.checks)
    if (!c.ok) out.emplace_back(c.name, c.detail);
  return out;
}

// Serial number (as the verifier prints it) of the first certificate of a PEM chain.
std::string FirstSerial(const std::string& pem) {
  auto chain = ossl::ParsePemChain(pem);
  EXPECT_TRUE(chain.ok() && !chain->empty());
  return chain.ok() && !chain->empty() ? evidence::Summarize(chain->front().get()).serial : "";
}

const char kNotEvaluated[] = "not evaluated: the PCK chain, TCB Info or QE Identity is unusable";
const char kNoPckCrl[] = "no verified PCK CRL to check the PCK certificate against";

TEST(VerifierRefusals, FaultFreePlatformVerifies) {
  // The baseline every other test departs from by one fault.
  auto r = Verify(MakePlatform());
  EXPECT_TRUE(r.verified) << r.error;
  EXPECT_EQ(Failed(r), Failures{});
}

TEST(VerifierRefusals, ForeignQeVendorId) {
  PlatformFaults f;
  f.qe_vendor_id.fill(0x11);
  auto r = Verify(MakePlatform(f));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r), (Failures{{"qe_vendor_id",
                                  "QE vendor ID 11111111111111111111111111111111 is not Intel's "
                                  "939a7233f79c4ca9940a0db3957f0607"}}));
}

TEST(VerifierRefusals, PceIdDiffersFromTcbInfo) {
  PlatformFaults f;
  f.tcb_info_pce_id = ByteArray<2>{0x01, 0x00};
  auto r = Verify(MakePlatform(f));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r), (Failures{{"tcb_info_platform", "PCK PCE-ID 0000 differs from TCB Info pceId 0100"}}));
}

TEST(VerifierRefusals, TcbSigningCertificateRevokedByRootCaCrl) {
  PlatformFaults f;
  f.tcb_signing_revoked = true;
  auto p = MakePlatform(f);
  auto r = Verify(p);
  EXPECT_FALSE(r.verified);
  std::string why = "\"tdxvirt Simulated SGX TCB Signing\" (serial " +
                    FirstSerial(p.collateral().tcb_info_issuer_chain) + ") is revoked by the root CA CRL";
  EXPECT_EQ(Failed(r), (Failures{{"tcb_info_signer_revocation", why}, {"qe_identity_signer_revocation", why}}));
}

TEST(VerifierRefusals, PckCaRevokedByRootCaCrl) {
  PlatformFaults f;
  f.pck_ca_revoked = true;
  auto p = MakePlatform(f);
  auto r = Verify(p);
  EXPECT_FALSE(r.verified);
  std::string why = "\"tdxvirt Simulated SGX PCK Platform CA\" (serial " +
                    FirstSerial(p.collateral().pck_crl_issuer_chain) + ") is revoked by the root CA CRL";
  // Once as the PCK CRL's issuer (collateral) and once as the quote's PCK CA.
  EXPECT_EQ(Failed(r), (Failures{{"pck_crl_issuer_revocation", why}, {"pck_revocation", why}}));
}

TEST(VerifierRefusals, PckCaRevokedOnlyInTheQuotesChain) {
  // The PCK CRL issuer chain carries a fresh PCK CA (same name and key, new serial); the quote's
  // chain still has the revoked one. Only the per-quote revocation check can see it.
  PlatformFaults f;
  f.pck_ca_revoked = true;
  auto revoked = MakePlatform(f);
  verify::Collateral c = revoked.collateral();
  auto chain = ossl::ParsePemChain(revoked.pck_chain_pem());
  ASSERT_TRUE(chain.ok() && chain->size() == 3);
  std::string serial = evidence::Summarize((*chain)[1].get()).serial;
  auto reissued = revoked.ReissuePckCaPem();
  ASSERT_TRUE(reissued.ok()) << reissued.error();
  c.pck_crl_issuer_chain = *reissued + revoked.root_pem();
  auto r = Verify(revoked, c, QuoteFor(revoked));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r), (Failures{{"pck_revocation", "\"tdxvirt Simulated SGX PCK Platform CA\" (serial " +
                                                        serial + ") is revoked by the root CA CRL"}}));
}

TEST(VerifierRefusals, PckLeafWithAnotherCommonName) {
  PlatformFaults f;
  f.pck_common_name = "tdxvirt Simulated Other Certificate";
  auto r = Verify(MakePlatform(f));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r), (Failures{{"pck_chain",
                                  "PCK leaf common name is \"tdxvirt Simulated Other Certificate\", "
                                  "expected \"Intel SGX PCK Certificate\""},
                                 {"tcb_status", kNotEvaluated}}));
}

TEST(VerifierRefusals, PckIssuedByANonPckCa) {
  PlatformFaults f;
  f.pck_ca_common_name = "tdxvirt Simulated Other CA";
  auto r = Verify(MakePlatform(f));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r),
            (Failures{{"pck_chain",
                       "PCK issuer is \"tdxvirt Simulated Other CA\", expected an Intel SGX PCK Platform or "
                       "Processor CA"},
                      {"pck_crl_issuer_chain",
                       "issuer chain has no \"SGX PCK\" certificate (it starts with \"tdxvirt Simulated Other "
                       "CA\"); supply the chain PCS sent"},
                      {"tcb_status", kNotEvaluated}}));
}

TEST(VerifierRefusals, PckCrlSignedByTheWrongCa) {
  PlatformFaults f;
  f.pck_crl_signed_by_root = true;
  auto r = Verify(MakePlatform(f));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r), (Failures{{"pck_crl_signature",
                                  "the pck_crl signature does not verify with the key of \"tdxvirt "
                                  "Simulated SGX PCK Platform CA\"; the CRL is corrupt or forged"},
                                 {"pck_revocation", kNoPckCrl}}));
}

TEST(VerifierRefusals, PckCrlIssuerNameDiffersFromItsSigner) {
  PlatformFaults f;
  f.pck_crl_issuer_cn = "tdxvirt Simulated Other CA";
  auto r = Verify(MakePlatform(f));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r), (Failures{{"pck_crl_signature", "the pck_crl issuer name differs from its signer"},
                                 {"pck_revocation", kNoPckCrl}}));
}

TEST(VerifierRefusals, PckCrlFromTheOtherCa) {
  PlatformFaults f;
  f.pck_crl_from_processor_ca = true;
  auto r = Verify(MakePlatform(f));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r), (Failures{{"pck_revocation",
                                  "the PCK CRL is issued by another CA than the PCK certificate (platform vs "
                                  "processor); fetch the CRL for ca=platform"}}));
}

TEST(VerifierRefusals, SigningChainThatDoesNotReachTheRoot) {
  // Another platform's TCB Signing certificate under this platform's root: same names, other keys.
  auto p = MakePlatform();
  auto other = MakePlatform();
  verify::Collateral c = p.collateral();
  const std::string& pems = other.collateral().tcb_info_issuer_chain;  // signing cert, then root
  std::string other_signing = pems.substr(0, pems.find("-----END CERTIFICATE-----\n") + 26);
  c.tcb_info_issuer_chain = other_signing + p.root_pem();
  auto r = Verify(p, c, QuoteFor(p));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r), (Failures{{"tcb_info_issuer_chain",
                                  "certificate \"tdxvirt Simulated SGX TCB Signing\" does not chain to the "
                                  "trusted root: unable to get local issuer certificate"},
                                 {"tcb_status", kNotEvaluated}}));
}

TEST(VerifierRefusals, SignedButMalformedTcbInfoAndQeIdentity) {
  auto p = MakePlatform();
  verify::Collateral c = p.collateral();
  c.tcb_info = R"({"id":"TDX","version":3})";
  c.qe_identity = R"({"id":"TD_QE","version":2})";
  auto tcb_sig = p.SignAsTcbSigner(c.tcb_info);
  auto qe_sig = p.SignAsTcbSigner(c.qe_identity);
  ASSERT_TRUE(tcb_sig.ok() && qe_sig.ok());
  c.tcb_info_signature = *tcb_sig;
  c.qe_identity_signature = *qe_sig;
  auto tcb = verify::ParseTcbInfo(c.tcb_info);
  auto qe = verify::ParseQeIdentity(c.qe_identity);
  ASSERT_FALSE(tcb.ok());
  ASSERT_FALSE(qe.ok());
  auto r = Verify(p, c, QuoteFor(p));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r), (Failures{{"tcb_info_format", tcb.error()},
                                 {"qe_identity_format", qe.error()},
                                 {"tcb_status", kNotEvaluated}}));
}

// `doc` with every `from` replaced by `to`, and its signature made again by the TCB Signing key.
void EditAndResign(const SimPlatform& p, std::string& doc, ByteArray<64>& signature, const std::string& from,
                   const std::string& to) {
  ASSERT_NE(doc.find(from), std::string::npos) << from;
  for (size_t at = doc.find(from); at != std::string::npos; at = doc.find(from, at + to.size()))
    doc.replace(at, from.size(), to);
  auto sig = p.SignAsTcbSigner(doc);
  ASSERT_TRUE(sig.ok()) << sig.error();
  signature = *sig;
}

TEST(VerifierRefusals, QeIdentityOfAnotherSigner) {
  auto p = MakePlatform();
  verify::Collateral c = p.collateral();
  std::string ours = ToHex(SimQeMrSigner()), theirs(64, 'a');
  std::string upper = ours;
  for (char& ch : upper) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  EditAndResign(p, c.qe_identity, c.qe_identity_signature, upper, std::string(64, 'A'));
  auto r = Verify(p, c, QuoteFor(p));
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(Failed(r), (Failures{{"qe_identity", "QE identity mismatch: QE report mr_signer " + ours +
                                                     " differs from the TD QE identity mrsigner " + theirs}}));
}

TEST(VerifierRefusals, TdxModuleOfAnotherSigner) {
  auto p = MakePlatform();
  verify::Collateral c = p.collateral();
  EditAndResign(p, c.tcb_info, c.tcb_info_signature, std::string(96, '0'), std::string(96, '1'));
  auto r = Verify(p, c, QuoteFor(p));
  EXPECT_FALSE(r.verified);
  std::string why = "TDX module mismatch: mr_signer_seam " + std::string(96, '0') +
                    " differs from tcbInfo.tdxModuleIdentities TDX_01 mrsigner " + std::string(96, '1');
  // The TCB level still matches: only the module identity check stands between this and "verified".
  EXPECT_EQ(Failed(r), (Failures{{"tdx_module", why}}));
}

}  // namespace
}  // namespace tdxvirt::simulator
