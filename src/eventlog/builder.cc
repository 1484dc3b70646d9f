#include "eventlog/builder.h"

#include <algorithm>
#include <string>

#include "common/openssl.h"
#include "common/utf8.h"

namespace tdxvirt::eventlog {
namespace {

void PutLe16(Bytes& out, uint16_t v) {
  out.push_back(uint8_t(v));
  out.push_back(uint8_t(v >> 8));
}
void PutLe32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
void PutLe64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

}  // namespace

EventLogBuilder::EventLogBuilder() {
  // TCG_PCR_EVENT: MR index 1, EV_NO_ACTION, SHA-1 digest of zeros, then the Spec ID event.
  Bytes spec;
  const char sig[16] = "Spec ID Event03";
  spec.insert(spec.end(), sig, sig + 16);
  PutLe32(spec, 0);       // platformClass
  spec.push_back(0);      // specVersionMinor
  spec.push_back(2);      // specVersionMajor
  spec.push_back(0);      // specErrata
  spec.push_back(2);      // uintnSize (UINT64)
  PutLe32(spec, 1);       // numberOfAlgorithms
  PutLe16(spec, kAlgSha384);
  PutLe16(spec, 48);
  spec.push_back(0);      // vendorInfoSize
  PutLe32(log_, 1);
  PutLe32(log_, kEvNoAction);
  log_.insert(log_.end(), 20, 0);
  PutLe32(log_, uint32_t(spec.size()));
  log_.insert(log_.end(), spec.begin(), spec.end());
}

void EventLogBuilder::Add(uint32_t mr_index, uint32_t type, const evidence::Sha384Digest& digest,
                          ByteSpan data) {
  PutLe32(log_, mr_index);
  PutLe32(log_, type);
  PutLe32(log_, 1);  // digest count
  PutLe16(log_, kAlgSha384);
  log_.insert(log_.end(), digest.begin(), digest.end());
  PutLe32(log_, uint32_t(data.size()));
  log_.insert(log_.end(), data.begin(), data.end());
  if (type == kEvNoAction || mr_index < 1 || mr_index > 4) return;
  auto& r = rtmrs_[mr_index - 1];
  Bytes buf(r.begin(), r.end());
  buf.insert(buf.end(), digest.begin(), digest.end());
  r = ossl::Sha384(buf);
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
  Bytes t;
  t.insert(t.end(), {'C', 'C', 'E', 'L'});
  PutLe32(t, uint32_t(kCcelTableSize));
  t.push_back(1);  // revision
  t.push_back(0);  // checksum, set below
  const char oem_id[7] = "TDXVRT";
  t.insert(t.end(), oem_id, oem_id + 6);
  const char oem_table[9] = "SIMTDVF ";
  t.insert(t.end(), oem_table, oem_table + 8);
  PutLe32(t, 1);                   // OEM revision
  t.insert(t.end(), {'T', 'D', 'X', 'V'});  // creator id
  PutLe32(t, 1);                   // creator revision
  t.push_back(kCcTypeTdx);
  t.push_back(0);                  // subtype
  t.insert(t.end(), 2, 0);         // reserved
  PutLe64(t, laml);
  PutLe64(t, lasa);
  uint8_t sum = 0;
  for (uint8_t b : t) sum = uint8_t(sum + b);
  t[9] = uint8_t(0x100 - sum);
  return t;
}

Bytes TaggedEventData(uint32_t tag, ByteSpan data) {
  Bytes out;
  PutLe32(out, tag);
  PutLe32(out, uint32_t(data.size()));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Result<Bytes> Utf16LeWithNul(std::string_view s) {
  if (auto bad = FirstInvalidUtf8(s))
    return Error{"text is not UTF-8 at byte " + std::to_string(*bad) + "; pass UTF-8 text"};
  Bytes out;
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
      PutLe16(out, uint16_t(0xD800 | (cp >> 10)));
      PutLe16(out, uint16_t(0xDC00 | (cp & 0x3FF)));
    } else {
      PutLe16(out, uint16_t(cp));
    }
  }
  PutLe16(out, 0);
  return out;
}

Result<Bytes> DirectBootLoadOptions(std::string_view cmdline, bool has_initrd) {
  std::string text(cmdline);
  if (has_initrd) text += " initrd=initrd";
  return Utf16LeWithNul(text);
}

}  // namespace tdxvirt::eventlog
