#include "measure/authenticode.h"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <string>

namespace tdxvirt::measure {

namespace {

constexpr uint64_t kDosLfanew = 0x3c;
constexpr uint64_t kCoffSize = 20;
constexpr uint64_t kSectionHeaderSize = 40;
constexpr uint16_t kMagicPe32 = 0x10b;
constexpr uint16_t kMagicPe32Plus = 0x20b;
constexpr uint32_t kCertificateDirectory = 4;  // IMAGE_DIRECTORY_ENTRY_SECURITY

std::string At(uint64_t offset) { return " at offset " + std::to_string(offset); }

Error Bad(const std::string& what) { return Error{"PE image: " + what}; }

}  // namespace

Result<std::vector<HashedRange>> AuthenticodeRanges(ByteSpan pe) {
  const uint64_t size = pe.size();
  const uint8_t* d = pe.data();
  if (size < kDosLfanew + 4 || d[0] != 'M' || d[1] != 'Z')
    return Bad("no DOS header (\"MZ\") at offset 0: not a PE/COFF image");
  const uint64_t nt = LoadLe32(d + kDosLfanew);
  if (nt > size || size - nt < 4 + kCoffSize)
    return Bad("e_lfanew" + At(kDosLfanew) + " is " + std::to_string(nt) +
               ", leaving no room for the PE signature and COFF header in " +
               std::to_string(size) + " bytes");
  if (d[nt] != 'P' || d[nt + 1] != 'E' || d[nt + 2] != 0 || d[nt + 3] != 0)
    return Bad("no PE signature (\"PE\\0\\0\")" + At(nt));
  const uint64_t coff = nt + 4;
  const uint16_t sections = LoadLe16(d + coff + 2);
  const uint16_t opt_size = LoadLe16(d + coff + 16);
  if (sections > kMaxPeSections)
    return Bad("NumberOfSections" + At(coff + 2) + " is " + std::to_string(sections) +
               " (at most " + std::to_string(kMaxPeSections) + ")");
  const uint64_t opt = coff + kCoffSize;
  if (opt_size < 2 || opt_size > size - opt)
    return Bad("SizeOfOptionalHeader" + At(coff + 16) + " is " + std::to_string(opt_size) +
               ", past the end of the " + std::to_string(size) + "-byte image");
  const uint16_t magic = LoadLe16(d + opt);
  uint64_t rva_count_at, dirs_at;
  if (magic == kMagicPe32) {
    rva_count_at = opt + 92;
    dirs_at = opt + 96;
  } else if (magic == kMagicPe32Plus) {
    rva_count_at = opt + 108;
    dirs_at = opt + 112;
  } else {
    return Bad("optional header Magic" + At(opt) + " is " + std::to_string(magic) +
               " (expected 0x10b PE32 or 0x20b PE32+)");
  }
  if (rva_count_at + 4 > opt + opt_size)
    return Bad("optional header of " + std::to_string(opt_size) + " bytes" + At(opt) +
               " ends before NumberOfRvaAndSizes");
  const uint64_t checksum_at = opt + 64;
  const uint64_t headers_size = LoadLe32(d + opt + 60);
  const uint32_t rva_count = LoadLe32(d + rva_count_at);
  const uint64_t section_table = opt + opt_size;
  const uint64_t section_table_end = section_table + uint64_t(sections) * kSectionHeaderSize;
  if (section_table_end > size)
    return Bad("section table of " + std::to_string(sections) + " entries" + At(section_table) +
               " runs past the end of the " + std::to_string(size) + "-byte image");
  if (headers_size > size || headers_size < checksum_at + 4)
    return Bad("SizeOfHeaders" + At(opt + 60) + " is " + std::to_string(headers_size) +
               " (must cover the CheckSum field and lie inside the " + std::to_string(size) +
               "-byte image)");

  std::vector<HashedRange> ranges;
  ranges.push_back({0, checksum_at});
  uint64_t cert_size = 0;
  if (rva_count > kCertificateDirectory) {
    const uint64_t cert_entry = dirs_at + 8 * kCertificateDirectory;
    if (cert_entry + 8 > opt + opt_size || cert_entry + 8 > headers_size)
      return Bad("NumberOfRvaAndSizes" + At(rva_count_at) + " is " + std::to_string(rva_count) +
                 " but the certificate table entry" + At(cert_entry) +
                 " lies outside the optional header / SizeOfHeaders");
    cert_size = LoadLe32(d + cert_entry + 4);
    ranges.push_back({checksum_at + 4, cert_entry - (checksum_at + 4)});
    ranges.push_back({cert_entry + 8, headers_size - (cert_entry + 8)});
  } else {
    ranges.push_back({checksum_at + 4, headers_size - (checksum_at + 4)});
  }

  struct Raw {
    uint64_t pointer, size;
    uint16_t index;
  };
  std::vector<Raw> raws;
  for (uint16_t i = 0; i < sections; ++i) {
    const uint64_t h = section_table + uint64_t(i) * kSectionHeaderSize;
    const uint64_t raw_size = LoadLe32(d + h + 16);
    const uint64_t pointer = LoadLe32(d + h + 20);
    if (raw_size == 0) continue;
    if (pointer > size || raw_size > size - pointer)
      return Bad("section " + std::to_string(i) + " raw data [" + std::to_string(pointer) +
                 ", +" + std::to_string(raw_size) + ") (PointerToRawData" + At(h + 20) +
                 ") runs past the end of the " + std::to_string(size) + "-byte image");
    raws.push_back({pointer, raw_size, i});
  }
  std::stable_sort(raws.begin(), raws.end(),
                   [](const Raw& a, const Raw& b) { return a.pointer < b.pointer; });
  uint64_t hashed = headers_size;
  for (const auto& r : raws) {
    ranges.push_back({r.pointer, r.size});
    hashed += r.size;
  }
  // Bytes after the sections (e.g. a bzImage's trailing data), minus the certificate table.
  if (size > hashed) {
    if (cert_size > size - hashed)
      return Bad("certificate table size " + std::to_string(cert_size) + " (data directory " +
                 "entry 4) is larger than the " + std::to_string(size - hashed) +
                 " bytes after the sections");
    // Like EDK2, the table is assumed to be the last thing in the file (where signing tools put
    // it); its offset is not used.
    uint64_t extra = size - cert_size - hashed;
    if (extra) ranges.push_back({hashed, extra});
  } else if (size < hashed) {
    // Overlapping sections count their bytes twice; the image is inconsistent (EDK2 refuses it too).
    return Bad("SizeOfHeaders plus the sections' SizeOfRawData (" + std::to_string(hashed) +
               ") exceeds the " + std::to_string(size) + "-byte image");
  }
  return ranges;
}

Result<evidence::Sha384Digest> AuthenticodeSha384(ByteSpan pe) {
  auto ranges = AuthenticodeRanges(pe);
  if (!ranges.ok()) return Error{ranges.error()};
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx(EVP_MD_CTX_new());
  evidence::Sha384Digest out{};
  unsigned int n = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha384(), nullptr) != 1)
    return Error{"PE image: SHA-384 is not available from OpenSSL"};
  for (const auto& r : *ranges) EVP_DigestUpdate(ctx.get(), pe.data() + r.offset, r.size);
  EVP_DigestFinal_ex(ctx.get(), out.data(), &n);
  return out;
}

}  // namespace tdxvirt::measure
