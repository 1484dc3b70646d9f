// Field types shared by the TDREPORT and the TD quote body, named as in the TDX module ABI.
#pragma once

#include <cstdint>

#include "common/bytes.h"

namespace tdxvirt::evidence {

using Sha384Digest = ByteArray<48>;  // MRTD, RTMRs, MRCONFIGID, ...
using ReportData = ByteArray<64>;
using TeeTcbSvn = ByteArray<16>;

// TD ATTRIBUTES bits (TDX module ABI; go-tdx-guest and dcap-qvl agree).
inline constexpr uint64_t kTdAttrDebug = 1ull << 0;
inline constexpr uint64_t kTdAttrSeptVeDisable = 1ull << 28;
inline constexpr uint64_t kTdAttrPks = 1ull << 30;
inline constexpr uint64_t kTdAttrKl = 1ull << 31;
inline constexpr uint64_t kTdAttrPerfmon = 1ull << 63;

// The TD-specific measurements and settings, common to TDINFO and the quote body.
struct TdMeasurements {
  ByteArray<8> td_attributes{};  // raw little-endian bytes, as in the quote
  ByteArray<8> xfam{};
  Sha384Digest mr_td{};
  Sha384Digest mr_config_id{};
  Sha384Digest mr_owner{};
  Sha384Digest mr_owner_config{};
  Sha384Digest rtmr[4]{};

  uint64_t attributes() const { return LoadLe64(td_attributes.data()); }
  bool debug() const { return attributes() & kTdAttrDebug; }
  bool sept_ve_disable() const { return attributes() & kTdAttrSeptVeDisable; }
  bool operator==(const TdMeasurements&) const = default;
};

}  // namespace tdxvirt::evidence
