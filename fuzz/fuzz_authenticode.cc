// The PE/COFF walk of the Authenticode hash and QEMU's setup-header patch (measure/).
#include <cstddef>
#include <cstdint>

#include "measure/authenticode.h"
#include "measure/linux_boot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tdxvirt::ByteSpan in(data, size);
  (void)tdxvirt::measure::AuthenticodeSha384(in);
  tdxvirt::measure::QemuDirectBoot boot;
  boot.cmdline = "console=hvc0 vga=0x317";
  boot.initrd_size = size;
  auto patched = tdxvirt::measure::PatchSetupHeaderAsQemu(in, boot);
  if (patched.ok()) (void)tdxvirt::measure::AuthenticodeSha384(*patched);
  return 0;
}
