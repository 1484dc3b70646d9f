#include "common/yaml_guard.h"

#include <gtest/gtest.h>

#include <string>

namespace tdxvirt {
namespace {

// Each of these made Debian 12's yaml-cpp loop until out of memory (found by fuzzing).
TEST(YamlGuard, RefusesACommaThatStartsABlockValue) {
  for (const char* text : {",\n", ",a\n", ",?a: b\n", "  ,\n", "# c\n,\n", "--- ,\n", "a: 1\n---\n,\n",
                           "- a\n,\n", "\"x\"\n,\n", ", ?a\n", "---\n,?piVersion: x\n"}) {
    auto s = CheckYamlBlockCommas(text, "manifest");
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_NE(s.error().find("manifest: line "), std::string::npos) << s.error();
    EXPECT_NE(s.error().find("quote the value"), std::string::npos) << s.error();
  }
  EXPECT_NE(CheckYamlBlockCommas("a: 1\nb: 2\n- x\n,\n", "m").error().find("line 4"), std::string::npos);
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
