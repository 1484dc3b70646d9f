// Admission per KubeVirt release, as ratios to parsing the manifest (the baseline of the same
// run): pruning with the release's shipped CRD schema, then the whole review (prune, mutate,
// validate). The webhook pays the review per VM/VMI create; the pruning is what makes an offline
// answer the live one.
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

#include "kubevirt/admission.h"
#include "kubevirt/prune.h"

namespace {

using namespace tdxvirt;

std::string Manifest() {
  std::ifstream in(std::string(TDXVIRT_SOURCE_DIR) + "/examples/vm-tdx.yaml");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

kube::KubevirtVersion Release(const benchmark::State& state) {
  return {.major = 1, .minor = int(state.range(0))};
}

void BM_ParseManifest_Baseline(benchmark::State& state) {
  const std::string text = Manifest();
  for (auto _ : state) benchmark::DoNotOptimize(kubevirt::ParseDocument(text, "manifest"));
}
BENCHMARK(BM_ParseManifest_Baseline);

void BM_Prune(benchmark::State& state) {
  const kubevirt::Json m = *kubevirt::ParseDocument(Manifest(), "manifest");
  const kube::KubevirtVersion v = Release(state);
  for (auto _ : state) benchmark::DoNotOptimize(kubevirt::PruneForKubevirt(m, v));
}
BENCHMARK(BM_Prune)->DenseRange(6, 9);

void BM_Review(benchmark::State& state) {
  const std::string text = Manifest();
  kubevirt::ClusterSettings s;
  s.feature_gate = true;
  s.kubevirt_version = Release(state).Text();
  for (auto _ : state)
    benchmark::DoNotOptimize(kubevirt::Review(text, s, kubevirt::ReviewKind::kBoth));
}
BENCHMARK(BM_Review)->DenseRange(6, 9);

}  // namespace

BENCHMARK_MAIN();
