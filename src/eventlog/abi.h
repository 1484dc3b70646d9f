// The bytes of a TD's measured-boot log: the CCEL ACPI table (ACPI 6.5 §5.2.34) and the TCG PC
// Client crypto-agile event log it points at (/sys/firmware/acpi/tables/{CCEL,data/CCEL}).
// Pure parsing: no replay, no policy (replay.h, decode.h). Every length is bounded by the buffer
// and by LAML; errors name the record, the field and its absolute offset, so a refused log says
// where it went wrong. Facts and sources: ../shared/reference/tdx-eventlog.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "evidence/td_types.h"

namespace tdxvirt::eventlog {

inline constexpr size_t kCcelTableSize = 56;
inline constexpr uint8_t kCcTypeSev = 1;
inline constexpr uint8_t kCcTypeTdx = 2;

struct CcelTable {
  uint8_t cc_type = 0;     // 2 = Intel TDX
  uint8_t cc_subtype = 0;
  uint64_t laml = 0;       // log area minimum length
  uint64_t lasa = 0;       // log area start address
};
// Signature "CCEL", length 56, checksum, CC type 2 (a table of another CC type is refused: its log
// does not describe TDX RTMRs).
Result<CcelTable> ParseCcelTable(ByteSpan table);

// Event types TDVF/OVMF, shim, GRUB and Linux write (TCG PC Client PFP, UEFI).
inline constexpr uint32_t kEvPostCode = 0x1;
inline constexpr uint32_t kEvNoAction = 0x3;
inline constexpr uint32_t kEvSeparator = 0x4;
inline constexpr uint32_t kEvAction = 0x5;
inline constexpr uint32_t kEvEventTag = 0x6;
inline constexpr uint32_t kEvPlatformConfigFlags = 0xA;
inline constexpr uint32_t kEvIpl = 0xD;
inline constexpr uint32_t kEvEfiVariableDriverConfig = 0x80000001;
inline constexpr uint32_t kEvEfiVariableBoot = 0x80000002;
inline constexpr uint32_t kEvEfiBootServicesApplication = 0x80000003;
inline constexpr uint32_t kEvEfiGptEvent = 0x80000006;
inline constexpr uint32_t kEvEfiAction = 0x80000007;
inline constexpr uint32_t kEvEfiPlatformFirmwareBlob2 = 0x8000000A;
inline constexpr uint32_t kEvEfiHandoffTables2 = 0x8000000B;
inline constexpr uint32_t kEvEfiVariableAuthority = 0x800000E0;
// "EV_SEPARATOR", ...; "" for a type without a name here.
std::string_view EventTypeName(uint32_t type);

inline constexpr uint16_t kAlgSha1 = 0x0004;
inline constexpr uint16_t kAlgSha256 = 0x000B;
inline constexpr uint16_t kAlgSha384 = 0x000C;
inline constexpr uint16_t kAlgSha512 = 0x000D;
inline constexpr uint16_t kAlgSm3 = 0x0012;

struct AlgorithmSize {
  uint16_t id = 0;
  uint16_t digest_size = 0;
};
// "Spec ID Event03", found by its signature in the first record's data.
struct SpecIdEvent {
  uint32_t platform_class = 0;
  uint8_t version_minor = 0, version_major = 0, errata = 0, uintn_size = 0;
  std::vector<AlgorithmSize> algorithms;  // must include SHA-384; others tolerated
  Bytes vendor_info;
};

struct Digest {
  uint16_t alg = 0;
  Bytes value;  // the size the Spec ID event declared for alg
};

struct Event {
  size_t number = 0;       // record number in the log; 0 is the Spec ID record
  size_t offset = 0;       // absolute offset of the record
  size_t data_offset = 0;  // absolute offset of `data`
  uint32_t mr_index = 0;   // 0 = MRTD (never replayed), 1..4 = RTMR0..3
  uint32_t type = 0;
  std::vector<Digest> digests;  // record 0: one SHA-1 of zeros (legacy TCG_PCR_EVENT)
  evidence::Sha384Digest sha384{};  // the SHA-384 bank's digest (zero for record 0)
  Bytes data;
};

struct EventLog {
  SpecIdEvent spec_id;
  std::vector<Event> events;  // events[0] is the Spec ID record
  size_t log_bytes = 0;       // offset where the fill starts (== input size when unpadded)
  std::optional<uint8_t> fill;  // 0xFF or 0x00 after the log; nullopt when none
};

struct ParseOptions {
  // From the CCEL table when known: data longer than LAML is refused; shorter is accepted (Google's
  // agent and go-eventlog's fixtures send the log trimmed of its fill).
  std::optional<uint64_t> laml;
  size_t max_events = 1 << 16;
};
inline constexpr size_t kMaxEventLogBytes = 16 << 20;
inline constexpr uint32_t kMaxEventDataBytes = 1 << 24;

// The log ends at the end of the input or where fill begins at a record boundary: 8 bytes of 0xFF,
// or 8 bytes of 0x00 (MR index 0 with type 0 is no event). Everything after the end must be that
// fill. A record cut short is an error ("truncated"), never the end of the log. An MR index above
// 4, or MR index 0 on anything but EV_NO_ACTION, is an error. Every record after the first must
// carry a SHA-384 digest.
Result<EventLog> ParseEventLog(ByteSpan data, const ParseOptions& options = {});

}  // namespace tdxvirt::eventlog
