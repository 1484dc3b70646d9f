// The service's cost of an event log: parse + decode + summary + verdicts (AppraiseEventLog) next
// to parse + replay alone, which is what a replay-only verifier does. The log is the largest real
// one in testdata (GCE Ubuntu 24.04, 17 boot attempts, 159 events, 256 KiB with its fill).
#include <benchmark/benchmark.h>

#include <stdexcept>
#include <string>

#include "common/file.h"
#include "eventlog/abi.h"
#include "eventlog/replay.h"
#include "service/measured_boot.h"

namespace {

using namespace tdxvirt;

const Bytes& Log() {
  static const Bytes log = [] {
    auto b = ReadFile(std::string(TDXVIRT_TESTDATA) + "/eventlogs/gce-ubuntu-2404-multiboot/ccel.bin");
    if (!b.ok()) throw std::runtime_error(b.error());
    return *b;
  }();
  return log;
}

// Baseline: parse and replay.
void BM_ParseAndReplay(benchmark::State& state) {
  for (auto _ : state) {
    auto log = eventlog::ParseEventLog(Log());
    if (!log.ok()) state.SkipWithError(log.error().c_str());
    auto r = eventlog::Replay(*log);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParseAndReplay);

// What an attest request with tdx.event_log costs the service on top of the quote.
void BM_AppraiseEventLog(benchmark::State& state) {
  auto log = eventlog::ParseEventLog(Log());
  auto quote_rtmrs = eventlog::Replay(*log).rtmrs;
  for (auto _ : state) {
    auto mb = service::AppraiseEventLog(Log(), quote_rtmrs);
    if (!mb.ok()) state.SkipWithError(mb.error().c_str());
    benchmark::DoNotOptimize(mb);
  }
}
BENCHMARK(BM_AppraiseEventLog);

}  // namespace

BENCHMARK_MAIN();
