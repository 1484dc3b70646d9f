// What QEMU does to a bzImage before OVMF measures it in a direct boot (`-kernel`): x86_load_linux
// (hw/i386/x86-common.c; x86.c before QEMU 9.1) writes boot-protocol fields into its copy of the
// setup header and hands OVMF the patched setup through fw_cfg. OVMF reassembles the image and its
// Authenticode hash covers those bytes, so the kernel digest in RTMR1 is that of the *patched*
// image, and some patched fields depend on the command line length, the initrd size and the memory
// size. QEMU 10 also exposes the unpatched image (fw_cfg "etc/boot/kernel"), which newer OVMF
// measures instead (docs/measure.md); `tdxvirt measure` reports both digests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/result.h"

namespace tdxvirt::measure {

// Linux boot protocol (Documentation/arch/x86/boot.rst) offsets QEMU writes.
inline constexpr size_t kSetupSects = 0x1f1;
inline constexpr size_t kVidMode = 0x1fa;
inline constexpr size_t kHeaderMagic = 0x202;  // "HdrS"
inline constexpr size_t kVersion = 0x206;
inline constexpr size_t kTypeOfLoader = 0x210;
inline constexpr size_t kLoadflags = 0x211;
inline constexpr size_t kRamdiskImage = 0x218;
inline constexpr size_t kRamdiskSize = 0x21c;
inline constexpr size_t kHeapEndPtr = 0x224;
inline constexpr size_t kCmdLinePtr = 0x228;
inline constexpr size_t kInitrdAddrMax = 0x22c;
inline constexpr size_t kXloadflags = 0x236;
inline constexpr size_t kMinBzImage = 0x260;  // through the fields above

struct QemuDirectBoot {
  std::string cmdline;                 // -append
  std::optional<uint64_t> initrd_size; // -initrd, when given
  uint64_t memory_bytes = 2ull << 30;  // -m
  // pc/q35 acpi_data_size (0x20000 + 0x8000): reserved below the top of low memory, so it moves
  // the initrd address QEMU writes.
  uint32_t acpi_data_size = 0x28000;
};

// The fields QEMU wrote, for reports and tests.
struct SetupHeaderPatch {
  uint16_t protocol = 0;
  uint8_t type_of_loader = 0;
  uint8_t loadflags = 0;
  uint16_t heap_end_ptr = 0;
  uint32_t cmd_line_ptr = 0;        // protocol >= 2.02; older ones get the 0x20/0x22 fields
  uint32_t ramdisk_image = 0;
  uint32_t ramdisk_size = 0;
  std::optional<uint16_t> vid_mode; // from "vga=" on the command line
};

// QEMU's low-memory split for q35: RAM below 4 GiB is min(memory, 0xb0000000), or 2 GiB when the
// machine has at least 0xb0000000 bytes.
uint64_t Below4gMemory(uint64_t memory_bytes);

// `kernel` with QEMU's setup-header writes applied (same size). Errors (prefixed "kernel: ") for an
// image without the "HdrS" setup header, a kernel too old for an initrd, an initrd that does not fit
// below the initrd limit, or an invalid "vga=" value: QEMU refuses to start in those cases.
Result<Bytes> PatchSetupHeaderAsQemu(ByteSpan kernel, const QemuDirectBoot& boot,
                                     SetupHeaderPatch* written = nullptr);

}  // namespace tdxvirt::measure
