// Quote parsing cost next to the cost of one SHA-256 over the same bytes (the least any consumer of
// a quote pays to hash it). Run: build/bench/bench_evidence
#include <benchmark/benchmark.h>

#include "common/file.h"
#include "common/openssl.h"
#include "evidence/pck_cert.h"
#include "evidence/quote.h"

namespace {

tdxvirt::Bytes LoadQuote() {
  auto q = tdxvirt::ReadFile(std::string(TDXVIRT_TESTDATA) + "/quotes/tdx-v4-uptodate/quote.bin");
  if (!q.ok()) throw std::runtime_error(q.error());
  return *q;
}

void BM_Sha256OfQuote_Baseline(benchmark::State& state) {
  auto raw = LoadQuote();
  for (auto _ : state) benchmark::DoNotOptimize(tdxvirt::ossl::Sha256(raw));
}
BENCHMARK(BM_Sha256OfQuote_Baseline);

void BM_ParseQuote(benchmark::State& state) {
  auto raw = LoadQuote();
  for (auto _ : state) benchmark::DoNotOptimize(tdxvirt::evidence::ParseQuote(raw));
}
BENCHMARK(BM_ParseQuote);

void BM_ParsePckChainAndExtensions(benchmark::State& state) {
  auto q = tdxvirt::evidence::ParseQuote(LoadQuote());
  auto pem = tdxvirt::evidence::PckCertChainPem(*q);
  for (auto _ : state) {
    auto chain = tdxvirt::ossl::ParsePemChain(*pem);
    benchmark::DoNotOptimize(tdxvirt::evidence::ExtractPckExtensions(chain->front().get()));
  }
}
BENCHMARK(BM_ParsePckChainAndExtensions);

}  // namespace

BENCHMARK_MAIN();
