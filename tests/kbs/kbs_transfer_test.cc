// The transfer request as Intel's decodeTransferKeyHTTPRequest reads it: headers (415/400), the
// three kinds (nonce, evidence, passport), unknown fields, base64, and the key id route rule.
#include <gtest/gtest.h>

#include "common/base64.h"
#include "kbs/transfer.h"

namespace tdxvirt::kbs {
namespace {

const TransferHeaders kJson{"application/json", "application/json", ""};
const TransferHeaders kTdx{"application/json", "application/json", "TDX"};
const std::string kNonce =
    R"({"val":"AAECAw==","iat":"MjAyNi0wMS0wMVQwMDowMDowMFo=","signature":"BAUG"})";

std::string Evidence(const std::string& extra = "") {
  return R"({"quote":"AQID","nonce":)" + kNonce + R"(,"user_data":"AQABAA==")" + extra + "}";
}

TEST(UuidV4Test, IntelsRoutePattern) {
  EXPECT_TRUE(IsUuidV4("4517534b-a758-4447-bd2f-3e5606152ed6"));
  EXPECT_TRUE(IsUuidV4("4517534B-A758-4447-8D2F-3E5606152ED6"));
  EXPECT_TRUE(IsUuidV4("4517534b-a758-4447-9d2f-3e5606152ed6"));
  EXPECT_TRUE(IsUuidV4("4517534b-a758-4447-ad2f-3e5606152ed6"));
  EXPECT_FALSE(IsUuidV4("4517534b-a758-1447-bd2f-3e5606152ed6"));  // version 1
  EXPECT_FALSE(IsUuidV4("4517534b-a758-4447-cd2f-3e5606152ed6"));  // variant
  EXPECT_FALSE(IsUuidV4("4517534b-a758-4447-|d2f-3e5606152ed6"));  // Intel's class admits '|'
  EXPECT_FALSE(IsUuidV4("4517534b-a758-4447-bd2f-3e5606152ed"));
  EXPECT_FALSE(IsUuidV4("4517534b-a758-4447-bd2f-3e5606152ed6x"));
  EXPECT_FALSE(IsUuidV4("4517534b_a758-4447-bd2f-3e5606152ed6"));
  EXPECT_FALSE(IsUuidV4("4517534g-a758-4447-bd2f-3e5606152ed6"));
  EXPECT_FALSE(IsUuidV4(""));
}

TEST(TransferParseTest, NoncePassportEvidence) {
  auto n = ParseTransferRequest(kJson, "");
  EXPECT_EQ(n.status, 0) << n.error;
  EXPECT_EQ(n.request.kind, TransferKind::kNonce);
  // A nonce request need not send Content-Type.
  EXPECT_EQ(ParseTransferRequest({"application/json", "", ""}, "").status, 0);

  auto p = ParseTransferRequest(kJson, R"({"attestation_token":"a.b.c"})");
  EXPECT_EQ(p.status, 0) << p.error;
  EXPECT_EQ(p.request.kind, TransferKind::kPassport);
  EXPECT_EQ(p.request.attestation_token, "a.b.c");

  auto e = ParseTransferRequest(kTdx, Evidence(R"(,"event_log":"AAAA")"));
  ASSERT_EQ(e.status, 0) << e.error;
  EXPECT_EQ(e.request.kind, TransferKind::kEvidence);
  EXPECT_EQ(e.request.attestation_type, "TDX");
  EXPECT_EQ(e.request.quote, (Bytes{1, 2, 3}));
  EXPECT_EQ(e.request.user_data, (Bytes{1, 0, 1, 0}));
  EXPECT_EQ(e.request.event_log, (Bytes{0, 0, 0}));
  ASSERT_TRUE(e.request.nonce);
  EXPECT_EQ(e.request.nonce->val, (Bytes{0, 1, 2, 3}));
  EXPECT_EQ(e.request.nonce->signature, (Bytes{4, 5, 6}));
  // URL-safe base64 (the C client) and null as absent (Go).
  auto u = ParseTransferRequest(kTdx, R"({"quote":"-_8=","nonce":)" + kNonce + R"(,"user_data":"AQABAA==","event_log":null})");
  ASSERT_EQ(u.status, 0) << u.error;
  EXPECT_EQ(u.request.quote, (Bytes{0xfb, 0xff}));
}

TEST(TransferParseTest, HeaderRefusals) {
  auto a = ParseTransferRequest({"text/plain", "application/json", ""}, "");
  EXPECT_EQ(a.status, 415);
  EXPECT_EQ(a.error, "Invalid Accept header: send Accept: application/json");
  EXPECT_EQ(ParseTransferRequest({"application/json; charset=utf-8", "application/json", ""}, "").status, 415);
  EXPECT_EQ(ParseTransferRequest({"", "application/json", ""}, "").status, 415);
  auto c = ParseTransferRequest({"application/json", "text/plain", ""}, R"({"attestation_token":"x"})");
  EXPECT_EQ(c.status, 415);
  EXPECT_EQ(c.error, "Invalid Content-type header: send Content-Type: application/json");
  auto t = ParseTransferRequest({"application/json", "application/json", "SEV"}, Evidence());
  EXPECT_EQ(t.status, 400);
  EXPECT_EQ(t.error, "Invalid attestion type header: Attestation-Type must be TDX (or absent for a passport or a "
                     "nonce request)");
  // SGX parses as Intel's decoder does; the server answers Intel's 401 type mismatch.
  auto s = ParseTransferRequest({"application/json", "application/json", "SGX"}, Evidence());
  EXPECT_EQ(s.status, 0) << s.error;
  EXPECT_EQ(s.request.attestation_type, "SGX");
}

TEST(TransferParseTest, BodyRefusals) {
  auto check = [](const TransferHeaders& h, const std::string& body, const std::string& want) {
    auto r = ParseTransferRequest(h, body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(r.error, want) << body;
  };
  check(kJson, "{", "Failed to JSON-decode request body: not valid JSON");
  check(kJson, R"({"attestation_token":"x"} {})", "Failed to JSON-decode request body: not valid JSON");
  check(kJson, "[]", "Failed to JSON-decode request body: expected a JSON object");
  check(kJson, R"({"attestation_token":"x","token":"y"})",
        "Failed to JSON-decode request body: unknown field \"token\" (allowed: attestation_token, quote, nonce, "
        "user_data, event_log)");
  check(kTdx, Evidence(R"(,"runtime_data":"AA==")"),
        "Failed to JSON-decode request body: unknown field \"runtime_data\" (allowed: attestation_token, quote, "
        "nonce, user_data, event_log)");
  check(kJson, R"({"attestation_token":5})",
        "Failed to JSON-decode request body: attestation_token: expected a string (the JWT)");
  check(kTdx, R"({"quote":1})", "Failed to JSON-decode request body: quote: expected a base64 string");
  EXPECT_EQ(ParseTransferRequest(kTdx, R"({"quote":"A"})").error.rfind("Failed to JSON-decode request body: quote: ", 0), 0u);
  check(kTdx, R"({"quote":"AQID","nonce":{"val":"AA==","iat":"AA==","signature":"AA==","x":1},"user_data":"AA=="})",
        "Failed to JSON-decode request body: nonce: unknown field \"x\"");
  check(kTdx, R"({"quote":"AQID","nonce":"abc","user_data":"AA=="})",
        "Failed to JSON-decode request body: nonce: expected an object {val, iat, signature}");
  check(kTdx, R"({"quote":"+_8=","nonce":)" + kNonce + R"(,"user_data":"AA=="})",
        "Failed to JSON-decode request body: quote: mixes the standard (+ /) and URL-safe (- _) base64 alphabets; "
        "use one");
  std::string big = "{\"quote\":\"" + Base64Encode(Bytes(64 * 1024 + 1, 0)) + "\"}";
  check(kTdx, big, "Failed to JSON-decode request body: quote: 65537 bytes, more than 65536 (a TDX quote is a few KiB)");
  // Intel's ErrInvalidRequest cases, with the fix.
  check(kJson, "{}",
        "Invalid request body: without Attestation-Type the body must carry attestation_token (passport); to send "
        "evidence add the header Attestation-Type: TDX");
  check(kJson, Evidence(),
        "Invalid request body: without Attestation-Type the body must carry attestation_token (passport); to send "
        "evidence add the header Attestation-Type: TDX");
  check(kJson, R"({"attestation_token":"a.b.c","quote":"AQID"})",
        "Invalid request body: a passport request sends only attestation_token; quote, nonce, user_data and "
        "event_log go with Attestation-Type: TDX");
  check(kTdx, Evidence(R"(,"attestation_token":"a.b.c")"),
        "Invalid request body: attestation_token goes without the Attestation-Type header (passport); with "
        "Attestation-Type: TDX send quote, nonce and user_data");
  check(kTdx, "",
        "Invalid request body: Attestation-Type: TDX needs a body {\"quote\", \"nonce\", \"user_data\"} (get the "
        "nonce first with an empty POST without Attestation-Type)");
  check(kTdx, R"({"quote":"AQID"})",
        "Invalid request body: evidence needs quote, nonce and user_data; missing: nonce, user_data");
  check(kTdx, R"({"nonce":)" + kNonce + "}",
        "Invalid request body: evidence needs quote, nonce and user_data; missing: quote, user_data");
  check(kTdx, R"({"quote":"AQID","nonce":)" + kNonce + "}",
        "Invalid request body: evidence needs quote, nonce and user_data; missing: user_data");
}

}  // namespace
}  // namespace tdxvirt::kbs
