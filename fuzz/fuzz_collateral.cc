// Collateral parsing: the bundle, PCS signed-JSON bodies, TCB Info and QE Identity documents.
// Any input must parse or fail cleanly.
#include <string_view>

#include "verify/collateral.h"
#include "verify/tcb_info.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)tdxvirt::verify::ParseCollateralBundle(text);
  for (const char* key : {"tcbInfo", "enclaveIdentity"}) {
    auto doc = tdxvirt::verify::ParsePcsSignedJson(text, key);
    if (doc.ok()) {
      (void)tdxvirt::verify::ParseTcbInfo(doc->body);
      (void)tdxvirt::verify::ParseQeIdentity(doc->body);
    }
  }
  (void)tdxvirt::verify::ParseTcbInfo(text);
  (void)tdxvirt::verify::ParseQeIdentity(text);
  (void)tdxvirt::verify::PemOrUrlEncoded(text);
  return 0;
}
