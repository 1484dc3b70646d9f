// Outside bytes as the Kubernetes API's answer to GET /apis/kubevirt.io/v1/kubevirts, and as a
// KubeVirt version string. Must never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kube/cluster.h"
#include "kube/kubevirt_version.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto v = tdxvirt::kube::ParseKubevirtVersion(text);
  if (v.ok()) (void)tdxvirt::kube::UpstreamTdxFor(*v);
  auto list = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!list.is_discarded()) (void)tdxvirt::kube::ParseKubevirtList(list);
  return 0;
}
