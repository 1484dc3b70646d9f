// `serve kbs` over real sockets, against the in-process attestation service (token PKI with CRLs
// served at its own URL, the simulator's collateral) and a simulated TD. Requests are raw HTTP,
// shaped as Intel's client sends them (Accept/Content-Type application/json, Attestation-Type: TDX,
// the body fields of Intel's KeyTransferRequest), so what passes here is what Intel's client gets.
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/crypto.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/base64.h"
#include "common/hex.h"
#include "kbs/policy.h"
#include "kbs/server.h"
#include "kbs/store.h"
#include "kbs/transfer.h"
#include "kbs/wrap.h"
#include "service/appraisal.h"
#include "service/client.h"
#include "service/jose.h"
#include "tokenpki/pki_test_util.h"

namespace tdxvirt::kbs {
namespace {

using service::testing::F;
using service::testing::SimProvider;
using tdxvirt::testing::TempDir;
using tdxvirt::testing::WriteFile;

constexpr char kKeyId[] = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
constexpr char kPolicyId[] = "8b7a3c2e-1d4f-4a6b-9c8d-7e6f5a4b3c2d";
constexpr char kStrictKeyId[] = "6e1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
constexpr char kStrictPolicyId[] = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
// An MRTD the simulated TD does not have (its own is all zeros).
const std::string kOtherMrtd(96, 'a');
constexpr char kAdminPassword[] = "correct horse battery staple";

// The TD's RSA-3072 key (Intel's KBS wants more than 2048 bits), made once.
struct TdKey {
  ossl::PkeyPtr priv;
  Bytes held;  // K layout: what the TD sends as user_data / runtime_data
};
TdKey& Td() {
  static TdKey k = [] {
    TdKey t;
    auto pair = service::CreateRsaKeyPair(3072);
    EXPECT_TRUE(pair.ok()) << pair.error();
    auto priv = service::ParseRsaPrivateKey(AsBytes(pair->private_pem));
    EXPECT_TRUE(priv.ok()) << priv.error();
    t.priv = std::move(*priv);
    auto held = HeldDataForKey(t.priv.get());
    EXPECT_TRUE(held.ok()) << held.error();
    t.held = std::move(*held);
    return t;
  }();
  return k;
}

nlohmann::json JwtPayload(const std::string& token) {
  size_t d1 = token.find('.'), d2 = token.find('.', d1 + 1);
  auto p = Base64UrlDecode(std::string_view(token).substr(d1 + 1, d2 - d1 - 1), "payload");
  EXPECT_TRUE(p.ok());
  return p.ok() ? nlohmann::json::parse(AsString(*p)) : nlohmann::json();
}

struct Answer {
  int status = 0;
  std::string body;
  httplib::Headers headers;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
  std::string error() const {
    auto j = json();
    return j.is_object() && j.contains("error") ? j["error"].get<std::string>() : "<" + body + ">";
  }
};

Answer Send(int port, const std::string& method, const std::string& path, const httplib::Headers& headers,
            const std::string& body = "") {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  httplib::Request req;
  req.method = method;
  req.path = path;
  req.headers = headers;
  req.body = body;
  httplib::Response res;
  httplib::Error err;
  if (!cli.send(req, res, err)) {
    ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(err);
    return {};
  }
  return {res.status, res.body, res.headers};
}

// Intel's client: Accept and (with a body) Content-Type application/json.
httplib::Headers IntelHeaders(bool body, const std::string& attestation_type = "") {
  httplib::Headers h{{"Accept", "application/json"}};
  if (body) h.emplace("Content-Type", "application/json");
  if (!attestation_type.empty()) h.emplace("Attestation-Type", attestation_type);
  return h;
}

std::string TransferPath(const std::string& id) { return std::string("/kbs/v1/keys/") + id + "/transfer"; }

// One attestation service per process (token PKI generation is slow); each test gets its broker.
tokenpki::testing::PkiService& Ta() {
  static auto* s = new tokenpki::testing::PkiService();
  return *s;
}

// The simulated TD's MRTD, from a token the service issued for it.
std::string SimMrtd() {
  static std::string mrtd = [] {
    auto provider = SimProvider();
    auto token = service::CollectToken(Ta().Client(), *provider, {});
    EXPECT_TRUE(token.ok()) << token.error();
    auto claims = JwtPayload(*token);
    return claims["tdx"]["tdx_mrtd"].get<std::string>();
  }();
  return mrtd;
}

struct Broker {
  TempDir dir;
  std::shared_ptr<std::atomic<int64_t>> now = std::make_shared<std::atomic<int64_t>>(int64_t(std::time(nullptr)));
  std::shared_ptr<std::mutex> mu = std::make_shared<std::mutex>();
  std::shared_ptr<std::vector<std::string>> lines = std::make_shared<std::vector<std::string>>();
  std::unique_ptr<KbsServer> server;
  Bytes aes_key;
  int port = 0;

  explicit Broker(bool read_only = false) {
    // The broker's clock starts where the attestation service's (frozen) clock is, so its tokens
    // are neither early nor late here.
    (void)SimMrtd();
    now->store(Ta().now->load());
    aes_key = Bytes(32);
    for (size_t i = 0; i < aes_key.size(); ++i) aes_key[i] = uint8_t(0xA0 + i);
    std::string store_dir = dir.File("store");
    std::filesystem::create_directories(store_dir);
    {
      auto store = OpenDirectoryKeyStore(store_dir);
      EXPECT_TRUE(store.ok()) << store.error();
      auto put_policy = [&](const char* id, const std::string& mrtd) {
        auto p = ParseKeyTransferPolicy(
            R"({"attestation_type":"TDX","tdx":{"attributes":{"mrtd":[")" + mrtd + R"("]}}})");
        ASSERT_TRUE(p.ok()) << p.error();
        p->id = id;
        p->created_at = "2026-01-01T00:00:00Z";
        ASSERT_TRUE((*store)->PutPolicy(*p).ok());
      };
      put_policy(kPolicyId, SimMrtd());
      put_policy(kStrictPolicyId, kOtherMrtd);
      for (auto [kid, pid] : {std::pair{kKeyId, kPolicyId}, std::pair{kStrictKeyId, kStrictPolicyId}}) {
        KeyRecord k;
        k.id = kid;
        k.algorithm = "AES";
        k.key_length = 256;
        k.transfer_policy_id = pid;
        k.created_at = "2026-01-01T00:00:00Z";
        k.key_data = aes_key;
        auto st = (*store)->PutKey(k);
        EXPECT_TRUE(st.ok()) << st.message;
      }
    }
    WriteFile(dir.File("admin.json"),
              std::string(R"({"username":"admin","password":")") + kAdminPassword + "\"}");
    KbsOptions o;
    o.plain_http = true;
    o.store_dir = store_dir;
    o.store_read_only = read_only;
    o.admin_credentials_path = dir.File("admin.json");
    o.trust_authority = Ta().Config();
    auto clock = now;
    o.clock = [clock] { return clock->load(); };
    auto m = mu;
    auto l = lines;
    o.log = [m, l](const std::string& line) {
      std::lock_guard g(*m);
      l->push_back(line);
    };
    auto s = KbsServer::Create(std::move(o));
    if (!s.ok()) {
      ADD_FAILURE() << s.error();
      return;
    }
    server = std::move(*s);
    auto p = server->Start();
    EXPECT_TRUE(p.ok()) << p.error();
    port = p.ok() ? *p : 0;
  }
  ~Broker() {
    if (server) server->Stop();
  }
  std::vector<std::string> Logs() {
    std::lock_guard g(*mu);
    return *lines;
  }
  // The audit lines (event key_transfer), parsed.
  std::vector<nlohmann::json> Audits() {
    std::vector<nlohmann::json> out;
    for (const auto& l : Logs()) {
      auto j = nlohmann::json::parse(l, nullptr, false);
      if (j.is_object() && j.value("event", "") == "key_transfer") out.push_back(j);
    }
    return out;
  }
  Answer Transfer(const std::string& id, const nlohmann::json& body, const std::string& attestation_type = "") {
    return Send(port, "POST", TransferPath(id), IntelHeaders(true, attestation_type), body.dump());
  }
  std::string AdminToken() {
    auto a = Send(port, "POST", "/kbs/v1/token",
                  {{"Accept", "application/jwt"}, {"Content-Type", "application/json"}},
                  nlohmann::json({{"username", "admin"}, {"password", kAdminPassword}}).dump());
    EXPECT_EQ(a.status, 200) << a.body;
    return a.body;
  }
};

// The TD's side of background-check: nonce from the broker, quote over SHA-512(val||iat||user_data).
struct Evidence {
  nlohmann::json body;
  std::string nonce_val;  // base64, to assert it is never logged
};
Evidence BackgroundEvidence(Broker& b, const std::string& id = kKeyId) {
  Answer n = Send(b.port, "POST", TransferPath(id), IntelHeaders(false));
  EXPECT_EQ(n.status, 200) << n.body;
  EXPECT_EQ(n.headers.find("Attestation-Type") != n.headers.end() ? n.headers.find("Attestation-Type")->second : "",
            "TDX");
  auto nonce = service::NonceFromJson(n.json(), "nonce");
  EXPECT_TRUE(nonce.ok()) << nonce.error();
  auto provider = SimProvider();
  auto quote = provider->GetQuote(service::BindReportData(&*nonce, Td().held));
  EXPECT_TRUE(quote.ok()) << quote.error();
  return {{{"quote", Base64Encode(*quote)}, {"nonce", n.json()}, {"user_data", Base64Encode(Td().held)}},
          n.json()["val"].get<std::string>()};
}

std::string PassportToken() {
  auto provider = SimProvider();
  service::TokenRequestOptions o;
  o.runtime_data = Td().held;
  auto token = service::CollectToken(Ta().Client(), *provider, o);
  EXPECT_TRUE(token.ok()) << token.error();
  return token.ok() ? *token : "";
}

Bytes Unwrap(const Answer& a) {
  auto j = a.json();
  auto k = Base64Decode(j.value("wrapped_key", ""), "wrapped_key");
  auto s = Base64Decode(j.value("wrapped_swk", ""), "wrapped_swk");
  EXPECT_TRUE(k.ok() && s.ok()) << a.body;
  if (!k.ok() || !s.ok()) return {};
  auto secret = UnwrapSecret({*k, *s}, Td().priv.get());
  EXPECT_TRUE(secret.ok()) << secret.error();
  return secret.ok() ? *secret : Bytes{};
}

bool AnyLogContains(Broker& b, const std::string& part) {
  for (const auto& l : b.Logs())
    if (l.find(part) != std::string::npos) return true;
  return false;
}

TEST(KbsServer, BackgroundCheckReleasesTheKeyWrappedToTheTd) {
  Broker b;
  Evidence e = BackgroundEvidence(b);
  Answer a = b.Transfer(kKeyId, e.body, "TDX");
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(Unwrap(a), b.aes_key);
  auto audits = b.Audits();
  ASSERT_EQ(audits.size(), 2u);
  EXPECT_EQ(audits[0]["decision"], "nonce");
  EXPECT_EQ(audits[1]["decision"], "released");
  EXPECT_EQ(audits[1]["mode"], "background");
  EXPECT_EQ(audits[1]["status"], 200);
  EXPECT_EQ(audits[1]["key_id"], kKeyId);
  EXPECT_EQ(audits[1]["policy_id"], kPolicyId);
  EXPECT_EQ(audits[1]["mrtd"], SimMrtd());
  EXPECT_FALSE(audits[1]["jti"].get<std::string>().empty());
  // Nothing secret in any line: the key, the SWK, the nonce.
  Bytes swk = *service::DecryptRsaOaepSha256(Td().priv.get(), *Base64Decode(a.json()["wrapped_swk"].get<std::string>(), "swk"));
  for (const std::string& secret : {Base64Encode(b.aes_key), ToHex(b.aes_key), Base64Encode(swk), ToHex(swk), e.nonce_val})
    EXPECT_FALSE(AnyLogContains(b, secret)) << secret;
}

TEST(KbsServer, BackgroundCheckEvidenceSentTwiceIsRefusedByTheService) {
  Broker b;
  Evidence e = BackgroundEvidence(b);
  ASSERT_EQ(b.Transfer(kKeyId, e.body, "TDX").status, 200);
  Answer again = b.Transfer(kKeyId, e.body, "TDX");
  EXPECT_EQ(again.status, 401);
  EXPECT_EQ(again.error(),
            "Error retrieving token from Trust Authority service: verifier_nonce: already used (a nonce is good "
            "for one attest request); get a fresh nonce");
}

TEST(KbsServer, PassportReleasesTheKeyOnceAndNotTwice) {
  Broker b;
  std::string token = PassportToken();
  Answer a = b.Transfer(kKeyId, {{"attestation_token", token}});
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(Unwrap(a), b.aes_key);
  std::string jti = JwtPayload(token)["jti"].get<std::string>();
  Answer again = b.Transfer(kKeyId, {{"attestation_token", token}});
  EXPECT_EQ(again.status, 401);
  EXPECT_EQ(again.error(),
            "Failed to authenticate attestation-token: token already used (jti " + jti + "); get a fresh token");
  auto audits = b.Audits();
  ASSERT_EQ(audits.size(), 2u);
  EXPECT_EQ(audits[0]["mode"], "passport");
  EXPECT_EQ(audits[0]["decision"], "released");
  EXPECT_EQ(audits[0]["jti"], jti);
  EXPECT_EQ(audits[1]["decision"], "refused");
  EXPECT_EQ(audits[1]["status"], 401);
  // The token (or its signature) never appears in a log line.
  EXPECT_FALSE(AnyLogContains(b, token.substr(token.rfind('.') + 1, 40)));
  EXPECT_FALSE(AnyLogContains(b, token.substr(0, token.find('.') + 20)));
  // Metrics count both decisions.
  Answer m = Send(b.port, "GET", "/metrics", {});
  EXPECT_NE(m.body.find("tdxvirt_kbs_transfers_total{mode=\"passport\",decision=\"released\"} 1\n"), std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("tdxvirt_kbs_transfers_total{mode=\"passport\",decision=\"refused\"} 1\n"), std::string::npos);
  EXPECT_NE(m.body.find("tdxvirt_kbs_http_connections_total"), std::string::npos);
}

TEST(KbsServer, TamperedForeignAndExpiredTokensAreRefused) {
  Broker b;
  std::string token = PassportToken();
  const std::string kid = Ta().server->signing_key().kid();
  {  // One claim changed, the signature kept.
    auto claims = JwtPayload(token);
    claims["tdx"]["tdx_mrtd"] = std::string(96, 'f');
    size_t d1 = token.find('.'), d2 = token.find('.', d1 + 1);
    std::string forged = token.substr(0, d1 + 1) + Base64UrlEncode(AsBytes(claims.dump())) + token.substr(d2);
    Answer a = b.Transfer(kKeyId, {{"attestation_token", forged}});
    EXPECT_EQ(a.status, 401);
    EXPECT_EQ(a.error(), "Failed to authenticate attestation-token: token signature: does not verify with JWKS key " + kid);
  }
  {  // The same claims signed by another key.
    auto other = service::SigningKey::Load(F().other_key, F().other_chain);
    ASSERT_TRUE(other.ok()) << other.error();
    auto foreign = other->Sign(JwtPayload(token), service::JwsAlg::kPS384);
    ASSERT_TRUE(foreign.ok());
    Answer a = b.Transfer(kKeyId, {{"attestation_token", *foreign}});
    EXPECT_EQ(a.status, 401);
    EXPECT_EQ(a.error(), "Failed to authenticate attestation-token: token header: kid " + other->kid() +
                             " is not in the JWKS");
  }
  {  // The broker's clock past exp.
    int64_t exp = JwtPayload(token)["exp"].get<int64_t>();
    b.now->store(exp + 1);
    Answer a = b.Transfer(kKeyId, {{"attestation_token", token}});
    EXPECT_EQ(a.status, 401);
    EXPECT_EQ(a.error(), "Failed to authenticate attestation-token: token: expired at exp=" + std::to_string(exp) +
                             " (now " + std::to_string(exp + 1) + "); get a new token");
  }
}

TEST(KbsServer, PolicyMismatchIsA403ListingTheReason) {
  Broker b;
  Answer a = b.Transfer(kStrictKeyId, {{"attestation_token", PassportToken()}});
  EXPECT_EQ(a.status, 403);
  EXPECT_EQ(a.error(), "Token claims validation against key-transfer-policy failed: mrtd: the TD has " + SimMrtd() +
                           ", the policy allows [" + kOtherMrtd + "]");
  auto audits = b.Audits();
  ASSERT_EQ(audits.size(), 1u);
  EXPECT_EQ(audits[0]["decision"], "refused");
  EXPECT_EQ(audits[0]["status"], 403);
  EXPECT_EQ(audits[0]["policy_id"], kStrictPolicyId);
  ASSERT_EQ(audits[0]["reasons"].size(), 1u);
  EXPECT_EQ(audits[0]["reasons"][0],
            "mrtd: the TD has " + SimMrtd() + ", the policy allows [" + kOtherMrtd + "]");
}

TEST(KbsServer, RequestRefusalsUseIntelsStatuses) {
  Broker b;
  auto token_body = nlohmann::json({{"attestation_token", "x.y.z"}}).dump();
  // A key that does not exist, and an id that is no version-4 UUID.
  Answer missing = b.Transfer("9c3d1f7e-2a4b-4c5d-8e6f-7a8b9c0d1e2f", {{"attestation_token", "x.y.z"}});
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.error(), "Key with specified id does not exist");
  Answer not_uuid = b.Transfer("not-a-uuid", {{"attestation_token", "x.y.z"}});
  EXPECT_EQ(not_uuid.status, 404);
  EXPECT_EQ(not_uuid.error(), "Key with specified id does not exist");
  // Accept and Content-Type.
  Answer accept = Send(b.port, "POST", TransferPath(kKeyId),
                       {{"Accept", "text/plain"}, {"Content-Type", "application/json"}}, token_body);
  EXPECT_EQ(accept.status, 415);
  EXPECT_EQ(accept.error(), "Invalid Accept header: send Accept: application/json");
  Answer ctype = Send(b.port, "POST", TransferPath(kKeyId),
                      {{"Accept", "application/json"}, {"Content-Type", "text/plain"}}, token_body);
  EXPECT_EQ(ctype.status, 415);
  EXPECT_EQ(ctype.error(), "Invalid Content-type header: send Content-Type: application/json");
  // An unknown field.
  Answer unknown = b.Transfer(kKeyId, {{"attestation_token", "x.y.z"}, {"extra", 1}});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.error(), "Failed to JSON-decode request body: unknown field \"extra\" (allowed: "
                             "attestation_token, quote, nonce, user_data, event_log)");
  // Evidence for a TDX policy labelled SGX.
  Evidence e = BackgroundEvidence(b);
  Answer sgx = b.Transfer(kKeyId, e.body, "SGX");
  EXPECT_EQ(sgx.status, 401);
  EXPECT_EQ(sgx.error(),
            "attestation-type in request header does not match with attestation-type in key-transfer policy");
  // Every refusal has its audit line.
  for (const auto& audit : b.Audits()) {
    if (audit["decision"] != "nonce") {
      EXPECT_EQ(audit["decision"], "refused") << audit;
    }
  }
}

TEST(KbsServer, AdminApi) {
  Broker b;
  auto json = [](const std::string& token = "") {
    httplib::Headers h{{"Accept", "application/json"}, {"Content-Type", "application/json"}};
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    return h;
  };
  // No bearer, a wrong one, a wrong password.
  EXPECT_EQ(Send(b.port, "GET", "/kbs/v1/keys", json()).status, 401);
  EXPECT_EQ(Send(b.port, "GET", "/kbs/v1/keys", json("not-a-token")).status, 401);
  Answer bad = Send(b.port, "POST", "/kbs/v1/token", {{"Accept", "application/jwt"}, {"Content-Type", "application/json"}},
                    R"({"username":"admin","password":"wrong password here"})");
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(bad.error(), "Invalid username or password");
  std::string t = b.AdminToken();

  // Policy and key: create, list, get.
  Answer pol = Send(b.port, "POST", "/kbs/v1/key-transfer-policies", json(t),
                    R"({"attestation_type":"TDX","tdx":{"attributes":{"mrtd":[")" + SimMrtd() + R"("]}}})");
  ASSERT_EQ(pol.status, 201) << pol.body;
  std::string pid = pol.json()["id"].get<std::string>();
  EXPECT_TRUE(IsUuidV4(pid));
  Answer key = Send(b.port, "POST", "/kbs/v1/keys", json(t),
                    nlohmann::json({{"key_information", {{"algorithm", "AES"}, {"key_length", 256}}},
                                    {"transfer_policy_id", pid}})
                        .dump());
  ASSERT_EQ(key.status, 201) << key.body;
  std::string kid = key.json()["id"].get<std::string>();
  EXPECT_EQ(key.json()["transfer_link"], b.server->base_url() + "/kbs/v1/keys/" + kid + "/transfer");
  EXPECT_EQ(key.json()["key_info"]["algorithm"], "AES");
  EXPECT_EQ(key.body.find("key_data"), std::string::npos) << key.body;
  Answer keys = Send(b.port, "GET", "/kbs/v1/keys", json(t));
  ASSERT_EQ(keys.status, 200);
  EXPECT_EQ(keys.json().size(), 3u);
  Answer got = Send(b.port, "GET", "/kbs/v1/keys/" + kid, json(t));
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.json()["transfer_policy_id"], pid);
  EXPECT_EQ(got.body.find("key_data"), std::string::npos) << got.body;
  EXPECT_EQ(Send(b.port, "GET", "/kbs/v1/key-transfer-policies/" + pid, json(t)).status, 200);
  EXPECT_EQ(Send(b.port, "GET", "/kbs/v1/key-transfer-policies", json(t)).json().size(), 3u);

  // The new key is transferable.
  Answer a = b.Transfer(kid, {{"attestation_token", PassportToken()}});
  EXPECT_EQ(a.status, 200) << a.body;

  // A policy in use cannot go; once its key is deleted, it can.
  Answer in_use = Send(b.port, "DELETE", "/kbs/v1/key-transfer-policies/" + pid, json(t));
  EXPECT_EQ(in_use.status, 409);
  EXPECT_EQ(in_use.error(), "Key transfer policy is associated with keys");
  EXPECT_EQ(Send(b.port, "DELETE", "/kbs/v1/keys/" + kid, json(t)).status, 204);
  Answer gone = Send(b.port, "GET", "/kbs/v1/keys/" + kid, json(t));
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.error(), "Key with specified id does not exist");
  EXPECT_EQ(Send(b.port, "DELETE", "/kbs/v1/key-transfer-policies/" + pid, json(t)).status, 204);
  // A key for a policy that does not exist.
  Answer orphan = Send(b.port, "POST", "/kbs/v1/keys", json(t),
                       nlohmann::json({{"key_information", {{"algorithm", "AES"}, {"key_length", 256}}},
                                       {"transfer_policy_id", pid}})
                           .dump());
  EXPECT_EQ(orphan.status, 400);
  EXPECT_EQ(orphan.error(), "Key transfer policy with specified id does not exist");
  // The admin token expires.
  b.now->store(b.now->load() + 301);
  EXPECT_EQ(Send(b.port, "GET", "/kbs/v1/keys", json(t)).status, 401);
}

TEST(KbsServer, ReadOnlyStoreAnswers409OnWrites) {
  Broker b(/*read_only=*/true);
  std::string t = b.AdminToken();
  httplib::Headers h{{"Accept", "application/json"}, {"Content-Type", "application/json"}, {"Authorization", "Bearer " + t}};
  Answer key = Send(b.port, "POST", "/kbs/v1/keys", h,
                    nlohmann::json({{"key_information", {{"algorithm", "AES"}, {"key_length", 256}}},
                                    {"transfer_policy_id", kPolicyId}})
                        .dump());
  EXPECT_EQ(key.status, 409);
  EXPECT_NE(key.error().find("read-only"), std::string::npos) << key.error();
  EXPECT_EQ(Send(b.port, "DELETE", std::string("/kbs/v1/keys/") + kKeyId, h).status, 409);
  EXPECT_EQ(Send(b.port, "DELETE", std::string("/kbs/v1/key-transfer-policies/") + kPolicyId, h).status, 409);
  // Reads and transfers still work.
  EXPECT_EQ(Send(b.port, "GET", std::string("/kbs/v1/keys/") + kKeyId, h).status, 200);
  EXPECT_EQ(b.Transfer(kKeyId, {{"attestation_token", PassportToken()}}).status, 200);
}

TEST(KbsServer, Probes) {
  Broker b;
  EXPECT_EQ(Send(b.port, "GET", "/healthz", {}).status, 200);
  Answer r = Send(b.port, "GET", "/readyz", {});
  EXPECT_EQ(r.status, 200) << r.body;
  std::string why;
  EXPECT_TRUE(b.server->ready(&why)) << why;
  b.server->Stop();
  EXPECT_FALSE(b.server->ready(&why));
  EXPECT_EQ(why, "stopping");
}

TEST(KbsServer, NotReadyWhileTheJwksCannotBeFetched) {
  TempDir dir;
  std::filesystem::create_directories(dir.File("store"));
  KbsOptions o;
  o.plain_http = true;
  o.store_dir = dir.File("store");
  o.trust_authority.trustauthority_url = "http://127.0.0.1:1";  // nothing listens on port 1
  o.trust_authority.allow_http = true;
  o.trust_authority.retry.max_retries = 0;
  o.log = [](const std::string&) {};
  auto s = KbsServer::Create(std::move(o));
  ASSERT_TRUE(s.ok()) << s.error();
  auto port = (*s)->Start();
  ASSERT_TRUE(port.ok());
  Answer r = Send(*port, "GET", "/readyz", {});
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("JWKS"), std::string::npos) << r.body;
  // The admin API is off without credentials.
  EXPECT_EQ(Send(*port, "GET", "/kbs/v1/keys", {{"Accept", "application/json"}}).status, 404);
}

TEST(KbsServeCli, StopsCleanlyOnSigterm) {
  TempDir dir;
  std::filesystem::create_directories(dir.File("store"));
  pid_t pid = tdxvirt::testing::SpawnTdxvirt(
      {"serve", "kbs", "--plain-http", "--listen", "127.0.0.1:0", "--store", dir.File("store"),
       "--trustauthority-url", Ta().public_url, "--allow-http", "--port-file", dir.File("port")},
      dir.File("log"));
  ASSERT_GT(pid, 0);
  int port = 0;
  for (int i = 0; i < 6000 && port == 0; ++i) {  // watchdog: 60 s on a loaded machine
    std::string text = tdxvirt::testing::ReadFileText(dir.File("port"));
    if (!text.empty() && text.back() == '\n') port = std::stoi(text);
    else std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(port, 0) << tdxvirt::testing::ReadFileText(dir.File("log"));
  EXPECT_EQ(Send(port, "GET", "/readyz", {}).status, 200);
  EXPECT_EQ(tdxvirt::testing::TerminateAndWait(pid), 0);
  EXPECT_NE(tdxvirt::testing::ReadFileText(dir.File("log")).find("\"event\":\"stopped\""), std::string::npos);
}

}  // namespace
}  // namespace tdxvirt::kbs
