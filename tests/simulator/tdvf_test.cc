#include "simulator/tdvf.h"

#include <gtest/gtest.h>

#include "common/hex.h"

namespace tdxvirt::simulator {
namespace {

// Test vectors from the reference (dstack / tinfoil tdx-measure): one 128-byte PAGE.ADD buffer,
// and one zero page added and extended.
TEST(TdvfTest, MrtdOfOnePageAddMatchesReferenceVector) {
  std::vector<TdvfSection> s = {{0, 0, 0xFFC00000, 4096, uint32_t(TdvfSectionType::kBfv), 0}};
  EXPECT_EQ(ToHex(ComputeMrtd(s, {})),
            "c1d69262bf2469a95b95bb4e99984e026cbfe659a7170f6444f496a210a036b92c37abc9197dd6081af4a5"
            "fa35adb42f");
}

TEST(TdvfTest, MrtdOfOneMeasuredZeroPageMatchesReferenceVector) {
  Bytes zero_page(4096, 0);
  std::vector<TdvfSection> s = {
      {0, 4096, 0x1000, 4096, uint32_t(TdvfSectionType::kBfv), kTdvfAttrMrExtend}};
  EXPECT_EQ(ToHex(ComputeMrtd(s, zero_page)),
            "ca76d5541328afef8bc9364261c515aebef90412ebc56ca0c2260ec531a14462cfc0c11de61d84292ddf8c"
            "a871da1ff1");
  // Raw data shorter than the region measures as zeros: same digest without file bytes.
  s[0].raw_data_size = 0;
  EXPECT_EQ(ToHex(ComputeMrtd(s, {})),
            "ca76d5541328afef8bc9364261c515aebef90412ebc56ca0c2260ec531a14462cfc0c11de61d84292ddf8c"
            "a871da1ff1");
}

TEST(TdvfTest, PageAugSectionsAreNotAdded) {
  std::vector<TdvfSection> added = {{0, 0, 0x1000, 4096, 3, 0}};
  std::vector<TdvfSection> aug = {{0, 0, 0x1000, 4096, 3, kTdvfAttrPageAug}};
  EXPECT_NE(ComputeMrtd(added, {}), ComputeMrtd(aug, {}));
  EXPECT_EQ(ComputeMrtd(aug, {}), ComputeMrtd({}, {}));
}

TEST(TdvfTest, SimulatedImageParsesLikeOvmf) {
  Bytes fw = MakeSimulatedTdvf("ovmf-a", 8);
  auto sections = ParseTdvfMetadata(fw);
  ASSERT_TRUE(sections.ok()) << sections.error();
  ASSERT_EQ(sections->size(), 4u);
  EXPECT_EQ((*sections)[0].type, uint32_t(TdvfSectionType::kBfv));
  EXPECT_EQ((*sections)[0].attributes, kTdvfAttrMrExtend);
  EXPECT_EQ((*sections)[0].memory_address + (*sections)[0].memory_data_size, 0x100000000ull);
  EXPECT_EQ((*sections)[2].type, uint32_t(TdvfSectionType::kTdHob));
  EXPECT_EQ((*sections)[2].raw_data_size, 0u);
}

TEST(TdvfTest, MrtdDependsOnFirmwareBytesOnly) {
  auto a = ComputeMrtdOfFirmware(MakeSimulatedTdvf("ovmf-a"));
  auto a2 = ComputeMrtdOfFirmware(MakeSimulatedTdvf("ovmf-a"));
  auto b = ComputeMrtdOfFirmware(MakeSimulatedTdvf("ovmf-b"));
  ASSERT_TRUE(a.ok() && a2.ok() && b.ok());
  EXPECT_EQ(*a, *a2);
  EXPECT_NE(*a, *b);
  // One flipped bit in a measured section changes MRTD.
  Bytes fw = MakeSimulatedTdvf("ovmf-a");
  fw[4096 + 100] ^= 1;  // inside the BFV
  auto flipped = ComputeMrtdOfFirmware(fw);
  ASSERT_TRUE(flipped.ok());
  EXPECT_NE(*a, *flipped);
}

TEST(TdvfTest, RejectsImagesThatAreNotTdvf) {
  EXPECT_NE(ParseTdvfMetadata(Bytes(10, 0)).error().find("too small"), std::string::npos);
  EXPECT_NE(ParseTdvfMetadata(Bytes(8192, 0)).error().find("no OVMF GUIDed footer"),
            std::string::npos);

  Bytes fw = MakeSimulatedTdvf("x", 2);
  Bytes bad_sig = fw;
  size_t desc = 4096 * 3;
  bad_sig[desc] = 'X';
  EXPECT_NE(ParseTdvfMetadata(bad_sig).error().find("lacks signature \"TDVF\""), std::string::npos);

  Bytes one_section = fw;
  one_section[desc + 12] = 1;
  EXPECT_NE(ParseTdvfMetadata(one_section).error().find("has 1 sections"), std::string::npos);

  Bytes unaligned = fw;
  unaligned[desc + 16 + 8] = 0x10;  // section 0 memory address
  EXPECT_NE(ParseTdvfMetadata(unaligned).error().find("section 0: memory address/size not 4 KiB"),
            std::string::npos);

  Bytes outside = fw;
  outside[desc + 16 + 3] = 0x7f;  // section 0 data offset far past the end
  EXPECT_NE(ParseTdvfMetadata(outside).error().find("is not inside the image"), std::string::npos);

  // The metadata GUID removed from the footer table: an OVMF not built for TDX.
  Bytes no_tdx = fw;
  no_tdx[fw.size() - 32 - 18 - 16] ^= 0xff;
  EXPECT_NE(ParseTdvfMetadata(no_tdx).error().find("no TDX metadata entry"), std::string::npos);
}

TEST(TdvfTest, EveryTruncationIsAnErrorNotACrash) {
  Bytes fw = MakeSimulatedTdvf("x", 1);
  for (size_t n = 0; n < fw.size(); n += 97) {
    Bytes cut(fw.begin(), fw.begin() + long(n));
    EXPECT_FALSE(ParseTdvfMetadata(cut).ok()) << n;
  }
}

}  // namespace
}  // namespace tdxvirt::simulator
