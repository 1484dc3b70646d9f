#include "common/base64.h"

#include <gtest/gtest.h>

namespace tdxvirt {
namespace {

TEST(Base64Test, Rfc4648Vectors) {
  const char* plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char* coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(Base64Encode(AsBytes(plain[i])), coded[i]);
    auto d = Base64Decode(coded[i], "x");
    ASSERT_TRUE(d.ok()) << d.error();
    EXPECT_EQ(AsString(*d), plain[i]);
  }
}

TEST(Base64Test, UrlFormIsUnpaddedWithUrlAlphabet) {
  Bytes b = {0xfb, 0xff, 0xbf};
  EXPECT_EQ(Base64Encode(b), "+/+/");
  EXPECT_EQ(Base64UrlEncode(b), "-_-_");
  EXPECT_EQ(Base64UrlEncode(AsBytes("f")), "Zg");
  auto d = Base64UrlDecode("Zg", "x");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(AsString(*d), "f");
}

TEST(Base64Test, RejectsNonCanonicalAndMalformedInput) {
  EXPECT_NE(Base64Decode("Zg=", "mrConfigId").error().find("mrConfigId: not standard base64"),
            std::string::npos);
  EXPECT_FALSE(Base64Decode("Zh==", "x").ok());  // trailing bits set
  EXPECT_FALSE(Base64Decode("Zm9v\n", "x").ok());
  EXPECT_FALSE(Base64Decode("Z===", "x").ok());
  EXPECT_FALSE(Base64Decode("Zg=a", "x").ok());
  EXPECT_FALSE(Base64Decode("-_-_", "x").ok());
  EXPECT_FALSE(Base64UrlDecode("+/+/", "x").ok());
  EXPECT_FALSE(Base64UrlDecode("Zg==", "x").ok());
  EXPECT_FALSE(Base64UrlDecode("Z", "x").ok());
}

TEST(Base64Test, FortyEightBytesAreSixtyFourCharacters) {
  // libvirt's mrConfigId/mrOwner/mrOwnerConfig: base64 of a SHA-384 value.
  auto d = Base64Decode("ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8BI0VniavN7wEjRWeJq83v", "x");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size(), 48u);
}

}  // namespace
}  // namespace tdxvirt
