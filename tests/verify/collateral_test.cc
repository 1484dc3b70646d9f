#include "verify/collateral.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/hex.h"
#include "test_util.h"

namespace tdxvirt::verify {
namespace {

using testing::ReadTestdata;
using testing::TestdataPath;

TEST(RawJsonMember, ReturnsExactSourceText) {
  std::string text = R"({ "a" : {"x": "}\"{", "y":[1,{"z":2}]} , "signature":"00", "b":3})";
  auto a = RawJsonMember(text, "a");
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(*a, R"({"x": "}\"{", "y":[1,{"z":2}]})");
  auto b = RawJsonMember(text, "b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "3");
  EXPECT_FALSE(RawJsonMember(text, "c").ok());
  EXPECT_FALSE(RawJsonMember("[1]", "a").ok());
  EXPECT_FALSE(RawJsonMember("{\"a\":", "a").ok());
  auto dup = RawJsonMember(R"({"a":1,"a":2})", "a");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().find("more than once"), std::string::npos);
}

TEST(Collateral, BundleRoundTrip) {
  auto raw = ReadTestdata("quotes/tdx-v4-uptodate/collateral.json");
  auto c = ParseCollateralBundle(AsString(raw));
  ASSERT_TRUE(c.ok()) << c.error();
  auto j = nlohmann::json::parse(AsString(raw));
  EXPECT_EQ(c->tcb_info, j["tcb_info"].get<std::string>());
  EXPECT_EQ(ToHex(c->pck_crl), j["pck_crl"].get<std::string>());
  EXPECT_EQ(ToHex(c->tcb_info_signature), j["tcb_info_signature"].get<std::string>());
  auto again = ParseCollateralBundle(SerializeCollateralBundle(*c));
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(again->tcb_info, c->tcb_info);
  EXPECT_EQ(again->qe_identity, c->qe_identity);
  EXPECT_EQ(again->root_ca_crl, c->root_ca_crl);
  EXPECT_EQ(again->pck_crl_issuer_chain, c->pck_crl_issuer_chain);
}

TEST(Collateral, BundleErrorsNameTheField) {
  auto raw = ReadTestdata("quotes/tdx-v4-uptodate/collateral.json");
  auto j = nlohmann::json::parse(AsString(raw));
  j["tcb_info_signature"] = "abcd";
  auto short_sig = ParseCollateralBundle(j.dump());
  ASSERT_FALSE(short_sig.ok());
  EXPECT_EQ(short_sig.error(),
            "collateral: tcb_info_signature: expected 64 bytes (128 hex digits), got 2 (ECDSA r||s)");
  j.erase("pck_crl");
  auto missing = ParseCollateralBundle(j.dump());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("pck_crl: missing or not a string"), std::string::npos);
  EXPECT_FALSE(ParseCollateralBundle("not json").ok());
  EXPECT_FALSE(ParseCollateralBundle("[]").ok());
}

TEST(Collateral, PcsDirectoryKeepsSignedBytes) {
  auto c = LoadCollateral(TestdataPath("quotes/tdx-v4-spr-e4-pcs-2023"));
  ASSERT_TRUE(c.ok()) << c.error();
  auto body = ReadTestdata("quotes/tdx-v4-spr-e4-pcs-2023/sample_tcbInfo_response");
  std::string text(AsString(body));
  EXPECT_NE(text.find(c->tcb_info), std::string::npos);
  EXPECT_EQ(c->tcb_info.front(), '{');
  EXPECT_EQ(c->tcb_info.rfind("{\"id\":\"TDX\"", 0), 0u);
  EXPECT_EQ(c->pck_crl, ReadTestdata("quotes/tdx-v4-spr-e4-pcs-2023/pckcrl"));
  EXPECT_EQ(c->root_ca_crl[0], 0x30);
}

TEST(Collateral, DirectoryRoundTrip) {
  auto c = LoadCollateral(TestdataPath("quotes/tdx-v4-uptodate/collateral.json"));
  ASSERT_TRUE(c.ok());
  testing::TempDir dir;
  ASSERT_TRUE(WriteCollateralDirectory(*c, dir.path()).ok());
  auto back = LoadCollateral(dir.path());
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->tcb_info, c->tcb_info);
  EXPECT_EQ(back->qe_identity, c->qe_identity);
  EXPECT_EQ(back->tcb_info_signature, c->tcb_info_signature);
  EXPECT_EQ(back->pck_crl, c->pck_crl);
  EXPECT_EQ(back->qe_identity_issuer_chain, c->qe_identity_issuer_chain);
}

TEST(Collateral, MissingDirectoryItemIsNamed) {
  testing::TempDir dir;
  auto c = LoadCollateral(dir.path());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().find("has no tcb_info.json or tcb_info_response.json or"), std::string::npos)
      << c.error();
}

TEST(Collateral, CrlAndChainEncodings) {
  Bytes der = {0x30, 0x03, 0x02, 0x01, 0x00};
  EXPECT_EQ(*CrlBytes(der), der);
  EXPECT_EQ(*CrlBytes(AsBytes("3003020100\n")), der);
  EXPECT_FALSE(CrlBytes(AsBytes("hello")).ok());
  auto decoded = UrlDecode("-----BEGIN%20CERTIFICATE-----%0AAB%2BC");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, "-----BEGIN CERTIFICATE-----\nAB+C");
  EXPECT_FALSE(UrlDecode("%4").ok());
  EXPECT_FALSE(UrlDecode("%zz").ok());
  // A saved PCS header keeps the dashes and letters of the PEM line: it must still be decoded.
  auto pem = PemOrUrlEncoded("-----BEGIN%20CERTIFICATE-----%0AAB%2BC");
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(*pem, "-----BEGIN CERTIFICATE-----\nAB+C");
  EXPECT_EQ(*PemOrUrlEncoded("-----BEGIN CERTIFICATE-----\nAB+C%20"), "-----BEGIN CERTIFICATE-----\nAB+C%20");
  EXPECT_FALSE(PemOrUrlEncoded("plain text").ok());
}

TEST(Collateral, PcsSignedJson) {
  auto doc = ParsePcsSignedJson(R"({"tcbInfo":{"id":"TDX"},"signature":")" + std::string(128, 'a') + "\"}",
                                "tcbInfo");
  ASSERT_TRUE(doc.ok()) << doc.error();
  EXPECT_EQ(doc->body, R"({"id":"TDX"})");
  EXPECT_EQ(doc->signature[0], 0xaa);
  EXPECT_FALSE(ParsePcsSignedJson(R"({"tcbInfo":{}})", "tcbInfo").ok());
  EXPECT_FALSE(ParsePcsSignedJson(R"({"tcbInfo":1,"signature":"00"})", "tcbInfo").ok());
}

}  // namespace
}  // namespace tdxvirt::verify
