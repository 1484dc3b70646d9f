// Helpers for the kubevirt tests: the shared examples with TDX added, settings with the gate on.
#pragma once

#include <filesystem>
#include <pugixml.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "kubevirt/document.h"
#include "kubevirt/settings.h"
#include "test_util.h"

namespace tdxvirt::testing {

// The gate on, acting for a named KubeVirt release (default: 1.8, where tdxvirt adds the most
// next to upstream's TDX path: key resource, QGS element, hook).
inline kubevirt::ClusterSettings GateOn(const std::string& kubevirt_version = "1.8") {
  kubevirt::ClusterSettings s;
  s.feature_gate = true;
  s.kubevirt_version = kubevirt_version;
  return s;
}

inline std::string ReadText(const std::string& relative) {
  Bytes b = ReadTestdata(relative);
  return std::string(b.begin(), b.end());
}

inline kubevirt::Json ReadManifest(const std::string& relative) {
  auto j = kubevirt::ParseDocument(ReadText(relative), relative);
  return j.ok() ? *j : kubevirt::Json();
}

// The VM and VMI examples under kubevirt/examples (by kind, not by name).
inline std::vector<std::string> VmAndVmiExamples() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(TestdataPath("kubevirt/examples"))) {
    auto j = kubevirt::ParseDocument(ReadText("kubevirt/examples/" + e.path().filename().string()),
                                     "example");
    if (!j.ok()) continue;
    std::string kind = j->value("kind", "");
    if (kind == "VirtualMachine" || kind == "VirtualMachineInstance")
      out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// What a user adds to ask for TDX: launchSecurity.tdx and UEFI without Secure Boot.
inline kubevirt::Json WithTdx(kubevirt::Json m) {
  kubevirt::Json& spec = m["kind"] == "VirtualMachine" ? m["spec"]["template"]["spec"] : m["spec"];
  spec["domain"]["launchSecurity"] = {{"tdx", kubevirt::Json::object()}};
  spec["domain"]["firmware"]["bootloader"] = {{"efi", {{"secureBoot", false}}}};
  return m;
}

// The same, the way release `v` asks for it: on 1.6, whose CRD has no tdx field, by annotation.
inline kubevirt::Json WithTdxFor(kubevirt::Json m, const std::string& v) {
  if (v != "1.6") return WithTdx(std::move(m));
  bool vm = m["kind"] == "VirtualMachine";
  kubevirt::Json& spec = vm ? m["spec"]["template"]["spec"] : m["spec"];
  spec["domain"]["firmware"]["bootloader"] = {{"efi", {{"secureBoot", false}}}};
  kubevirt::Json& meta = vm ? m["spec"]["template"]["metadata"] : m["metadata"];
  meta["annotations"]["tdx.tdxvirt.io/enabled"] = "true";
  return m;
}

// KubeVirt's fixtures break libvirt's schema in two ways of their own (shared/testdata/kubevirt/
// SOURCE.md): an empty SMBIOS group and a `name` on block-disk sources. The hook leaves what it
// does not own alone, so the test removes them before the schema check.
inline std::string WithoutUpstreamSchemaDeviations(const std::string& xml) {
  pugi::xml_document doc;
  doc.load_string(xml.c_str());
  pugi::xml_node d = doc.child("domain");
  std::vector<pugi::xml_node> empty;
  for (pugi::xml_node g : d.child("sysinfo").children())
    if (!g.first_child()) empty.push_back(g);
  for (pugi::xml_node g : empty) d.child("sysinfo").remove_child(g);
  for (pugi::xml_node disk : d.child("devices").children("disk"))
    disk.child("source").remove_attribute("name");
  std::ostringstream out;
  doc.save(out);
  return out.str();
}

inline std::string SchemaDir() { return TestdataPath("libvirt-schemas"); }

}  // namespace tdxvirt::testing
