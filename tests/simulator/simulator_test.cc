#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

#include "common/hex.h"
#include "common/openssl.h"
#include "evidence/quote.h"
#include "simulator/pki.h"
#include "simulator/platform.h"
#include "simulator/quoting_enclave.h"
#include "simulator/sim_backend.h"
#include "simulator/td.h"
#include "test_util.h"
#include "verify/verifier.h"

namespace tdxvirt::simulator {
namespace {

constexpr int64_t kIssued = 1767225600;  // 2026-01-01T00:00:00Z
constexpr int64_t kAt = kIssued + 3600;

SimPlatform MakePlatform(TcbScenario scenario = TcbScenario::kUpToDate, bool pck_revoked = false) {
  PlatformConfig c;
  c.scenario = scenario;
  c.issued_at = kIssued;
  c.pck_revoked = pck_revoked;
  auto p = SimPlatform::Create(c);
  EXPECT_TRUE(p.ok()) << p.error();
  return std::move(*p);
}

TdConfig SampleTd() {
  TdConfig td = DefaultTdConfig();
  td.td.mr_td = ossl::Sha384(AsBytes("sample TDVF"));
  td.td.mr_config_id = ossl::Sha384(AsBytes("owner config"));
  td.td.rtmr[0] = ossl::Sha384(AsBytes("rtmr0"));
  return td;
}

evidence::ReportData Nonce(uint8_t v) {
  evidence::ReportData d{};
  d.fill(v);
  return d;
}

verify::VerificationResult VerifyWithRoot(const SimPlatform& p, const Bytes& quote, const std::string& root_pem,
                                          int64_t at = kAt) {
  auto root = verify::TrustedRoot::FromPem(root_pem);
  EXPECT_TRUE(root.ok()) << root.error();
  auto prepared = verify::PreparedCollateral::Prepare(p.collateral(), *root);
  return verify::QuoteVerifier(*root).Verify(quote, *prepared, {.now = at});
}

Bytes QuoteFor(const SimPlatform& p, const TdConfig& cfg, int version = 4) {
  SimTd td(p, cfg);
  auto report = td.ReportBytes(Nonce(0x5a));
  auto quote = SimQuotingEnclave(p).Quote(report, version);
  EXPECT_TRUE(quote.ok()) << quote.error();
  return quote.ok() ? *quote : Bytes{};
}

TEST(Simulator, UpToDateQuoteVerifiesUnderSimRootOnly) {
  SimPlatform p = MakePlatform();
  Bytes quote = QuoteFor(p, SampleTd());
  auto r = VerifyWithRoot(p, quote, p.root_pem());
  EXPECT_TRUE(r.verified) << r.error;
  EXPECT_EQ(r.tcb_status, verify::TcbStatus::kUpToDate);
  EXPECT_EQ(r.module_tcb_status, verify::TcbStatus::kUpToDate);
  EXPECT_EQ(r.qe_tcb_status, verify::TcbStatus::kUpToDate);
  EXPECT_EQ(r.tcb_date, "2025-01-01T00:00:00Z");

  auto intel = verify::TrustedRoot::IntelSgxRootCa();
  auto prepared = verify::PreparedCollateral::Prepare(p.collateral(), *intel);
  auto under_intel = verify::QuoteVerifier(*intel).Verify(quote, *prepared, {.now = kAt});
  EXPECT_FALSE(under_intel.verified);
  EXPECT_FALSE(under_intel.find("pck_chain")->ok);
  EXPECT_NE(under_intel.find("pck_chain")->detail.find("is not the trusted root"), std::string::npos);
}

TEST(Simulator, QuoteCarriesTheTdMeasurements) {
  SimPlatform p = MakePlatform();
  TdConfig cfg = SampleTd();
  auto q = evidence::ParseQuote(QuoteFor(p, cfg));
  ASSERT_TRUE(q.ok()) << q.error();
  EXPECT_EQ(q->header.version, 4);
  EXPECT_EQ(q->body.td, cfg.td);
  EXPECT_EQ(q->body.report_data, Nonce(0x5a));
  EXPECT_FALSE(q->body.td.debug());
  EXPECT_TRUE(q->body.td.sept_ve_disable());
  EXPECT_EQ(q->body.tee_tcb_svn, p.config().tee_tcb_svn);
  EXPECT_EQ(q->body.mr_seam, SimMrSeam());
}

TEST(Simulator, ScenariosGiveTheirTcbStatus) {
  auto out_of_date = MakePlatform(TcbScenario::kOutOfDate);
  auto r = VerifyWithRoot(out_of_date, QuoteFor(out_of_date, SampleTd()), out_of_date.root_pem());
  EXPECT_TRUE(r.verified) << r.error;  // OutOfDate is for policy to judge
  EXPECT_EQ(r.tcb_status, verify::TcbStatus::kOutOfDate);
  EXPECT_EQ(r.advisory_ids, std::vector<std::string>{"TDXVIRT-SIM-SA-0001"});
  EXPECT_EQ(r.tcb_date, "2024-01-01T00:00:00Z");

  auto revoked = MakePlatform(TcbScenario::kRevoked);
  r = VerifyWithRoot(revoked, QuoteFor(revoked, SampleTd()), revoked.root_pem());
  EXPECT_FALSE(r.verified);
  EXPECT_EQ(r.tcb_status, verify::TcbStatus::kRevoked);
  EXPECT_EQ(r.error.rfind("tcb_status: Revoked", 0), 0u) << r.error;
}

TEST(Simulator, RevokedPckCertificate) {
  auto p = MakePlatform(TcbScenario::kUpToDate, /*pck_revoked=*/true);
  auto r = VerifyWithRoot(p, QuoteFor(p, SampleTd()), p.root_pem());
  EXPECT_FALSE(r.verified);
  const verify::Check* c = r.find("pck_revocation");
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->ok);
  EXPECT_NE(c->detail.find("is revoked by the PCK CRL"), std::string::npos) << c->detail;
}

TEST(Simulator, CollateralWindow) {
  SimPlatform p = MakePlatform();
  Bytes quote = QuoteFor(p, SampleTd());
  EXPECT_FALSE(VerifyWithRoot(p, quote, p.root_pem(), kIssued - 10).verified);
  EXPECT_FALSE(VerifyWithRoot(p, quote, p.root_pem(), kIssued + 31 * 86400).verified);
  EXPECT_TRUE(VerifyWithRoot(p, quote, p.root_pem(), kIssued + 29 * 86400).verified);
}

TEST(Simulator, Version5QuotesForTd10AndTd15) {
  SimPlatform p = MakePlatform();
  Bytes v5 = QuoteFor(p, SampleTd(), 5);
  auto q = evidence::ParseQuote(v5);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->header.version, 5);
  EXPECT_EQ(q->body.type, evidence::BodyType::kTd10);
  EXPECT_TRUE(VerifyWithRoot(p, v5, p.root_pem()).verified);

  TdConfig td15 = SampleTd();
  td15.td15 = true;
  Bytes v5_15 = QuoteFor(p, td15, 5);
  q = evidence::ParseQuote(v5_15);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->body.type, evidence::BodyType::kTd15);
  EXPECT_EQ(q->body.tee_tcb_svn2, p.config().tee_tcb_svn2);
  auto r = VerifyWithRoot(p, v5_15, p.root_pem());
  EXPECT_TRUE(r.verified) << r.error;
  // A TDX 1.5 report cannot go into a v4 quote.
  SimTd td(p, td15);
  auto v4 = SimQuotingEnclave(p).Quote(td.ReportBytes(Nonce(1)), 4);
  ASSERT_FALSE(v4.ok());
  EXPECT_NE(v4.error().find("needs a version 5 quote"), std::string::npos);
}

// Every byte of the quote is covered: by the quote signature (header, body), the PCK signature
// (QE report), the QE report binding (attestation key, auth data) or the chain to the root (PCK
// certificates). The one exception is PEM text that carries no content: white space, and the
// unused low bits of the last base64 digit before '=' padding (a 'e'->'d' flip there decodes to
// the same bytes). A flip is accepted only inside the PEM text and only if the certificates
// decode to the very same DER. Keys are random per run, so which digits those are varies.
TEST(Simulator, EveryTamperedByteIsRejected) {
  SimPlatform p = MakePlatform();
  Bytes quote = QuoteFor(p, SampleTd());
  auto root = verify::TrustedRoot::FromPem(p.root_pem());
  auto prepared = verify::PreparedCollateral::Prepare(p.collateral(), *root);
  verify::QuoteVerifier verifier(*root);
  ASSERT_TRUE(verifier.Verify(quote, *prepared, {.now = kAt}).verified);
  auto chain_der = [](const Bytes& q) {
    std::vector<Bytes> out;
    auto parsed = evidence::ParseQuote(q);
    if (!parsed.ok()) return out;
    auto pem = evidence::PckCertChainPem(*parsed);
    auto chain = pem.ok() ? ossl::ParsePemChain(*pem) : Result<std::vector<ossl::X509Ptr>>(Error{""});
    if (chain.ok())
      for (auto& c : *chain) out.push_back(CertToDer(c.get()));
    return out;
  };
  const std::vector<Bytes> original = chain_der(quote);
  const std::string begin_marker = "-----BEGIN CERTIFICATE-----";
  const auto pem_start = std::search(quote.begin(), quote.end(), begin_marker.begin(), begin_marker.end());
  ASSERT_NE(pem_start, quote.end());
  const size_t pem_offset = static_cast<size_t>(pem_start - quote.begin());
  size_t rejected = 0, layout_only = 0;
  for (size_t i = 0; i < quote.size(); ++i) {
    Bytes t = quote;
    t[i] ^= 0x01;
    if (!verifier.Verify(t, *prepared, {.now = kAt}).verified) {
      ++rejected;
      continue;
    }
    ++layout_only;
    ASSERT_EQ(chain_der(t), original) << "flip at offset " << i << " changed the certificates and verified";
    ASSERT_GE(i, pem_offset) << "flip at offset " << i << " outside the PEM chain accepted";
    const char c = static_cast<char>(quote[i]);
    ASSERT_TRUE(c == '\n' || c == ' ' || std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/')
        << "flip of '" << c << "' at offset " << i << " accepted";
  }
  // Seen: none to two per run (one padded last digit per certificate at most, three certificates).
  EXPECT_LE(layout_only, 6u);
  EXPECT_GE(rejected, quote.size() - 6);
}

TEST(Simulator, QuotingEnclaveChecksTheReport) {
  SimPlatform p = MakePlatform();
  SimPlatform other = MakePlatform();
  SimTd td(p, SampleTd());
  auto report = td.ReportBytes(Nonce(2));
  Bytes altered(report.begin(), report.end());
  altered[528] ^= 1;  // MRTD
  auto q = SimQuotingEnclave(p).Quote(altered);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.error().find("was altered"), std::string::npos) << q.error();
  auto foreign = SimQuotingEnclave(other).Quote(report);
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.error().find("MAC does not verify"), std::string::npos);
  EXPECT_FALSE(SimQuotingEnclave(p).Quote(Bytes(100)).ok());
}

TEST(Simulator, RtmrExtendIsSha384OfOldAndNew) {
  SimPlatform p = MakePlatform();
  TdConfig cfg = SampleTd();
  SimTd td(p, cfg);
  evidence::Sha384Digest event = ossl::Sha384(AsBytes("kernel"));
  ASSERT_TRUE(td.ExtendRtmr(2, event).ok());
  // SHA-384(48 zero bytes || SHA-384("kernel")), computed independently (Python hashlib).
  EXPECT_EQ(ToHex(td.config().td.rtmr[2]),
            "1eeb6482aa8e9f78d63bfcc444355072a3fbcfa80a234dfe66e86de8fe768831fc5e909fd47f40c2f803b321778f52f8");
  auto report = evidence::ParseTdReport(td.ReportBytes(Nonce(3)));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->td_info.td.rtmr[2], td.config().td.rtmr[2]);
  EXPECT_FALSE(td.ExtendRtmr(4, event).ok());
}

TEST(Simulator, SaveAndLoadKeepsKeysPrivate) {
  SimPlatform p = MakePlatform();
  testing::TempDir dir;
  std::string sim = dir.File("sim");
  ASSERT_TRUE(p.Save(sim).ok());
  for (const char* key : {"root_ca.key", "pck_ca.key", "pck.key", "tcb_signing.key", "attestation.key",
                          "report_mac.key"}) {
    struct stat st {};
    ASSERT_EQ(stat((sim + "/" + key).c_str(), &st), 0) << key;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
  auto loaded = SimPlatform::Load(sim);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded->collateral().tcb_info, p.collateral().tcb_info);
  EXPECT_EQ(loaded->root_pem(), p.root_pem());
  // A report from the saved platform is quoted by the loaded one, and verifies.
  SimTd td(p, SampleTd());
  auto quote = SimQuotingEnclave(*loaded).Quote(td.ReportBytes(Nonce(4)));
  ASSERT_TRUE(quote.ok()) << quote.error();
  EXPECT_TRUE(VerifyWithRoot(*loaded, *quote, loaded->root_pem()).verified);
  auto missing = SimPlatform::Load(dir.File("nothing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("tdxvirt sim init"), std::string::npos);
}

// An older `sim init` killed between its writes could leave a new pck.key beside the old pck.pem;
// Load refuses that by name, and init replaces it (no refusal to re-init).
TEST(Simulator, MixedKeysAndCertificatesAreRefusedAndReinitFixesThem) {
  SimPlatform a = MakePlatform(), b = MakePlatform();
  testing::TempDir dir;
  std::string sim = dir.File("sim"), other = dir.File("other");
  ASSERT_TRUE(a.Save(sim).ok());
  ASSERT_TRUE(b.Save(other).ok());
  std::filesystem::copy_file(other + "/pck.key", sim + "/pck.key",
                             std::filesystem::copy_options::overwrite_existing);
  auto mixed = SimPlatform::Load(sim);
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.error(), sim + "/pck.key does not match " + sim +
                               "/pck.pem: the directory is from an interrupted `sim init`; run "
                               "`tdxvirt sim init --dir " + sim + "` again");
  ASSERT_TRUE(MakePlatform().Save(sim).ok());  // what `sim init` does (cli_sim_test runs it)
  EXPECT_TRUE(SimPlatform::Load(sim).ok());
}

// What a killed init leaves beside the directory (its staging copy) does not touch the platform in
// use and is removed by the next init; a file that is not the simulator's is never lost.
TEST(Simulator, InitReplacesTheDirectoryAsAWhole) {
  SimPlatform a = MakePlatform(), b = MakePlatform();
  testing::TempDir dir;
  std::string sim = dir.File("sim");
  ASSERT_TRUE(a.Save(sim).ok());
  std::filesystem::create_directory(dir.File(".sim.init-AbCdEf"));
  testing::WriteFile(dir.File(".sim.init-AbCdEf/pck.key"), "half");
  ASSERT_EQ(SimPlatform::Load(sim)->root_pem(), a.root_pem());
  ASSERT_TRUE(b.Save(sim).ok());
  EXPECT_EQ(SimPlatform::Load(sim)->root_pem(), b.root_pem());
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"sim"});
  struct stat st {};
  ASSERT_EQ(stat(sim.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  testing::WriteFile(sim + "/quote.bin", "mine");
  Status s = a.Save(sim);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "simulator directory " + sim +
                           " holds quote.bin, which is not the simulator's; move it away or give another --dir");
  EXPECT_EQ(SimPlatform::Load(sim)->root_pem(), b.root_pem());
}

// kill -9 during a save leaves one whole platform (the old or the new), never a mix.
TEST(Simulator, SaveKilledMidWayLeavesOnePlatform) {
  SimPlatform a = MakePlatform(), b = MakePlatform();
  testing::TempDir dir;
  std::string sim = dir.File("sim");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    for (unsigned i = 0;; ++i) {
      if (!(i % 2 ? b : a).Save(sim).ok()) _exit(1);
      if (i == 0 && write(ready[1], "x", 1) != 1) _exit(1);
    }
  }
  close(ready[1]);
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  auto loaded = SimPlatform::Load(sim);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_TRUE(loaded->root_pem() == a.root_pem() || loaded->root_pem() == b.root_pem());
  ASSERT_TRUE(a.Save(sim).ok());  // and the next save cleans up after the killed one
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) entries += e.exists() ? 1 : 0;
  EXPECT_EQ(entries, 1u);
}

TEST(Simulator, TdConfigJson) {
  auto cfg = ParseTdConfig(nlohmann::json::parse(R"({"mr_config_id":")" + std::string(96, 'a') +
                                                 R"(","debug":true})"));
  ASSERT_TRUE(cfg.ok()) << cfg.error();
  EXPECT_TRUE(cfg->td.debug());
  EXPECT_TRUE(cfg->td.sept_ve_disable());
  EXPECT_EQ(cfg->td.mr_config_id[0], 0xaa);
  auto bad = ParseTdConfig(nlohmann::json::parse(R"({"mr_td":"abcd"})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), "TD config: mr_td: expected 48 bytes (96 hex digits), got 2");
  EXPECT_FALSE(ParseTdConfig(nlohmann::json::parse(R"({"debug":"yes"})")).ok());
  EXPECT_FALSE(ParseTdConfig(nlohmann::json::parse("[]")).ok());
}

TEST(SimBackend, ServesQuotesCollateralAndPlatformInfo) {
  SimQuoteBackend backend(MakePlatform());
  SimTd td(backend.platform(), SampleTd());
  auto report = td.ReportBytes(Nonce(9));
  auto quote = backend.GetQuote(report, {});
  ASSERT_TRUE(quote.ok()) << quote.error();
  EXPECT_TRUE(VerifyWithRoot(backend.platform(), *quote, backend.platform().root_pem()).verified);
  Bytes ids = {1, 2, 3};
  EXPECT_FALSE(backend.GetQuote(report, ids).ok());
  auto collateral = backend.GetCollateral(backend.platform().config().fmspc, "platform");
  ASSERT_TRUE(collateral.ok());
  EXPECT_EQ(collateral->tcb_info, backend.platform().collateral().tcb_info);
  EXPECT_FALSE(backend.GetCollateral(Bytes(6, 0xff), "platform").ok());
  EXPECT_FALSE(backend.GetCollateral(backend.platform().config().fmspc, "processor").ok());
  auto info = backend.GetPlatformInfo();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->tdqe_isvsvn, backend.platform().config().qe_isv_svn);
}

}  // namespace
}  // namespace tdxvirt::simulator
