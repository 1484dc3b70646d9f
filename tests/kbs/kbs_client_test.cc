// The TD's side of a key transfer (kbs/client.h, `attest secret`) against a real socket: a small
// broker on http::Server that speaks Intel's KBS transfer protocol (transport/http/key_transfer.go:
// Accept, Content-Type, Attestation-Type, the body's fields) and checks what the client sends
// (REPORTDATA = SHA-512(val || iat || user_data) in the quote, user_data = the TD key in K layout),
// then wraps a secret as Intel's KBS does. Also its refusals, limits and TLS, and the CLI: the
// output file, the exit codes, and Intel's `tdx-cli decrypt` form on a saved answer.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <sstream>

#include "common/base64.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "evidence/quote.h"
#include "http/server.h"
#include "kbs/client.h"
#include "kbs/wrap.h"
#include "service/client.h"
#include "simulator/platform.h"
#include "test_util.h"

namespace tdxvirt::kbs {
namespace {

using testing::RunTdxvirt;
using testing::TempDir;
using testing::WriteFile;

constexpr char kKeyId[] = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
const std::string kPath = std::string("/kbs/v1/keys/") + kKeyId + "/transfer";

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }

struct Seen {
  std::string path, accept, content_type, attestation_type, body;
};

// Intel's KBS transfer route, reduced to what the client must get right. The verifier nonce is
// fixed; a quote is accepted when its REPORTDATA binds that nonce and the request's user_data
// (a real quote from the simulator, parsed, or the 64 bytes themselves from FakeQuote).
class FakeBroker {
 public:
  explicit FakeBroker(std::string tls_cert = "", std::string tls_key = "") {
    http::ServerOptions so;
    so.tls_cert_path = std::move(tls_cert);
    so.tls_key_path = std::move(tls_key);
    so.limits.workers = 1;
    http::Route r{"POST", "/kbs/v1/keys/", [this](const http::Request& q, http::Response& s) { Handle(q, s); },
                  1 << 20};
    r.prefix = true;
    auto server = http::Server::Create(std::move(so), {r});
    EXPECT_TRUE(server.ok()) << server.error();
    server_ = std::move(*server);
    auto port = server_->Start();
    EXPECT_TRUE(port.ok()) << port.error();
    port_ = port.ok() ? *port : 0;
  }
  ~FakeBroker() { server_->Stop(); }
  std::string url(const char* scheme = "http") const {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(port_);
  }

  std::mutex mu;
  std::vector<Seen> seen;
  Bytes secret = B("the disk key of a TD, 32 bytes!!");
  std::string good_token = "header.payload.signature";
  ossl::PkeyPtr passport_key;  // the key a passport token binds
  // Scripted answers for the nth request (0-based): status and body.
  std::map<size_t, std::pair<int, std::string>> script;
  service::VerifierNonce nonce{Bytes(32, 0x5a), B("2026-11-28T08:00:00Z"),
                               Bytes(48, 0x11)};

 private:
  static void Fail(http::Response& s, int status, const std::string& error) {
    s.Set(status, nlohmann::json{{"error", error}}.dump(), "application/json");
  }
  void Wrap(http::Response& s, EVP_PKEY* key) {
    auto w = WrapSecret(secret, key);
    if (!w.ok()) return Fail(s, 500, w.error());
    s.Set(200,
          nlohmann::json{{"wrapped_key", Base64Encode(w->wrapped_key)}, {"wrapped_swk", Base64Encode(w->wrapped_swk)}}
              .dump(),
          "application/json");
  }
  void Handle(const http::Request& q, http::Response& s) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back({q.path, q.header("Accept"), q.header("Content-Type"), q.header("Attestation-Type"), q.body});
    if (auto it = script.find(seen.size() - 1); it != script.end())
      return s.Set(it->second.first, it->second.second, "application/json");
    if (q.path != kPath) return Fail(s, 404, "Key with specified id does not exist");
    if (q.header("Accept") != "application/json") return Fail(s, 415, "Invalid Accept type");
    if (q.body.empty()) {  // step 1: the nonce
      s.headers.emplace_back("Attestation-Type", "TDX");
      return s.Set(200, service::NonceToJson(nonce).dump(), "application/json");
    }
    if (q.header("Content-Type") != "application/json") return Fail(s, 415, "Invalid Content-Type");
    auto j = nlohmann::json::parse(q.body, nullptr, false);
    if (!j.is_object()) return Fail(s, 400, "Failed to decode request body");
    if (q.header("Attestation-Type").empty()) {  // passport
      if (j.value("attestation_token", "") != good_token)
        return Fail(s, 401, "Failed to authenticate attestation-token: signature");
      return Wrap(s, passport_key.get());
    }
    auto quote = Base64Decode(j.value("quote", ""), "quote");
    auto user_data = Base64Decode(j.value("user_data", ""), "user_data");
    auto nonce_in = service::NonceFromJson(j.value("nonce", nlohmann::json()), "nonce");
    if (!quote.ok() || !user_data.ok() || !nonce_in.ok()) return Fail(s, 400, "bad evidence");
    if (nonce_in->val != nonce.val || nonce_in->iat != nonce.iat || nonce_in->signature != nonce.signature)
      return Fail(s, 401, "Error retrieving token from Trust Authority service: nonce");
    // REPORTDATA, computed here from its definition (not with the client's helper).
    Bytes msg = nonce.val;
    msg.insert(msg.end(), nonce.iat.begin(), nonce.iat.end());
    msg.insert(msg.end(), user_data->begin(), user_data->end());
    auto want = ossl::Sha512(msg);
    Bytes report_data(quote->begin(), quote->end());
    if (quote->size() != 64) {
      auto parsed = evidence::ParseQuote(*quote);
      if (!parsed.ok()) return Fail(s, 401, "Error retrieving token from Trust Authority service: " + parsed.error());
      report_data.assign(parsed->body.report_data.begin(), parsed->body.report_data.end());
    }
    if (report_data != Bytes(want.begin(), want.end()))
      return Fail(s, 401, "Error retrieving token from Trust Authority service: REPORTDATA");
    auto key = ParseHeldPublicKey(*user_data);
    if (!key.ok()) return Fail(s, 400, key.error());
    Wrap(s, key->key.get());
  }

  std::unique_ptr<http::Server> server_;
  int port_ = 0;
};

// A quote that is its REPORTDATA: what the broker needs to check the binding.
class FakeQuote : public guest::QuoteProvider {
 public:
  std::string_view name() const override { return "fake"; }
  Result<Bytes> GetQuote(const evidence::ReportData& rd) override { return Bytes(rd.begin(), rd.end()); }
};

ossl::PkeyPtr NewRsaKey(unsigned bits = 3072) { return ossl::PkeyPtr(EVP_RSA_gen(bits)); }

std::string PrivatePem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, size_t(n));
}

KbsClientOptions Plain(const FakeBroker& b) {
  KbsClientOptions o;
  o.url = b.url();
  o.allow_http = true;
  o.timeout = std::chrono::seconds(20);
  return o;
}

TEST(KbsClient, BackgroundCheckSendsIntelsTwoRequestsAndOpensTheKey) {
  FakeBroker broker;
  auto key = NewRsaKey();
  FakeQuote quotes;
  int status = -1;
  auto r = TransferWithEvidence(Plain(broker), kKeyId, quotes, key.get(), {}, &status);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(status, 200);
  auto secret = UnwrapSecret(r->wrapped, key.get());
  ASSERT_TRUE(secret.ok()) << secret.error();
  EXPECT_EQ(*secret, broker.secret);
  EXPECT_EQ(r->response.size(), 2u);

  ASSERT_EQ(broker.seen.size(), 2u);
  // 1: a bodiless POST asking for JSON, no Content-Type, no Attestation-Type.
  EXPECT_EQ(broker.seen[0].path, kPath);
  EXPECT_EQ(broker.seen[0].accept, "application/json");
  EXPECT_EQ(broker.seen[0].content_type, "");
  EXPECT_EQ(broker.seen[0].attestation_type, "");
  EXPECT_EQ(broker.seen[0].body, "");
  // 2: the evidence, exactly Intel's fields, user_data = the TD key in K layout.
  EXPECT_EQ(broker.seen[1].accept, "application/json");
  EXPECT_EQ(broker.seen[1].content_type, "application/json");
  EXPECT_EQ(broker.seen[1].attestation_type, "TDX");
  auto body = nlohmann::json::parse(broker.seen[1].body);
  std::vector<std::string> fields;
  for (auto it = body.begin(); it != body.end(); ++it) fields.push_back(it.key());
  EXPECT_EQ(fields, (std::vector<std::string>{"nonce", "quote", "user_data"}));
  EXPECT_EQ(body["user_data"], Base64Encode(*HeldDataForKey(key.get())));
  EXPECT_EQ(body["nonce"], service::NonceToJson(broker.nonce));
}

TEST(KbsClient, TheEventLogIsSentWhenGiven) {
  FakeBroker broker;
  auto key = NewRsaKey();
  FakeQuote quotes;
  Bytes log = {1, 2, 3, 4};
  auto r = TransferWithEvidence(Plain(broker), kKeyId, quotes, key.get(), log);
  ASSERT_TRUE(r.ok()) << r.error();
  auto body = nlohmann::json::parse(broker.seen.at(1).body);
  EXPECT_EQ(body["event_log"], "AQIDBA==");
}

TEST(KbsClient, PassportSendsTheTokenAlone) {
  FakeBroker broker;
  broker.passport_key = NewRsaKey();
  int status = -1;
  auto r = TransferWithToken(Plain(broker), kKeyId, broker.good_token, &status);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(*UnwrapSecret(r->wrapped, broker.passport_key.get()), broker.secret);
  ASSERT_EQ(broker.seen.size(), 1u);
  EXPECT_EQ(broker.seen[0].accept, "application/json");
  EXPECT_EQ(broker.seen[0].content_type, "application/json");
  EXPECT_EQ(broker.seen[0].attestation_type, "");
  EXPECT_EQ(nlohmann::json::parse(broker.seen[0].body), (nlohmann::json{{"attestation_token", broker.good_token}}));
}

TEST(KbsClient, ARefusalCarriesTheBrokersStatusAndError) {
  FakeBroker broker;
  broker.script[1] = {403, R"({"error":"Token claims validation against key-transfer-policy failed: mrconfigid: the TD has 00, the policy allows [11]"})"};
  auto key = NewRsaKey();
  FakeQuote quotes;
  int status = 0;
  auto r = TransferWithEvidence(Plain(broker), kKeyId, quotes, key.get(), {}, &status);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(status, 403);
  EXPECT_EQ(r.error(), "key broker " + broker.url() + kPath +
                           ": HTTP 403: Token claims validation against key-transfer-policy failed: mrconfigid: "
                           "the TD has 00, the policy allows [11]");

  broker.script[2] = {404, R"({"error":"Key with specified id does not exist"})"};
  r = TransferWithEvidence(Plain(broker), kKeyId, quotes, key.get(), {}, &status);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(status, 404);
  EXPECT_EQ(r.error(), "key broker " + broker.url() + kPath + ": HTTP 404: Key with specified id does not exist");
  EXPECT_EQ(broker.seen.size(), 3u);  // no quote was sent after the refused nonce request

  r = TransferWithToken(Plain(broker), kKeyId, "not.the.token", &status);
  EXPECT_EQ(status, 401);
  EXPECT_EQ(r.error(), "key broker " + broker.url() + kPath +
                           ": HTTP 401: Failed to authenticate attestation-token: signature");
}

TEST(KbsClient, AnswersAreBoundedAndChecked) {
  FakeBroker broker;
  auto key = NewRsaKey();
  FakeQuote quotes;
  int status = -1;
  broker.script[0] = {200, "{\"val\":\"" + std::string(70 << 10, 'A') + "\"}"};
  auto r = TransferWithEvidence(Plain(broker), kKeyId, quotes, key.get(), {}, &status);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(status, 0);
  EXPECT_EQ(r.error(), "key broker " + broker.url() + kPath + ": response larger than 65536 bytes");

  broker.script[1] = {200, R"({"val":"AAAA"})"};
  r = TransferWithEvidence(Plain(broker), kKeyId, quotes, key.get());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "key broker " + broker.url() + kPath +
                           ": nonce: val, iat and signature are all required (as returned by GET "
                           "/appraisal/v2/nonce)");

  broker.script[3] = {200, R"({"wrapped_key":"AAAA"})"};
  r = TransferWithEvidence(Plain(broker), kKeyId, quotes, key.get());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "key broker " + broker.url() + kPath +
                           ": transfer response: no \"wrapped_swk\" (base64) in the answer (a key released "
                           "without attestation is not wrapped to this TD's key)");
}

TEST(KbsClient, BadOptionsAreRefusedBeforeAnyRequest) {
  FakeBroker broker;
  FakeQuote quotes;
  auto key = NewRsaKey();
  auto o = Plain(broker);
  auto r = TransferWithEvidence(o, "../../token", quotes, key.get());
  EXPECT_EQ(r.error(), "--key-id: \"../../token\" is not a UUID (the broker's key ids are version-4 UUIDs, e.g. "
                       "3fa85f64-5717-4562-b3fc-2c963f66afa6)");
  o.allow_http = false;
  r = TransferWithEvidence(o, kKeyId, quotes, key.get());
  EXPECT_EQ(r.error(), "--kbs: \"" + broker.url() +
                           "\" must be an https:// URL (plain http only with --allow-http, for loopback tests)");
  auto small = NewRsaKey(2048);
  r = TransferWithEvidence(Plain(broker), kKeyId, quotes, small.get());
  EXPECT_EQ(r.error(), "TD key: the broker wraps keys only to RSA keys over 2048 bits; this one is RSA-2048 "
                       "(use RSA-3072, the default without --key)");
  EXPECT_TRUE(broker.seen.empty());
}

TEST(KbsClient, HttpsTrustsTheGivenCaOnly) {
  TempDir d;
  auto id = testing::MakeLoopbackTlsIdentity("127.0.0.1");
  WriteFile(d.File("cert.pem"), id.cert_pem);
  WriteFile(d.File("key.pem"), PrivatePem(id.key.get()));
  FakeBroker broker(d.File("cert.pem"), d.File("key.pem"));
  broker.passport_key = NewRsaKey();
  KbsClientOptions o;
  o.url = broker.url("https") + "/";  // a trailing slash is the same base
  o.timeout = std::chrono::seconds(20);
  int status = -1;
  auto r = TransferWithToken(o, kKeyId, broker.good_token, &status);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(status, 0);  // not a refusal: no answer
  EXPECT_EQ(r.error(), "key broker " + broker.url("https") + kPath +
                           ": SSLServerVerification (the broker's TLS certificate is not trusted: give its CA "
                           "with --ca-file)");
  o.ca_file = d.File("cert.pem");
  r = TransferWithToken(o, kKeyId, broker.good_token, &status);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(*UnwrapSecret(r->wrapped, broker.passport_key.get()), broker.secret);
}

// ---- the CLI ----

std::string Mode(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return "missing";
  std::ostringstream s;
  s << std::oct << (st.st_mode & 0777);
  return s.str();
}

TEST(KbsClientCli, BackgroundCheckWithTheSimulatorWritesTheSecret0600) {
  TempDir d;
  auto platform = simulator::SimPlatform::Create({});
  ASSERT_TRUE(platform.ok());
  ASSERT_TRUE(platform->Save(d.File("sim")).ok());
  FakeBroker broker;
  std::string common = " --kbs " + broker.url() + " --allow-http --key-id " + kKeyId +
                       " --provider sim --sim-dir " + d.File("sim");
  auto r = RunTdxvirt("attest secret" + common + " --out " + d.File("disk.key"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "tdxvirt: key " + std::string(kKeyId) + " released (background), 32 bytes written to " +
                       d.File("disk.key") + "\n");
  EXPECT_EQ(testing::ReadFileText(d.File("disk.key")), AsString(broker.secret));
  EXPECT_EQ(Mode(d.File("disk.key")), "600");
  // The quote was the simulator's, binding nonce and key (the broker parsed it).
  EXPECT_GT(Base64Decode(nlohmann::json::parse(broker.seen.at(1).body)["quote"].get<std::string>(), "q")->size(),
            64u);

  // An existing file (or a link planted there) is never written through.
  r = RunTdxvirt("attest secret" + common + " --out " + d.File("disk.key"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--out: "), std::string::npos) << r.err;
  ASSERT_EQ(symlink(d.File("target").c_str(), d.File("link").c_str()), 0);
  r = RunTdxvirt("attest secret" + common + " --out " + d.File("link"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Mode(d.File("target")), "missing");

  // Without --out: the raw secret on stdout, nothing else.
  r = RunTdxvirt("attest secret" + common);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, AsString(broker.secret));
}

TEST(KbsClientCli, ExitCodesNameTheBrokersStatusAndError) {
  TempDir d;
  FakeBroker broker;
  broker.passport_key = NewRsaKey();
  WriteFile(d.File("key.pem"), PrivatePem(broker.passport_key.get()));
  WriteFile(d.File("bad.jwt"), "not.the.token\n");
  std::string common = " --kbs " + broker.url() + " --allow-http --key-id " + kKeyId;
  auto r = RunTdxvirt("attest secret" + common + " --key " + d.File("key.pem") + " --token " + d.File("bad.jwt") +
                      " --out " + d.File("s"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "tdxvirt: refused: key broker " + broker.url() + kPath +
                       ": HTTP 401: Failed to authenticate attestation-token: signature\n");
  EXPECT_EQ(Mode(d.File("s")), "missing");

  broker.script[1] = {502, R"({"error":"Error retrieving nonce from Trust Authority service"})"};
  r = RunTdxvirt("attest secret" + common + " --key " + d.File("key.pem") + " --token " + d.File("bad.jwt"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: key broker " + broker.url() + kPath +
                       ": HTTP 502: Error retrieving nonce from Trust Authority service\n");

  r = RunTdxvirt("attest secret" + common + " --token " + d.File("bad.jwt"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --token: passport mode needs --key, the private key whose public key the "
                   "token carries as attester_held_data (the broker wraps the secret to it)\n");
  r = RunTdxvirt("attest secret --kbs http://127.0.0.1:1 --allow-http --key-id " + std::string(kKeyId) +
                 " --key " + d.File("key.pem") + " --token " + d.File("bad.jwt"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("tdxvirt: error: key broker http://127.0.0.1:1" + kPath + ": "), std::string::npos) << r.err;
}

// Intel's `tdx-cli decrypt --in <wrapped_swk> -f key.pem` on a saved answer gives the SWK, which
// opens wrapped_key: the unwrap as Intel's CLI and our library do it agree.
TEST(KbsClientCli, IntelsDecryptFormOpensTheSavedAnswer) {
  TempDir d;
  FakeBroker broker;
  broker.passport_key = NewRsaKey();
  auto pkcs1 = service::PrivateKeyPemPkcs1(PrivatePem(broker.passport_key.get()));
  ASSERT_TRUE(pkcs1.ok());
  WriteFile(d.File("key.pem"), *pkcs1);  // tdx-cli create-key-pair's form
  WriteFile(d.File("t.jwt"), broker.good_token);
  auto r = RunTdxvirt("attest secret --kbs " + broker.url() + " --allow-http --key-id " + kKeyId + " --key " +
                      d.File("key.pem") + " --token " + d.File("t.jwt") + " --out " + d.File("s") +
                      " --save-response " + d.File("resp.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "tdxvirt: key " + std::string(kKeyId) + " released (passport), 32 bytes written to " +
                       d.File("s") + "\n");
  EXPECT_EQ(Mode(d.File("resp.json")), "600");
  auto resp = nlohmann::json::parse(testing::ReadFileText(d.File("resp.json")));
  r = RunTdxvirt("attest decrypt --in " + resp["wrapped_swk"].get<std::string>() + " -f " + d.File("key.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Go's byte list: [b0 b1 ...]
  Bytes swk;
  std::istringstream in(r.out.substr(1, r.out.find(']') - 1));
  for (unsigned v; in >> v;) swk.push_back(uint8_t(v));
  ASSERT_EQ(swk.size(), 32u) << r.out;
  auto wrapped_key = Base64Decode(resp["wrapped_key"].get<std::string>(), "wrapped_key");
  ASSERT_TRUE(wrapped_key.ok());
  auto secret = OpenWrappedKey(*wrapped_key, swk);
  ASSERT_TRUE(secret.ok()) << secret.error();
  EXPECT_EQ(*secret, broker.secret);
  EXPECT_EQ(testing::ReadFileText(d.File("s")), AsString(broker.secret));
}

}  // namespace
}  // namespace tdxvirt::kbs
