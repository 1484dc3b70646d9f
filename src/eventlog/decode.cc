#include "eventlog/decode.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>

#include "common/hex.h"
#include "common/openssl.h"
#include "common/utf8.h"
#include "eventlog/builder.h"

namespace tdxvirt::eventlog {
namespace {

using json = nlohmann::ordered_json;

constexpr uint32_t kTagAael = 0x4141454C;  // "AAEL": Alibaba's agent events in RTMR3
constexpr size_t kMaxValueHex = 256;       // variable values longer than this are shown by size
constexpr std::string_view kCallingBootOption = "Calling EFI Application from Boot Option";
constexpr std::string_view kReturningBootOption = "Returning from EFI Application from Boot Option";
constexpr std::string_view kLoadOptionsDescription = "LOADED_IMAGE::LoadOptions";

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Text a JSON string can hold: valid UTF-8 as is, anything else byte by byte with non-ASCII
// bytes as "\xNN" (nlohmann refuses to dump invalid UTF-8).
std::string SafeText(std::string_view s) {
  if (!FirstInvalidUtf8(s)) return std::string(s);
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) {
      out += char(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// ASCII/UTF-8 text up to the first NUL.
std::string CString(ByteSpan b) {
  std::string_view s = AsString(b);
  size_t nul = s.find('\0');
  return SafeText(s.substr(0, nul));
}

// True when every byte before the first NUL (and at least one) is printable ASCII or UTF-8 text.
bool LooksLikeText(ByteSpan b) {
  size_t n = 0;
  for (; n < b.size() && b[n] != 0; ++n)
    if (b[n] < 0x20 && b[n] != '\n' && b[n] != '\t') return false;
  return n > 0 && !FirstInvalidUtf8(AsString(b.first(n)));
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// UTF-16LE up to a NUL unit or the end; unpaired surrogates become U+FFFD.
std::string Utf16(ByteSpan b, size_t* consumed = nullptr) {
  std::string out;
  size_t i = 0;
  for (; i + 1 < b.size(); i += 2) {
    uint32_t u = LoadLe16(b.data() + i);
    if (u == 0) {
      i += 2;
      break;
    }
    if (u >= 0xD800 && u <= 0xDBFF && i + 3 < b.size()) {
      uint32_t lo = LoadLe16(b.data() + i + 2);
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        AppendUtf8(out, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
        i += 2;
        continue;
      }
    }
    if (u >= 0xD800 && u <= 0xDFFF) u = 0xFFFD;
    AppendUtf8(out, u);
  }
  if (consumed) *consumed = std::min(i, b.size());
  return out;
}

std::string Guid(ByteSpan g) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                LoadLe32(g.data()), LoadLe16(g.data() + 4), LoadLe16(g.data() + 6), g[8], g[9],
                g[10], g[11], g[12], g[13], g[14], g[15]);
  return buf;
}

// A UEFI device path as text, node by node (UEFI 2.10 §10.3). Unknown nodes are shown by type.
std::string DevicePath(ByteSpan p) {
  std::string out;
  size_t i = 0;
  int nodes = 0;
  while (i + 4 <= p.size() && nodes++ < 64) {
    uint8_t type = p[i], sub = p[i + 1];
    uint16_t len = LoadLe16(p.data() + i + 2);
    if (len < 4 || len > p.size() - i) {
      out += "/<malformed>";
      break;
    }
    ByteSpan body = p.subspan(i + 4, len - 4);
    i += len;
    if (type == 0x7F) {
      if (sub == 0xFF) break;  // end of the whole path
      out += "|";              // end of this instance
      continue;
    }
    std::string node;
    char buf[96];
    if (type == 4 && sub == 4) {  // media: file path
      node = Utf16(body);
      if (!out.empty() && !node.empty() && node[0] != '\\' && out.back() != '\\') out += "/";
      out += node;
      continue;
    }
    if (type == 4 && sub == 6 && body.size() >= 16) {  // PIWG firmware file (QEMU's "kernel")
      node = "FvFile(" + Guid(body) + ")";
    } else if (type == 4 && sub == 7 && body.size() >= 16) {
      node = "Fv(" + Guid(body) + ")";
    } else if (type == 4 && sub == 3 && body.size() >= 16) {  // media vendor
      node = "VenMedia(" + Guid(body) + ")";
    } else if (type == 4 && sub == 1 && body.size() >= 38) {  // hard drive
      std::snprintf(buf, sizeof buf, "HD(%u,", LoadLe32(body.data()));
      node = std::string(buf) + (body[37] == 2 ? "GPT," + Guid(body.subspan(20, 16)) : "MBR") + ")";
    } else if (type == 2 && sub == 1 && body.size() >= 8) {
      std::snprintf(buf, sizeof buf, "PciRoot(0x%x)", LoadLe32(body.data() + 4));
      node = buf;
    } else if (type == 1 && sub == 1 && body.size() >= 2) {
      std::snprintf(buf, sizeof buf, "Pci(0x%x,0x%x)", body[1], body[0]);
      node = buf;
    } else if (type == 3 && sub == 2 && body.size() >= 4) {
      std::snprintf(buf, sizeof buf, "Scsi(0x%x,0x%x)", LoadLe16(body.data()),
                    LoadLe16(body.data() + 2));
      node = buf;
    } else if (type == 3 && sub == 0x17 && body.size() >= 4) {
      std::snprintf(buf, sizeof buf, "NVMe(0x%x)", LoadLe32(body.data()));
      node = buf;
    } else {
      std::snprintf(buf, sizeof buf, "Path(%u,%u)", type, sub);
      node = buf;
    }
    if (!out.empty() && out.back() != '|') out += "/";
    out += node;
  }
  return out;
}

struct Ctx {
  const Event& e;
  DecodedEvent& d;
  // Bound when `expected` is the event's SHA-384 digest; broken (with `what` named) otherwise.
  void Bind(const evidence::Sha384Digest& expected, std::string_view what) {
    if (expected == e.sha384) {
      d.binding = Binding::kBound;
    } else {
      d.binding = Binding::kBroken;
      d.problem = "digest " + ToHex(e.sha384) + " is not SHA-384 of " + std::string(what) + " (" +
                  ToHex(expected) + "): the event data does not match what was measured";
    }
  }
  void BindData(std::string_view what = "the event data") { Bind(ossl::Sha384(e.data), what); }
};

// UEFI_VARIABLE_DATA: VariableName GUID, UnicodeNameLength u64, VariableDataLength u64, name, data.
struct Variable {
  std::string guid, name;
  ByteSpan value;
};
std::optional<Variable> ParseVariable(ByteSpan b) {
  if (b.size() < 32) return std::nullopt;
  uint64_t name_len = LoadLe64(b.data() + 16), data_len = LoadLe64(b.data() + 24);
  if (name_len > (b.size() - 32) / 2) return std::nullopt;
  if (data_len > b.size() - 32 - 2 * name_len) return std::nullopt;
  Variable v;
  v.guid = Guid(b.first(16));
  v.name = Utf16(b.subspan(32, size_t(2 * name_len)));
  v.value = b.subspan(size_t(32 + 2 * name_len), size_t(data_len));
  return v;
}

void DecodeVariable(Ctx& c) {
  auto v = ParseVariable(c.e.data);
  if (v) {
    c.d.fields["variable"] = v->name;
    c.d.fields["guid"] = v->guid;
    c.d.fields["value_size"] = v->value.size();
    if (v->value.size() <= kMaxValueHex) c.d.fields["value"] = ToHex(v->value);
  }
  if (c.e.type == kEvEfiVariableBoot) {
    if (!v) {
      c.d.fields["note"] = "not a UEFI_VARIABLE_DATA; digest not recomputed";
      return;
    }
    // BootOrder: UINT16 list; Boot####: EFI_LOAD_OPTION (attributes, path length, description).
    if (v->name == "BootOrder") {
      std::string order;
      for (size_t i = 0; i + 1 < v->value.size(); i += 2) {
        char buf[12];
        std::snprintf(buf, sizeof buf, "%sBoot%04X", order.empty() ? "" : ",",
                      LoadLe16(v->value.data() + i));
        order += buf;
      }
      c.d.fields["boot_order"] = order;
    } else if (v->value.size() >= 6) {
      uint16_t path_len = LoadLe16(v->value.data() + 4);
      size_t used = 0;
      c.d.fields["description"] = Utf16(v->value.subspan(6), &used);
      if (6 + used <= v->value.size() && path_len <= v->value.size() - 6 - used)
        c.d.fields["device_path"] = DevicePath(v->value.subspan(6 + used, path_len));
    }
    c.Bind(ossl::Sha384(v->value), "the variable's value");
    return;
  }
  c.BindData("the whole UEFI_VARIABLE_DATA");
}

void DecodeImageLoad(Ctx& c) {
  // UEFI_IMAGE_LOAD_EVENT: location u64, length u64, link-time address u64, path length u64, path.
  ByteSpan b = c.e.data;
  if (b.size() < 32) return;
  c.d.fields["image_location"] = LoadLe64(b.data());
  c.d.fields["image_length"] = LoadLe64(b.data() + 8);
  c.d.fields["link_time_address"] = LoadLe64(b.data() + 16);
  uint64_t len = LoadLe64(b.data() + 24);
  if (len > b.size() - 32) {
    c.d.fields["device_path"] = nullptr;
    c.d.fields["note"] = "device path length exceeds the event data";
    return;
  }
  c.d.fields["device_path"] = DevicePath(b.subspan(32, size_t(len)));
}

// GRUB's EV_IPL strings: "<prefix>X" whose digest is SHA-384 of X (with or without the NUL, which
// GRUB versions differ on). Returns true when the prefix matched.
bool BindGrubString(Ctx& c, std::string_view text, std::string_view prefix, const char* field) {
  if (!StartsWith(text, prefix)) return false;
  std::string_view x = text.substr(prefix.size());
  c.d.fields[field] = SafeText(x);
  auto plain = ossl::Sha384(AsBytes(x));
  std::string with_nul(x);
  with_nul.push_back('\0');
  auto nul = ossl::Sha384(AsBytes(with_nul));
  c.Bind(c.e.sha384 == nul ? nul : plain, "the text after \"" + std::string(prefix) + "\"");
  return true;
}

void DecodeIpl(Ctx& c) {
  ByteSpan b = c.e.data;
  // systemd-stub (UKI): the section name in UTF-16 (".linux"), measured twice: the name itself
  // (digest = SHA-384 of the ASCII name and NUL, bound), then the section's content (opaque).
  if (b.size() >= 4 && b[0] == '.' && b[1] == 0) {
    std::string name = Utf16(b);
    c.d.fields["uki_section"] = name;
    std::string ascii = name;
    ascii.push_back('\0');
    if (ossl::Sha384(AsBytes(ascii)) == c.e.sha384) {
      c.d.binding = Binding::kBound;
      c.d.fields["measures"] = "name";
    } else {
      c.d.fields["measures"] = "content";
    }
    return;
  }
  if (!LooksLikeText(b)) return;
  std::string text = CString(b);
  c.d.fields["text"] = text;
  if (BindGrubString(c, text, "grub_cmd: ", "grub_cmd")) return;
  if (BindGrubString(c, text, "kernel_cmdline: ", "kernel_cmdline")) return;
  if (BindGrubString(c, text, "grub_kernel_cmdline ", "kernel_cmdline")) return;
  if (StartsWith(text, "grub_linuxefi ")) {  // old GRUB: the kernel/initrd file digest
    c.d.fields["grub_file"] = text.substr(14);
    return;
  }
  if (BindGrubString(c, text, "grub_cmd ", "grub_cmd")) return;
  if (text == "MokList" || text == "MokListX" || text == "MokListTrusted") {
    // shim measures the variable's content, which is not in the log: opaque, except that
    // MokListTrusted is one byte, so its value can be recognised.
    c.d.fields["variable"] = text;
    if (text == "MokListTrusted") {
      for (uint8_t v : {uint8_t(0), uint8_t(1)}) {
        if (ossl::Sha384(ByteSpan(&v, 1)) == c.e.sha384) {
          c.d.fields["value"] = ToHex(ByteSpan(&v, 1));
          c.d.binding = Binding::kBound;
        }
      }
    }
    return;
  }
  if (!text.empty() && (text[0] == '/' || text[0] == '(')) c.d.fields["path"] = text;
}

void DecodeTag(Ctx& c) {
  ByteSpan b = c.e.data;
  // An older stub logs the description with no TCG_PCClientTaggedEvent header.
  if (StartsWith(AsString(b), kLoadOptionsDescription)) {
    c.d.fields["tag"] = std::string(kLoadOptionsDescription);
    return;
  }
  if (b.size() < 8) return;
  uint32_t id = LoadLe32(b.data()), size = LoadLe32(b.data() + 4);
  c.d.fields["tag_id"] = HexU32(id);
  ByteSpan tagged = b.subspan(8, std::min<size_t>(size, b.size() - 8));
  if (size > b.size() - 8) c.d.fields["note"] = "tagged data size exceeds the event data";
  if (id == kTagLoadOptions) {
    c.d.fields["tag"] = std::string(kLoadOptionsDescription);
    // Linux's stub logs the description and measures the load options themselves, which are not
    // in the log: opaque. A log that carries the options (UTF-16LE) binds them.
    if (StartsWith(AsString(tagged), kLoadOptionsDescription)) return;
    c.d.fields["text"] = Utf16(tagged);
    c.Bind(ossl::Sha384(tagged), "the tagged LoadOptions (UTF-16LE)");
  } else if (id == kTagInitrd) {
    c.d.fields["tag"] = "Linux initrd";
  } else if (id == kTagAael) {
    c.d.fields["tag"] = "AAEL";
    c.d.fields["text"] = SafeText(AsString(tagged));
    c.BindData();
  }
}

void DecodeOne(Ctx& c) {
  const Event& e = c.e;
  auto& f = c.d.fields;
  if (e.number == 0) {
    f["text"] = "Spec ID Event03";
    return;
  }
  switch (e.type) {
    case kEvNoAction:
      // TCG PFP's EV_NO_ACTION structures start with a 16-byte signature ("SP800-155 Event3",
      // "StartupLocality", ...); not extended, shown by their signature.
      if (e.data.size() >= 16 && LooksLikeText(ByteSpan(e.data).first(15)))
        f["text"] = CString(ByteSpan(e.data).first(16));
      return;
    case kEvSeparator:
      f["value"] = ToHex(e.data);
      c.BindData("its 4 data bytes");
      return;
    case kEvEfiAction:
    case kEvAction:
      f["text"] = SafeText(AsString(e.data));
      c.BindData("its text");
      return;
    case kEvEfiVariableDriverConfig:
    case kEvEfiVariableAuthority:
    case kEvEfiVariableBoot:
      DecodeVariable(c);
      return;
    case kEvEfiBootServicesApplication:
      DecodeImageLoad(c);
      return;
    case kEvIpl:
      DecodeIpl(c);
      return;
    case kEvEventTag:
      DecodeTag(c);
      return;
    case kEvEfiPlatformFirmwareBlob2:
    case kEvEfiHandoffTables2:
      // UEFI_PLATFORM_FIRMWARE_BLOB2 / UEFI_HANDOFF_TABLE_POINTERS2: u8 size, description, ...
      if (!e.data.empty() && e.data[0] <= e.data.size() - 1)
        f["description"] = CString(ByteSpan(e.data).subspan(1, e.data[0]));
      if (e.type == kEvEfiPlatformFirmwareBlob2 && !e.data.empty() &&
          size_t(e.data[0]) + 17 <= e.data.size()) {
        f["blob_base"] = LoadLe64(e.data.data() + 1 + e.data[0]);
        f["blob_length"] = LoadLe64(e.data.data() + 9 + e.data[0]);
      }
      return;
    case kEvPlatformConfigFlags:
    case kEvPostCode:
      if (LooksLikeText(e.data)) {
        std::string name = CString(e.data);
        f["text"] = name;
        // td-shim's td_payload_info: 16-byte name, u32 size, then the kernel command line.
        // The digest covers that buffer (size at offset 16), so the command line is bound.
        if (name == "td_payload_info" && e.data.size() >= 20) {
          uint32_t size = LoadLe32(e.data.data() + 16);
          if (size <= e.data.size() - 20) {
            ByteSpan cmdline = ByteSpan(e.data).subspan(20, size);
            f["cmdline"] = CString(cmdline);
            c.Bind(ossl::Sha384(cmdline), "the td_payload_info command line buffer");
          }
        }
      }
      return;
    case kEvEfiGptEvent:
      if (e.data.size() >= 92 && StartsWith(AsString(e.data), "EFI PART")) {
        f["disk_guid"] = Guid(ByteSpan(e.data).subspan(56, 16));
        if (e.data.size() >= 100) f["partitions"] = LoadLe64(e.data.data() + 92);
      }
      return;
    default:
      if (LooksLikeText(e.data)) f["text"] = CString(e.data);
      return;
  }
}

std::string Label(const DecodedEvent& d) {
  const auto& f = d.fields;
  for (const char* k : {"tag", "variable", "uki_section", "description", "text"}) {
    auto it = f.find(k);
    if (it != f.end() && it->is_string()) {
      std::string s = it->get<std::string>();
      if (s.size() > 48) s = s.substr(0, 45) + "...";
      return s;
    }
  }
  return "";
}

std::string RegisterName(uint32_t mr) {
  return mr == 0 ? "MRTD" : "RTMR" + std::to_string(mr - 1);
}

std::string AlgKey(uint16_t alg) {
  switch (alg) {
    case kAlgSha1: return "sha1";
    case kAlgSha256: return "sha256";
    case kAlgSha384: return "sha384";
    case kAlgSha512: return "sha512";
    case kAlgSm3: return "sm3";
    default: return HexU32(alg);
  }
}

std::string FieldString(const DecodedEvent& d, const char* key) {
  auto it = d.fields.find(key);
  return it != d.fields.end() && it->is_string() ? it->get<std::string>() : "";
}

bool ContainsNoCase(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                        [](char a, char b) { return std::tolower(a) == std::tolower(b); });
  return it != hay.end();
}

MeasuredItem Item(const Event& e, const DecodedEvent& d, std::string source) {
  MeasuredItem m;
  m.digest = e.sha384;
  m.binding = d.binding;
  m.event = e.number;
  m.source = std::move(source);
  return m;
}

}  // namespace

std::string_view BindingName(Binding b) {
  switch (b) {
    case Binding::kBound: return "bound";
    case Binding::kOpaque: return "opaque";
    case Binding::kBroken: return "broken";
  }
  return "?";
}

std::vector<DecodedEvent> DecodeEvents(const EventLog& log) {
  std::vector<DecodedEvent> out;
  out.reserve(log.events.size());
  for (const auto& e : log.events) {
    DecodedEvent d;
    d.number = e.number;
    Ctx c{e, d};
    DecodeOne(c);
    out.push_back(std::move(d));
  }
  return out;
}

nlohmann::ordered_json EventToJson(const Event& e, const DecodedEvent& d) {
  json j;
  j["number"] = e.number;
  j["offset"] = e.offset;
  j["mr_index"] = e.mr_index;
  if (e.mr_index >= 1 && e.mr_index <= 4 && e.type != kEvNoAction && e.number != 0)
    j["register"] = "rtmr" + std::to_string(e.mr_index - 1);
  else
    j["register"] = nullptr;
  j["type"] = HexU32(e.type);
  j["type_name"] = std::string(EventTypeName(e.type));
  json digests = json::object();
  for (const auto& dg : e.digests) digests[AlgKey(dg.alg)] = ToHex(dg.value);
  j["digests"] = digests;
  j["binding"] = std::string(BindingName(d.binding));
  j["fields"] = d.fields;
  if (d.binding == Binding::kBroken) j["problem"] = d.problem;
  return j;
}

std::string DescribeEvent(const Event& e, const DecodedEvent& d) {
  std::string type(EventTypeName(e.type));
  if (type.empty()) type = HexU32(e.type);
  std::string label = Label(d);
  return "event " + std::to_string(e.number) + " (" + type + (label.empty() ? "" : " " + label) +
         ", " + RegisterName(e.mr_index) + ", offset " + std::to_string(e.offset) + ")";
}

BootMeasurements Summarize(const EventLog& log, const std::vector<DecodedEvent>& decoded) {
  BootMeasurements m;
  const size_t n = std::min(log.events.size(), decoded.size());
  std::map<uint32_t, std::vector<size_t>> separators;
  // The last boot attempt starts after the last "Returning from EFI Application" (a failed
  // attempt); OVMF loads a direct-boot kernel before it logs "Calling EFI Application".
  size_t attempt_start = 0;
  for (size_t i = 0; i < n; ++i) {
    const Event& e = log.events[i];
    const DecodedEvent& d = decoded[i];
    if (d.binding == Binding::kBroken)
      m.warnings.push_back(DescribeEvent(e, d) + " is broken: " + d.problem);
    if (e.number == 0 || e.type == kEvNoAction) continue;
    if (e.type == kEvSeparator) separators[e.mr_index].push_back(e.number);
    if ((e.type == kEvEfiAction || e.type == kEvAction) &&
        AsString(e.data) == kCallingBootOption) {
      ++m.boot_attempts;
    }
    if ((e.type == kEvEfiAction || e.type == kEvAction) &&
        AsString(e.data) == kReturningBootOption)
      attempt_start = i + 1;
    if (e.type == kEvEfiVariableDriverConfig && FieldString(d, "variable") == "SecureBoot" &&
        FieldString(d, "guid") == "8be4df61-93ca-11d2-aa0d-00e098032b8c" &&
        d.binding != Binding::kBroken) {
      // An empty SecureBoot variable (seen on GDC) means Secure Boot is not enabled.
      std::string v = FieldString(d, "value");
      m.secure_boot = v.size() >= 2 && v.substr(0, 2) == "01";
    }
    if (e.type == kEvEfiBootServicesApplication) {
      std::string p = FieldString(d, "device_path");
      m.boot_path.push_back(p.empty() ? "(image without a device path, event " +
                                            std::to_string(e.number) + ")"
                                      : p);
    }
    if (e.type == kEvEfiPlatformFirmwareBlob2 && FieldString(d, "description") == "td_payload")
      m.boot_path.push_back("td_payload");
  }
  for (const auto& [mr, list] : separators) {
    if (list.size() < 2) continue;
    std::string nums;
    for (size_t k : list) nums += (nums.empty() ? "" : ", ") + std::to_string(k);
    m.warnings.push_back(std::to_string(list.size()) + " separators in " + RegisterName(mr) +
                         " (events " + nums + "); replayed as logged");
  }

  size_t grub_app = SIZE_MAX;
  // Indices into the log of the events that name each item, kNone when absent.
  constexpr size_t kNone = SIZE_MAX;
  size_t last_app = kNone, app_after_grub = kNone, grub_linux = kNone, grub_kernel_file = kNone,
         grub_initrd_cmd = kNone, grub_initrd_file = kNone, grub_cmdline = kNone,
         uki_linux = kNone, uki_cmdline = kNone, uki_initrd = kNone, stub_options = kNone,
         stub_initrd = kNone, kernel_app = kNone, td_payload = kNone, td_payload_info = kNone;
  auto has = [](size_t i) { return i != SIZE_MAX; };
  for (size_t i = attempt_start; i < n; ++i) {
    const Event& e = log.events[i];
    const DecodedEvent& d = decoded[i];
    if (e.number == 0 || e.type == kEvNoAction) continue;
    switch (e.type) {
      case kEvEfiBootServicesApplication: {
        std::string p = FieldString(d, "device_path");
        if (grub_app != SIZE_MAX && !has(app_after_grub)) app_after_grub = i;
        if (ContainsNoCase(p, "grub")) {
          grub_app = i;
          app_after_grub = kNone;
        }
        // OVMF's direct boot: QEMU's kernel file in the firmware volume, named "kernel".
        if (p == "kernel" || (p.size() > 7 && p.substr(p.size() - 7) == "/kernel")) kernel_app = i;
        last_app = i;
        break;
      }
      case kEvIpl: {
        std::string cmd = FieldString(d, "grub_cmd");
        std::string file = FieldString(d, "grub_file");
        std::string sec = FieldString(d, "uki_section");
        bool content = FieldString(d, "measures") == "content";
        if (StartsWith(cmd, "linux ") || StartsWith(cmd, "linuxefi ")) {
          grub_linux = i;
          grub_kernel_file = kNone;
        } else if (StartsWith(cmd, "initrd ") || StartsWith(cmd, "initrdefi ")) {
          grub_initrd_cmd = i;
          grub_initrd_file = kNone;
        } else if (file == "Kernel") {
          grub_kernel_file = i;
        } else if (file == "Initrd") {
          grub_initrd_file = i;
        } else if (d.fields.contains("kernel_cmdline")) {
          grub_cmdline = i;
        } else if (!FieldString(d, "path").empty()) {
          // The file GRUB read right after its `linux` / `initrd` command.
          bool after_linux = has(grub_linux) && (!has(grub_cmdline) || grub_cmdline < grub_linux) &&
                             (!has(grub_initrd_cmd) || grub_initrd_cmd < grub_linux);
          if (after_linux && !has(grub_kernel_file))
            grub_kernel_file = i;
          else if (has(grub_initrd_cmd) && !has(grub_initrd_file) &&
                   (!has(grub_linux) || grub_initrd_cmd > grub_linux))
            grub_initrd_file = i;
        } else if (content && sec == ".linux") {
          uki_linux = i;
        } else if (content && sec == ".cmdline") {
          uki_cmdline = i;
        } else if (content && sec == ".initrd") {
          uki_initrd = i;
        }
        break;
      }
      case kEvEventTag: {
        std::string tag = FieldString(d, "tag");
        if (tag == kLoadOptionsDescription) stub_options = i;
        if (tag == "Linux initrd") stub_initrd = i;
        break;
      }
      case kEvEfiPlatformFirmwareBlob2:
        if (FieldString(d, "description") == "td_payload") td_payload = i;
        break;
      case kEvPlatformConfigFlags:
        if (FieldString(d, "text") == "td_payload_info") td_payload_info = i;
        break;
      default:
        break;
    }
  }
  auto item = [&](size_t i, const char* source) {
    return Item(log.events[i], decoded[i], source);
  };
  // The kernel.
  if (has(uki_linux)) {
    m.kernel = item(uki_linux, "uki");
  } else if (grub_app != SIZE_MAX && has(app_after_grub)) {
    m.kernel = item(app_after_grub, "efi-app");
  } else if (has(grub_kernel_file)) {
    m.kernel = item(grub_kernel_file, "grub");
  } else if (has(kernel_app)) {
    m.kernel = item(kernel_app, "efi-app");
  } else if (has(td_payload)) {
    m.kernel = item(td_payload, "td-shim");
  } else if (has(last_app) && grub_app == SIZE_MAX) {
    m.kernel = item(last_app, "efi-app");
  }
  // The command line: GRUB's (bound text) before the stub's LoadOptions (opaque in real logs).
  if (has(grub_cmdline)) {
    m.cmdline = item(grub_cmdline, "grub");
    m.cmdline->text = FieldString(decoded[grub_cmdline], "kernel_cmdline");
  } else if (has(uki_cmdline)) {
    m.cmdline = item(uki_cmdline, "uki");
  } else if (has(stub_options)) {
    m.cmdline = item(stub_options, "efi-stub");
    if (decoded[stub_options].binding == Binding::kBound)
      m.cmdline->text = FieldString(decoded[stub_options], "text");
  } else if (has(td_payload_info)) {
    m.cmdline = item(td_payload_info, "td-shim");
    if (decoded[td_payload_info].binding == Binding::kBound)
      m.cmdline->text = FieldString(decoded[td_payload_info], "cmdline");
  }
  // The initrd.
  if (has(uki_initrd)) {
    m.initrd = item(uki_initrd, "uki");
  } else if (has(grub_initrd_file)) {
    m.initrd = item(grub_initrd_file, "grub");
  } else if (has(stub_initrd)) {
    m.initrd = item(stub_initrd, "efi-stub");
  }
  if (!m.secure_boot) m.warnings.push_back("no SecureBoot variable in the log");
  return m;
}

}  // namespace tdxvirt::eventlog
