// The simulated TD quoting enclave: turns a TDREPORT from this platform into a signed TD quote,
// bound exactly as on hardware. It checks the report's MAC (EVERIFYREPORT2's job), signs header and
// body with the attestation key, certifies that key in its QE report (report data =
// SHA-256(attestation key || QE auth data)), signs the QE report with the PCK key and attaches the
// PCK chain as certification data type 5.
#pragma once

#include "evidence/quote.h"
#include "simulator/platform.h"

namespace tdxvirt::simulator {

class SimQuotingEnclave {
 public:
  explicit SimQuotingEnclave(const SimPlatform& platform);

  // `version` 4 (TD 1.0 body) or 5 (body type 2, or 3 for a TDX 1.5 report).
  Result<Bytes> Quote(ByteSpan td_report, int version = 4) const;

 private:
  const SimPlatform& platform_;
  std::string pck_chain_pem_;
  ByteArray<64> attestation_key_raw_{};
};

}  // namespace tdxvirt::simulator
