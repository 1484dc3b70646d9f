// ParseDocument: what kubectl users expect of YAML typing, and every bound on outside text.
#include <gtest/gtest.h>

#include <string>

#include "kubevirt/document.h"

namespace tdxvirt::kubevirt {
namespace {

std::string Err(std::string_view text) {
  auto r = ParseDocument(text, "manifest");
  return r.ok() ? "(parsed)" : r.error();
}

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Document, YamlAndJsonGiveTheSameValueWithCoreSchemaTyping) {
  auto y = ParseDocument("a: 1\nb: true\nc: null\nd: '1'\ne: 1.5\nf: [x, \"y\"]\ng: ~\n---\n", "m");
  ASSERT_TRUE(y.ok()) << y.error();
  auto j = ParseDocument(R"({"a":1,"b":true,"c":null,"d":"1","e":1.5,"f":["x","y"],"g":null})", "m");
  ASSERT_TRUE(j.ok()) << j.error();
  EXPECT_EQ(*y, *j);
}

TEST(Document, StructuralErrorsSayWhatToDo) {
  EXPECT_TRUE(Has(Err(""), "empty"));
  EXPECT_TRUE(Has(Err(std::string("a: 1\0", 5)), "NUL byte"));
  EXPECT_TRUE(Has(Err("a: 1\n---\nb: 2\n"), "more than one YAML document"));
  EXPECT_TRUE(Has(Err("a: 1\na: 2\n"), "duplicate key \"a\" at line 2"));
  EXPECT_TRUE(Has(Err("{\"a\": }"), "not valid JSON"));
  EXPECT_TRUE(Has(Err("a: [1\n"), "not valid YAML: line"));
  EXPECT_TRUE(Has(Err("a: \"\xff\"\n"), "line 1, column 4: not valid UTF-8"));
  // yaml-cpp 0.7 loops on this until out of memory; it is refused before it gets there.
  EXPECT_TRUE(Has(Err("---\n,?piVersion: x\n"), "line 2: a ',' cannot start a value"));
}

TEST(Document, SizeAndNestingAreBounded) {
  EXPECT_TRUE(Has(Err(std::string(kMaxDocumentBytes + 1, ' ')), "over the limit"));
  std::string deep_flow(kMaxDocumentDepth + 1, '[');
  EXPECT_TRUE(Has(Err("a: " + deep_flow), "nesting deeper than"));
  std::string deep_json(kMaxDocumentDepth + 2, '[');
  deep_json += std::string(kMaxDocumentDepth + 2, ']');
  EXPECT_TRUE(Has(Err(deep_json), "nesting deeper than"));
  std::string deep_block;
  for (int i = 0; i < kMaxDocumentDepth + 2; ++i) deep_block += std::string(size_t(2 * i), ' ') + "k:\n";
  EXPECT_TRUE(Has(Err(deep_block), "nesting deeper"));
}

// "Billion laughs": each level repeats the one before ten times.
TEST(Document, AliasExpansionIsBoundedByNodes) {
  std::string doc = "l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n";
  for (int i = 1; i < 9; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    doc += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) doc += (k ? ", " : "") + prev;
    doc += "]\n";
  }
  EXPECT_TRUE(Has(Err(doc), "more than 200000 nodes")) << Err(doc);
}

// Few nodes, each an alias of one long scalar: bounded by the text they expand to.
TEST(Document, AliasExpansionIsBoundedByBytes) {
  std::string doc = "s: &s \"" + std::string(1 << 20, 'x') + "\"\nl: [";
  for (int k = 0; k < 20; ++k) doc += (k ? ", " : "") + std::string("*s");
  doc += "]\n";
  EXPECT_TRUE(Has(Err(doc), "expand to more than 16 MiB")) << Err(doc).substr(0, 200);
  // The same scalar a few times is fine.
  std::string ok = "s: &s \"" + std::string(1 << 20, 'x') + "\"\nl: [*s, *s]\n";
  EXPECT_EQ(Err(ok), "(parsed)");
}

}  // namespace
}  // namespace tdxvirt::kubevirt
