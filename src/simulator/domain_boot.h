// What a simulated TDX host takes from a libvirt TD domain when it boots it, as QEMU would: the
// firmware (<os><loader>), the TD attributes (<launchSecurity><policy>, QEMU's default 0x10000000
// when absent), MRCONFIGID/MROWNER/MROWNERCONFIG (base64 of 48 bytes), and the configuration the
// firmware measures into RTMRs.
//
// MRTD is computed from the firmware bytes exactly as the TDX module does (tdvf.h). The RTMRs are
// a documented stand-in: real TDVF extends RTMR0 with the TD HOB, the configuration volume and
// ACPI tables, RTMR1 with the boot loader and kernel, RTMR2 with the command line; the simulator
// extends each with a SHA-384 of the domain settings that decide those (see docs/simulator.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
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
  std::string cmdline;             // <os><cmdline>, direct kernel boot
};

// Reads a TD domain; fails, naming the element, when the XML is not a TD domain
// (<launchSecurity type='tdx'> missing) or a value is malformed.
Result<TdDomain> ReadTdDomain(std::string_view domain_xml);

// The TdConfig of the TD the host would boot from `domain` with `firmware` as its loader.
Result<TdConfig> TdConfigForDomain(const TdDomain& domain, ByteSpan firmware);

// The RTMR0..2 extensions the simulator's firmware makes for `domain` (one digest per RTMR).
std::vector<std::pair<int, evidence::Sha384Digest>> SimulatedBootMeasurements(const TdDomain& domain);

}  // namespace tdxvirt::simulator
