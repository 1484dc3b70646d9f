#include "common/hex.h"

#include <gtest/gtest.h>

namespace tdxvirt {
namespace {

TEST(Hex, EncodesLowerCase) {
  Bytes b = {0x00, 0xab, 0xCD, 0x7f};
  EXPECT_EQ(ToHex(b), "00abcd7f");
  EXPECT_EQ(ToHex(Bytes{}), "");
}

TEST(Hex, DecodesEitherCaseWithPrefixAndWhitespace) {
  auto r = FromHex("  0xAbCd\n 01\t02\r\n");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(*r, (Bytes{0xab, 0xcd, 0x01, 0x02}));
  auto upper = FromHex("0X00ff");
  ASSERT_TRUE(upper.ok());
  EXPECT_EQ(*upper, (Bytes{0x00, 0xff}));
}

TEST(Hex, RejectsOddLengthAndBadCharacters) {
  auto odd = FromHex("abc");
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.error(), "odd number of hex digits; each byte needs two");
  auto bad = FromHex("zz");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), "invalid hex character at position 0; expected 0-9, a-f or A-F");
  auto twice = FromHex("0x0x00");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error(), "invalid hex character at position 3; expected 0-9, a-f or A-F");
}

TEST(Hex, FixedSizeNamesTheField) {
  auto ok = FromHexFixed<2>("beef", "pce_id");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[0], 0xbe);
  auto wrong = FromHexFixed<48>("beef", "mr_config_id");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error(), "mr_config_id: expected 48 bytes (96 hex digits), got 2");
}

TEST(Hex, RoundTripsEveryByte) {
  Bytes all(256);
  for (int i = 0; i < 256; ++i) all[i] = uint8_t(i);
  auto back = FromHex(ToHex(all));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, all);
}

}  // namespace
}  // namespace tdxvirt
