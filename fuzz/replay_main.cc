// Stand-in for libFuzzer's main in non-fuzz builds: runs LLVMFuzzerTestOneInput on each file given,
// plus every prefix of it (truncation is the commonest malformation of evidence).
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  size_t runs = 0;
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 2;
    }
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (size_t n = 0; n <= data.size(); ++n) {
      // A fresh copy sized exactly n, so ASan catches any read past the end.
      std::vector<uint8_t> prefix(data.begin(), data.begin() + long(n));
      LLVMFuzzerTestOneInput(prefix.data(), prefix.size());
      ++runs;
    }
  }
  std::printf("replayed %zu inputs from %d files\n", runs, argc - 1);
  return 0;
}
