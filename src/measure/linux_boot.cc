#include "measure/linux_boot.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace tdxvirt::measure {

namespace {

void Store16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
void Store32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}

constexpr uint16_t kXlfCanBeLoadedAbove4g = 0x40;
constexpr uint8_t kLoadedHigh = 0x01;
constexpr uint8_t kCanUseHeap = 0x80;

// QEMU's "vga=" handling: normal/ext/ask, or a number (C syntax, base 0) ending the option.
Result<std::optional<uint16_t>> VideoMode(const std::string& cmdline) {
  size_t at = cmdline.find("vga=");
  if (at == std::string::npos) return std::optional<uint16_t>{};
  std::string v = cmdline.substr(at + 4);
  if (v.rfind("normal", 0) == 0) return std::optional<uint16_t>{0xffff};
  if (v.rfind("ext", 0) == 0) return std::optional<uint16_t>{0xfffe};
  if (v.rfind("ask", 0) == 0) return std::optional<uint16_t>{0xfffd};
  errno = 0;
  char* end = nullptr;
  unsigned long n = std::strtoul(v.c_str(), &end, 0);
  if (end == v.c_str() || errno || n > 0xffffffffu || (*end && *end != ' ') || v[0] == '-' ||
      v[0] == ' ' || v[0] == '+')
    return Error{"--cmdline: invalid \"vga=\" value (QEMU refuses it): use normal, ext, ask or a "
                 "number"};
  return std::optional<uint16_t>{uint16_t(n)};  // QEMU stores the low 16 bits
}

}  // namespace

uint64_t Below4gMemory(uint64_t memory_bytes) {
  const uint64_t lowmem = memory_bytes >= 0xb0000000ull ? 0x80000000ull : 0xb0000000ull;
  return memory_bytes >= lowmem ? lowmem : memory_bytes;
}

Result<Bytes> PatchSetupHeaderAsQemu(ByteSpan kernel, const QemuDirectBoot& boot,
                                     SetupHeaderPatch* written) {
  if (kernel.size() < kMinBzImage || std::memcmp(kernel.data() + kHeaderMagic, "HdrS", 4) != 0)
    return Error{"kernel: no Linux setup header (\"HdrS\" at offset 0x202): not a bzImage; pass "
                 "the kernel QEMU boots with -kernel"};
  Bytes k(kernel.begin(), kernel.end());
  uint8_t* h = k.data();
  SetupHeaderPatch w;
  w.protocol = LoadLe16(h + kVersion);
  const uint16_t protocol = w.protocol;
  // QEMU copies only the setup sectors back; the fields below all lie inside them.
  uint64_t setup_size = (uint64_t(h[kSetupSects] ? h[kSetupSects] : 4) + 1) * 512;
  if (setup_size > k.size())
    return Error{"kernel: setup_sects at 0x1f1 claims " + std::to_string(setup_size) +
                 " bytes of setup in a " + std::to_string(k.size()) +
                 "-byte image (QEMU: \"invalid kernel header\")"};

  const uint32_t cmdline_size = uint32_t((boot.cmdline.size() + 16) & ~size_t(15));
  uint32_t real_addr, cmdline_addr;
  if (protocol < 0x200 || !(h[kLoadflags] & kLoadedHigh) || protocol < 0x202) {
    real_addr = 0x90000;
    cmdline_addr = 0x9a000 - cmdline_size;
  } else {
    real_addr = 0x10000;
    cmdline_addr = 0x20000;
  }
  uint32_t initrd_max;
  if (protocol >= 0x20c && (LoadLe16(h + kXloadflags) & kXlfCanBeLoadedAbove4g))
    initrd_max = 0xffffffffu;
  else if (protocol >= 0x203)
    initrd_max = LoadLe32(h + kInitrdAddrMax);
  else
    initrd_max = 0x37ffffff;
  const uint64_t below_4g = Below4gMemory(boot.memory_bytes);
  if (below_4g <= boot.acpi_data_size + 1ull)
    return Error{"--memory: " + std::to_string(boot.memory_bytes) + " bytes is too small"};
  if (initrd_max >= below_4g - boot.acpi_data_size)
    initrd_max = uint32_t(below_4g - boot.acpi_data_size - 1);

  if (protocol >= 0x202) {
    Store32(h + kCmdLinePtr, cmdline_addr);
    w.cmd_line_ptr = cmdline_addr;
  } else {
    Store16(h + 0x20, 0xa33f);  // old command line protocol: magic and offset
    Store16(h + 0x22, uint16_t(cmdline_addr - real_addr));
  }
  auto vga = VideoMode(boot.cmdline);
  if (!vga.ok()) return Error{vga.error()};
  if (*vga) {
    Store16(h + kVidMode, **vga);
    w.vid_mode = *vga;
  }
  if (protocol >= 0x200) h[kTypeOfLoader] = 0xb0;  // QEMU's loader id, revision 0
  if (protocol >= 0x201) {
    h[kLoadflags] |= kCanUseHeap;
    Store16(h + kHeapEndPtr, uint16_t(cmdline_addr - real_addr - 0x200));
    w.heap_end_ptr = uint16_t(cmdline_addr - real_addr - 0x200);
  }
  if (boot.initrd_size) {
    if (protocol < 0x200)
      return Error{"--initrd: boot protocol " + std::to_string(protocol >> 8) + "." +
                   std::to_string(protocol & 0xff) +
                   " is too old to load an initrd (QEMU refuses it)"};
    if (*boot.initrd_size >= initrd_max)
      return Error{"--initrd: " + std::to_string(*boot.initrd_size) +
                   " bytes does not fit below the initrd limit " + std::to_string(initrd_max) +
                   " for this kernel and --memory (QEMU refuses it)"};
    const uint32_t size = uint32_t(*boot.initrd_size);
    const uint32_t addr = (initrd_max - size) & ~4095u;
    Store32(h + kRamdiskImage, addr);
    Store32(h + kRamdiskSize, size);
    w.ramdisk_image = addr;
    w.ramdisk_size = size;
  }
  w.type_of_loader = h[kTypeOfLoader];
  w.loadflags = h[kLoadflags];
  if (written) *written = w;
  return k;
}

}  // namespace tdxvirt::measure
