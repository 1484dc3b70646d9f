// TDVF firmware metadata: the footer table walk and the section table (simulator/tdvf.h).
#include <cstddef>
#include <cstdint>

#include "simulator/tdvf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto sections = tdxvirt::simulator::ParseTdvfMetadata({data, size});
  if (sections.ok() && size < (1u << 20)) {
    // Measuring is bounded by kMaxTdvfSectionBytes per section; keep fuzz runs fast.
    uint64_t total = 0;
    for (const auto& s : *sections) total += s.memory_data_size;
    if (total <= (64u << 20)) (void)tdxvirt::simulator::ComputeMrtd(*sections, {data, size});
  }
  return 0;
}
