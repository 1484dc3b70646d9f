// Host files the node agent parses: /proc/cpuinfo, misc.capacity / misc.current, module
// parameters, the kernel release, and `virsh domcapabilities` XML. Each parser sees every input.
#include <cstdint>
#include <string_view>

#include "node/host.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace tdxvirt::node;
  (void)ParseCpuinfo(text);
  (void)ParseMiscValue(text, "tdx");
  (void)ParseModuleBool(text);
  (void)ParseKernelRelease(text);
  (void)ParseDomCapabilities(text);
  return 0;
}
