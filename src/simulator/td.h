// A simulated trust domain: the TDX module's view of one TD. It holds the measurements a real
// module would (MRTD and RTMRs from the build, MRCONFIGID/MROWNER/MROWNERCONFIG from the host,
// ATTRIBUTES, XFAM), extends RTMRs as TDG.MR.RTMR.EXTEND does, and answers TDG.MR.REPORT with a
// 1024-byte TDREPORT whose MAC only this platform's quoting enclave can check.
#pragma once

#include <nlohmann/json.hpp>

#include "evidence/td_report.h"
#include "simulator/platform.h"

namespace tdxvirt::simulator {

struct TdConfig {
  evidence::TdMeasurements td;  // rtmr[] are the initial values
  bool td15 = false;            // TDX 1.5 report (TEE_TCB_SVN2, SERVTD_HASH)
  evidence::Sha384Digest servtd_hash{};
};

// The default: SEPT_VE_DISABLE set, debug off, XFAM of a typical TD (as in real quotes).
TdConfig DefaultTdConfig();

// JSON with hex fields named as `tdxvirt quote inspect` prints them: mr_td, mr_config_id,
// mr_owner, mr_owner_config, rtmr0..rtmr3, td_attributes, xfam; plus "debug": true|false as a
// shorthand for attribute bit 0, and "td15". Absent fields keep DefaultTdConfig's values.
Result<TdConfig> ParseTdConfig(const nlohmann::json& j);
// The JSON ParseTdConfig reads (every field, hex).
nlohmann::json TdConfigToJson(const TdConfig& config);
// ParseTdConfig of a JSON file (at most 1 MiB); "" gives DefaultTdConfig().
Result<TdConfig> LoadTdConfigFile(const std::string& path);

class SimTd {
 public:
  SimTd(const SimPlatform& platform, TdConfig config) : platform_(platform), config_(std::move(config)) {}

  // RTMR[index] = SHA-384(RTMR[index] || data). Fails for index > 3.
  Status ExtendRtmr(int index, const evidence::Sha384Digest& data);
  const TdConfig& config() const { return config_; }

  evidence::TdReport Report(const evidence::ReportData& report_data) const;
  ByteArray<evidence::kTdReportSize> ReportBytes(const evidence::ReportData& report_data) const;

 private:
  const SimPlatform& platform_;
  TdConfig config_;
};

// The simulated CPU's report MAC: HMAC-SHA256 under the platform key over REPORTMACSTRUCT up to
// the MAC field (the TEE_TCB_INFO and TDINFO hashes inside it bind the rest).
ByteArray<32> ReportMac(const ByteArray<32>& key, const evidence::TdReport& report);

}  // namespace tdxvirt::simulator
