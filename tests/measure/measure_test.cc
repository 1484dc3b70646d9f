// tdxvirt measure: MRTD in both page orders, the Authenticode hash against an independent
// implementation, QEMU's setup-header patch, the RTMR1/RTMR2 sequences proven on real OVMF logs,
// and the CLI's exit codes and JSON.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "measure/authenticode.h"
#include "measure/linux_boot.h"
#include "measure/measure.h"
#include "simulator/tdvf.h"
#include "test_util.h"

namespace tdxvirt::measure {
namespace {

using nlohmann::json;
using testing::RunTdxvirt;

void Put16(Bytes& b, size_t at, uint16_t v) { b[at] = uint8_t(v), b[at + 1] = uint8_t(v >> 8); }
void Put32(Bytes& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
}

// A small PE/COFF image shaped like a bzImage with the EFI stub: PE header at 0x80, headers up to
// 0x200, a .setup section [0x200, 0xa00) holding the rest of the setup header, a .text section,
// `trailing` bytes after the sections and an optional attribute certificate table at the end.
struct PeSpec {
  bool pe32plus = true;
  bool setup_header = true;
  uint16_t protocol = 0x20f;
  uint8_t loadflags = 0x01;      // LOADED_HIGH
  uint16_t xloadflags = 0x40;    // XLF_CAN_BE_LOADED_ABOVE_4G
  uint32_t initrd_addr_max = 0x7fffffff;
  uint32_t text_size = 0x400;
  std::string trailing;
  std::string cert;
};
constexpr size_t kOpt = 0x98;
Bytes MakePe(const PeSpec& s) {
  Bytes img(0xa00 + s.text_size, 0);
  img[0] = 'M', img[1] = 'Z';
  Put32(img, 0x3c, 0x80);
  std::memcpy(img.data() + 0x80, "PE\0\0", 4);
  Put16(img, 0x84, 0x8664);
  Put16(img, 0x86, 2);
  const uint16_t opt_size = s.pe32plus ? 240 : 224;
  Put16(img, 0x94, opt_size);
  Put16(img, kOpt, s.pe32plus ? 0x20b : 0x10b);
  Put32(img, kOpt + 60, 0x200);    // SizeOfHeaders
  Put32(img, kOpt + 64, 0x1234);   // CheckSum (excluded)
  Put32(img, kOpt + (s.pe32plus ? 108 : 92), 16);
  const size_t table = kOpt + opt_size;
  std::memcpy(img.data() + table, ".setup", 6);
  Put32(img, table + 16, 0x800);
  Put32(img, table + 20, 0x200);
  std::memcpy(img.data() + table + 40, ".text", 5);
  Put32(img, table + 56, s.text_size);
  Put32(img, table + 60, 0xa00);
  if (s.setup_header) {
    img[0x1f1] = 4;
    std::memcpy(img.data() + 0x202, "HdrS", 4);
    Put16(img, 0x206, s.protocol);
    img[0x211] = s.loadflags;
    Put32(img, 0x22c, s.initrd_addr_max);
    Put16(img, 0x236, s.xloadflags);
  }
  for (size_t i = 0xa00; i < img.size(); ++i) img[i] = uint8_t(i * 7);
  img.insert(img.end(), s.trailing.begin(), s.trailing.end());
  if (!s.cert.empty()) {
    const size_t entry = kOpt + (s.pe32plus ? 112 : 96) + 4 * 8;
    Put32(img, entry, uint32_t(img.size()));
    Put32(img, entry + 4, uint32_t(s.cert.size()));
    img.insert(img.end(), s.cert.begin(), s.cert.end());
  }
  return img;
}

std::string ReferenceAuthenticode(const std::string& path) {
  std::string cmd = std::string("python3 ") + TDXVIRT_AUTHENTICODE_REF + " " + path;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  char buf[200] = {};
  std::string out = fgets(buf, sizeof buf, p) ? buf : "";
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string Hex(const Result<evidence::Sha384Digest>& d) { return d.ok() ? ToHex(*d) : d.error(); }

// ---- MRTD --------------------------------------------------------------------------------------

// An independent statement of the two-pass order: per section, every PAGE.ADD buffer, then every
// page's sixteen (MR.EXTEND buffer, 256 data bytes) pairs.
evidence::Sha384Digest TwoPassByHand(const std::vector<simulator::TdvfSection>& sections,
                                     const Bytes& fw) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha384(), nullptr);
  auto op = [&](const char* name, uint64_t gpa) {
    uint8_t b[128] = {};
    std::memcpy(b, name, std::strlen(name));
    for (int i = 0; i < 8; ++i) b[16 + i] = uint8_t(gpa >> (8 * i));
    EVP_DigestUpdate(ctx, b, 128);
  };
  for (const auto& s : sections) {
    if (!(s.attributes & simulator::kTdvfAttrPageAug))
      for (uint64_t p = 0; p < s.memory_data_size; p += 4096) op("MEM.PAGE.ADD", s.memory_address + p);
    if (s.attributes & simulator::kTdvfAttrMrExtend)
      for (uint64_t off = 0; off < s.memory_data_size; off += 256) {
        op("MR.EXTEND", s.memory_address + off);
        uint8_t chunk[256] = {};
        for (int i = 0; i < 256; ++i)
          if (off + i < s.raw_data_size) chunk[i] = fw[s.data_offset + off + i];
        EVP_DigestUpdate(ctx, chunk, 256);
      }
  }
  evidence::Sha384Digest d{};
  unsigned n = 0;
  EVP_DigestFinal_ex(ctx, d.data(), &n);
  EVP_MD_CTX_free(ctx);
  return d;
}

TEST(MeasureMrtd, SinglePassIsComputeMrtdAndTwoPassIsTheOtherOrder) {
  Bytes fw = simulator::MakeSimulatedTdvf("measure-test", 3);
  auto sections = simulator::ParseTdvfMetadata(fw);
  ASSERT_TRUE(sections.ok()) << sections.error();
  Inputs in;
  in.firmware = fw;
  auto r = Measure(in);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(ToHex(*r->mrtd_single_pass), ToHex(*simulator::ComputeMrtdOfFirmware(fw)));
  EXPECT_EQ(ToHex(*r->mrtd_two_pass), ToHex(TwoPassByHand(*sections, fw)));
  EXPECT_NE(ToHex(*r->mrtd_two_pass), ToHex(*r->mrtd_single_pass));
  // With one page per measured section the two orders are the same sequence of operations.
  Bytes one = simulator::MakeSimulatedTdvf("measure-test", 1);
  auto s1 = simulator::ParseTdvfMetadata(one);
  ASSERT_TRUE(s1.ok());
  EXPECT_EQ(ToHex(simulator::ComputeMrtdTwoPass(*s1, one)), ToHex(simulator::ComputeMrtd(*s1, one)));
}

TEST(MeasureMrtd, FirmwareWithoutTdvfMetadataNamesTheFlag) {
  Inputs in;
  in.firmware = Bytes(8192, 0xff);
  auto r = Measure(in);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(),
            "--firmware: no OVMF GUIDed footer table at 8144 (not an OVMF/TDVF image) (pass the "
            "whole TDVF/OVMF image QEMU loads with -bios)");
}

// ---- Authenticode ------------------------------------------------------------------------------

TEST(Authenticode, MatchesTheIndependentImplementationOnSyntheticImages) {
  testing::TempDir tmp;
  std::vector<PeSpec> specs(4);
  specs[1].pe32plus = false;
  specs[2].trailing = "trailing bytes after the last section";
  specs[3].trailing = "pad!";
  specs[3].cert = std::string("\x18\0\0\0\0\x02\x02\0", 8) + "not really a PKCS#7 blob";
  for (size_t i = 0; i < specs.size(); ++i) {
    Bytes pe = MakePe(specs[i]);
    std::string path = tmp.File("pe" + std::to_string(i));
    testing::WriteFile(path, std::string(AsString(pe)));
    EXPECT_EQ(Hex(AuthenticodeSha384(pe)), ReferenceAuthenticode(path)) << "image " << i;
  }
}

// A real EFI application from a Debian package (systemd-boot-efi, scripts/install-deps.sh).
TEST(Authenticode, MatchesTheIndependentImplementationOnSystemdStub) {
  const std::string stub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
  auto pe = ReadFile(stub, 64 << 20);
  ASSERT_TRUE(pe.ok()) << pe.error() << " (scripts/install-deps.sh installs systemd-boot-efi)";
  auto ranges = AuthenticodeRanges(*pe);
  ASSERT_TRUE(ranges.ok()) << ranges.error();
  EXPECT_GE(ranges->size(), 5u);  // header pieces + several sections
  EXPECT_EQ(Hex(AuthenticodeSha384(*pe)), ReferenceAuthenticode(stub));
  EXPECT_NE(Hex(AuthenticodeSha384(*pe)), ToHex(ossl::Sha384(*pe)));
}

TEST(Authenticode, ExcludesChecksumAndCertificateTableButNotTrailingData) {
  PeSpec s;
  s.trailing = "tail";
  Bytes base = MakePe(s);
  auto d = AuthenticodeSha384(base);
  ASSERT_TRUE(d.ok()) << d.error();
  Bytes checksum = base;
  checksum[kOpt + 64] ^= 0xff;
  EXPECT_EQ(Hex(AuthenticodeSha384(checksum)), ToHex(*d));
  s.cert = std::string(16, 'C');
  EXPECT_EQ(Hex(AuthenticodeSha384(MakePe(s))), ToHex(*d));  // signing does not change the hash
  Bytes tail = base;
  tail.back() ^= 1;
  EXPECT_NE(Hex(AuthenticodeSha384(tail)), ToHex(*d));
  Bytes header = base;
  header[0x40] ^= 1;
  EXPECT_NE(Hex(AuthenticodeSha384(header)), ToHex(*d));
}

TEST(Authenticode, RefusesMalformedImagesNamingTheField) {
  EXPECT_EQ(Hex(AuthenticodeSha384(Bytes(100, 0))),
            "PE image: no DOS header (\"MZ\") at offset 0: not a PE/COFF image");
  Bytes pe = MakePe({});
  Bytes lfanew = pe;
  Put32(lfanew, 0x3c, 0xfffffff0);
  EXPECT_EQ(Hex(AuthenticodeSha384(lfanew)),
            "PE image: e_lfanew at offset 60 is 4294967280, leaving no room for the PE signature "
            "and COFF header in 3584 bytes");
  Bytes section = pe;
  Put32(section, kOpt + 240 + 40 + 16, 0x10000);  // .text SizeOfRawData past the end
  EXPECT_EQ(Hex(AuthenticodeSha384(section)),
            "PE image: section 1 raw data [2560, +65536) (PointerToRawData at offset 452) runs "
            "past the end of the 3584-byte image");
  Bytes many = pe;
  Put16(many, 0x86, 97);
  EXPECT_EQ(Hex(AuthenticodeSha384(many)),
            "PE image: NumberOfSections at offset 134 is 97 (at most 96)");
  Bytes overlap = pe;
  Put32(overlap, kOpt + 240 + 40 + 16, 0xc00);  // .text over .setup: bytes counted twice
  Put32(overlap, kOpt + 240 + 40 + 20, 0x200);
  EXPECT_EQ(Hex(AuthenticodeSha384(overlap)),
            "PE image: SizeOfHeaders plus the sections' SizeOfRawData (5632) exceeds the 3584-byte "
            "image");
  PeSpec tail;
  tail.trailing = "12345678";
  Bytes big_cert = MakePe(tail);
  Put32(big_cert, kOpt + 112 + 32 + 4, 9);
  EXPECT_EQ(Hex(AuthenticodeSha384(big_cert)),
            "PE image: certificate table size 9 (data directory entry 4) is larger than the 8 "
            "bytes after the sections");
}

// ---- QEMU's setup-header patch -----------------------------------------------------------------

uint32_t Le32(const Bytes& b, size_t at) { return LoadLe32(b.data() + at); }
uint16_t Le16(const Bytes& b, size_t at) { return LoadLe16(b.data() + at); }

TEST(SetupHeaderPatch, ModernKernelWithInitrd) {
  Bytes k = MakePe({});
  QemuDirectBoot boot{"console=hvc0", 1000000, 2ull << 30};
  SetupHeaderPatch w;
  auto p = PatchSetupHeaderAsQemu(k, boot, &w);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ((*p)[0x210], 0xb0);                 // type_of_loader: QEMU
  EXPECT_EQ((*p)[0x211], 0x81);                 // LOADED_HIGH | CAN_USE_HEAP
  EXPECT_EQ(Le16(*p, 0x224), 0xfe00);           // heap_end_ptr = 0x20000 - 0x10000 - 0x200
  EXPECT_EQ(Le32(*p, 0x228), 0x20000u);         // cmd_line_ptr
  // XLF_CAN_BE_LOADED_ABOVE_4G: limit = below-4G RAM (2 GiB) - acpi_data_size (0x28000) - 1.
  EXPECT_EQ(Le32(*p, 0x218), (0x7ffd7fffu - 1000000) & ~4095u);
  EXPECT_EQ(Le32(*p, 0x21c), 1000000u);
  EXPECT_EQ(w.ramdisk_image, Le32(*p, 0x218));
  EXPECT_FALSE(w.vid_mode);
  // Nothing outside those fields changed.
  for (size_t i = 0; i < k.size(); ++i) {
    bool field = i == 0x210 || i == 0x211 || (i >= 0x218 && i < 0x220) || (i >= 0x224 && i < 0x226) ||
                 (i >= 0x228 && i < 0x22c);
    if (!field) {
      EXPECT_EQ(k[i], (*p)[i]) << "offset " << i;
    }
  }
}

TEST(SetupHeaderPatch, MemorySizeMovesTheInitrdOnlyWithAnInitrd) {
  Bytes k = MakePe({});
  auto at = [&](uint64_t mem, std::optional<uint64_t> initrd) {
    return *PatchSetupHeaderAsQemu(k, {"", initrd, mem});
  };
  EXPECT_EQ(Le32(at(1ull << 30, 4096), 0x218), (0x40000000u - 0x28000 - 1 - 4096) & ~4095u);
  // q35 keeps 2 GiB below 4 GiB once memory reaches 0xb0000000.
  EXPECT_EQ(Le32(at(3ull << 30, 4096), 0x218), (0x80000000u - 0x28000 - 1 - 4096) & ~4095u);
  EXPECT_EQ(Le32(at(0xa0000000ull, 4096), 0x218), (0xa0000000u - 0x28000 - 1 - 4096) & ~4095u);
  EXPECT_EQ(at(1ull << 30, std::nullopt), at(8ull << 30, std::nullopt));
  // Without XLF_CAN_BE_LOADED_ABOVE_4G the kernel's initrd_addr_max applies.
  PeSpec old;
  old.xloadflags = 0;
  old.initrd_addr_max = 0x37ffffff;
  EXPECT_EQ(Le32(*PatchSetupHeaderAsQemu(MakePe(old), {"", 4096, 4ull << 30}), 0x218),
            (0x37ffffffu - 4096) & ~4095u);
}

TEST(SetupHeaderPatch, LowKernelAndVgaAndRefusals) {
  PeSpec low;
  low.loadflags = 0;  // not LOADED_HIGH: setup at 0x90000, command line below 0x9a000
  auto p = PatchSetupHeaderAsQemu(MakePe(low), {"vga=ask quiet", std::nullopt, 2ull << 30});
  ASSERT_TRUE(p.ok()) << p.error();
  const uint32_t cmdline_addr = 0x9a000 - 16;  // (13 + 16) & ~15
  EXPECT_EQ(Le32(*p, 0x228), cmdline_addr);
  EXPECT_EQ(Le16(*p, 0x224), cmdline_addr - 0x90000 - 0x200);
  EXPECT_EQ(Le16(*p, 0x1fa), 0xfffd);
  EXPECT_EQ(Le16(*PatchSetupHeaderAsQemu(MakePe({}), {"vga=0x317", std::nullopt, 1ull << 30}),
                 0x1fa),
            0x317);
  EXPECT_EQ(PatchSetupHeaderAsQemu(MakePe({}), {"vga=foo", std::nullopt, 1ull << 30}).error(),
            "--cmdline: invalid \"vga=\" value (QEMU refuses it): use normal, ext, ask or a number");
  EXPECT_EQ(PatchSetupHeaderAsQemu(MakePe({}), {"", 0x7ffd7fff, 2ull << 30}).error(),
            "--initrd: 2147319807 bytes does not fit below the initrd limit 2147319807 for this "
            "kernel and --memory (QEMU refuses it)");
  PeSpec none;
  none.setup_header = false;
  EXPECT_EQ(PatchSetupHeaderAsQemu(MakePe(none), {}).error(),
            "kernel: no Linux setup header (\"HdrS\" at offset 0x202): not a bzImage; pass the "
            "kernel QEMU boots with -kernel");
}

// ---- The event sequences, proven on real OVMF direct-boot logs ---------------------------------

struct LogEvent {
  uint32_t mr, type;
  evidence::Sha384Digest digest;
  Bytes data;
};
// A minimal reader for the SHA-384-only TDX logs in testdata (bounded; fails the test on a bad log).
std::vector<LogEvent> ReadLog(const Bytes& log) {
  std::vector<LogEvent> out;
  auto need = [&](size_t at, size_t n) { return at <= log.size() && n <= log.size() - at; };
  if (!need(0, 32)) return out;
  size_t p = 32 + LoadLe32(log.data() + 28);
  while (need(p, 12 + 50 + 4)) {
    uint32_t mr = LoadLe32(log.data() + p), type = LoadLe32(log.data() + p + 4);
    if (mr == 0xffffffff) break;
    EXPECT_EQ(LoadLe32(log.data() + p + 8), 1u);
    EXPECT_EQ(LoadLe16(log.data() + p + 12), 0x000c);
    LogEvent e{mr, type, {}, {}};
    std::memcpy(e.digest.data(), log.data() + p + 14, 48);
    uint32_t size = LoadLe32(log.data() + p + 62);
    if (!need(p + 66, size)) break;
    e.data.assign(log.begin() + p + 66, log.begin() + p + 66 + size);
    out.push_back(e);
    p += 66 + size;
  }
  return out;
}

std::string Rtmr(const std::string& kase, int i) {
  // RTMR1 and RTMR2 from shared/testdata/eventlogs/MANIFEST.md.
  static const std::map<std::string, std::array<std::string, 2>> k = {
      {"ovmf-direct-boot",
       {"6484f0d72c03521c0434553be34e8db8228b729e799666d2b7754085c77aa9981f5a440df3047194b24f212ff1160c1e",
        "c3e7ed9d7e909b29732f676d01dc63de869b049362b522a315cb042689670be07344c347cf85d985c7b928d4934e41e1"}},
      {"trustee-ovmf",
       {"775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6",
        "94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a"}}};
  return k.at(kase)[i - 1];
}

class RealDirectBootLog : public ::testing::TestWithParam<std::string> {};

TEST_P(RealDirectBootLog, KernelDigestFromTheLogGivesThePublishedRtmr1) {
  auto events = ReadLog(testing::ReadTestdata("eventlogs/" + GetParam() + "/ccel.bin"));
  std::optional<evidence::Sha384Digest> kernel;
  for (const auto& e : events)
    if (e.mr == 2 && e.type == 0x80000003) kernel = e.digest;
  ASSERT_TRUE(kernel);
  EXPECT_EQ(ToHex(DirectBootRtmr1(*kernel)), Rtmr(GetParam(), 1));
  EXPECT_NE(ToHex(DirectBootRtmr1(*kernel, /*separator_in_rtmr1=*/true)), Rtmr(GetParam(), 1));
}

TEST_P(RealDirectBootLog, LoadOptionsAndInitrdDigestsFromTheLogGiveThePublishedRtmr2) {
  auto events = ReadLog(testing::ReadTestdata("eventlogs/" + GetParam() + "/ccel.bin"));
  std::vector<evidence::Sha384Digest> tags;
  for (const auto& e : events)
    if (e.mr == 3) {
      EXPECT_EQ(e.type, 6u);
      tags.push_back(e.digest);
    }
  ASSERT_GE(tags.size(), 1u);
  ASSERT_LE(tags.size(), 2u);
  std::optional<evidence::Sha384Digest> initrd;
  if (tags.size() == 2) initrd = tags[1];
  EXPECT_EQ(ToHex(DirectBootRtmr2(tags[0], initrd)), Rtmr(GetParam(), 2));
  if (initrd) {
    EXPECT_NE(ToHex(DirectBootRtmr2(tags[0], std::nullopt)), Rtmr(GetParam(), 2));
  }
}

INSTANTIATE_TEST_SUITE_P(Ovmf, RealDirectBootLog,
                         ::testing::Values("ovmf-direct-boot", "trustee-ovmf"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

TEST(LoadOptions, DigestIsSha384OfTheUtf16TextWithInitrdSuffix) {
  std::string text = "console=hvc0 initrd=initrd";
  Bytes utf16;
  for (char c : text) utf16.push_back(uint8_t(c)), utf16.push_back(0);
  utf16.push_back(0), utf16.push_back(0);
  EXPECT_EQ(Hex(LoadOptionsDigest("console=hvc0", true)), ToHex(ossl::Sha384(utf16)));
  EXPECT_EQ(LoadOptionsDigest("bad \xff", false).error(),
            "--cmdline: text is not UTF-8 at byte 4; pass UTF-8 text");
}

TEST(Measure, ReportJoinsTheEventsAndRegisters) {
  Inputs in;
  in.kernel = MakePe({});
  in.cmdline = "console=hvc0";
  in.initrd = Inputs::Initrd{ossl::Sha384(AsBytes("initrd bytes")), 12};
  in.memory_bytes = 4ull << 30;
  in.cpus = 2;
  auto r = Measure(in);
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r->events.size(), 3u);
  auto patched = *PatchSetupHeaderAsQemu(*in.kernel, {"console=hvc0", 12, 4ull << 30});
  EXPECT_EQ(ToHex(r->events[0].digest), Hex(AuthenticodeSha384(patched)));
  EXPECT_EQ(ToHex(*r->events[0].digest_unpatched), Hex(AuthenticodeSha384(*in.kernel)));
  EXPECT_EQ(ToHex(*r->rtmr1), ToHex(DirectBootRtmr1(r->events[0].digest)));
  EXPECT_EQ(ToHex(*r->rtmr1_unpatched), ToHex(DirectBootRtmr1(*r->events[0].digest_unpatched)));
  EXPECT_EQ(*r->events[1].text, "console=hvc0 initrd=initrd");
  EXPECT_EQ(ToHex(r->events[1].digest), Hex(LoadOptionsDigest("console=hvc0", true)));
  EXPECT_EQ(ToHex(r->events[2].digest), ToHex(in.initrd->digest));
  EXPECT_EQ(ToHex(*r->rtmr2), ToHex(DirectBootRtmr2(r->events[1].digest, in.initrd->digest)));
  bool cpus_limit = false;
  for (const auto& l : r->limits) cpus_limit |= l.rfind("cpus: ", 0) == 0;
  EXPECT_TRUE(cpus_limit);
  EXPECT_FALSE(r->mrtd_single_pass);
}

// ---- CLI ---------------------------------------------------------------------------------------

struct CliFiles {
  testing::TempDir tmp;
  std::string fw = tmp.File("tdvf.fd"), kernel = tmp.File("bzImage"), initrd = tmp.File("initrd");
  CliFiles() {
    testing::WriteFile(fw, std::string(AsString(simulator::MakeSimulatedTdvf("cli", 2))));
    testing::WriteFile(kernel, std::string(AsString(MakePe({}))));
    testing::WriteFile(initrd, "initrd bytes");
  }
};

TEST(MeasureCli, JsonCarriesMrtdEventsAndRegisters) {
  CliFiles f;
  auto r = RunTdxvirt("measure --firmware " + f.fw + " --kernel " + f.kernel + " --initrd " +
                      f.initrd + " --cmdline 'console=hvc0 root=/dev/vda' --memory 4G --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  Bytes fw = simulator::MakeSimulatedTdvf("cli", 2);
  EXPECT_EQ(j["mrtd"]["single_pass"], ToHex(*simulator::ComputeMrtdOfFirmware(fw)));
  EXPECT_EQ(j["mrtd"]["two_pass"],
            ToHex(simulator::ComputeMrtdTwoPass(*simulator::ParseTdvfMetadata(fw), fw)));
  ASSERT_EQ(j["events"].size(), 3u);
  EXPECT_EQ(j["events"][0]["register"], "rtmr1");
  EXPECT_EQ(j["events"][0]["type"], "EV_EFI_BOOT_SERVICES_APPLICATION");
  EXPECT_EQ(j["events"][1]["what"], "LOADED_IMAGE::LoadOptions");
  EXPECT_EQ(j["events"][1]["text"], "console=hvc0 root=/dev/vda initrd=initrd");
  EXPECT_EQ(j["events"][1]["digest"], Hex(LoadOptionsDigest("console=hvc0 root=/dev/vda", true)));
  EXPECT_EQ(j["events"][2]["what"], "Linux initrd");
  EXPECT_EQ(j["events"][2]["digest"], ToHex(ossl::Sha384(AsBytes("initrd bytes"))));
  auto patched = *PatchSetupHeaderAsQemu(MakePe({}), {"console=hvc0 root=/dev/vda", 12, 4ull << 30});
  EXPECT_EQ(j["events"][0]["digest"], Hex(AuthenticodeSha384(patched)));
  EXPECT_EQ(j["rtmr1"], ToHex(DirectBootRtmr1(*AuthenticodeSha384(patched))));
  EXPECT_EQ(j["rtmr2"].get<std::string>().size(), 96u);
  EXPECT_TRUE(j["limits"].is_array());
}

TEST(MeasureCli, RefusesBadInputWithExitTwoNamingTheFlag) {
  CliFiles f;
  auto missing = RunTdxvirt("measure --kernel " + f.tmp.File("nope"));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(missing.err.rfind("tdxvirt: error: --kernel: ", 0), 0u) << missing.err;
  auto no_meta = RunTdxvirt("measure --firmware " + f.initrd);
  EXPECT_EQ(no_meta.exit_code, 2);
  EXPECT_EQ(no_meta.err,
            "tdxvirt: error: --firmware: 12 bytes is too small for an OVMF footer table (is this "
            "a TDVF image?) (pass the whole TDVF/OVMF image QEMU loads with -bios)\n");
  auto not_bz = RunTdxvirt("measure --kernel " + f.fw);
  EXPECT_EQ(not_bz.exit_code, 2);
  EXPECT_EQ(not_bz.err,
            "tdxvirt: error: --kernel: no Linux setup header (\"HdrS\" at offset 0x202): not a "
            "bzImage; pass the kernel QEMU boots with -kernel\n");
  auto utf8 = RunTdxvirt("measure --cmdline \"$(printf 'a\\377')\"");
  EXPECT_EQ(utf8.exit_code, 2);
  EXPECT_EQ(utf8.err,
            "tdxvirt: error: --cmdline: text is not UTF-8 at byte 1; pass UTF-8 text\n");
  auto memory = RunTdxvirt("measure --cmdline x --memory 2X");
  EXPECT_EQ(memory.exit_code, 2);
  EXPECT_EQ(memory.err, "tdxvirt: error: --memory 2X: unknown unit \"X\" (use K, M, G or T)\n");
  auto nothing = RunTdxvirt("measure");
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_EQ(nothing.err, "tdxvirt: error: nothing to measure: give --firmware and/or --kernel, "
                         "--cmdline, --initrd\n");
}

}  // namespace
}  // namespace tdxvirt::measure
