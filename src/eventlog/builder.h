// Writing a TD event log in the format TDVF writes (crypto-agile, SHA-384 only, MR index 1 on the
// Spec ID record) and a CCEL table pointing at it. The simulator uses it to give a simulated TD the
// log its firmware would have left, and `tdxvirt measure` to predict registers by replaying what it
// would contain; tests use it for logs no real TD wrote.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/bytes.h"
#include "eventlog/abi.h"
#include "eventlog/replay.h"

namespace tdxvirt::eventlog {

// EV_EVENT_TAG ids of the Linux EFI stub (drivers/firmware/efi/libstub, Linux >= 6.9 for TDX).
inline constexpr uint32_t kTagLoadOptions = 0x8F3B22ED;  // "LOADED_IMAGE::LoadOptions"
inline constexpr uint32_t kTagInitrd = 0x8F3B22EC;       // "Linux initrd"

class EventLogBuilder {
 public:
  EventLogBuilder();  // the Spec ID record
  // A TCG_PCR_EVENT2 with the given SHA-384 digest (opaque events: images, blobs).
  void Add(uint32_t mr_index, uint32_t type, const evidence::Sha384Digest& digest, ByteSpan data);
  // One whose digest is SHA-384 of `data` (separators, actions, variables, GRUB strings).
  void AddHashed(uint32_t mr_index, uint32_t type, ByteSpan data);
  // An EV_EVENT_TAG (TCG_PCClientTaggedEvent) around `tagged`. Linux's stub writes the tag's
  // description ("LOADED_IMAGE::LoadOptions\0") with the digest of what it measured: the
  // four-argument form. The three-argument form (digest = SHA-384 of `tagged`) writes a tag that
  // carries what it measures, which decodes as bound: tests use it.
  void AddTag(uint32_t mr_index, uint32_t tag, ByteSpan tagged);
  void AddTag(uint32_t mr_index, uint32_t tag, ByteSpan tagged, const evidence::Sha384Digest& digest);

  // The log followed by 0xFF fill up to `laml` (no fill when laml <= the log's size).
  Bytes Finish(size_t laml = 0x10000) const;
  // The registers the log replays to, as built.
  const Rtmrs& rtmrs() const { return rtmrs_; }

 private:
  Bytes log_;
  Rtmrs rtmrs_{};
};

// A 56-byte CCEL table (CC type TDX) with a valid checksum.
Bytes MakeCcelTable(uint64_t laml, uint64_t lasa);

// TCG_PCClientTaggedEvent: tag id u32, size u32, data.
Bytes TaggedEventData(uint32_t tag, ByteSpan data);
// UTF-8 text as UTF-16LE with a NUL terminator (how UEFI load options carry a command line).
// Refuses invalid UTF-8.
Result<Bytes> Utf16LeWithNul(std::string_view utf8);
// What OVMF passes a directly booted kernel as LoadOptions, and the stub measures: the command line
// plus " initrd=initrd" when QEMU was given an initrd (reference "Direct boot").
Result<Bytes> DirectBootLoadOptions(std::string_view cmdline, bool has_initrd);

}  // namespace tdxvirt::eventlog
