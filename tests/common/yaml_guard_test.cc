#include "common/yaml_guard.h"

#include <gtest/gtest.h>

#include <string>

namespace tdxvirt {
namespace {

// Each of these made Debian 12's yaml-cpp loop until out of memory (found by fuzzing).
TEST(YamlGuard, RefusesACommaThatStartsABlockValue) {
  const std::pair<const char*, int> cases[] = {
      {",\n", 1},         {",a\n", 1},       {",?a: b\n", 1},    {"  ,\n", 1},
      {"# c\n,\n", 2},    {"--- ,\n", 1},     {"a: 1\n---\n,\n", 3}, {"- a\n,\n", 2},
      {"\"x\"\n,\n", 2}, {", ?a\n", 1},      {"---\n,?piVersion: x\n", 2}};
  for (const auto& [text, line] : cases) {
    auto s = CheckYamlBlockCommas(text, "manifest");
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_EQ(s.error(), "manifest: line " + std::to_string(line) +
                             ": a ',' cannot start a value outside [ ] or { }; quote the value");
  }
  EXPECT_EQ(CheckYamlBlockCommas("a: 1\nb: 2\n- x\n,\n", "m").error(),
            "m: line 4: a ',' cannot start a value outside [ ] or { }; quote the value");
}

TEST(YamlGuard, AcceptsCommasWhereYamlAllowsThem) {
  for (const char* text : {
           "a: x, y\n",                      // inside a plain scalar
           "a: [1, 2, {b: 3, c: 4}]\n",      // flow collections
           "a: [1,\n  2]\n",                 // flow collection over lines
           "a: \"x, y\"\n", "a: ',x'\n",    // quoted
           "a: 'it''s, ok'\n",              // escaped single quote
           "a: |\n  ,\n  , more\nb: 1\n",   // literal block scalar content
           "a: >-\n  ,x\n",                  // folded block scalar content
           "a: 1 # x, ,y\n",                 // comment
           "- \"a\"\n- 'b, c'\n",
           "key: x---,y\n",
       }) {
    auto s = CheckYamlBlockCommas(text, "m");
    EXPECT_TRUE(s.ok()) << text << " -> " << s.error();
  }
}

}  // namespace
}  // namespace tdxvirt
