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
  auto std_refusal = [](std::string_view text) {
    auto r = Base64Decode(text, "x");
    return r.ok() ? std::string("accepted") : r.error();
  };
  auto url_refusal = [](std::string_view text) {
    auto r = Base64UrlDecode(text, "x");
    return r.ok() ? std::string("accepted") : r.error();
  };
  EXPECT_EQ(Base64Decode("Zg=", "mrConfigId").error(), "mrConfigId: not standard base64 (length 3 is not a multiple of 4)");
  EXPECT_EQ(std_refusal("Zh=="), "x: not standard base64 (non-canonical trailing bits)");  // trailing bits set
  EXPECT_EQ(std_refusal("Zm9v\n"), "x: not standard base64 (length 5 is not a multiple of 4)");
  EXPECT_EQ(std_refusal("Z==="), "x: not standard base64 (bad character at offset 1)");
  EXPECT_EQ(std_refusal("Zg=a"), "x: not standard base64 (bad character at offset 2)");
  EXPECT_EQ(std_refusal("-_-_"), "x: not standard base64 (bad character at offset 0)");
  EXPECT_EQ(url_refusal("+/+/"), "x: not base64url (character '+')");
  EXPECT_EQ(url_refusal("Zg=="), "x: not base64url (character '=')");
  EXPECT_EQ(url_refusal("Z"), "x: not base64url (bad length)");
}

TEST(Base64Test, FortyEightBytesAreSixtyFourCharacters) {
  // libvirt's mrConfigId/mrOwner/mrOwnerConfig: base64 of a SHA-384 value.
  auto d = Base64Decode("ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8BI0VniavN7wEjRWeJq83v", "x");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size(), 48u);
}

}  // namespace
}  // namespace tdxvirt
