// The Authenticode (PE/COFF image) hash, as UEFI firmware measures an EFI application into the
// event log (EV_EFI_BOOT_SERVICES_APPLICATION): the Microsoft "Windows Authenticode Portable
// Executable Signature Format" algorithm, which EDK2's TCG/CC measure-boot code follows.
//   1. the headers up to SizeOfHeaders, minus the CheckSum field and the certificate-table entry
//      of the data directory (when the image has one);
//   2. every section with raw data, in PointerToRawData order;
//   3. the bytes after the last section, minus the attribute certificate table.
// Parsing is bounded by the input: every offset and size is checked before use and a bad one is
// named in the error, so a hostile image cannot make us read outside it.
#pragma once

#include <cstdint>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "evidence/td_types.h"

namespace tdxvirt::measure {

// The byte ranges [offset, offset + size) of `pe` that Authenticode hashes, in order.
struct HashedRange {
  uint64_t offset = 0;
  uint64_t size = 0;
};
inline constexpr uint16_t kMaxPeSections = 96;  // PE/COFF specification limit

// Errors start with "PE image: " and name the field and its offset.
Result<std::vector<HashedRange>> AuthenticodeRanges(ByteSpan pe);
// SHA-384 over AuthenticodeRanges.
Result<evidence::Sha384Digest> AuthenticodeSha384(ByteSpan pe);

}  // namespace tdxvirt::measure
