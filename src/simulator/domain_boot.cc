#include "simulator/domain_boot.h"

#include <pugixml.hpp>

#include <sys/stat.h>

#include <charconv>

#include "common/base64.h"
#include "common/file.h"
#include "common/openssl.h"
#include "eventlog/builder.h"
#include "simulator/tdvf.h"

namespace tdxvirt::simulator {

namespace {

Result<uint64_t> ParseUnsigned(std::string_view text, int base, const std::string& field) {
  std::string_view t = text;
  if (base == 16 && (t.starts_with("0x") || t.starts_with("0X"))) t.remove_prefix(2);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v, base);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size())
    return Error{field + ": \"" + std::string(text) + "\" is not a " +
                 (base == 16 ? "hex" : "decimal") + " number"};
  return v;
}

Status ReadDigest(const pugi::xml_node& ls, const char* element, evidence::Sha384Digest& out) {
  auto node = ls.child(element);
  if (!node) return Ok{};
  std::string field = std::string("launchSecurity/") + element;
  auto bytes = Base64Decode(node.text().as_string(), field);
  if (!bytes.ok()) return Error{bytes.error() + "; QEMU wants base64 of a 48-byte SHA-384 value"};
  if (bytes->size() != out.size())
    return Error{field + ": decodes to " + std::to_string(bytes->size()) +
                 " bytes; QEMU requires 48 (a SHA-384 value)"};
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return Ok{};
}

uint64_t MemoryKib(const pugi::xml_node& mem) {
  uint64_t v = mem.text().as_ullong();
  std::string unit = mem.attribute("unit").as_string("KiB");
  if (unit == "b" || unit == "bytes") return v / 1024;
  if (unit == "KB") return v * 1000 / 1024;
  if (unit == "M" || unit == "MiB") return v << 10;
  if (unit == "MB") return v * 1000 * 1000 / 1024;
  if (unit == "G" || unit == "GiB") return v << 20;
  if (unit == "GB") return v * 1000 * 1000 * 1000 / 1024;
  return v;  // k, KiB
}

evidence::Sha384Digest Digest(const std::string& s) { return ossl::Sha384(AsBytes(s)); }

}  // namespace

Result<TdDomain> ReadTdDomain(std::string_view domain_xml) {
  pugi::xml_document doc;
  auto parsed = doc.load_buffer(domain_xml.data(), domain_xml.size(), pugi::parse_default);
  if (!parsed) return Error{std::string("domain XML: ") + parsed.description() + " at offset " +
                            std::to_string(parsed.offset)};
  auto domain = doc.child("domain");
  if (!domain) return Error{"domain XML: no <domain> root element"};
  auto ls = domain.child("launchSecurity");
  if (!ls || std::string_view(ls.attribute("type").as_string()) != "tdx")
    return Error{"domain XML: not a TD: <launchSecurity type='tdx'> is missing"};

  TdDomain d;
  d.name = domain.child("name").text().as_string();
  d.loader = domain.child("os").child("loader").text().as_string();
  if (d.loader.empty())
    return Error{"domain XML: <os><loader> is missing: a TD boots TDVF from a loader path"};
  if (auto policy = ls.child("policy")) {
    auto v = ParseUnsigned(policy.text().as_string(), 16, "launchSecurity/policy");
    if (!v.ok()) return Error{v.error()};
    d.attributes = *v;
  }
  for (auto [el, out] : {std::pair{"mrConfigId", &d.mr_config_id}, {"mrOwner", &d.mr_owner},
                         {"mrOwnerConfig", &d.mr_owner_config}}) {
    Status s = ReadDigest(ls, el, *out);
    if (!s.ok()) return Error{s.error()};
  }
  if (auto qgs = ls.child("quoteGenerationService")) {
    d.has_qgs = true;
    d.qgs_path = qgs.attribute("path").as_string("/var/run/tdx-qgs/qgs.socket");
  }
  if (auto vcpu = domain.child("vcpu")) {
    auto v = ParseUnsigned(vcpu.text().as_string(), 10, "vcpu");
    if (!v.ok()) return Error{v.error()};
    if (*v == 0 || *v > 4096) return Error{"vcpu: " + std::to_string(*v) + " is out of range"};
    d.vcpus = uint32_t(*v);
  }
  d.memory_kib = MemoryKib(domain.child("memory"));
  for (auto disk : domain.child("devices").children("disk")) {
    auto src = disk.child("source");
    std::string s = src.attribute("file").as_string(src.attribute("dev").as_string(
        src.attribute("name").as_string(disk.child("target").attribute("dev").as_string())));
    d.disks.push_back(s);
  }
  auto os = domain.child("os");
  d.kernel = os.child("kernel").text().as_string();
  d.initrd = os.child("initrd").text().as_string();
  d.cmdline = os.child("cmdline").text().as_string();
  d.secure_boot = std::string_view(os.child("loader").attribute("secure").as_string()) == "yes";
  return d;
}

namespace {

// ASCII as UTF-16LE, without a terminator unless the text has one.
Bytes Ucs2(std::string_view ascii) {
  ByteWriter out;
  for (char c : ascii) out.U16(uint8_t(c));
  return out.Finish();
}

// EFI GUIDs in their in-memory byte order.
constexpr ByteArray<16> kEfiGlobalVariable = {  // 8be4df61-93ca-11d2-aa0d-00e098032b8c
    0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c};
constexpr ByteArray<16> kImageSecurityDatabase = {  // d719b2cb-3d3a-4596-a3bc-dad00e67656f
    0xcb, 0xb2, 0x19, 0xd7, 0x3a, 0x3d, 0x96, 0x45, 0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f};
constexpr ByteArray<16> kTdHobGuid = {  // the TD HOB list, as TDVF names it
    0xaf, 0x96, 0xbb, 0x93, 0xf2, 0xb9, 0xb8, 0x4e, 0x94, 0x62, 0xe0, 0xba, 0x74, 0x56, 0x42, 0x36};
constexpr ByteArray<16> kQemuKernelLoaderFsGuid = {  // 1428f772-b64a-441e-b8c3-9ebdd7f893c7
    0x72, 0xf7, 0x28, 0x14, 0x4a, 0xb6, 0x1e, 0x44, 0xb8, 0xc3, 0x9e, 0xbd, 0xd7, 0xf8, 0x93, 0xc7};
constexpr ByteArray<16> kOvmfFvGuid = {  // 7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1
    0xc9, 0xbd, 0xb8, 0x7c, 0xeb, 0xf8, 0x34, 0x4f, 0xaa, 0xea, 0x3e, 0xe4, 0xaf, 0x65, 0x16, 0xa1};
constexpr ByteArray<16> kUiAppGuid = {  // 462caa21-7614-4503-836e-8ab6f4662331
    0x21, 0xaa, 0x2c, 0x46, 0x14, 0x76, 0x03, 0x45, 0x83, 0x6e, 0x8a, 0xb6, 0xf4, 0x66, 0x23, 0x31};

// UEFI_VARIABLE_DATA: VariableName GUID, UnicodeNameLength (chars), VariableDataLength, name, data.
Bytes VariableData(const ByteArray<16>& guid, std::string_view name, ByteSpan value) {
  ByteWriter out;
  out.Put(guid);
  out.U64(name.size());
  out.U64(value.size());
  out.Put(Ucs2(name));
  out.Put(value);
  return out.Finish();
}

// UEFI_IMAGE_LOAD_EVENT of the image QEMU's kernel loader file system hands OVMF for -kernel:
// location, length, link-time address, device path (VenMedia(QEMU loader), File "kernel", End).
Bytes KernelImageLoadEvent(uint64_t length) {
  ByteWriter path;
  path.Put(Bytes{0x04, 0x03, 0x14, 0x00});  // MEDIA_DEVICE_PATH / vendor, 20 bytes
  path.Put(kQemuKernelLoaderFsGuid);
  Bytes name = Ucs2(std::string_view("kernel\0", 7));
  path.Put(Bytes{0x04, 0x04});  // MEDIA_DEVICE_PATH / file path
  path.U16(uint16_t(4 + name.size()));
  path.Put(name);
  path.Put(Bytes{0x7f, 0xff, 0x04, 0x00});  // end of the device path
  ByteWriter out;
  out.U64(0x7a896018);  // ImageLocationInMemory (where OVMF loaded it; any address will do)
  out.U64(length);      // ImageLengthInMemory
  out.U64(0);           // ImageLinkTimeAddress
  out.U64(path.bytes().size());
  out.Put(path.bytes());
  return out.Finish();
}

// Boot0000 as OVMF creates it for the UI application: EFI_LOAD_OPTION (active, category app),
// description "UiApp", device path Fv(OVMF)/FvFile(UiApp).
Bytes Boot0000Value() {
  ByteWriter path;
  path.Put(Bytes{0x04, 0x07, 0x14, 0x00});  // MEDIA_PIWG_FW_VOL
  path.Put(kOvmfFvGuid);
  path.Put(Bytes{0x04, 0x06, 0x14, 0x00});  // MEDIA_PIWG_FW_FILE
  path.Put(kUiAppGuid);
  path.Put(Bytes{0x7f, 0xff, 0x04, 0x00});
  ByteWriter out;
  out.U32(0x109);  // LOAD_OPTION_ACTIVE | LOAD_OPTION_CATEGORY_APP
  out.U16(uint16_t(path.bytes().size()));
  out.Put(Ucs2(std::string_view("UiApp\0", 6)));
  out.Put(path.bytes());
  return out.Finish();
}

evidence::Sha384Digest StandIn(const std::string& what) {
  return Digest("tdxvirt simulated " + what);
}

}  // namespace

evidence::Sha384Digest SimulatedKernelDigest(const TdDomain& d) {
  if (!d.kernel.empty()) return StandIn("kernel Authenticode hash: " + d.kernel);
  return StandIn("boot image from disk: " + (d.disks.empty() ? std::string() : d.disks.front()));
}

evidence::Sha384Digest SimulatedInitrdDigest(const TdDomain& d) {
  auto bytes = ReadRegularFile(d.initrd, kMaxMeasuredInitrdBytes);
  if (bytes.ok()) return ossl::Sha384(*bytes);
  return StandIn("initrd: " + d.initrd);
}

Result<SimulatedBoot> SimulateBoot(const TdDomain& d, ByteSpan firmware) {
  namespace el = eventlog;
  auto sections = ParseTdvfMetadata(firmware);
  if (!sections.ok()) return Error{"loader " + d.loader + ": " + sections.error()};
  auto load_options = el::DirectBootLoadOptions(d.cmdline, !d.initrd.empty());
  if (!load_options.ok()) return Error{"<os><cmdline>: " + load_options.error()};
  const TdvfSection* cfv = nullptr;
  uint64_t td_hob_address = 0x809000;  // TDVF's usual place, when the metadata names none
  for (const auto& s : *sections) {
    if (s.type == uint32_t(TdvfSectionType::kCfv) && !cfv) cfv = &s;
    if (s.type == uint32_t(TdvfSectionType::kTdHob)) td_hob_address = s.memory_address;
  }

  // The order below is OVMF's for a direct kernel boot (the ovmf-direct-boot and trustee-ovmf
  // logs in testdata/eventlogs): MR index 1 = RTMR0, 2 = RTMR1, 3 = RTMR2.
  el::EventLogBuilder b;
  // RTMR0: the TD HOB TDVF hands on (stand-in digest: the real one hashes the HOB list, which
  // depends on vCPUs and memory).
  {
    ByteWriter data;
    data.Put(Bytes{9});
    data.Put(AsBytes(std::string_view("TdxTable\0", 9)));
    data.U64(1);  // NumberOfTables
    data.Put(kTdHobGuid);
    data.U64(td_hob_address);
    b.Add(1, el::kEvEfiHandoffTables2,
          StandIn("TD HOB: vcpus=" + std::to_string(d.vcpus) + " memory_kib=" + std::to_string(d.memory_kib)),
          data.bytes());
  }
  // RTMR0: the configuration firmware volume, SHA-384 of its bytes in the image.
  {
    std::string desc("Fv(XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)\0", 41);
    ByteWriter data;
    data.Put(Bytes{uint8_t(desc.size())});
    data.Put(AsBytes(desc));
    evidence::Sha384Digest digest = StandIn("CFV: none in " + d.loader);
    uint64_t base = 0xffc00000, length = 0x84000;
    if (cfv) {
      digest = ossl::Sha384(firmware.subspan(cfv->data_offset, cfv->raw_data_size));
      base = cfv->memory_address;
      length = cfv->raw_data_size;
    }
    data.U64(base);
    data.U64(length);
    b.Add(1, el::kEvEfiPlatformFirmwareBlob2, digest, data.bytes());
  }
  // RTMR0: the Secure Boot variables, digest over the whole UEFI_VARIABLE_DATA (bound).
  // secure='yes' sets SecureBoot to 1; PK, KEK, db and dbx stay empty (a stand-in: a real
  // Secure Boot TD has its enrolled certificates there).
  uint8_t sb = d.secure_boot ? 1 : 0;
  b.AddHashed(1, el::kEvEfiVariableDriverConfig, VariableData(kEfiGlobalVariable, "SecureBoot", ByteSpan(&sb, 1)));
  b.AddHashed(1, el::kEvEfiVariableDriverConfig, VariableData(kEfiGlobalVariable, "PK", {}));
  b.AddHashed(1, el::kEvEfiVariableDriverConfig, VariableData(kEfiGlobalVariable, "KEK", {}));
  b.AddHashed(1, el::kEvEfiVariableDriverConfig, VariableData(kImageSecurityDatabase, "db", {}));
  b.AddHashed(1, el::kEvEfiVariableDriverConfig, VariableData(kImageSecurityDatabase, "dbx", {}));
  const Bytes separator(4, 0);
  b.AddHashed(1, el::kEvSeparator, separator);
  // RTMR0: QEMU's ACPI tables as the table loader installs them (stand-ins: the real digests
  // cover table-loader commands, RSDP and tables, which depend on the machine).
  std::string machine = "vcpus=" + std::to_string(d.vcpus) + " memory_kib=" + std::to_string(d.memory_kib);
  for (const char* part : {"table loader", "RSDP", "tables"})
    b.Add(1, el::kEvPlatformConfigFlags, StandIn(std::string("ACPI ") + part + ": " + machine),
          AsBytes(std::string_view("ACPI DATA")));
  // RTMR1: the kernel image (opaque: a real TD has its Authenticode hash here).
  uint64_t kernel_length = 0;  // the file's size when it is on this machine
  struct stat st {};
  if (!d.kernel.empty() && stat(d.kernel.c_str(), &st) == 0 && S_ISREG(st.st_mode)) kernel_length = uint64_t(st.st_size);
  b.Add(2, el::kEvEfiBootServicesApplication, SimulatedKernelDigest(d), KernelImageLoadEvent(kernel_length));
  // RTMR0: the boot variables, digest over the value only.
  Bytes boot_order = {0, 0};
  b.Add(1, el::kEvEfiVariableBoot, ossl::Sha384(boot_order), VariableData(kEfiGlobalVariable, "BootOrder", boot_order));
  Bytes boot0000 = Boot0000Value();
  b.Add(1, el::kEvEfiVariableBoot, ossl::Sha384(boot0000), VariableData(kEfiGlobalVariable, "Boot0000", boot0000));
  b.AddHashed(2, el::kEvEfiAction, AsBytes(std::string_view("Calling EFI Application from Boot Option")));
  // The separator OVMF writes at ReadyToBoot carries MR index 1, not 2, in every real OVMF log in
  // testdata (RTMR0 gets two, RTMR1 none), and those TDs' quotes match that: written as they do.
  b.AddHashed(1, el::kEvSeparator, separator);
  // RTMR2: the Linux EFI stub (>= 6.9). The event data is the tag and its description, as the stub
  // writes it; the digest is SHA-384 of what it measured: the load options (the command line as
  // UTF-16LE, plus " initrd=initrd" when QEMU got an initrd), then the initrd's bytes.
  b.AddTag(3, el::kTagLoadOptions, AsBytes(std::string_view("LOADED_IMAGE::LoadOptions\0", 26)),
           ossl::Sha384(*load_options));
  if (!d.initrd.empty())
    b.AddTag(3, el::kTagInitrd, AsBytes(std::string_view("Linux initrd\0", 13)), SimulatedInitrdDigest(d));
  b.AddHashed(2, el::kEvEfiAction, AsBytes(std::string_view("Exit Boot Services Invocation")));
  b.AddHashed(2, el::kEvEfiAction, AsBytes(std::string_view("Exit Boot Services Returned with Success")));

  SimulatedBoot out;
  out.ccel_data = b.Finish(kSimCcelLaml);
  if (out.ccel_data.size() > kSimCcelLaml)
    return Error{"the simulated event log (" + std::to_string(out.ccel_data.size()) +
                 " bytes) does not fit the CCEL area of " + std::to_string(kSimCcelLaml)};
  out.ccel_table = el::MakeCcelTable(kSimCcelLaml, kSimCcelLasa);
  out.rtmrs = b.rtmrs();
  return out;
}

Result<TdConfig> TdConfigForDomain(const TdDomain& d, ByteSpan firmware) {
  auto mrtd = ComputeMrtdOfFirmware(firmware);
  if (!mrtd.ok()) return Error{"loader " + d.loader + ": " + mrtd.error()};
  TdConfig c = DefaultTdConfig();
  c.td.mr_td = *mrtd;
  c.td.mr_config_id = d.mr_config_id;
  c.td.mr_owner = d.mr_owner;
  c.td.mr_owner_config = d.mr_owner_config;
  for (int i = 0; i < 8; ++i) c.td.td_attributes[size_t(i)] = uint8_t(d.attributes >> (8 * i));
  auto boot = SimulateBoot(d, firmware);
  if (!boot.ok()) return Error{boot.error()};
  for (size_t i = 0; i < 4; ++i) c.td.rtmr[i] = boot->rtmrs[i];
  return c;
}

}  // namespace tdxvirt::simulator
