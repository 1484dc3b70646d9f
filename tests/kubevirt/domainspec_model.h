// A test model of what KubeVirt keeps when it re-parses a hook's domain XML into its own
// `api.DomainSpec` (virt-launcher, ApplyDomainHooks). The hook's raw XML is what libvirt defines,
// but KubeVirt also unmarshals it and copies the result over the spec it wanted, and from 1.9,
// with the Alpha Plugins gate and a matching Plugin, it re-serializes that struct and defines
// *that* instead. So what the struct cannot hold is either invisible to KubeVirt or really lost.
//
// Facts: shared/testdata/kubevirt/versions/v1.<minor>/facts.json, key "domainspec_roundtrip"
// (and shared/reference/kubevirt-versions.md, section 4, conflict 3). Only the rules that bear on a
// TD are modelled; every other element and attribute is kept as it is (the real struct drops far
// more, e.g. unknown devices, which does not matter here).
#pragma once

#include <pugixml.hpp>

#include <algorithm>
#include <array>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace tdxvirt::testing {

namespace domainspec_model_detail {

inline bool In(std::string_view name, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Removes the children of `parent` for which keep(name) is false.
template <typename Keep>
void KeepChildren(pugi::xml_node parent, Keep keep) {
  std::vector<pugi::xml_node> drop;
  for (pugi::xml_node c : parent.children())
    if (c.type() == pugi::node_element && !keep(std::string_view(c.name()))) drop.push_back(c);
  for (pugi::xml_node c : drop) parent.remove_child(c);
}

}  // namespace domainspec_model_detail

// The domain as KubeVirt release 1.<minor> reads it back; "" when `xml` does not parse (a test
// then fails on the comparison, never on a crash).
inline std::string ReparseAsKubevirt(std::string_view xml, int minor) {
  using namespace domainspec_model_detail;
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return "";
  pugi::xml_node dom = doc.document_element();

  // launchSecurity: the struct has type (an attribute) and the children dhCert, session, cbitpos,
  // reducedPhysBits, policy; quoteGenerationService (with its path) only from 1.9. So mrConfigId,
  // mrOwner and mrOwnerConfig are dropped on every release, and a QGS element up to 1.8.
  //   facts.json domainspec_roundtrip.launchSecurity_fields / dropped_on_reparse:
  //   v1.6 api/schema.go:1059, v1.7 :1071, v1.8 :1189 (no QGS); v1.9 api/schema.go:1249 (+QGS).
  for (pugi::xml_node ls : dom.children("launchSecurity"))
    KeepChildren(ls, [&](std::string_view n) {
      return In(n, {"dhCert", "session", "cbitpos", "reducedPhysBits", "policy"}) ||
             (minor >= 9 && n == "quoteGenerationService");
    });

  // features: only acpi, apic, hyperv, smm, kvm, pvspinlock, pmu, vmport are fields; ioapic (and
  // anything else) is dropped.
  //   facts.json domainspec_roundtrip.features_known, dropped_on_reparse "features/ioapic":
  //   v1.6/v1.7 api/schema.go:307-316, v1.8 :328-337, v1.9 :345-354.
  for (pugi::xml_node f : dom.children("features")) {
    KeepChildren(f, [](std::string_view n) {
      return In(n, {"acpi", "apic", "hyperv", "smm", "kvm", "pvspinlock", "pmu", "vmport"});
    });
    // Features.SMM is *FeatureEnabled, an empty struct: no state attribute, so <smm state="off"/>
    // reads back as <smm/>, i.e. SMM on.
    //   facts.json domainspec_roundtrip.smm: v1.6/v1.7 api/schema.go:357, v1.8 :384, v1.9 :401.
    for (pugi::xml_node smm : f.children("smm"))
      while (pugi::xml_attribute a = smm.first_attribute()) smm.remove_attribute(a);
  }

  // qemu:commandline is a namespace-prefixed tag the struct does not match, so it is lost on
  // every release up to 1.9.0 (fixed after it).
  //   facts.json dropped_on_reparse "qemu:commandline"; @d923fdb815 libvirt_helper.go:157-161.
  KeepChildren(dom, [](std::string_view n) { return n != "qemu:commandline"; });

  std::ostringstream out;
  doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration);
  return out.str();
}

// Whether the re-parsed domain has SMM on: KubeVirt turns SMM on for any <features><smm>, whatever
// its attributes (facts.json domainspec_roundtrip.smm).
inline bool SmmOnAfterReparse(std::string_view xml, int minor = 9) {
  pugi::xml_document doc;
  std::string back = ReparseAsKubevirt(xml, minor);
  if (!doc.load_buffer(back.data(), back.size())) return false;
  return bool(doc.document_element().child("features").child("smm"));
}

}  // namespace tdxvirt::testing
