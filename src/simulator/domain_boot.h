// What a simulated TDX host takes from a libvirt TD domain when it boots it, as QEMU would: the
// firmware (<os><loader>), the TD attributes (<launchSecurity><policy>, QEMU's default 0x10000000
// when absent), MRCONFIGID/MROWNER/MROWNERCONFIG (base64 of 48 bytes), and the configuration the
// firmware measures into RTMRs.
//
// MRTD is computed from the firmware bytes exactly as the TDX module does (tdvf.h). The RTMRs are
// the replay of the event log (CCEL) the simulated firmware writes: the events, their order and
// their data in the format OVMF/TDVF and the Linux EFI stub write for a direct kernel boot, with
// stand-in digests only where a real digest needs what the simulator does not have (the TD HOB,
// ACPI tables, the kernel's Authenticode hash; see docs/simulator.md). So a verifier that replays
// a simulated TD's log exercises the same code it runs on a real one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "eventlog/replay.h"
#include "simulator/td.h"

namespace tdxvirt::simulator {

inline constexpr uint64_t kQemuDefaultTdAttributes = 0x10000000;  // SEPT_VE_DISABLE

struct TdDomain {
  std::string name;
  std::string loader;              // firmware path
  uint64_t attributes = kQemuDefaultTdAttributes;
  evidence::Sha384Digest mr_config_id{}, mr_owner{}, mr_owner_config{};
  std::string qgs_path;            // empty: no quoteGenerationService element
  bool has_qgs = false;
  uint32_t vcpus = 1;
  uint64_t memory_kib = 0;
  std::vector<std::string> disks;  // source file/dev/name of each <disk>, in order
  std::string kernel;              // <os><kernel>: direct kernel boot (QEMU -kernel)
  std::string initrd;              // <os><initrd>
  std::string cmdline;             // <os><cmdline>
  bool secure_boot = false;        // <os><loader secure='yes'>
};

// Reads a TD domain; fails, naming the element, when the XML is not a TD domain
// (<launchSecurity type='tdx'> missing) or a value is malformed.
Result<TdDomain> ReadTdDomain(std::string_view domain_xml);

// The TdConfig of the TD the host would boot from `domain` with `firmware` as its loader.
Result<TdConfig> TdConfigForDomain(const TdDomain& domain, ByteSpan firmware);

// The measured boot of `domain` on `firmware`: the CCEL the firmware leaves and the RTMRs it
// extended (RTMR3 stays zero: nothing extends it before the OS runs).
inline constexpr uint64_t kSimCcelLaml = 0x10000;      // LAML of OVMF's CCEL
inline constexpr uint64_t kSimCcelLasa = 0x7D649000;   // a log area address, as a TD's table has
struct SimulatedBoot {
  Bytes ccel_data;   // the log padded with 0xFF to LAML: /sys/firmware/acpi/tables/data/CCEL
  Bytes ccel_table;  // the ACPI table: /sys/firmware/acpi/tables/CCEL
  eventlog::Rtmrs rtmrs{};
};
// Fails on a command line that is not UTF-8 (UEFI load options are UTF-16) or firmware without
// TDVF metadata.
Result<SimulatedBoot> SimulateBoot(const TdDomain& domain, ByteSpan firmware);

// The kernel's digest in the EV_EFI_BOOT_SERVICES_APPLICATION event: a stand-in for the
// Authenticode hash a real TD measures (SHA-384 of a label and the <kernel> path, or of the first
// disk when the domain boots from disk). Owners pin it as kernel_digest.
evidence::Sha384Digest SimulatedKernelDigest(const TdDomain& domain);
// The "Linux initrd" tag's digest: SHA-384 of the <initrd> file when it is readable and at most
// kMaxMeasuredInitrdBytes, else a stand-in over its path.
inline constexpr size_t kMaxMeasuredInitrdBytes = size_t(64) << 20;
evidence::Sha384Digest SimulatedInitrdDigest(const TdDomain& domain);

}  // namespace tdxvirt::simulator
