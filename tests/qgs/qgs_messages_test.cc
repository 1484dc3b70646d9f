// QGS messages: exact byte layout, round trips, and every decoder check with its error code.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/file.h"
#include "common/hex.h"
#include "fake_backend.h"
#include "qgs/handler.h"
#include "qgs/messages.h"
#include "wire.h"

namespace tdxvirt::qgs {
namespace {

using testing::FakeBackend;
using testing::TestReport;

Bytes Hex(std::string_view text) { return *FromHex(text); }

Bytes Concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The reference's byte example: a framed GET_QUOTE_REQ for a 1024-byte TDREPORT is 4 + 24 + 1024
// bytes: 00 00 04 18 | 01 00 01 00 | 00 00 00 00 | 18 04 00 00 | 00 00 00 00 | 00 04 00 00 |
// 00 00 00 00 | <TDREPORT>.
TEST(QgsMessages, GetQuoteRequestMatchesTheReferenceBytes) {
  Bytes report = TestReport();
  Bytes framed = Frame(EncodeGetQuoteRequest({.report = report}));
  Bytes expected =
      Concat(Hex("00000418 01000100 00000000 18040000 00000000 00040000 00000000"), report);
  EXPECT_EQ(framed, expected);
  EXPECT_EQ(framed.size(), 4u + 24 + 1024);
  // And as the hand-written wire helper (written from the protocol text) builds it.
  EXPECT_EQ(framed, wire::Framed(wire::GetQuoteReq(report)));
}

TEST(QgsMessages, GetQuoteResponseLayout) {
  Bytes quote = Hex("0400020081000000");
  Bytes m = EncodeGetQuoteResponse({.quote = quote});
  EXPECT_EQ(m, Concat(Hex("01000100 01000000 20000000 00000000 00000000 08000000"), quote));
  auto back = DecodeGetQuoteResponse(m);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->quote, quote);
  EXPECT_TRUE(back->selected_id.empty());
  EXPECT_EQ(back->error_code, kSuccess);
}

TEST(QgsMessages, ErrorResponsesAreTheFixedPartZeroed) {
  EXPECT_EQ(EncodeErrorResponse(MessageType::kGetQuoteResponse, kErrorUnexpected),
            Hex("01000100 01000000 18000000 01200100 00000000 00000000"));
  Bytes c = EncodeErrorResponse(MessageType::kGetCollateralResponse, kErrorInvalidSize);
  EXPECT_EQ(c.size(), 48u);
  EXPECT_EQ(Bytes(c.begin(), c.begin() + 16), Hex("01000100 03000000 30000000 06200100"));
  Bytes p = EncodeErrorResponse(MessageType::kGetPlatformInfoResponse, kErrorInvalidVersion);
  EXPECT_EQ(p.size(), 28u);
  auto q =
      DecodeGetQuoteResponse(EncodeErrorResponse(MessageType::kGetQuoteResponse, kErrorUnexpected));
  ASSERT_TRUE(q.ok()) << q.error();
  EXPECT_EQ(q->error_code, kErrorUnexpected);
  EXPECT_TRUE(q->quote.empty());
  EXPECT_TRUE(DecodeGetCollateralResponse(c).ok());
  EXPECT_TRUE(DecodeGetPlatformInfoResponse(p).ok());
}

TEST(QgsMessages, RoundTripsEveryType) {
  GetQuoteRequest qr{.report = TestReport(), .id_list = Hex("0102030405")};
  EXPECT_EQ(*DecodeGetQuoteRequest(EncodeGetQuoteRequest(qr)), qr);
  GetQuoteResponse qp{.selected_id = Hex("01"), .quote = Bytes(5000, 7)};
  EXPECT_EQ(*DecodeGetQuoteResponse(EncodeGetQuoteResponse(qp)), qp);
  GetCollateralRequest cr = MakeGetCollateralRequest(testing::kSampleFmspc, "processor");
  EXPECT_EQ(cr.pck_ca, std::string("processor\0", 10));
  EXPECT_EQ(*DecodeGetCollateralRequest(EncodeGetCollateralRequest(cr)), cr);
  EXPECT_EQ(*PckCaName(cr), "processor");
  EXPECT_TRUE(DecodeGetPlatformInfoRequest(EncodeGetPlatformInfoRequest()).ok());
  EXPECT_EQ(EncodeGetPlatformInfoRequest(), Hex("01000100 04000000 10000000 00000000"));
  GetPlatformInfoResponse pi{
      .tdqe_isvsvn = 4, .pce_isvsvn = 13, .platform_id = Bytes(16, 1), .cpu_svn = Bytes(16, 2)};
  Bytes pim = EncodeGetPlatformInfoResponse(pi);
  EXPECT_EQ(pim.size(), 28u + 32);
  EXPECT_EQ(*DecodeGetPlatformInfoResponse(pim), pi);
}

TEST(QgsMessages, CollateralRoundTripsThroughPcsBodies) {
  verify::Collateral c = testing::SampleCollateral();
  GetCollateralResponse r = CollateralToResponse(c);
  EXPECT_EQ(r.collateral_major_version, 3);
  // Text parts carry Intel's NUL terminator; the signed documents travel as PCS bodies.
  EXPECT_EQ(r.tcb_info.back(), 0);
  std::string tcb(AsString(r.tcb_info));
  EXPECT_TRUE(tcb.starts_with("{\"tcbInfo\":" + c.tcb_info + ",\"signature\":\""))
      << tcb.substr(0, 40);
  EXPECT_EQ(r.root_ca_crl, c.root_ca_crl);  // DER as is
  Bytes m = EncodeGetCollateralResponse(r);
  auto decoded = DecodeGetCollateralResponse(m);
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_EQ(*decoded, r);
  auto back = CollateralFromResponse(*decoded);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->tcb_info, c.tcb_info);  // the exact signed bytes
  EXPECT_EQ(back->tcb_info_signature, c.tcb_info_signature);
  EXPECT_EQ(back->qe_identity, c.qe_identity);
  EXPECT_EQ(back->qe_identity_signature, c.qe_identity_signature);
  EXPECT_EQ(back->pck_crl, c.pck_crl);
  EXPECT_EQ(back->root_ca_crl, c.root_ca_crl);
  EXPECT_EQ(back->pck_crl_issuer_chain, c.pck_crl_issuer_chain);
  EXPECT_EQ(back->tcb_info_issuer_chain, c.tcb_info_issuer_chain);
  EXPECT_EQ(back->qe_identity_issuer_chain, c.qe_identity_issuer_chain);
}

TEST(QgsMessages, CollateralCrlsMayArriveAsHexText) {
  verify::Collateral c = testing::SampleCollateral();
  GetCollateralResponse r = CollateralToResponse(c);
  std::string hex = ToHex(c.root_ca_crl);
  r.root_ca_crl = Bytes(hex.begin(), hex.end());
  r.root_ca_crl.push_back(0);
  auto back = CollateralFromResponse(r);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->root_ca_crl, c.root_ca_crl);
  r.tcb_info = Bytes{'{', '}', 0};
  auto bad = CollateralFromResponse(r);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), "GET_COLLATERAL_RESP: tcb_info: PCS response: no member \"tcbInfo\"");
}

TEST(QgsMessages, PlatformInfoAcceptsQgsMsgLibPadding) {
  // qgs_msg_lib sizes the response 4 bytes over its layout (zeros at the end).
  Bytes m = wire::Header(5, 28 + 4 + 3 + 2);
  wire::Le16(m, 4);
  wire::Le16(m, 13);
  wire::Le32(m, 3);
  wire::Le32(m, 2);
  Bytes payload = Hex("aabbcc0102 00000000");
  m.insert(m.end(), payload.begin(), payload.end());
  auto r = DecodeGetPlatformInfoResponse(m);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r->lib_padding);
  EXPECT_EQ(r->platform_id, Hex("aabbcc"));
  EXPECT_EQ(r->cpu_svn, Hex("0102"));
  EXPECT_EQ(EncodeGetPlatformInfoResponse(*r), m);
  m.back() = 1;  // non-zero padding is not the quirk
  uint32_t code = 0;
  EXPECT_FALSE(DecodeGetPlatformInfoResponse(m, &code).ok());
  EXPECT_EQ(code, kErrorInvalidSize);
}

struct BadRequest {
  const char* name;
  Bytes message;
  uint32_t code;
  std::string says;  // the error message
};

std::vector<BadRequest> BadGetQuoteRequests() {
  Bytes report = TestReport();
  Bytes good = wire::GetQuoteReq(report);
  auto with = [&](size_t at, uint32_t v) {
    Bytes b = good;
    for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
    return b;
  };
  Bytes bad_major = good;
  bad_major[0] = 2;
  return {
      {"short", Bytes(good.begin(), good.begin() + 20), kErrorInvalidParameter,
       "GET_QUOTE_REQ: message is 20 bytes, shorter than its fixed part of 24"},
      {"major", bad_major, kErrorInvalidVersion, "GET_QUOTE_REQ: major_version at offset 0 is 2, expected 1"},
      {"type", with(4, 2), kErrorInvalidType, "GET_QUOTE_REQ: type at offset 4 is 2 (GET_COLLATERAL_REQ), expected 0"},
      {"size_vs_received", with(8, 1047), kErrorInvalidSize, "GET_QUOTE_REQ: size at offset 8 is 1047 but the message is 1048 bytes"},
      {"error_code", with(12, 5), kErrorInvalidCode, "GET_QUOTE_REQ: error_code at offset 12 is 0x5, must be 0 in a request"},
      {"report_size_zero", with(16, 0), kErrorInvalidCode, "GET_QUOTE_REQ: report_size at offset 16 is 0"},
      {"report_size_past_end", with(16, 1025), kErrorInvalidSize, 
       "GET_QUOTE_REQ: fixed part 24 + report_size 1025 (offset 16) + id_list_size 0 (offset 20) = 1049 bytes, "
       "but size at offset 8 is 1048"},
      {"id_list_past_end", with(20, 100), kErrorInvalidSize, 
       "GET_QUOTE_REQ: fixed part 24 + report_size 1024 (offset 16) + id_list_size 100 (offset 20) = 1148 bytes, "
       "but size at offset 8 is 1048"},
      {"sizes_wrap", with(20, 0xffffffff), kErrorInvalidSize, 
       "GET_QUOTE_REQ: fixed part 24 + report_size 1024 (offset 16) + id_list_size 4294967295 (offset 20) = "
       "4294968343 bytes, but size at offset 8 is 1048"},
  };
}

TEST(QgsMessages, GetQuoteRequestChecksInQgsMsgLibOrder) {
  for (const BadRequest& c : BadGetQuoteRequests()) {
    uint32_t code = 0;
    auto r = DecodeGetQuoteRequest(c.message, &code);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(code, c.code) << c.name << ": " << r.error();
    EXPECT_EQ(r.error(), c.says) << c.name;
  }
}

TEST(QgsMessages, OnlyTheMajorVersionIsChecked) {
  Bytes m = wire::GetQuoteReq(TestReport());
  m[2] = 7;  // minor 7
  EXPECT_TRUE(DecodeGetQuoteRequest(m).ok());
}

TEST(QgsMessages, CollateralRequestChecks) {
  Bytes fm = testing::kSampleFmspc;
  Bytes good = EncodeGetCollateralRequest(MakeGetCollateralRequest(fm, "platform"));
  Bytes zero_fmspc = good;
  zero_fmspc[16] = 0;
  uint32_t code = 0;
  EXPECT_FALSE(DecodeGetCollateralRequest(zero_fmspc, &code).ok());
  EXPECT_EQ(code, kErrorInvalidSize);
  // A CA name without its NUL is accepted; one with a NUL inside is not.
  GetCollateralRequest bare{.fmspc = fm, .pck_ca = "platform"};
  EXPECT_EQ(*PckCaName(*DecodeGetCollateralRequest(EncodeGetCollateralRequest(bare))), "platform");
  GetCollateralRequest inner{.fmspc = fm, .pck_ca = std::string("plat\0form", 9)};
  EXPECT_FALSE(PckCaName(inner).ok());
}

TEST(QgsMessages, ResponseChecks) {
  Bytes quote = Bytes(10, 1);
  Bytes good = EncodeGetQuoteResponse({.quote = quote});
  uint32_t code = 0;
  // Success with an empty quote makes no sense.
  EXPECT_FALSE(DecodeGetQuoteResponse(EncodeGetQuoteResponse({}), &code).ok());
  EXPECT_EQ(code, kErrorInvalidSize);
  // An error response must be empty.
  Bytes err_with_body = good;
  err_with_body[12] = 0x01;
  err_with_body[13] = 0x20;
  err_with_body[14] = 0x01;
  EXPECT_FALSE(DecodeGetQuoteResponse(err_with_body, &code).ok());
  EXPECT_EQ(code, kErrorInvalidSize);
  // Codes at or over 0x12008 are not QGS codes.
  Bytes odd = EncodeErrorResponse(MessageType::kGetQuoteResponse, kErrorInvalidCode);
  odd[12] = 0x08;
  EXPECT_FALSE(DecodeGetQuoteResponse(odd, &code).ok());
  EXPECT_EQ(code, kErrorInvalidCode);
}

TEST(QgsMessages, UnframeChecksThePrefix) {
  Bytes m = EncodeGetPlatformInfoRequest();
  Bytes f = Frame(m);
  EXPECT_EQ(Bytes(f.begin(), f.begin() + 4), Hex("00000010"));
  auto ok = Unframe(f, 1024);
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(Bytes(ok->begin(), ok->end()), m);
  EXPECT_FALSE(Unframe(Bytes(f.begin(), f.end() - 1), 1024).ok());
  EXPECT_FALSE(Unframe(f, 8).ok());
  EXPECT_FALSE(Unframe(Hex("0000"), 1024).ok());
}

TEST(QgsMessages, RawReportChecks) {
  Bytes r = TestReport();
  EXPECT_TRUE(CheckRawReport(r).ok());
  r[2] = 1;  // TDX 1.5
  EXPECT_TRUE(CheckRawReport(r).ok());
  struct Case {
    size_t at;
    uint8_t value;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {0, 0x00, "raw TDREPORT: REPORTTYPE.type at offset 0 is 0x0, expected 0x81 (TDX)"},
           {1, 1, "raw TDREPORT: REPORTTYPE.subtype at offset 1 is 1, expected 0"},
           {2, 2, "raw TDREPORT: REPORTTYPE.version at offset 2 is 2, expected 0 or 1"},
           {3, 1, "raw TDREPORT: REPORTTYPE.reserved at offset 3 is not zero"},
           {9, 1, "raw TDREPORT: reserved byte at offset 9 is not zero"}}) {
    Bytes bad = TestReport();
    bad[c.at] = c.value;
    auto s = CheckRawReport(bad);
    ASSERT_FALSE(s.ok()) << c.at;
    EXPECT_EQ(s.error(), c.says);
  }
  EXPECT_FALSE(CheckRawReport(Bytes(1023, 0)).ok());
}

TEST(QgsMessages, NamesAndCodes) {
  EXPECT_EQ(MessageTypeName(0), "GET_QUOTE_REQ");
  EXPECT_EQ(MessageTypeName(5), "GET_PLATFORM_INFO_RESP");
  EXPECT_EQ(MessageTypeName(9), "type 9");
  EXPECT_EQ(ErrorCodeName(0x12006), "INVALID_SIZE (0x12006)");
  EXPECT_EQ(kErrorUnexpected, 0x12001u);
  EXPECT_EQ(kErrorInvalidCode, 0x12007u);
  EXPECT_EQ(ResponseTypeFor(2), MessageType::kGetCollateralResponse);
  EXPECT_FALSE(ResponseTypeFor(1).has_value());
}

// The handler, without sockets.
TEST(QgsMessages, HandlerAnswersEachType) {
  FakeBackend backend;
  backend.collateral = testing::SampleCollateral();
  Bytes report = TestReport(3);
  HandledRequest q = HandleMessage(EncodeGetQuoteRequest({.report = report}), backend);
  EXPECT_EQ(q.outcome, "ok");
  EXPECT_EQ(DecodeGetQuoteResponse(q.response)->quote, testing::FakeQuoteFor(report));
  HandledRequest c = HandleMessage(
      EncodeGetCollateralRequest(MakeGetCollateralRequest(testing::kSampleFmspc, "platform")),
      backend);
  EXPECT_EQ(c.outcome, "ok") << c.detail;
  EXPECT_TRUE(CollateralFromResponse(*DecodeGetCollateralResponse(c.response)).ok());
  HandledRequest p = HandleMessage(EncodeGetPlatformInfoRequest(), backend);
  EXPECT_EQ(p.outcome, "ok");
  EXPECT_EQ(DecodeGetPlatformInfoResponse(p.response)->pce_isvsvn, 13);
  // Not a request: closed on.
  HandledRequest r = HandleMessage(EncodeGetQuoteResponse({.quote = report}), backend);
  EXPECT_EQ(r.outcome, "rejected");
  EXPECT_TRUE(r.response.empty());
  // Backend failures are UNEXPECTED, as Intel's QGS answers.
  backend.fail = true;
  HandledRequest f = HandleMessage(EncodeGetQuoteRequest({.report = report}), backend);
  EXPECT_EQ(f.error_code, kErrorUnexpected);
  EXPECT_EQ(DecodeGetQuoteResponse(f.response)->error_code, kErrorUnexpected);
  HandledRequest fr = HandleRawReport(report, backend);
  EXPECT_TRUE(fr.response.empty());
  EXPECT_EQ(fr.outcome, "rejected");
}

TEST(QgsMessages, HandlerRejectsAnUnknownCa) {
  FakeBackend backend;
  backend.collateral = testing::SampleCollateral();
  HandledRequest c = HandleMessage(
      EncodeGetCollateralRequest(MakeGetCollateralRequest(testing::kSampleFmspc, "nobody")),
      backend);
  EXPECT_EQ(c.error_code, kErrorUnexpected);
  GetCollateralRequest empty_name{.fmspc = testing::kSampleFmspc, .pck_ca = std::string(1, '\0')};
  HandledRequest e = HandleMessage(EncodeGetCollateralRequest(empty_name), backend);
  EXPECT_EQ(e.error_code, kErrorInvalidParameter);
}

// The committed fuzz seeds are valid messages, so the fuzzer starts from the accepting paths.
TEST(QgsMessages, SeedsDecode) {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TDXVIRT_QGS_SEEDS)) {
    auto data = ReadFile(entry.path().string());
    ASSERT_TRUE(data.ok()) << data.error();
    ++seen;
    std::string name = entry.path().filename().string();
    if (name == "raw_report.bin") {
      EXPECT_TRUE(CheckRawReport(*data).ok());
      continue;
    }
    auto m = Unframe(*data, kDefaultMaxRequestSize);
    ASSERT_TRUE(m.ok()) << name << ": " << m.error();
    auto h = DecodeHeader(*m);
    ASSERT_TRUE(h.ok());
    bool ok = false;
    switch (MessageType(h->type)) {
      case MessageType::kGetQuoteRequest:
        ok = DecodeGetQuoteRequest(*m).ok();
        break;
      case MessageType::kGetQuoteResponse:
        ok = DecodeGetQuoteResponse(*m).ok();
        break;
      case MessageType::kGetCollateralRequest:
        ok = DecodeGetCollateralRequest(*m).ok();
        break;
      case MessageType::kGetCollateralResponse: {
        auto r = DecodeGetCollateralResponse(*m);
        ok = r.ok() && CollateralFromResponse(*r).ok();
        break;
      }
      case MessageType::kGetPlatformInfoRequest:
        ok = DecodeGetPlatformInfoRequest(*m).ok();
        break;
      case MessageType::kGetPlatformInfoResponse:
        ok = DecodeGetPlatformInfoResponse(*m).ok();
        break;
    }
    EXPECT_TRUE(ok) << name;
  }
  EXPECT_GE(seen, 9);
}

}  // namespace
}  // namespace tdxvirt::qgs
