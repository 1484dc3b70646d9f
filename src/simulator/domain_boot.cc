#include "simulator/domain_boot.h"

#include <pugixml.hpp>

#include <charconv>

#include "common/base64.h"
#include "common/openssl.h"
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
  d.cmdline = domain.child("os").child("cmdline").text().as_string();
  return d;
}

std::vector<std::pair<int, evidence::Sha384Digest>> SimulatedBootMeasurements(const TdDomain& d) {
  std::vector<std::pair<int, evidence::Sha384Digest>> out;
  // RTMR0: what TDVF measures of the TD's configuration (TD HOB: vCPUs and memory).
  out.push_back({0, Digest("td-hob:vcpus=" + std::to_string(d.vcpus) +
                           ",memory_kib=" + std::to_string(d.memory_kib))});
  // RTMR1: the boot loader / kernel: the first disk the firmware boots from.
  out.push_back({1, Digest("boot:" + (d.disks.empty() ? std::string() : d.disks.front()))});
  // RTMR2: the kernel command line.
  out.push_back({2, Digest("cmdline:" + d.cmdline)});
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
  for (auto& [index, digest] : SimulatedBootMeasurements(d)) {
    // RTMR[i] = SHA-384(RTMR[i] || digest), from zero.
    Bytes buf(c.td.rtmr[index].begin(), c.td.rtmr[index].end());
    buf.insert(buf.end(), digest.begin(), digest.end());
    c.td.rtmr[index] = ossl::Sha384(buf);
  }
  return c;
}

}  // namespace tdxvirt::simulator
