// Structural pruning as a live API server does it (src/kubevirt/prune.h): the shipped schemas are
// the releases' own, real manifests lose nothing, TDX settings under launchSecurity.tdx vanish
// the way they do on each release, and each pruning rule on a small schema.
#include "kubevirt/prune.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "kv_test_util.h"

namespace tdxvirt::kubevirt {
namespace {

using kube::KubevirtVersion;

std::vector<KubevirtVersion> KnownVersions() {
  std::vector<KubevirtVersion> out;
  for (int m = kube::kOldestKnownMinor; m <= kube::kNewestKnownMinor; ++m) out.push_back({1, m});
  return out;
}

// The schema with every `description` keyword removed, at schema positions only (the rule of
// scripts/strip-kubevirt-schema.py, written again here so the two can be compared).
Json StripDescriptions(const Json& node) {
  if (!node.is_object()) return node;
  Json out = Json::object();
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string& k = it.key();
    const Json& v = it.value();
    if (k == "description") continue;
    if (k == "items" || k == "additionalProperties" || k == "not" || k == "additionalItems") {
      if (v.is_array()) {
        out[k] = Json::array();
        for (const Json& e : v) out[k].push_back(StripDescriptions(e));
      } else {
        out[k] = StripDescriptions(v);
      }
    } else if (k == "allOf" || k == "anyOf" || k == "oneOf") {
      out[k] = Json::array();
      for (const Json& e : v) out[k].push_back(StripDescriptions(e));
    } else if (k == "properties" || k == "patternProperties" || k == "definitions" ||
               k == "dependencies") {
      out[k] = Json::object();
      for (auto p = v.begin(); p != v.end(); ++p) out[k][p.key()] = StripDescriptions(p.value());
    } else {
      out[k] = v;
    }
  }
  return out;
}

std::string RepoFile(const std::string& relative) {
  std::ifstream f(std::string(TDXVIRT_SOURCE_DIR) + "/" + relative, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Where a VM or VMI keeps its domain's launchSecurity, as a dotted path and as a reference.
std::string LaunchSecurityPath(const Json& m) {
  return m["kind"] == "VirtualMachine" ? "spec.template.spec.domain.launchSecurity"
                                       : "spec.domain.launchSecurity";
}
Json& LaunchSecurity(Json& m) {
  Json& spec = m["kind"] == "VirtualMachine" ? m["spec"]["template"]["spec"] : m["spec"];
  return spec["domain"]["launchSecurity"];
}

Json TdxSettings() {
  return {{"QGS", "vsock:2:4050"},
          {"MRCONFIGID", "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8w"},
          {"initDataRef", "x"}};
}

// What the API server of release `v` leaves of `m` (which has launchSecurity.tdx) and which keys
// it names: on 1.6 tdx goes; from 1.7 tdx stays, empty.
void ExpectTdxPruned(const Json& m, const KubevirtVersion& v, const std::string& name) {
  SCOPED_TRACE(name + " on " + v.Text());
  Json expected = m;
  Json& ls = LaunchSecurity(expected);
  std::vector<std::string> paths;
  const std::string tdx_path = LaunchSecurityPath(m) + ".tdx";
  if (v.minor == 6) {
    ls.erase("tdx");
    paths.push_back(tdx_path);
  } else {
    for (auto it = ls["tdx"].begin(); it != ls["tdx"].end(); ++it)
      paths.push_back(tdx_path + "." + it.key());
    ls["tdx"] = Json::object();
  }
  std::vector<std::string> pruned;
  auto r = PruneForKubevirt(m, v, &pruned);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(pruned, paths);
  EXPECT_EQ(*r, expected);
}

TEST(PruneSchemas, EmbeddedSchemaIsTheSharedOneWithoutDescriptions) {
  for (const KubevirtVersion& v : KnownVersions()) {
    for (const auto& [kind, file] :
         {std::pair{"VirtualMachine", "vm"}, std::pair{"VirtualMachineInstance", "vmi"}}) {
      SCOPED_TRACE(v.Text() + " " + kind);
      Json shared = Json::parse(
          testing::ReadText("kubevirt/versions/v" + v.Text() + "/" + file + ".schema.json"));
      const Json* embedded = KubevirtCrdSchema(v, kind);
      ASSERT_NE(embedded, nullptr);
      EXPECT_EQ(*embedded, StripDescriptions(shared));
      EXPECT_EQ(embedded->dump().find("\"description\""), std::string::npos);
      // The shipped file itself, not only what the build embedded from it.
      EXPECT_EQ(Json::parse(RepoFile("data/kubevirt/v" + v.Text() + "/" + file + ".schema.json")),
                *embedded);
    }
  }
}

TEST(PruneSchemas, OnlyExactVersionsAndVmKindsHaveOne) {
  EXPECT_EQ(KubevirtCrdSchema({1, 5}, "VirtualMachine"), nullptr);
  EXPECT_EQ(KubevirtCrdSchema({1, 10}, "VirtualMachine"), nullptr);
  EXPECT_EQ(KubevirtCrdSchema({1, 9}, "VirtualMachinePool"), nullptr);
  // One parse per schema: the same object every time.
  EXPECT_EQ(KubevirtCrdSchema({1, 9}, "VirtualMachine"),
            KubevirtCrdSchema({1, 9}, "VirtualMachine"));
}

TEST(PruneExamples, UpstreamManifestsLoseNothing) {
  auto examples = testing::VmAndVmiExamples();
  ASSERT_EQ(examples.size(), 31u);
  for (const std::string& name : examples) {
    Json m = testing::ReadManifest("kubevirt/examples/" + name);
    for (const KubevirtVersion& v : KnownVersions()) {
      std::vector<std::string> pruned;
      auto r = PruneForKubevirt(m, v, &pruned);
      ASSERT_TRUE(r.ok()) << name << ": " << r.error();
      EXPECT_EQ(pruned, std::vector<std::string>{}) << name << " on " << v.Text();
      EXPECT_EQ(*r, m) << name << " on " << v.Text();
    }
  }
}

TEST(PruneExamples, TdxSettingsVanishAsOnEachRelease) {
  auto examples = testing::VmAndVmiExamples();
  ASSERT_EQ(examples.size(), 31u);
  for (const std::string& name : examples) {
    Json m = testing::WithTdx(testing::ReadManifest("kubevirt/examples/" + name));
    LaunchSecurity(m)["tdx"] = TdxSettings();
    for (const KubevirtVersion& v : KnownVersions()) ExpectTdxPruned(m, v, name);
  }
}

TEST(PruneExamples, ProjectExamples) {
  int with_tdx = 0;
  const std::filesystem::path root = std::string(TDXVIRT_SOURCE_DIR) + "/examples";
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (!e.is_regular_file() || e.path().extension() != ".yaml") continue;  // examples/luks has a unit
    const std::string name = std::filesystem::relative(e.path(), root).string();
    auto doc = ParseDocument(RepoFile("examples/" + name), name);
    ASSERT_TRUE(doc.ok()) << doc.error();
    const std::string kind = StringField(*doc, "kind");
    if (kind != "VirtualMachine" && kind != "VirtualMachineInstance") continue;
    Json m = *doc;
    if (Get(LaunchSecurity(m), "tdx") == nullptr) {  // the annotation form: nothing to lose
      for (const KubevirtVersion& v : KnownVersions()) {
        std::vector<std::string> pruned;
        auto r = PruneForKubevirt(*doc, v, &pruned);
        ASSERT_TRUE(r.ok()) << r.error();
        EXPECT_EQ(pruned, std::vector<std::string>{}) << name;
        EXPECT_EQ(*r, *doc) << name;
      }
      continue;
    }
    ++with_tdx;
    for (const KubevirtVersion& v : KnownVersions()) ExpectTdxPruned(*doc, v, name);
    LaunchSecurity(m)["tdx"] = TdxSettings();
    for (const KubevirtVersion& v : KnownVersions()) ExpectTdxPruned(m, v, name + " +settings");
  }
  EXPECT_EQ(with_tdx, 4);  // every project example asks with tdx: {} (and the 1.6 annotation); luks/ too
}

TEST(PruneExamples, EmptyTdxStaysFrom17) {
  Json m = testing::WithTdx(testing::ReadManifest("kubevirt/examples/vmi-fedora.yaml"));
  for (const KubevirtVersion& v : KnownVersions()) {
    std::vector<std::string> pruned;
    auto r = PruneForKubevirt(m, v, &pruned);
    ASSERT_TRUE(r.ok());
    if (v.minor == 6) {
      EXPECT_EQ(pruned, std::vector<std::string>{"spec.domain.launchSecurity.tdx"});
      EXPECT_EQ((*r)["spec"]["domain"]["launchSecurity"], Json::object());
    } else {
      EXPECT_EQ(pruned, std::vector<std::string>{}) << v.Text();
      EXPECT_EQ(*r, m) << v.Text();
    }
  }
}

TEST(PruneForKubevirt, OtherVersionsAndKindsComeBackUnchanged) {
  Json m = testing::WithTdx(testing::ReadManifest("kubevirt/examples/vmi-fedora.yaml"));
  LaunchSecurity(m)["tdx"] = TdxSettings();
  m["spec"]["bogus"] = 1;
  for (const KubevirtVersion& v :
       {KubevirtVersion{1, 5}, KubevirtVersion{1, 10}, KubevirtVersion{2, 0}}) {
    std::vector<std::string> pruned;
    auto r = PruneForKubevirt(m, v, &pruned);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, m) << v.Text();
    EXPECT_TRUE(pruned.empty()) << v.Text();
  }
  Json policy = testing::ReadManifest("kubevirt/examples/example-migration-policy.yaml");
  policy["spec"]["bogus"] = 1;
  auto r = PruneForKubevirt(policy, {1, 9});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, policy);
  for (const Json& odd : {Json(), Json::array({1, 2}), Json("VirtualMachine"),
                          Json{{"kind", 7}, {"spec", {{"bogus", 1}}}}}) {
    auto o = PruneForKubevirt(odd, {1, 9});
    ASSERT_TRUE(o.ok());
    EXPECT_EQ(*o, odd);
  }
}

TEST(PruneForKubevirt, RootMetaKeptUnknownRootKeyAndArrayPathsNamed) {
  Json m = testing::ReadManifest("kubevirt/examples/vmi-fedora.yaml");
  Json in = m;
  in["metadata"]["notObjectMeta"] = "kept";  // ObjectMeta is not the CRD schema's business
  in["bogus"] = {{"deep", 1}};
  in["spec"]["domain"]["devices"]["disks"][1]["bogus"] = true;
  in["spec"]["domain"]["launchSecurity"] = {
      {"sev", {{"policy", {{"encryptedState", true}, {"x", 1}}}}}};
  std::vector<std::string> pruned;
  auto r = PruneForKubevirt(in, {1, 8}, &pruned);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(pruned, (std::vector<std::string>{"bogus", "spec.domain.devices.disks[1].bogus",
                                              "spec.domain.launchSecurity.sev.policy.x"}));
  Json expected = m;
  expected["metadata"]["notObjectMeta"] = "kept";
  expected["spec"]["domain"]["launchSecurity"] = {
      {"sev", {{"policy", {{"encryptedState", true}}}}}};
  EXPECT_EQ(*r, expected);
}

TEST(PruneForKubevirt, VmTemplateMetadataKeepsUnknownKeys) {
  // spec.template.metadata has x-kubernetes-preserve-unknown-fields in every release: annotations
  // (where the TDX settings go on a live cluster) and anything else there survive.
  Json m = testing::ReadManifest("kubevirt/examples/vm-cirros.yaml");
  m["spec"]["template"]["metadata"]["annotations"]["tdx.tdxvirt.io/mrconfigid"] = "00";
  m["spec"]["template"]["metadata"]["somethingElse"] = {{"a", 1}};
  for (const KubevirtVersion& v : KnownVersions()) {
    std::vector<std::string> pruned;
    auto r = PruneForKubevirt(m, v, &pruned);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(pruned.empty()) << v.Text() << ": " << ::testing::PrintToString(pruned);
    EXPECT_EQ(*r, m) << v.Text();
  }
}

// Synthetic schemas: one rule each. The root is a resource (apiVersion/kind/metadata kept).
Json Pruned(const Json& object, const Json& schema, std::vector<std::string>* paths) {
  auto r = PruneWithSchema(object, schema, paths);
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? *r : Json();
}

Json Obj(Json properties) { return {{"type", "object"}, {"properties", std::move(properties)}}; }

TEST(PruneRules, UnknownKeysGoKnownStay) {
  Json schema = Obj({{"spec", Obj({{"a", {{"type", "string"}}}})}});
  std::vector<std::string> paths;
  Json out = Pruned({{"apiVersion", "x/v1"},
                     {"kind", "K"},
                     {"metadata", {{"name", "n"}, {"odd", 1}}},
                     {"spec", {{"a", "1"}, {"b", {{"c", 1}}}, {"z", nullptr}}},
                     {"top", 1}},
                    schema, &paths);
  EXPECT_EQ(out, (Json{{"apiVersion", "x/v1"},
                       {"kind", "K"},
                       {"metadata", {{"name", "n"}, {"odd", 1}}},
                       {"spec", {{"a", "1"}}}}));
  EXPECT_EQ(paths, (std::vector<std::string>{"spec.b", "spec.z", "top"}));  // sorted, no children
}

TEST(PruneRules, NullValuesOfKnownKeysStay) {
  Json schema = Obj({{"spec", Obj({{"a", Obj({{"b", {{"type", "string"}}}})},
                                   {"l", {{"type", "array"}, {"items", {{"type", "string"}}}}}})}});
  Json in = {{"spec", {{"a", nullptr}, {"l", {nullptr, "x"}}}}};
  std::vector<std::string> paths;
  EXPECT_EQ(Pruned(in, schema, &paths), in);
  EXPECT_TRUE(paths.empty());
}

TEST(PruneRules, AdditionalPropertiesSchemaPrunesEachValue) {
  Json schema =
      Obj({{"labels",
            {{"type", "object"}, {"additionalProperties", Obj({{"a", {{"type", "string"}}}})}}}});
  std::vector<std::string> paths;
  Json out =
      Pruned({{"labels", {{"x", {{"a", "1"}, {"b", "2"}}}, {"y", {{"a", "3"}}}}}}, schema, &paths);
  EXPECT_EQ(out, (Json{{"labels", {{"x", {{"a", "1"}}}, {"y", {{"a", "3"}}}}}}));
  EXPECT_EQ(paths, std::vector<std::string>{"labels.x.b"});
}

TEST(PruneRules, AdditionalPropertiesBool) {
  // true: every key stays, but nothing is known below it (the API server prunes with no schema);
  // false (refused in a CRD by the API server) counts as absent.
  Json schema = Obj({{"m", {{"type", "object"}, {"additionalProperties", true}}},
                     {"f", {{"type", "object"}, {"additionalProperties", false}}}});
  std::vector<std::string> paths;
  Json out = Pruned({{"m", {{"s", "v"}, {"n", nullptr}, {"o", {{"deep", 1}}}}}, {"f", {{"k", 1}}}},
                    schema, &paths);
  EXPECT_EQ(out, (Json{{"m", {{"s", "v"}, {"n", nullptr}, {"o", Json::object()}}},
                       {"f", Json::object()}}));
  EXPECT_EQ(paths, (std::vector<std::string>{"f.k", "m.o.deep"}));
}

TEST(PruneRules, PreserveUnknownFieldsKeepsUnknownButPrunesKnownChildren) {
  Json spec = Obj({{"known", Obj({{"a", {{"type", "string"}}}})},
                   {"list", {{"type", "array"}, {"items", Obj({{"a", {{"type", "string"}}}})}}}});
  spec["x-kubernetes-preserve-unknown-fields"] = true;
  Json schema = Obj({{"spec", spec}});
  std::vector<std::string> paths;
  Json out = Pruned({{"spec",
                      {{"unknown", {{"z", {{"deeper", 1}}}}},
                       {"known", {{"a", "x"}, {"b", "y"}}},
                       {"list", {{{"a", "1"}, {"c", 2}}}}}}},
                    schema, &paths);
  EXPECT_EQ(out, (Json{{"spec",
                        {{"unknown", {{"z", {{"deeper", 1}}}}},
                         {"known", {{"a", "x"}}},
                         {"list", {{{"a", "1"}}}}}}}));
  EXPECT_EQ(paths, (std::vector<std::string>{"spec.known.b", "spec.list[0].c"}));
}

TEST(PruneRules, PreserveUnknownFieldsThroughArrays) {
  // An array whose items preserve unknown keys: each item keeps them, known children are pruned.
  Json item = Obj({{"k", Obj({{"a", {{"type", "string"}}}})}});
  item["x-kubernetes-preserve-unknown-fields"] = true;
  Json schema = Obj({{"l", {{"type", "array"}, {"items", item}}}});
  std::vector<std::string> paths;
  Json out = Pruned({{"l", {{{"u", 1}, {"k", {{"a", "1"}, {"b", 2}}}}}}}, schema, &paths);
  EXPECT_EQ(out, (Json{{"l", {{{"u", 1}, {"k", {{"a", "1"}}}}}}}));
  EXPECT_EQ(paths, std::vector<std::string>{"l[0].k.b"});
}

TEST(PruneRules, ItemsAndNestedArrays) {
  Json leaf = Obj({{"a", {{"type", "integer"}}}});
  Json schema =
      Obj({{"list", {{"type", "array"}, {"items", leaf}}},
           {"matrix", {{"type", "array"}, {"items", {{"type", "array"}, {"items", leaf}}}}},
           {"untyped", {{"type", "array"}}}});
  std::vector<std::string> paths;
  Json out = Pruned({{"list", {{{"a", 1}, {"b", 2}}, {{"c", 3}}, 7}},
                     {"matrix", {Json::array(), {{{"a", 1}}, {{"a", 2}, {"b", 3}}}}},
                     {"untyped", {{{"k", 1}}, "s"}}},
                    schema, &paths);
  EXPECT_EQ(out, (Json{{"list", {{{"a", 1}}, Json::object(), 7}},
                       {"matrix", {Json::array(), {{{"a", 1}}, {{"a", 2}}}}},
                       {"untyped", {Json::object(), "s"}}}));
  EXPECT_EQ(paths,
            (std::vector<std::string>{"list[0].b", "list[1].c", "matrix[1][1].b", "untyped[0].k"}));
}

TEST(PruneRules, EmbeddedResourceKeepsTypeAndObjectMeta) {
  Json tmpl = Obj({{"spec", Obj({{"a", {{"type", "string"}}}})}});
  tmpl["x-kubernetes-embedded-resource"] = true;
  Json schema =
      Obj({{"spec", Obj({{"template", tmpl}, {"plain", Obj({{"spec", {{"type", "object"}}}})}})}});
  Json meta = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"name", "p"}}}};
  Json embedded = meta;
  embedded["spec"] = {{"a", "1"}, {"b", 2}};
  embedded["other"] = 1;
  std::vector<std::string> paths;
  Json out = Pruned({{"spec", {{"template", embedded}, {"plain", meta}}}}, schema, &paths);
  Json kept = meta;
  kept["spec"] = {{"a", "1"}};
  EXPECT_EQ(out, (Json{{"spec", {{"template", kept}, {"plain", Json::object()}}}}));
  EXPECT_EQ(paths, (std::vector<std::string>{"spec.plain.apiVersion", "spec.plain.kind",
                                             "spec.plain.metadata", "spec.template.other",
                                             "spec.template.spec.b"}));
}

TEST(PruneRules, IntOrStringKeepsEitherScalar) {
  Json port = {{"x-kubernetes-int-or-string", true},
               {"anyOf", {{{"type", "integer"}}, {{"type", "string"}}}}};
  Json schema = Obj({{"ports", {{"type", "array"}, {"items", port}}}});
  std::vector<std::string> paths;
  // A mapping is no scalar: like any schema without properties, its keys go (validation then
  // refuses it); anyOf adds no properties in a structural schema.
  Json out = Pruned({{"ports", {80, "http", nullptr, {{"a", 1}}}}}, schema, &paths);
  EXPECT_EQ(out, (Json{{"ports", {80, "http", nullptr, Json::object()}}}));
  EXPECT_EQ(paths, std::vector<std::string>{"ports[3].a"});
}

TEST(PruneRules, DepthIsBounded) {
  Json schema = Obj({{"spec", {{"type", "array"}}}});  // no items: every level is followed
  Json deep = Json::array();
  for (int i = 0; i < kMaxPruneDepth + 5; ++i) deep = Json::array({deep});
  auto r = PruneWithSchema(Json{{"spec", deep}}, schema);
  ASSERT_FALSE(r.ok());
  std::string where = "spec";
  for (int i = 0; i < kMaxPruneDepth; ++i) where += "[0]";
  EXPECT_EQ(r.error(),
            "pruning: " + where + " is nested deeper than 128 levels; flatten the document");
  Json ok = Json::array();
  for (int i = 0; i < kMaxDocumentDepth; ++i) ok = Json::array({ok});
  EXPECT_TRUE(PruneWithSchema(Json{{"spec", ok}}, schema).ok());
}

}  // namespace
}  // namespace tdxvirt::kubevirt
