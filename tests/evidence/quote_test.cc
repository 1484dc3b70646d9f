#include "evidence/quote.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <sstream>

#include "common/hex.h"
#include "test_util.h"

namespace tdxvirt::evidence {
namespace {

using testing::ReadTestdata;

const char* const kRealQuotes[] = {
    "quotes/tdx-v4-uptodate/quote.bin",
    "quotes/tdx-v5-no-tcb-level/quote.bin",
    "quotes/tdx-v4-spr-e4-pcs-2023/quote.bin",
    "quotes/tdx-v4-trailing-bytes/quote.bin",
};

// Reads the byte arrays of dcap-qvl's parse snapshot (Rust Debug output: `name: [` then one decimal
// per line). Names are unique in the snapshot except for nesting we do not need.
std::map<std::string, Bytes> ReadSnapshotArrays(const std::string& text) {
  std::map<std::string, Bytes> out;
  std::istringstream in(text);
  std::string line, current;
  static const std::regex kOpen(R"(^\s*(\w+): \[$)");
  static const std::regex kNumber(R"(^\s*(\d+),$)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, kOpen)) {
      current = m[1];
      out[current];
    } else if (!current.empty() && std::regex_match(line, m, kNumber)) {
      out[current].push_back(uint8_t(std::stoi(m[1])));
    } else {
      current.clear();
    }
  }
  return out;
}

template <size_t N>
Bytes B(const ByteArray<N>& a) {
  return Bytes(a.begin(), a.end());
}

TEST(Quote, MatchesDcapQvlSnapshotFieldByField) {
  Bytes raw = ReadTestdata("quotes/tdx-v4-uptodate/quote.bin");
  Bytes snap_bytes = ReadTestdata("quotes/tdx-v4-uptodate/parsed-by-dcap-qvl.snap");
  auto snap = ReadSnapshotArrays(std::string(AsString(snap_bytes)));
  auto q = ParseQuote(raw);
  ASSERT_TRUE(q.ok()) << q.error();
  const auto& b = q->body;
  const auto& c = q->signature_data.qe_certification;
  std::map<std::string, Bytes> ours = {
      {"qe_vendor_id", B(q->header.qe_vendor_id)},
      {"user_data", B(q->header.user_data)},
      {"tee_tcb_svn", B(b.tee_tcb_svn)},
      {"mr_seam", B(b.mr_seam)},
      {"mr_signer_seam", B(b.mr_signer_seam)},
      {"seam_attributes", B(b.seam_attributes)},
      {"td_attributes", B(b.td.td_attributes)},
      {"xfam", B(b.td.xfam)},
      {"mr_td", B(b.td.mr_td)},
      {"mr_config_id", B(b.td.mr_config_id)},
      {"mr_owner", B(b.td.mr_owner)},
      {"mr_owner_config", B(b.td.mr_owner_config)},
      {"rt_mr0", B(b.td.rtmr[0])},
      {"rt_mr1", B(b.td.rtmr[1])},
      {"rt_mr2", B(b.td.rtmr[2])},
      {"rt_mr3", B(b.td.rtmr[3])},
      {"report_data", B(b.report_data)},
      {"ecdsa_signature", B(q->signature_data.signature)},
      {"ecdsa_attestation_key", B(q->signature_data.attestation_key)},
      {"qe_report", SerializeEnclaveReportBody(c.qe_report)},
      {"qe_report_signature", B(c.qe_report_signature)},
      {"data", c.qe_auth_data},
  };
  for (const auto& [name, value] : ours) {
    ASSERT_TRUE(snap.count(name)) << "snapshot lacks " << name;
    EXPECT_EQ(ToHex(value), ToHex(snap[name])) << name;
  }
}

TEST(Quote, RealQuotesRoundTripByteForByte) {
  for (const char* path : kRealQuotes) {
    SCOPED_TRACE(path);
    Bytes raw = ReadTestdata(path);
    auto q = ParseQuote(raw);
    ASSERT_TRUE(q.ok()) << q.error();
    EXPECT_EQ(SerializeQuote(*q), raw);
  }
}

TEST(Quote, FramingOfEachRealQuote) {
  struct Case {
    const char* path;
    uint16_t version;
    BodyType body;
    size_t sig_len;
    size_t trailing;
  };
  const Case cases[] = {
      {"quotes/tdx-v4-uptodate/quote.bin", 4, BodyType::kTd10, 4300, 70},
      {"quotes/tdx-v5-no-tcb-level/quote.bin", 5, BodyType::kTd15, 4300, 0},
      {"quotes/tdx-v4-spr-e4-pcs-2023/quote.bin", 4, BodyType::kTd10, 4299, 39},
      {"quotes/tdx-v4-trailing-bytes/quote.bin", 4, BodyType::kTd10, 4299, 3065},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    Bytes raw = ReadTestdata(c.path);
    auto q = ParseQuote(raw);
    ASSERT_TRUE(q.ok()) << q.error();
    EXPECT_EQ(q->header.version, c.version);
    EXPECT_EQ(q->body.type, c.body);
    EXPECT_EQ(q->signature_data.size(), c.sig_len);
    EXPECT_EQ(q->trailing.size(), c.trailing);
    EXPECT_EQ(q->header.qe_vendor_id, kIntelQeVendorId);
    EXPECT_EQ(q->signature_data.qe_certification.qe_auth_data.size(), 32u);
    EXPECT_EQ(q->signature_data.qe_certification.certification_data.type, kCertDataPckCertChain);
    EXPECT_EQ(q->signed_size(), c.version == 5 ? 48u + 6 + 648 : 48u + 584);
    auto pem = PckCertChainPem(*q);
    ASSERT_TRUE(pem.ok());
    EXPECT_EQ(pem->substr(0, 27), "-----BEGIN CERTIFICATE-----");
  }
}

TEST(Quote, V5Td15BodyFields) {
  auto q = ParseQuote(ReadTestdata("quotes/tdx-v5-no-tcb-level/quote.bin"));
  ASSERT_TRUE(q.ok()) << q.error();
  EXPECT_EQ(ToHex(q->body.tee_tcb_svn), "07010300000000000000000000000000");
  EXPECT_EQ(ToHex(q->body.tee_tcb_svn2), "0d010300000000000000000000000000");
  EXPECT_TRUE(IsAllZero(q->body.mr_servicetd));
  EXPECT_EQ(ToHex(q->body.td.mr_td),
            "273828c46252fcbdd8ad2dd907130222b03466d52a2911d70c1a5950895d6bd1ae451d382d5a9b1b4c0ed0e5ae9a3dbd");
  EXPECT_EQ(q->signature_data.qe_certification.qe_report.isv_svn, 7);
}

TEST(Quote, TruncatedAtEveryOffsetFailsCleanly) {
  Bytes raw = ReadTestdata("quotes/tdx-v4-uptodate/quote.bin");
  auto full = ParseQuote(raw);
  ASSERT_TRUE(full.ok());
  const size_t end_of_signature = full->signed_size() + 4 + full->signature_data.size();
  for (size_t n = 0; n < end_of_signature; ++n) {
    Bytes cut(raw.begin(), raw.begin() + long(n));
    auto q = ParseQuote(cut);
    ASSERT_FALSE(q.ok()) << "prefix of " << n << " bytes parsed";
    ASSERT_NE(q.error().find("offset"), std::string::npos) << q.error();
  }
  // Inside the trailing padding every prefix is a complete quote.
  for (size_t n = end_of_signature; n <= raw.size(); ++n) {
    Bytes cut(raw.begin(), raw.begin() + long(n));
    ASSERT_TRUE(ParseQuote(cut).ok()) << n;
  }
}

TEST(Quote, TruncationMessageNamesFieldAndOffset) {
  Bytes raw = ReadTestdata("quotes/tdx-v4-uptodate/quote.bin");
  auto q = ParseQuote(ByteSpan(raw).first(200));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error(),
            "quote: truncated: field body.mr_td at offset 184 needs 48 bytes but 16 remain; supply "
            "the complete quote");
  auto sig = ParseQuote(ByteSpan(raw).first(640));
  ASSERT_FALSE(sig.ok());
  EXPECT_EQ(sig.error(), "quote: signature_data_len at offset 632 is 4300 but only 4 bytes follow; the signature data "
            "would run past the end of its container");
}

class QuoteMutation : public ::testing::Test {
 protected:
  void SetUp() override { raw_ = ReadTestdata("quotes/tdx-v4-uptodate/quote.bin"); }
  void PutU16(size_t off, uint16_t v) {
    raw_[off] = uint8_t(v);
    raw_[off + 1] = uint8_t(v >> 8);
  }
  void PutU32(size_t off, uint32_t v) {
    for (int i = 0; i < 4; ++i) raw_[off + i] = uint8_t(v >> (8 * i));
  }
  std::string Error() {
    auto q = ParseQuote(raw_);
    EXPECT_FALSE(q.ok());
    return q.ok() ? "" : q.error();
  }
  Bytes raw_;
  // v4 offsets: signature data starts at 636; certification data at 636+134 = 770.
  static constexpr size_t kSig = 636, kCert = 770;
};

TEST_F(QuoteMutation, WrongVersion) {
  PutU16(0, 3);
  EXPECT_EQ(Error(),
            "quote: header.version at offset 0 is 3; only TD quote versions 4 and 5 are supported "
            "(version 3 is an SGX quote)");
}

TEST_F(QuoteMutation, WrongKeyType) {
  PutU16(2, 3);
  EXPECT_EQ(Error(), "quote: header.att_key_type at offset 2 is 3; only 2 (ECDSA-256-with-P-256) is supported (3, "
            "ECDSA-384, is not used by Intel's QE)");
}

TEST_F(QuoteMutation, WrongTeeType) {
  PutU32(4, 0);
  EXPECT_EQ(Error(), "quote: header.tee_type at offset 4 is 0x00000000 (SGX); a TD quote has tee_type 0x81 (TDX)");
}

TEST_F(QuoteMutation, SignatureLengthPastEnd) {
  PutU32(632, 100000);
  EXPECT_EQ(Error(), "quote: signature_data_len at offset 632 is 100000 but only 4370 bytes follow; the signature "
            "data would run past the end of its container");
}

TEST_F(QuoteMutation, SignatureLengthTooSmall) {
  PutU32(632, 10);
  EXPECT_EQ(Error(), "quote: signature_data_len at offset 632 is 10; ECDSA signature data needs at least 134 bytes");
}

TEST_F(QuoteMutation, WrongCertificationDataType) {
  PutU16(kSig + 128, 5);
  EXPECT_EQ(Error(), "quote: signature_data.certification_data_type at offset 764 is 5; TD quotes carry type 6 (QE "
            "report certification data)");
}

TEST_F(QuoteMutation, CertificationSizeDisagreesWithSignatureLength) {
  PutU32(kSig + 130, 4166 - 1);
  EXPECT_EQ(Error(), "quote: signature_data.certification_data_size at offset 766 is 4165 but signature_data_len "
            "leaves 4166 bytes for it; the two lengths disagree");
  PutU32(kSig + 130, 0xffffffff);
  EXPECT_EQ(Error(), "quote: signature_data.certification_data_size at offset 766 is 4294967295 but only 4166 bytes "
            "follow; the certification data would run past the end of its container");
}

TEST_F(QuoteMutation, QeAuthSizePastEnd) {
  PutU16(kCert + 448, 0xffff);
  EXPECT_EQ(Error(), "quote: qe_auth_data.size at offset 1218 is 65535 but only 3716 bytes follow; the QE auth data "
            "would run past the end of its container");
}

TEST_F(QuoteMutation, PckChainSizePastEnd) {
  PutU32(kCert + 450 + 32 + 2, 3679);
  EXPECT_EQ(Error(), "quote: qe_certification_data.size at offset 1254 is 3679 but only 3678 bytes follow; the PCK "
            "certification data would run past the end of its container");
}

TEST_F(QuoteMutation, PckChainSizeShortLeavesSlack) {
  PutU32(kCert + 450 + 32 + 2, 3677);
  EXPECT_EQ(Error(), "quote: certification data at offset 4935 has 1 bytes after the nested PCK certification data; "
            "its size field disagrees with its contents");
}

TEST_F(QuoteMutation, NonPemCertificationDataIsReportedByAccessor) {
  PutU16(kCert + 450 + 32, 3);  // PPID_RSA3072_ENCRYPTED: parses, but carries no PCK chain
  auto q = ParseQuote(raw_);
  ASSERT_TRUE(q.ok()) << q.error();
  auto pem = PckCertChainPem(*q);
  ASSERT_FALSE(pem.ok());
  EXPECT_EQ(pem.error(), "the quote's QE certification data is type 3, not 5 (PCK certificate chain); fetch the PCK "
            "certificate from a PCCS instead");
}

TEST(QuoteV5, BodyDescriptorIsChecked) {
  Bytes raw = ReadTestdata("quotes/tdx-v5-no-tcb-level/quote.bin");
  Bytes sgx = raw;
  sgx[48] = 1;
  auto q = ParseQuote(sgx);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error(), "quote: body_descriptor.type at offset 48 is 1 (SGX enclave report); a TD quote v5 carries type "
            "2 (TD 1.0 report) or 3 (TD 1.5 report)");
  Bytes size = raw;
  size[50] = 0x48;  // 648 -> 584 + ... any other value
  size[51] = 0x02;
  q = ParseQuote(size);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error(), "quote: body_descriptor.size at offset 50 is 584; a body of type 3 is 648 bytes");
}

TEST(Quote, SerializeRecomputesLengths) {
  auto q = ParseQuote(ReadTestdata("quotes/tdx-v4-uptodate/quote.bin"));
  ASSERT_TRUE(q.ok());
  q->signature_data.qe_certification.qe_auth_data.resize(40, 0xaa);
  q->trailing.clear();
  Bytes out = SerializeQuote(*q);
  auto back = ParseQuote(out);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, *q);
  EXPECT_EQ(out.size(), q->signed_size() + 4 + q->signature_data.size());
}

}  // namespace
}  // namespace tdxvirt::evidence
