// TDVF (the TDX build of OVMF) metadata and the MRTD it yields. QEMU finds the metadata through
// OVMF's GUIDed footer table, adds each section's pages to the TD and extends the measured ones
// into MRTD in 256-byte chunks; the TDX module hashes one 128-byte buffer per SEAMCALL. MRTD
// therefore depends on the firmware binary alone, which is what lets an owner predict it.
// (Single-pass page order, as current KVM populates; see docs/simulator.md.)
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "evidence/td_types.h"

namespace tdxvirt::simulator {

enum class TdvfSectionType : uint32_t { kBfv = 0, kCfv = 1, kTdHob = 2, kTempMem = 3 };
inline constexpr uint32_t kTdvfAttrMrExtend = 0x1;
inline constexpr uint32_t kTdvfAttrPageAug = 0x2;

struct TdvfSection {
  uint32_t data_offset = 0;    // in the firmware file
  uint32_t raw_data_size = 0;  // bytes taken from the file (the rest of the region is zero)
  uint64_t memory_address = 0;
  uint64_t memory_data_size = 0;
  uint32_t type = 0;
  uint32_t attributes = 0;
};

// The section table of a TDVF image, checked as QEMU checks it (signature, version 1, length,
// at least 2 sections, 4 KiB alignment, data inside the file), plus a bound on the memory a
// section may claim (kMaxTdvfSectionBytes) so measuring stays cheap.
inline constexpr uint64_t kMaxTdvfSectionBytes = uint64_t(1) << 30;
Result<std::vector<TdvfSection>> ParseTdvfMetadata(ByteSpan firmware);

// MRTD of `sections` as the TDX module computes it: PAGE.ADD per page (unless PAGE_AUG), then for
// MR_EXTEND sections MR.EXTEND per 256-byte chunk with the chunk's bytes.
evidence::Sha384Digest ComputeMrtd(const std::vector<TdvfSection>& sections, ByteSpan firmware);
// The same operations in the "two-pass" order (tdx-measure's --two-pass-add-pages): per section,
// PAGE.ADD for every page first, then the MR.EXTENDs of every page. QEMU 8.x TDX trees used it
// (intel qemu-tdx tdx-qemu-upstream-v5 "8.2.50", Canonical's 8.2.2 for Ubuntu 24.04); single pass
// is the order of earlier trees and of QEMU 9 and later (docs/measure.md).
evidence::Sha384Digest ComputeMrtdTwoPass(const std::vector<TdvfSection>& sections,
                                          ByteSpan firmware);
// ParseTdvfMetadata + ComputeMrtd.
Result<evidence::Sha384Digest> ComputeMrtdOfFirmware(ByteSpan firmware);

// A small firmware image with real TDVF metadata (BFV and CFV measured, TD_HOB and TEMP_MEM not)
// whose contents derive from `label`: the simulator's stand-in for OVMF.inteltdx.fd, so a
// simulated TD's MRTD comes from a firmware file by the same code path as a real one.
Bytes MakeSimulatedTdvf(std::string_view label, uint32_t bfv_pages = 8);

}  // namespace tdxvirt::simulator
