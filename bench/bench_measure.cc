// The kernel digest of `tdxvirt measure`: the Authenticode hash of a ~10 MiB PE image (the size of a
// distribution bzImage) next to a plain SHA-384 of the same bytes. The ratio is the cost of the PE
// walk and the split into ranges; both are dominated by hashing.
#include <benchmark/benchmark.h>

#include <cstring>

#include "common/openssl.h"
#include "measure/authenticode.h"

namespace {

using tdxvirt::Bytes;

void Put32(Bytes& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
}

// Headers up to 0x400, four sections of 2.5 MiB, 4 KiB of trailing data.
Bytes MakeLargePe() {
  constexpr uint32_t kSection = 5u << 19;
  Bytes img(0x400 + 4 * size_t(kSection) + 4096);
  for (size_t i = 0; i < img.size(); ++i) img[i] = uint8_t(i * 131 + (i >> 12));
  std::memset(img.data(), 0, 0x400);
  img[0] = 'M', img[1] = 'Z';
  Put32(img, 0x3c, 0x80);
  std::memcpy(img.data() + 0x80, "PE\0\0", 4);
  img[0x86] = 4;      // NumberOfSections
  img[0x94] = 240;    // SizeOfOptionalHeader (PE32+)
  const size_t opt = 0x98;
  img[opt] = 0x0b, img[opt + 1] = 0x02;
  Put32(img, opt + 60, 0x400);
  Put32(img, opt + 108, 16);
  for (int s = 0; s < 4; ++s) {
    size_t h = opt + 240 + 40 * size_t(s);
    Put32(img, h + 16, kSection);
    Put32(img, h + 20, 0x400 + uint32_t(s) * kSection);
  }
  return img;
}

const Bytes& Image() {
  static const Bytes img = MakeLargePe();
  return img;
}

void BM_AuthenticodeSha384(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(tdxvirt::measure::AuthenticodeSha384(Image()));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(Image().size()));
}
BENCHMARK(BM_AuthenticodeSha384)->Unit(benchmark::kMillisecond);

void BM_PlainSha384(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(tdxvirt::ossl::Sha384(Image()));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(Image().size()));
}
BENCHMARK(BM_PlainSha384)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
