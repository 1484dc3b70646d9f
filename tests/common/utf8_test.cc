#include "common/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace tdxvirt {
namespace {

TEST(Utf8, ValidTextIncludingEveryLength) {
  EXPECT_EQ(FirstInvalidUtf8(""), std::nullopt);
  EXPECT_EQ(FirstInvalidUtf8("plain ascii"), std::nullopt);
  EXPECT_EQ(FirstInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92"), std::nullopt);  // é € 🔒
  EXPECT_EQ(FirstInvalidUtf8("\xf4\x8f\xbf\xbf"), std::nullopt);                         // U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8(std::string("a\0b", 3)), std::nullopt);                        // NUL is UTF-8
}

TEST(Utf8, InvalidSequencesGiveTheirOffset) {
  EXPECT_EQ(FirstInvalidUtf8("ok\x9e"), 2u);              // stray continuation byte
  EXPECT_EQ(FirstInvalidUtf8("\xc3"), 0u);                // truncated
  EXPECT_EQ(FirstInvalidUtf8("ab\xe2\x82"), 2u);          // truncated three-byte form
  EXPECT_EQ(FirstInvalidUtf8("\xc3\x28"), 0u);            // bad continuation
  EXPECT_EQ(FirstInvalidUtf8("\xc0\xaf"), 0u);            // overlong '/'
  EXPECT_EQ(FirstInvalidUtf8("\xe0\x80\xaf"), 0u);        // overlong, three bytes
  EXPECT_EQ(FirstInvalidUtf8("\xf0\x80\x80\xaf"), 0u);    // overlong, four bytes
  EXPECT_EQ(FirstInvalidUtf8("x\xed\xa0\x80"), 1u);       // UTF-16 surrogate D800
  EXPECT_EQ(FirstInvalidUtf8("\xf4\x90\x80\x80"), 0u);    // above U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("\xff"), 0u);
}

}  // namespace
}  // namespace tdxvirt
