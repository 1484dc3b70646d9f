// End to end, on real sockets: `tdxvirt attest secret` (the binary) <-> KbsServer <-> the attestation
// service (token PKI with CRLs at its own URL, the simulator's collateral), with a simulated TD.
// Background-check and passport (a token from `attest token -f pub.pem`, spent once), and a
// policy refusal as the CLI reports it.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/base64.h"
#include "kbs/policy.h"
#include "kbs/server.h"
#include "kbs/store.h"
#include "service/client.h"
#include "tokenpki/pki_test_util.h"

namespace tdxvirt::kbs {
namespace {

using service::testing::F;
using service::testing::SimProvider;
using tdxvirt::testing::ReadFileText;
using tdxvirt::testing::RunTdxvirt;
using tdxvirt::testing::TempDir;
using tdxvirt::testing::WriteFile;

constexpr char kKeyId[] = "c0d1e2f3-a4b5-4c6d-8e7f-8091a2b3c4d5";
constexpr char kPolicyId[] = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
constexpr char kStrictKeyId[] = "d1e2f3a4-b5c6-4d7e-9f80-91a2b3c4d5e6";
constexpr char kStrictPolicyId[] = "2b3c4d5e-6f70-4b8c-9d0e-1f2a3b4c5d6e";
const std::string kOtherMrtd(96, 'b');

tokenpki::testing::PkiService& Ta() {
  static auto* s = new tokenpki::testing::PkiService();
  return *s;
}

// The simulated TD's MRTD, as the service reports it.
std::string SimMrtd() {
  auto provider = SimProvider();
  auto token = service::CollectToken(Ta().Client(), *provider, {});
  EXPECT_TRUE(token.ok()) << token.error();
  if (!token.ok()) return "";
  size_t d1 = token->find('.'), d2 = token->find('.', d1 + 1);
  auto payload = Base64UrlDecode(std::string_view(*token).substr(d1 + 1, d2 - d1 - 1), "payload");
  return nlohmann::json::parse(AsString(*payload))["tdx"]["tdx_mrtd"].get<std::string>();
}

struct Broker {
  TempDir dir;
  Bytes disk_key = Bytes(32, 0x42);
  std::unique_ptr<KbsServer> server;

  Broker() {
    std::string store_dir = dir.File("store");
    std::filesystem::create_directories(store_dir);
    auto store = OpenDirectoryKeyStore(store_dir);
    EXPECT_TRUE(store.ok()) << store.error();
    for (auto [pid, kid, mrtd] : {std::tuple{kPolicyId, kKeyId, SimMrtd()},
                                  std::tuple{kStrictPolicyId, kStrictKeyId, kOtherMrtd}}) {
      auto p = ParseKeyTransferPolicy(R"({"attestation_type":"TDX","tdx":{"attributes":{"mrtd":[")" + mrtd +
                                      R"("],"enforce_tcb_upto_date":true}}})");
      EXPECT_TRUE(p.ok()) << p.error();
      p->id = pid;
      p->created_at = "2026-01-01T00:00:00Z";
      EXPECT_TRUE((*store)->PutPolicy(*p).ok());
      KeyRecord k;
      k.id = kid;
      k.algorithm = "AES";
      k.key_length = 256;
      k.transfer_policy_id = pid;
      k.created_at = "2026-01-01T00:00:00Z";
      k.key_data = disk_key;
      auto st = (*store)->PutKey(k);
      EXPECT_TRUE(st.ok()) << st.message;
    }
    KbsOptions o;
    o.plain_http = true;
    o.store_dir = store_dir;
    o.trust_authority = Ta().Config();
    o.log = [](const std::string&) {};
    auto s = KbsServer::Create(std::move(o));
    EXPECT_TRUE(s.ok()) << s.error();
    if (!s.ok()) return;
    server = std::move(*s);
    auto port = server->Start();
    EXPECT_TRUE(port.ok()) << port.error();
  }
  ~Broker() {
    if (server) server->Stop();
  }
  std::string Flags(const std::string& key_id) const {
    return " --kbs " + server->base_url() + " --allow-http --key-id " + key_id;
  }
};

TEST(KbsClientE2E, BackgroundCheckReleasesTheKeyToTheSimulatedTd) {
  Broker b;
  ASSERT_TRUE(b.server);
  TempDir d;
  auto r = RunTdxvirt("attest secret" + b.Flags(kKeyId) + " --provider sim --sim-dir " + F().sim_dir +
                      " --out " + d.File("disk.key"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFileText(d.File("disk.key")), AsString(b.disk_key));

  // A policy pinning another MRTD: refused (exit 1), the broker's status and reason printed.
  r = RunTdxvirt("attest secret" + b.Flags(kStrictKeyId) + " --provider sim --sim-dir " + F().sim_dir +
                 " --out " + d.File("strict.key"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "tdxvirt: refused: key broker " + b.server->base_url() + "/kbs/v1/keys/" + kStrictKeyId +
                       "/transfer: HTTP 403: Token claims validation against key-transfer-policy failed: mrtd: "
                       "the TD has " + SimMrtd() + ", the policy allows [" + kOtherMrtd + "]\n");
  EXPECT_FALSE(std::filesystem::exists(d.File("strict.key")));
}

TEST(KbsClientE2E, PassportWithATokenFromAttestTokenIsSpentOnce) {
  Broker b;
  ASSERT_TRUE(b.server);
  TempDir d;
  auto r = RunTdxvirt("attest create-key-pair --pub-path " + d.File("pub.pem") + " --key-path " + d.File("key.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto cfg = Ta().Config();
  WriteFile(d.File("cfg.json"), nlohmann::json({{"trustauthority_url", cfg.trustauthority_url},
                                                {"trustauthority_api_url", cfg.trustauthority_api_url},
                                                {"trustauthority_api_key", cfg.trustauthority_api_key}})
                                    .dump());
  // As Intel's tdx-cli: the public key's DER as runtime data.
  r = RunTdxvirt("attest token -c " + d.File("cfg.json") + " --allow-http --provider sim --sim-dir " + F().sim_dir +
                 " -f " + d.File("pub.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  WriteFile(d.File("token.jwt"), r.out);
  std::string flags = b.Flags(kKeyId) + " --key " + d.File("key.pem") + " --token " + d.File("token.jwt");
  r = RunTdxvirt("attest secret" + flags + " --out " + d.File("s1"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFileText(d.File("s1")), AsString(b.disk_key));
  // The same token again: refused, the broker remembers its jti.
  r = RunTdxvirt("attest secret" + flags + " --out " + d.File("s2"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(": HTTP 401: Failed to authenticate attestation-token: token already used (jti "),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(d.File("s2")));
}

}  // namespace
}  // namespace tdxvirt::kbs
