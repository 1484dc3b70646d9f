// The simulator as a Quote Generation Service backend: what a host's QGS (over the TD quoting
// enclave) does, answered by SimQuotingEnclave and the simulated collateral. A hardware backend
// would implement the same qgs::QuoteBackend over Intel's quote library.
#pragma once

#include "qgs/backend.h"
#include "simulator/quoting_enclave.h"

namespace tdxvirt::simulator {

class SimQuoteBackend : public qgs::QuoteBackend {
 public:
  // `quote_version` 4 or 5, as a QGS configured for one QE version answers.
  explicit SimQuoteBackend(SimPlatform platform, int quote_version = 4);

  Result<Bytes> GetQuote(ByteSpan td_report, ByteSpan id_list) override;
  Result<verify::Collateral> GetCollateral(ByteSpan fmspc, std::string_view pck_ca) override;
  Result<qgs::PlatformInfo> GetPlatformInfo() override;

  const SimPlatform& platform() const { return platform_; }

 private:
  SimPlatform platform_;
  SimQuotingEnclave qe_;
  int quote_version_;
};

}  // namespace tdxvirt::simulator
