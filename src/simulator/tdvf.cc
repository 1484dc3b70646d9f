#include "simulator/tdvf.h"

#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <memory>

#include "common/openssl.h"

namespace tdxvirt::simulator {

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kChunk = 256;
// GUIDs in EFI byte order (first three fields little-endian).
constexpr std::array<uint8_t, 16> kFooterGuid = {0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45,
                                                 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d};
constexpr std::array<uint8_t, 16> kTdxMetadataGuid = {0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98,
                                                      0x98, 0x47, 0x86, 0x5e, 0x46, 0x85,
                                                      0xa7, 0xbf, 0x8e, 0xc2};
constexpr uint32_t kTdvfSignature = 0x46564454;  // "TDVF"
constexpr size_t kEntryTrailer = 2 + 16;         // u16 length + GUID
constexpr size_t kSectionSize = 32;
constexpr uint32_t kMaxSections = 64;

void StoreLe(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = uint8_t(v >> (8 * i));
}

// The metadata offset from the GUIDed footer table, as QEMU's pc_system_parse_ovmf_flash walks it.
Result<uint32_t> FindMetadataOffset(ByteSpan fw) {
  if (fw.size() < 32 + kEntryTrailer)
    return Error{"firmware: " + std::to_string(fw.size()) +
                 " bytes is too small for an OVMF footer table (is this a TDVF image?)"};
  size_t end = fw.size() - 32;  // the footer GUID ends here
  if (std::memcmp(fw.data() + end - 16, kFooterGuid.data(), 16) != 0)
    return Error{"firmware: no OVMF GUIDed footer table at " + std::to_string(end - 16) +
                 " (not an OVMF/TDVF image)"};
  size_t table_len = LoadLe16(fw.data() + end - kEntryTrailer);
  if (table_len < kEntryTrailer || table_len > end)
    return Error{"firmware: footer table length " + std::to_string(table_len) + " is out of range"};
  size_t table_start = end - table_len;
  size_t pos = end - kEntryTrailer;  // entries before the footer entry, walking backwards
  while (pos - table_start >= kEntryTrailer) {
    const uint8_t* guid = fw.data() + pos - 16;
    size_t len = LoadLe16(fw.data() + pos - kEntryTrailer);
    if (len < kEntryTrailer || len > pos - table_start)
      return Error{"firmware: footer table entry ending at " + std::to_string(pos) +
                   " has bad length " + std::to_string(len)};
    if (std::memcmp(guid, kTdxMetadataGuid.data(), 16) == 0) {
      if (len - kEntryTrailer < 4)
        return Error{"firmware: TDX metadata offset entry is shorter than 4 bytes"};
      return LoadLe32(fw.data() + pos - len);
    }
    pos -= len;
  }
  return Error{"firmware: no TDX metadata entry (GUID e47a6535-984a-4798-865e-4685a7bf8ec2) in the "
               "OVMF footer table: this OVMF was not built for TDX"};
}

class Sha384Stream {
 public:
  Sha384Stream() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha384(), nullptr); }
  void Update(const uint8_t* p, size_t n) { EVP_DigestUpdate(ctx_.get(), p, n); }
  evidence::Sha384Digest Final() {
    evidence::Sha384Digest d{};
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), d.data(), &n);
    return d;
  }

 private:
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
};

// One 128-byte SEAMCALL buffer: the operation name, zero padding to 16, the GPA, zeros.
void HashOp(Sha384Stream& h, std::string_view op, uint64_t gpa) {
  uint8_t buf[128] = {};
  std::memcpy(buf, op.data(), op.size());
  StoreLe(buf + 16, gpa, 8);
  h.Update(buf, sizeof buf);
}

}  // namespace

Result<std::vector<TdvfSection>> ParseTdvfMetadata(ByteSpan fw) {
  auto offset = FindMetadataOffset(fw);
  if (!offset.ok()) return Error{offset.error()};
  if (*offset < 16 || *offset > fw.size())
    return Error{"firmware: TDX metadata offset " + std::to_string(*offset) +
                 " points outside the " + std::to_string(fw.size()) + "-byte image"};
  size_t at = fw.size() - *offset;
  const uint8_t* d = fw.data() + at;
  if (LoadLe32(d) != kTdvfSignature)
    return Error{"firmware: TDVF descriptor at " + std::to_string(at) + " lacks signature \"TDVF\""};
  uint32_t length = LoadLe32(d + 4), version = LoadLe32(d + 8), n = LoadLe32(d + 12);
  if (version != 1)
    return Error{"firmware: TDVF descriptor version " + std::to_string(version) + " (expected 1)"};
  if (n < 2 || n > kMaxSections)
    return Error{"firmware: TDVF descriptor has " + std::to_string(n) +
                 " sections (expected 2.." + std::to_string(kMaxSections) + ")"};
  if (length != 16 + kSectionSize * n || length > fw.size() - at)
    return Error{"firmware: TDVF descriptor length " + std::to_string(length) + " does not fit " +
                 std::to_string(n) + " sections inside the image"};
  std::vector<TdvfSection> sections;
  for (uint32_t i = 0; i < n; ++i) {
    const uint8_t* s = d + 16 + kSectionSize * i;
    TdvfSection sec{LoadLe32(s), LoadLe32(s + 4), LoadLe64(s + 8), LoadLe64(s + 16),
                    LoadLe32(s + 24), LoadLe32(s + 28)};
    std::string name = "firmware: TDVF section " + std::to_string(i);
    if (sec.memory_address % kPage || sec.memory_data_size % kPage)
      return Error{name + ": memory address/size not 4 KiB aligned"};
    if (sec.memory_data_size == 0 || sec.memory_data_size > kMaxTdvfSectionBytes)
      return Error{name + ": memory size " + std::to_string(sec.memory_data_size) +
                   " out of range (1 page .. 1 GiB)"};
    if (sec.memory_address > UINT64_MAX - sec.memory_data_size)
      return Error{name + ": memory range wraps around"};
    if (sec.raw_data_size > sec.memory_data_size ||
        uint64_t(sec.data_offset) + sec.raw_data_size > fw.size())
      return Error{name + ": raw data [" + std::to_string(sec.data_offset) + ", +" +
                   std::to_string(sec.raw_data_size) + ") is not inside the image and its region"};
    if (sec.type > uint32_t(TdvfSectionType::kTempMem))
      return Error{name + ": unknown type " + std::to_string(sec.type)};
    sections.push_back(sec);
  }
  return sections;
}

namespace {

// MR.EXTEND of one 4 KiB page in 256-byte chunks; bytes past the raw data are the zeros of the
// rest of the region.
void ExtendPage(Sha384Stream& h, const TdvfSection& s, uint64_t page, ByteSpan fw) {
  uint8_t chunk[kChunk];
  uint64_t gpa = s.memory_address + page;
  for (uint64_t c = 0; c < kPage; c += kChunk) {
    HashOp(h, "MR.EXTEND", gpa + c);
    std::memset(chunk, 0, sizeof chunk);
    uint64_t rel = page + c;
    if (rel < s.raw_data_size) {
      uint64_t take = std::min<uint64_t>(kChunk, s.raw_data_size - rel);
      if (s.data_offset + rel + take <= fw.size())
        std::memcpy(chunk, fw.data() + s.data_offset + rel, take);
    }
    h.Update(chunk, sizeof chunk);
  }
}

evidence::Sha384Digest Mrtd(const std::vector<TdvfSection>& sections, ByteSpan fw,
                            bool two_pass) {
  Sha384Stream h;
  for (const auto& s : sections) {
    const bool add = !(s.attributes & kTdvfAttrPageAug);
    const bool extend = (s.attributes & kTdvfAttrMrExtend) != 0;
    for (uint64_t page = 0; page < s.memory_data_size; page += kPage) {
      if (add) HashOp(h, "MEM.PAGE.ADD", s.memory_address + page);
      if (extend && !two_pass) ExtendPage(h, s, page, fw);
    }
    if (extend && two_pass)
      for (uint64_t page = 0; page < s.memory_data_size; page += kPage) ExtendPage(h, s, page, fw);
  }
  return h.Final();
}

}  // namespace

evidence::Sha384Digest ComputeMrtd(const std::vector<TdvfSection>& sections, ByteSpan fw) {
  return Mrtd(sections, fw, /*two_pass=*/false);
}

evidence::Sha384Digest ComputeMrtdTwoPass(const std::vector<TdvfSection>& sections, ByteSpan fw) {
  return Mrtd(sections, fw, /*two_pass=*/true);
}

Result<evidence::Sha384Digest> ComputeMrtdOfFirmware(ByteSpan firmware) {
  auto sections = ParseTdvfMetadata(firmware);
  if (!sections.ok()) return Error{sections.error()};
  return ComputeMrtd(*sections, firmware);
}

Bytes MakeSimulatedTdvf(std::string_view label, uint32_t bfv_pages) {
  // Layout: [CFV 1 page][BFV bfv_pages][descriptor page][footer table ... 32 reset-vector bytes].
  const uint32_t cfv_off = 0, bfv_off = kPage, desc_off = kPage * (1 + bfv_pages);
  const uint32_t image = desc_off + 2 * kPage;
  Bytes fw(image, 0);
  // Deterministic contents from the label: SHA-384 counter stream.
  for (uint32_t off = 0; off < desc_off; off += 48) {
    std::string seed = std::string(label) + ":" + std::to_string(off);
    auto block = ossl::Sha384(AsBytes(seed));
    std::memcpy(fw.data() + off, block.data(), std::min<size_t>(48, desc_off - off));
  }
  const uint32_t n = 4;
  uint8_t* d = fw.data() + desc_off;
  StoreLe(d, kTdvfSignature, 4);
  StoreLe(d + 4, 16 + kSectionSize * n, 4);
  StoreLe(d + 8, 1, 4);
  StoreLe(d + 12, n, 4);
  const uint64_t top = 0x100000000ull;  // firmware is mapped to end at 4 GiB
  struct {
    uint32_t off, raw;
    uint64_t addr, size;
    TdvfSectionType type;
    uint32_t attr;
  } secs[n] = {
      {bfv_off, bfv_pages * uint32_t(kPage), top - uint64_t(bfv_pages) * kPage,
       uint64_t(bfv_pages) * kPage, TdvfSectionType::kBfv, kTdvfAttrMrExtend},
      {cfv_off, uint32_t(kPage), top - uint64_t(bfv_pages + 1) * kPage, kPage,
       TdvfSectionType::kCfv, kTdvfAttrMrExtend},
      {0, 0, 0x809000, 2 * kPage, TdvfSectionType::kTdHob, 0},
      {0, 0, 0x80b000, 8 * kPage, TdvfSectionType::kTempMem, 0},
  };
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t* s = d + 16 + kSectionSize * i;
    StoreLe(s, secs[i].off, 4);
    StoreLe(s + 4, secs[i].raw, 4);
    StoreLe(s + 8, secs[i].addr, 8);
    StoreLe(s + 16, secs[i].size, 8);
    StoreLe(s + 24, uint32_t(secs[i].type), 4);
    StoreLe(s + 28, secs[i].attr, 4);
  }
  // Footer table, ending 32 bytes before the end: [u32 offset][u16 22][metadata GUID]
  // [u16 table_len][footer GUID].
  uint8_t* end = fw.data() + image - 32;
  uint8_t* footer_guid = end - 16;
  std::memcpy(footer_guid, kFooterGuid.data(), 16);
  const uint16_t entry_len = 4 + kEntryTrailer;
  StoreLe(footer_guid - 2, entry_len + kEntryTrailer, 2);  // table length incl. the footer entry
  uint8_t* meta_guid = footer_guid - 2 - 16;
  std::memcpy(meta_guid, kTdxMetadataGuid.data(), 16);
  StoreLe(meta_guid - 2, entry_len, 2);
  StoreLe(meta_guid - 2 - 4, image - desc_off, 4);
  return fw;
}

}  // namespace tdxvirt::simulator
