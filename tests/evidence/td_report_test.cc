#include "evidence/td_report.h"

#include <gtest/gtest.h>

#include "common/hex.h"
#include "common/openssl.h"

namespace tdxvirt::evidence {
namespace {

// A TDREPORT with every field distinct, built byte by byte at the offsets of the TDX module ABI,
// independent of the serializer under test.
Bytes HandBuiltReport(uint8_t version) {
  Bytes r(kTdReportSize);
  for (size_t i = 0; i < r.size(); ++i) r[i] = uint8_t(i * 7 + 3);
  r[0] = 0x81;
  r[1] = 0;
  r[2] = version;
  return r;
}

TEST(TdReport, FieldsSitAtAbiOffsets) {
  Bytes raw = HandBuiltReport(0);
  auto rep = ParseTdReport(raw);
  ASSERT_TRUE(rep.ok()) << rep.error();
  auto at = [&](size_t off, size_t n) { return ToHex(ByteSpan(raw).subspan(off, n)); };
  EXPECT_EQ(ToHex(rep->mac_struct.cpu_svn), at(16, 16));
  EXPECT_EQ(ToHex(rep->mac_struct.report_data), at(128, 64));
  EXPECT_EQ(ToHex(rep->mac_struct.mac), at(224, 32));
  EXPECT_EQ(ToHex(rep->tee_tcb_info.tee_tcb_svn), at(256 + 8, 16));
  EXPECT_EQ(ToHex(rep->tee_tcb_info.mr_seam), at(256 + 24, 48));
  EXPECT_EQ(ToHex(rep->td_info.td.td_attributes), at(512, 8));
  EXPECT_EQ(ToHex(rep->td_info.td.xfam), at(520, 8));
  EXPECT_EQ(ToHex(rep->td_info.td.mr_td), at(528, 48));
  EXPECT_EQ(ToHex(rep->td_info.td.mr_config_id), at(576, 48));
  EXPECT_EQ(ToHex(rep->td_info.td.mr_owner), at(624, 48));
  EXPECT_EQ(ToHex(rep->td_info.td.mr_owner_config), at(672, 48));
  EXPECT_EQ(ToHex(rep->td_info.td.rtmr[0]), at(720, 48));
  EXPECT_EQ(ToHex(rep->td_info.td.rtmr[3]), at(864, 48));
  EXPECT_FALSE(rep->is_td15());
  EXPECT_TRUE(IsAllZero(rep->tee_tcb_svn2()));
  EXPECT_TRUE(IsAllZero(rep->servtd_hash()));
}

TEST(TdReport, Td15FieldsComeFromReservedAreas) {
  Bytes raw = HandBuiltReport(1);
  auto rep = ParseTdReport(raw);
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->is_td15());
  EXPECT_EQ(ToHex(rep->tee_tcb_svn2()), ToHex(ByteSpan(raw).subspan(256 + 128, 16)));
  EXPECT_EQ(ToHex(rep->servtd_hash()), ToHex(ByteSpan(raw).subspan(912, 48)));
}

TEST(TdReport, RoundTripsAndHashesSubstructures) {
  Bytes raw = HandBuiltReport(0);
  auto rep = ParseTdReport(raw);
  ASSERT_TRUE(rep.ok());
  auto out = SerializeTdReport(*rep);
  EXPECT_EQ(Bytes(out.begin(), out.end()), raw);
  Bytes tcb = SerializeTeeTcbInfo(rep->tee_tcb_info);
  Bytes info = SerializeTdInfo(rep->td_info);
  ASSERT_EQ(tcb.size(), 239u);
  ASSERT_EQ(info.size(), 512u);
  EXPECT_EQ(tcb, Bytes(raw.begin() + 256, raw.begin() + 495));
  EXPECT_EQ(info, Bytes(raw.begin() + 512, raw.end()));
  EXPECT_EQ(ossl::Sha384(info).size(), 48u);
}

TEST(TdReport, RejectsWrongSizeAndType) {
  Bytes raw = HandBuiltReport(0);
  Bytes short_raw(raw.begin(), raw.end() - 1);
  auto r = ParseTdReport(short_raw);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "TDREPORT: expected exactly 1024 bytes, got 1023");
  raw[0] = 0x00;  // SGX report type
  r = ParseTdReport(raw);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "TDREPORT: REPORTMACSTRUCT.REPORTTYPE.type at offset 0 is 0; a TD report has type 0x81 (129). "
            "Is this an SGX report?");
}

TEST(TdReport, AttributeFlags) {
  Bytes raw = HandBuiltReport(0);
  for (int i = 0; i < 8; ++i) raw[512 + i] = 0;
  raw[512] = 0x01;      // DEBUG
  raw[512 + 3] = 0x10;  // bit 28 SEPT_VE_DISABLE
  auto rep = ParseTdReport(raw);
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->td_info.td.debug());
  EXPECT_TRUE(rep->td_info.td.sept_ve_disable());
  EXPECT_EQ(rep->td_info.td.attributes(), kTdAttrDebug | kTdAttrSeptVeDisable);
}

}  // namespace
}  // namespace tdxvirt::evidence
