#include "evidence/pck_cert.h"

#include <gtest/gtest.h>

#include "common/hex.h"
#include "evidence/quote.h"
#include "test_util.h"

namespace tdxvirt::evidence {
namespace {

using testing::ReadTestdata;

std::vector<ossl::X509Ptr> ChainOf(const std::string& path) {
  auto q = ParseQuote(ReadTestdata(path));
  EXPECT_TRUE(q.ok());
  auto pem = PckCertChainPem(*q);
  EXPECT_TRUE(pem.ok());
  auto chain = ossl::ParsePemChain(*pem);
  EXPECT_TRUE(chain.ok()) << chain.error();
  return chain.ok() ? std::move(*chain) : std::vector<ossl::X509Ptr>{};
}

TEST(PckCert, ExtensionsOfEachRealQuote) {
  struct Case {
    const char* path;
    const char* fmspc;
    uint16_t pce_svn;
    std::array<uint8_t, 16> components;
  };
  const Case cases[] = {
      {"quotes/tdx-v4-uptodate/quote.bin", "b0c06f000000", 11, {3, 3, 2, 2, 4, 1, 0, 5}},
      {"quotes/tdx-v5-no-tcb-level/quote.bin", "90c06f000000", 13, {3, 3, 2, 2, 4, 1, 0, 3}},
      {"quotes/tdx-v4-spr-e4-pcs-2023/quote.bin", "50806f000000", 0, {3, 3, 2, 2, 2, 1, 0, 2}},
      {"quotes/tdx-v4-trailing-bytes/quote.bin", "00806f050000", 0, {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    auto chain = ChainOf(c.path);
    ASSERT_EQ(chain.size(), 3u);
    auto ext = ExtractPckExtensions(chain[0].get());
    ASSERT_TRUE(ext.ok()) << ext.error();
    EXPECT_EQ(ToHex(ext->fmspc), c.fmspc);
    EXPECT_EQ(ToHex(ext->pce_id), "0000");
    if (c.pce_svn) {
      EXPECT_EQ(ext->pce_svn, c.pce_svn);
    }
    if (c.components[0]) {
      EXPECT_EQ(ext->cpu_svn_components, c.components);
    }
    // CPUSVN's bytes are the component SVNs in order.
    EXPECT_EQ(ToHex(ext->cpu_svn), ToHex(ext->cpu_svn_components));
    EXPECT_EQ(PckCaType(chain[0].get()), "platform");
  }
}

TEST(PckCert, ChainSubjectsAndValidity) {
  auto chain = ChainOf("quotes/tdx-v4-uptodate/quote.bin");
  ASSERT_EQ(chain.size(), 3u);
  auto leaf = Summarize(chain[0].get());
  EXPECT_EQ(leaf.subject.rfind("CN=Intel SGX PCK Certificate", 0), 0u) << leaf.subject;
  EXPECT_EQ(leaf.issuer.rfind("CN=Intel SGX PCK Platform CA", 0), 0u) << leaf.issuer;
  EXPECT_EQ(leaf.not_before, "2025-02-06T23:25:51Z");
  EXPECT_EQ(leaf.not_after, "2032-02-06T23:25:51Z");
  auto root = Summarize(chain[2].get());
  EXPECT_EQ(root.subject,
            "CN=Intel SGX Root CA,O=Intel Corporation,L=Santa Clara,ST=CA,C=US");
  EXPECT_EQ(root.serial, "22650cd65a9d3489f383b49552bf501b392706ac");
  EXPECT_EQ(root.not_after, "2049-12-31T23:59:59Z");
}

TEST(PckCert, CertificateWithoutExtensionsIsRejected) {
  auto chain = ChainOf("quotes/tdx-v4-uptodate/quote.bin");
  ASSERT_EQ(chain.size(), 3u);
  auto ext = ExtractPckExtensions(chain[2].get());  // the root CA
  ASSERT_FALSE(ext.ok());
  EXPECT_EQ(ext.error(), "PCK certificate has no SGX extensions (OID 1.2.840.113741.1.13.1); is this an Intel SGX PCK certificate?");
}

TEST(PckCert, PemChainErrors) {
  auto empty = ossl::ParsePemChain("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error(), "no PEM certificate (BEGIN CERTIFICATE) found");
  auto r = ossl::ParsePemChain("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  ASSERT_FALSE(r.ok());
  // Our text whole; what follows is OpenSSL's error queue, which varies by OpenSSL version.
  const std::string invalid = "PEM certificate 1 is not a valid X.509 certificate: ";
  EXPECT_EQ(r.error().substr(0, invalid.size()), invalid) << r.error();
  EXPECT_GT(r.error().size(), invalid.size());
  auto open = ossl::ParsePemChain("-----BEGIN CERTIFICATE-----\nAAAA\n");
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.error(), "PEM certificate 1 has no END CERTIFICATE line");
}

TEST(PckCert, StrictPemLeavesNoByteFree) {
  auto q = ParseQuote(ReadTestdata("quotes/tdx-v4-uptodate/quote.bin"));
  ASSERT_TRUE(q.ok());
  std::string pem(*PckCertChainPem(*q));
  ASSERT_TRUE(ossl::ParsePemChain(pem, /*strict=*/true).ok());  // NUL padding is allowed
  auto trailing = ossl::ParsePemChain(pem + "junk", /*strict=*/true);
  ASSERT_FALSE(trailing.ok());
  EXPECT_EQ(trailing.error(), "unexpected text after the last PEM certificate");
  EXPECT_TRUE(ossl::ParsePemChain(pem + "junk").ok());  // lenient for files people edit
  auto leading = ossl::ParsePemChain("x" + pem, /*strict=*/true);
  ASSERT_FALSE(leading.ok());
  EXPECT_EQ(leading.error(), "unexpected text before PEM certificate 1");
  // An END line damaged so that the next certificate would be swallowed into this one.
  std::string broken = pem;
  size_t end = broken.find("-----END CERTIFICATE-----");
  broken[end + 24] = ',';
  auto swallowed = ossl::ParsePemChain(broken);
  ASSERT_FALSE(swallowed.ok());
  EXPECT_EQ(swallowed.error(), "PEM certificate 1 has a broken END CERTIFICATE line");
}

}  // namespace
}  // namespace tdxvirt::evidence
