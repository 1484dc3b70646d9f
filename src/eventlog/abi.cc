#include "eventlog/abi.h"

#include <cstring>
#include <string>

#include "common/hex.h"

namespace tdxvirt::eventlog {
namespace {

constexpr std::string_view kTruncatedFix =
    "the log is truncated: supply the whole /sys/firmware/acpi/tables/data/CCEL";
constexpr char kSpecIdSignature[16] = "Spec ID Event03";  // 15 characters and the NUL

std::string AlgName(uint16_t alg) {
  switch (alg) {
    case kAlgSha1: return "SHA-1";
    case kAlgSha256: return "SHA-256";
    case kAlgSha384: return "SHA-384";
    case kAlgSha512: return "SHA-512";
    case kAlgSm3: return "SM3";
    default: return "algorithm 0x" + ToHex(Bytes{uint8_t(alg >> 8), uint8_t(alg)});
  }
}

// A bounded cursor over the whole log. Every failure names the record ("event N at offset O"),
// the field and the field's absolute offset, so a refused log says where it went wrong.
class Cursor {
 public:
  explicit Cursor(ByteSpan data) : data_(data) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  void Begin(size_t number) {
    record_ = number;
    record_offset_ = pos_;
  }
  [[noreturn]] void Fail(size_t field_offset, std::string_view field,
                         std::string_view problem) const {
    throw ParseError("event log: event " + std::to_string(record_) + " (offset " +
                     std::to_string(record_offset_) + "): " + std::string(field) + " at offset " +
                     std::to_string(field_offset) + " " + std::string(problem));
  }
  ByteSpan Take(size_t n, std::string_view field) {
    if (n > remaining()) {
      Fail(pos_, field,
           "needs " + std::to_string(n) + " bytes but " + std::to_string(remaining()) +
               " remain; " + std::string(kTruncatedFix));
    }
    ByteSpan out = data_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  uint32_t U32(std::string_view field) { return LoadLe32(Take(4, field).data()); }
  uint16_t U16(std::string_view field) { return LoadLe16(Take(2, field).data()); }
  uint8_t U8(std::string_view field) { return Take(1, field)[0]; }

 private:
  ByteSpan data_;
  size_t pos_ = 0;
  size_t record_ = 0;
  size_t record_offset_ = 0;
};

// The Spec ID event inside record 0's data (TCG PC Client PFP, TCG_EfiSpecIDEvent).
SpecIdEvent ParseSpecId(Cursor& c, ByteSpan data, size_t base) {
  auto fail = [&](size_t off, std::string_view field, std::string_view problem) {
    c.Fail(base + off, field, problem);
  };
  size_t pos = 0;
  auto need = [&](size_t n, std::string_view field) {
    if (n > data.size() - pos)
      fail(pos, field,
           "needs " + std::to_string(n) + " bytes but the Spec ID event (EventSize " +
               std::to_string(data.size()) + ") has " + std::to_string(data.size() - pos) +
               " left; the first record must carry a whole Spec ID Event03 structure");
  };
  need(16, "Spec ID signature");
  if (std::memcmp(data.data(), kSpecIdSignature, 16) != 0)
    fail(0, "Spec ID signature",
         "is not \"Spec ID Event03\": the first record of a crypto-agile log (TCG PC Client) must "
         "be the Spec ID event; supply the CCEL log data, not another file");
  pos = 16;
  SpecIdEvent s;
  need(8, "platformClass/specVersion");
  s.platform_class = LoadLe32(data.data() + pos);
  s.version_minor = data[pos + 4];
  s.version_major = data[pos + 5];
  s.errata = data[pos + 6];
  s.uintn_size = data[pos + 7];
  pos += 8;
  need(4, "numberOfAlgorithms");
  uint32_t n = LoadLe32(data.data() + pos);
  size_t n_off = pos;
  pos += 4;
  if (n == 0 || n > (data.size() - pos) / 4)
    fail(n_off, "numberOfAlgorithms",
         "is " + std::to_string(n) + ", but the Spec ID event has room for " +
             std::to_string((data.size() - pos) / 4) +
             " algorithm entries; the Spec ID event is malformed");
  bool sha384 = false;
  for (uint32_t i = 0; i < n; ++i) {
    AlgorithmSize a{LoadLe16(data.data() + pos), LoadLe16(data.data() + pos + 2)};
    if (a.id == kAlgSha384) {
      if (a.digest_size != 48)
        fail(pos + 2, "digestSize of SHA-384",
             "is " + std::to_string(a.digest_size) + ", not 48; the Spec ID event is malformed");
      sha384 = true;
    }
    for (const auto& b : s.algorithms)
      if (b.id == a.id) fail(pos, "algorithmId", "lists " + AlgName(a.id) + " twice");
    s.algorithms.push_back(a);
    pos += 4;
  }
  if (!sha384)
    fail(n_off, "digestSizes",
         "do not include SHA-384 (0x000C): TDX RTMRs are SHA-384, so this log cannot be "
         "replayed against them; supply a TD's CCEL log");
  need(1, "vendorInfoSize");
  uint8_t vsize = data[pos++];
  need(vsize, "vendorInfo");
  s.vendor_info.assign(data.begin() + pos, data.begin() + pos + vsize);
  return s;
}

}  // namespace

std::string_view EventTypeName(uint32_t type) {
  switch (type) {
    case 0x0: return "EV_PREBOOT_CERT";
    case kEvPostCode: return "EV_POST_CODE";
    case 0x2: return "EV_UNUSED";
    case kEvNoAction: return "EV_NO_ACTION";
    case kEvSeparator: return "EV_SEPARATOR";
    case kEvAction: return "EV_ACTION";
    case kEvEventTag: return "EV_EVENT_TAG";
    case 0x7: return "EV_S_CRTM_CONTENTS";
    case 0x8: return "EV_S_CRTM_VERSION";
    case 0x9: return "EV_CPU_MICROCODE";
    case kEvPlatformConfigFlags: return "EV_PLATFORM_CONFIG_FLAGS";
    case 0xB: return "EV_TABLE_OF_DEVICES";
    case 0xC: return "EV_COMPACT_HASH";
    case kEvIpl: return "EV_IPL";
    case 0xE: return "EV_IPL_PARTITION_DATA";
    case 0xF: return "EV_NONHOST_CODE";
    case 0x10: return "EV_NONHOST_CONFIG";
    case 0x11: return "EV_NONHOST_INFO";
    case 0x12: return "EV_OMIT_BOOT_DEVICE_EVENTS";
    case kEvEfiVariableDriverConfig: return "EV_EFI_VARIABLE_DRIVER_CONFIG";
    case kEvEfiVariableBoot: return "EV_EFI_VARIABLE_BOOT";
    case kEvEfiBootServicesApplication: return "EV_EFI_BOOT_SERVICES_APPLICATION";
    case 0x80000004: return "EV_EFI_BOOT_SERVICES_DRIVER";
    case 0x80000005: return "EV_EFI_RUNTIME_SERVICES_DRIVER";
    case kEvEfiGptEvent: return "EV_EFI_GPT_EVENT";
    case kEvEfiAction: return "EV_EFI_ACTION";
    case 0x80000008: return "EV_EFI_PLATFORM_FIRMWARE_BLOB";
    case 0x80000009: return "EV_EFI_HANDOFF_TABLES";
    case kEvEfiPlatformFirmwareBlob2: return "EV_EFI_PLATFORM_FIRMWARE_BLOB2";
    case kEvEfiHandoffTables2: return "EV_EFI_HANDOFF_TABLES2";
    case 0x8000000C: return "EV_EFI_VARIABLE_BOOT2";
    case 0x80000010: return "EV_EFI_HCRTM_EVENT";
    case kEvEfiVariableAuthority: return "EV_EFI_VARIABLE_AUTHORITY";
    case 0x800000E1: return "EV_EFI_SPDM_FIRMWARE_BLOB";
    case 0x800000E2: return "EV_EFI_SPDM_FIRMWARE_CONFIG";
    default: return "";
  }
}

Result<CcelTable> ParseCcelTable(ByteSpan table) {
  if (table.size() < kCcelTableSize)
    return Error{"CCEL table: " + std::to_string(table.size()) + " bytes, but the table is " +
                 std::to_string(kCcelTableSize) +
                 " bytes; supply the whole /sys/firmware/acpi/tables/CCEL"};
  if (std::memcmp(table.data(), "CCEL", 4) != 0)
    return Error{"CCEL table: signature at offset 0 is \"" +
                 std::string(AsString(table.first(4))) +
                 "\", not \"CCEL\"; supply /sys/firmware/acpi/tables/CCEL (the table, not its data)"};
  uint32_t length = LoadLe32(table.data() + 4);
  if (length != kCcelTableSize || table.size() != kCcelTableSize)
    return Error{"CCEL table: length at offset 4 is " + std::to_string(length) + " and the file has " +
                 std::to_string(table.size()) + " bytes; a CCEL table (ACPI 6.5 5.2.34) is 56 bytes"};
  uint8_t sum = 0;
  for (uint8_t b : table) sum = uint8_t(sum + b);
  if (sum != 0)
    return Error{"CCEL table: checksum at offset 9 does not make the bytes sum to zero (sum 0x" +
                 ToHex(Bytes{sum}) + "); the table is corrupted"};
  CcelTable t;
  t.cc_type = table[36];
  t.cc_subtype = table[37];
  t.laml = LoadLe64(table.data() + 40);
  t.lasa = LoadLe64(table.data() + 48);
  if (t.cc_type != kCcTypeTdx) {
    std::string name = t.cc_type == kCcTypeSev ? " (AMD SEV)" : "";
    return Error{"CCEL table: CC type at offset 36 is " + std::to_string(t.cc_type) + name +
                 ", not 2 (Intel TDX): its log does not describe TDX RTMRs; supply the CCEL of a TD"};
  }
  return t;
}

Result<EventLog> ParseEventLog(ByteSpan data, const ParseOptions& options) {
  if (data.size() > kMaxEventLogBytes)
    return Error{"event log: " + std::to_string(data.size()) + " bytes, more than the " +
                 std::to_string(kMaxEventLogBytes) + " accepted; supply the CCEL log data only"};
  if (options.laml && data.size() > *options.laml)
    return Error{"event log: " + std::to_string(data.size()) +
                 " bytes, longer than the CCEL table's LAML (" + std::to_string(*options.laml) +
                 "); the data does not belong to this table, or carries extra bytes"};
  try {
    Cursor c(data);
    EventLog log;
    // Record 0: TCG_PCR_EVENT (SHA-1 layout) carrying the Spec ID event.
    {
      c.Begin(0);
      Event e;
      e.number = 0;
      e.offset = 0;
      e.mr_index = c.U32("PCRIndex");
      size_t type_off = c.pos();
      e.type = c.U32("EventType");
      if (e.type != kEvNoAction)
        c.Fail(type_off, "EventType",
               "is " + HexU32(e.type) + ", not EV_NO_ACTION (0x00000003): the log does not start "
               "with the Spec ID event; supply the CCEL log data");
      if (e.mr_index > 4) c.Fail(0, "PCRIndex", "is " + std::to_string(e.mr_index) + ", above 4");
      ByteSpan sha1 = c.Take(20, "SHA-1 digest");
      e.digests.push_back(Digest{kAlgSha1, Bytes(sha1.begin(), sha1.end())});
      size_t size_off = c.pos();
      uint32_t size = c.U32("EventSize");
      if (size > kMaxEventDataBytes)
        c.Fail(size_off, "EventSize", "is " + std::to_string(size) + ", above the limit of " +
                                          std::to_string(kMaxEventDataBytes));
      e.data_offset = c.pos();
      ByteSpan d = c.Take(size, "Spec ID event data");
      e.data.assign(d.begin(), d.end());
      log.spec_id = ParseSpecId(c, d, e.data_offset);
      log.events.push_back(std::move(e));
    }
    // Records 1..: TCG_PCR_EVENT2 until the end of the input or the fill.
    while (c.remaining() > 0) {
      size_t start = c.pos();
      ByteSpan rest = data.subspan(start);
      // Fill: 0xFF (TDVF) or 0x00 (td-shim), at a record boundary. Fewer than 8 bytes left is the
      // fill only when all of them are 0xFF/0x00 (the unpadded Alibaba log ends with 8).
      uint8_t first = rest[0];
      if (first == 0xFF || first == 0x00) {
        size_t probe = std::min<size_t>(8, rest.size());
        bool fill = true;
        for (size_t i = 0; i < probe; ++i) fill = fill && rest[i] == first;
        if (fill) {
          for (size_t i = 0; i < rest.size(); ++i) {
            if (rest[i] != first) {
              c.Begin(log.events.size());
              c.Fail(start + i, "fill",
                     "has byte 0x" + ToHex(Bytes{rest[i]}) + " after the log ended at offset " +
                         std::to_string(start) + " (fill 0x" + ToHex(Bytes{first}) +
                         "); the log area holds data after its end: supply the CCEL data unaltered");
            }
          }
          log.fill = first;
          break;
        }
      }
      if (log.events.size() >= options.max_events)
        return Error{"event log: more than " + std::to_string(options.max_events) +
                     " events at offset " + std::to_string(start) + "; the log is not a TD's CCEL"};
      Event e;
      e.number = log.events.size();
      e.offset = start;
      c.Begin(e.number);
      e.mr_index = c.U32("MRIndex");
      e.type = c.U32("EventType");
      if (e.mr_index > 4)
        c.Fail(start, "MRIndex",
               "is " + std::to_string(e.mr_index) +
                   ", above 4: a TD has MRTD (0) and RTMR0..3 (1..4) only; the log is corrupted");
      if (e.mr_index == 0 && e.type != kEvNoAction)
        c.Fail(start, "MRIndex",
               "is 0 (MRTD) on event type " + HexU32(e.type) +
                   ": only EV_NO_ACTION may name MRTD, which is never extended at run time");
      size_t count_off = c.pos();
      uint32_t count = c.U32("digest count");
      if (count == 0)
        c.Fail(count_off, "digest count", "is 0: every event must carry a SHA-384 digest");
      if (count > log.spec_id.algorithms.size())
        c.Fail(count_off, "digest count",
               "is " + std::to_string(count) + ", more than the " +
                   std::to_string(log.spec_id.algorithms.size()) +
                   " algorithms the Spec ID event declares");
      bool have384 = false;
      for (uint32_t i = 0; i < count; ++i) {
        size_t alg_off = c.pos();
        uint16_t alg = c.U16("algorithmId");
        const AlgorithmSize* decl = nullptr;
        for (const auto& a : log.spec_id.algorithms)
          if (a.id == alg) decl = &a;
        if (!decl)
          c.Fail(alg_off, "algorithmId",
                 "is " + AlgName(alg) +
                     ", which the Spec ID event does not declare, so its digest size is unknown");
        for (const auto& d : e.digests)
          if (d.alg == alg) c.Fail(alg_off, "algorithmId", "repeats " + AlgName(alg));
        ByteSpan dv = c.Take(decl->digest_size, "digest");
        e.digests.push_back(Digest{alg, Bytes(dv.begin(), dv.end())});
        if (alg == kAlgSha384) {
          std::copy(dv.begin(), dv.end(), e.sha384.begin());
          have384 = true;
        }
      }
      if (!have384)
        c.Fail(count_off, "digests", "have no SHA-384 digest: TDX RTMRs are extended with SHA-384");
      size_t size_off = c.pos();
      uint32_t size = c.U32("EventSize");
      if (size > kMaxEventDataBytes)
        c.Fail(size_off, "EventSize",
               "is " + std::to_string(size) + ", above the limit of " +
                   std::to_string(kMaxEventDataBytes) + "; the log is corrupted");
      e.data_offset = c.pos();
      ByteSpan d = c.Take(size, "event data (EventSize " + std::to_string(size) + ")");
      e.data.assign(d.begin(), d.end());
      log.events.push_back(std::move(e));
    }
    log.log_bytes = log.fill ? c.pos() : data.size();
    return log;
  } catch (const ParseError& e) {
    return Error{e.what()};
  }
}

}  // namespace tdxvirt::eventlog
