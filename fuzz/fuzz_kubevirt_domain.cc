// Outside bytes as the domain XML virt-launcher hands the hook: ApplyTdx must return a domain or
// an error, never crash; and applying twice equals applying once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "kubevirt/domain.h"

using namespace tdxvirt::kubevirt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string xml(reinterpret_cast<const char*>(data), size);
  TdxSettings t;
  t.vsock = true;
  t.mr_config_id = tdxvirt::ByteArray<48>{};
  auto q = ParseQgs("unix:/var/run/tdx-qgs/qgs.socket");
  if (q.ok()) t.qgs = *q;
  auto once = ApplyTdx(xml, t);
  if (once.ok()) {
    auto twice = ApplyTdx(*once, t);
    if (!twice.ok() || *twice != *once) std::abort();  // idempotence
  }
  return 0;
}
