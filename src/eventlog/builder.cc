#include "eventlog/builder.h"

#include <algorithm>
#include <string>

#include "common/openssl.h"
#include "common/utf8.h"

namespace tdxvirt::eventlog {

EventLogBuilder::EventLogBuilder() {
  // TCG_PCR_EVENT: MR index 1, EV_NO_ACTION, SHA-1 digest of zeros, then the Spec ID event.
  ByteWriter spec;
  spec.Put(AsBytes(std::string_view("Spec ID Event03\0", 16)));
  spec.U32(0);  // platformClass
  spec.Put(Bytes{0, 2, 0, 2});  // specVersionMinor, Major, specErrata, uintnSize (UINT64)
  spec.U32(1);  // numberOfAlgorithms
  spec.U16(kAlgSha384);
  spec.U16(48);
  spec.Put(Bytes{0});  // vendorInfoSize
  ByteWriter w;
  w.U32(1);
  w.U32(kEvNoAction);
  w.Put(Bytes(20, 0));
  w.U32(uint32_t(spec.bytes().size()));
  w.Put(spec.bytes());
  log_ = w.Finish();
}

void EventLogBuilder::Add(uint32_t mr_index, uint32_t type, const evidence::Sha384Digest& digest,
                          ByteSpan data) {
  ByteWriter w;
  w.U32(mr_index);
  w.U32(type);
  w.U32(1);  // digest count
  w.U16(kAlgSha384);
  w.Put(digest);
  w.U32(uint32_t(data.size()));
  w.Put(data);
  log_.insert(log_.end(), w.bytes().begin(), w.bytes().end());
  if (type == kEvNoAction || mr_index < 1 || mr_index > 4) return;
  ExtendRtmr(rtmrs_[mr_index - 1], digest);
}

void EventLogBuilder::AddHashed(uint32_t mr_index, uint32_t type, ByteSpan data) {
  Add(mr_index, type, ossl::Sha384(data), data);
}

void EventLogBuilder::AddTag(uint32_t mr_index, uint32_t tag, ByteSpan tagged) {
  AddTag(mr_index, tag, tagged, ossl::Sha384(tagged));
}

void EventLogBuilder::AddTag(uint32_t mr_index, uint32_t tag, ByteSpan tagged,
                             const evidence::Sha384Digest& digest) {
  Add(mr_index, kEvEventTag, digest, TaggedEventData(tag, tagged));
}

Bytes EventLogBuilder::Finish(size_t laml) const {
  Bytes out = log_;
  if (laml > out.size()) out.resize(laml, 0xFF);
  return out;
}

Bytes MakeCcelTable(uint64_t laml, uint64_t lasa) {
  ByteWriter w;
  w.Put(AsBytes("CCEL"));
  w.U32(uint32_t(kCcelTableSize));
  w.Put(Bytes{1, 0});            // revision, checksum (set below)
  w.Put(AsBytes("TDXVRT"));      // OEM id
  w.Put(AsBytes("SIMTDVF "));    // OEM table id
  w.U32(1);                      // OEM revision
  w.Put(AsBytes("TDXV"));        // creator id
  w.U32(1);                      // creator revision
  w.Put(Bytes{kCcTypeTdx, 0, 0, 0});  // CC type, subtype, reserved
  w.U64(laml);
  w.U64(lasa);
  Bytes t = w.Finish();
  uint8_t sum = 0;
  for (uint8_t b : t) sum = uint8_t(sum + b);
  t[9] = uint8_t(0x100 - sum);
  return t;
}

Bytes TaggedEventData(uint32_t tag, ByteSpan data) {
  ByteWriter w;
  w.U32(tag);
  w.U32(uint32_t(data.size()));
  w.Put(data);
  return w.Finish();
}

Result<Bytes> Utf16LeWithNul(std::string_view s) {
  if (auto bad = FirstInvalidUtf8(s))
    return Error{"text is not UTF-8 at byte " + std::to_string(*bad) + "; pass UTF-8 text"};
  ByteWriter out;
  for (size_t i = 0; i < s.size();) {
    auto c = uint8_t(s[i]);
    uint32_t cp;
    size_t n;
    if (c < 0x80) { cp = c; n = 1; }
    else if (c < 0xE0) { cp = c & 0x1F; n = 2; }
    else if (c < 0xF0) { cp = c & 0x0F; n = 3; }
    else { cp = c & 0x07; n = 4; }
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
    i += n;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out.U16(uint16_t(0xD800 | (cp >> 10)));
      out.U16(uint16_t(0xDC00 | (cp & 0x3FF)));
    } else {
      out.U16(uint16_t(cp));
    }
  }
  out.U16(0);
  return out.Finish();
}

Result<Bytes> DirectBootLoadOptions(std::string_view cmdline, bool has_initrd) {
  std::string text(cmdline);
  if (has_initrd) text += " initrd=initrd";
  return Utf16LeWithNul(text);
}

}  // namespace tdxvirt::eventlog
