#include "qgs/backend.h"

namespace tdxvirt::qgs {

QuoteBackend::~QuoteBackend() = default;

Result<Bytes> SerializedBackend::GetQuote(ByteSpan td_report, ByteSpan id_list) {
  std::lock_guard lock(mu_);
  return inner_.GetQuote(td_report, id_list);
}

Result<verify::Collateral> SerializedBackend::GetCollateral(ByteSpan fmspc,
                                                            std::string_view pck_ca) {
  std::lock_guard lock(mu_);
  return inner_.GetCollateral(fmspc, pck_ca);
}

Result<PlatformInfo> SerializedBackend::GetPlatformInfo() {
  std::lock_guard lock(mu_);
  return inner_.GetPlatformInfo();
}

}  // namespace tdxvirt::qgs
