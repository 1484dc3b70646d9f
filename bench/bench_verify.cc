// Quote verification throughput on one core, next to the raw OpenSSL ECDSA-P256 verify rate
// measured in the same run. Reported as counters so the ratio needs no external baseline:
//   steady state: collateral prepared once, PCK chain cache warm (a long-running service);
//   cold: collateral parsed, chains and signatures verified for every quote.
// Run: build/bench/bench_verify (add --benchmark_min_time=2 for steadier figures).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>

#include "common/file.h"
#include "common/openssl.h"
#include "evidence/quote.h"
#include "verify/verifier.h"

namespace {

using namespace tdxvirt;

constexpr int64_t kAt = 1752919234;

Bytes Load(const std::string& rel) {
  auto d = ReadFile(std::string(TDXVIRT_TESTDATA) + "/" + rel);
  if (!d.ok()) throw std::runtime_error(d.error());
  return *d;
}

// Baseline: one ECDSA-P256-SHA256 verification of the quote signature over its signed region.
void BM_Baseline_OpenSslEcdsaP256Verify(benchmark::State& state) {
  Bytes raw = Load("quotes/tdx-v4-uptodate/quote.bin");
  auto q = evidence::ParseQuote(raw);
  auto key = ossl::P256PublicKeyFromRaw(q->signature_data.attestation_key);
  ByteSpan signed_region = ByteSpan(raw).first(q->signed_size());
  for (auto _ : state) {
    bool ok = ossl::VerifyEcdsaP256Sha256(key->get(), signed_region, q->signature_data.signature);
    if (!ok) state.SkipWithError("baseline verify failed");
  }
  state.counters["per_sec"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Baseline_OpenSslEcdsaP256Verify)->Unit(benchmark::kMicrosecond);

void BM_VerifyQuote_SteadyState(benchmark::State& state) {
  Bytes raw = Load("quotes/tdx-v4-uptodate/quote.bin");
  auto c = verify::LoadCollateral(std::string(TDXVIRT_TESTDATA) + "/quotes/tdx-v4-uptodate/collateral.json");
  auto root = verify::TrustedRoot::IntelSgxRootCa();
  auto prepared = verify::PreparedCollateral::Prepare(*c, *root);
  verify::QuoteVerifier verifier(*root);
  for (auto _ : state) {
    auto r = verifier.Verify(raw, *prepared, {.now = kAt});
    if (!r.verified) state.SkipWithError(r.error.c_str());
  }
  state.counters["per_sec"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_VerifyQuote_SteadyState)->Unit(benchmark::kMicrosecond);

void BM_VerifyQuote_Cold(benchmark::State& state) {
  Bytes raw = Load("quotes/tdx-v4-uptodate/quote.bin");
  Bytes bundle = Load("quotes/tdx-v4-uptodate/collateral.json");
  for (auto _ : state) {
    auto c = verify::ParseCollateralBundle(AsString(bundle));
    auto root = verify::TrustedRoot::IntelSgxRootCa();
    auto prepared = verify::PreparedCollateral::Prepare(*c, *root);
    verify::QuoteVerifier verifier(*root);
    auto r = verifier.Verify(raw, *prepared, {.now = kAt});
    if (!r.verified) state.SkipWithError(r.error.c_str());
  }
  state.counters["per_sec"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_VerifyQuote_Cold)->Unit(benchmark::kMicrosecond);

// Prints the console table, then the ratios the project tracks.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) us_[r.benchmark_name()] = r.GetAdjustedCPUTime();
    ConsoleReporter::ReportRuns(runs);
  }
  double Rate(const std::string& name) const {
    auto it = us_.find(name);
    return it == us_.end() || it->second <= 0 ? 0 : 1e6 / it->second;
  }

 private:
  std::map<std::string, double> us_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  double ecdsa = reporter.Rate("BM_Baseline_OpenSslEcdsaP256Verify");
  double steady = reporter.Rate("BM_VerifyQuote_SteadyState");
  double cold = reporter.Rate("BM_VerifyQuote_Cold");
  if (ecdsa > 0) {
    std::printf("\nECDSA-P256 verify: %.0f/s; half of it (two verifies per quote): %.0f/s\n", ecdsa,
                ecdsa / 2);
    if (steady > 0)
      std::printf("steady state: %.0f quotes/s = %.3f of half the ECDSA rate (target >= 0.35)\n", steady,
                  steady / (ecdsa / 2));
    if (cold > 0)
      std::printf("cold:         %.0f quotes/s = %.3f of half the ECDSA rate\n", cold, cold / (ecdsa / 2));
  }
  benchmark::Shutdown();
  return 0;
}
