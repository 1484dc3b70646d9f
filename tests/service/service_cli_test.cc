// The binary: `serve attestation` in a child process on 127.0.0.1 port 0, and the in-TD steps
// `attest create-key-pair | evidence | token | verify` against it; then SIGTERM.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "service_test_util.h"

namespace tdxvirt::service {
namespace {

using namespace testing;
using namespace std::chrono_literals;
using tdxvirt::testing::RunTdxvirt;

TEST(ServiceCli, InitSigningKeyWritesKey0600AndRefusesToOverwrite) {
  TempDir d;
  std::string args = "serve attestation --init-signing-key --signing-key " + d.File("k.pem") +
                     " --signing-chain " + d.File("c.pem");
  auto r = RunTdxvirt(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kid"].get<std::string>().size(), 96u);  // hex SHA-384 of the leaf, as Intel's
  struct stat st {};
  ASSERT_EQ(stat(d.File("k.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  r = RunTdxvirt(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: " + d.File("k.pem") + " and " + d.File("c.pem") +
                       " exist; refusing to overwrite a signing key (remove both to create a new one)\n");
}

TEST(ServiceCli, BadConfigurationNamesTheOption) {
  TempDir d;
  auto r = RunTdxvirt("serve attestation --plain-http --signing-key " + d.File("none.pem") +
                      " --signing-chain " + d.File("none.pem") + " --collateral x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --signing-key: cannot open " + d.File("none.pem") + ": No such file or directory\n");
  r = RunTdxvirt("serve attestation --signing-key " + F().key + " --signing-chain " + F().chain +
                 " --collateral x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --tls-cert and --tls-key are required (or --plain-http, for loopback tests only)\n");
  r = RunTdxvirt("serve attestation --plain-http --signing-key " + F().key + " --signing-chain " + F().chain +
                 " --collateral x --rate-limit 1000");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --rate-limit \"1000\": expected REQUESTS/SECONDS per API key, e.g. 1000/300 "
                   "(REQUESTS 1..1000000, SECONDS 1..86400)\n");
  WriteFile(d.File("cfg.json"), R"({"trustauthority_api_url":"http://x","surprise":1})");
  r = RunTdxvirt("attest token -c " + d.File("cfg.json") + " --provider sim --sim-dir " + F().sim_dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --config " + d.File("cfg.json") +
                       ": config: unknown key \"surprise\" (known: cloud_provider, trustauthority_url, "
                       "trustauthority_api_url, trustauthority_api_key, tpm, nvgpu)\n");
}

TEST(ServiceCli, TokenAndVerifyAgainstServeAttestationThenSigterm) {
  TempDir d;
  WriteFile(d.File("keys"), "# API keys\ncli-key\n");
  std::string policies = d.File("policies");
  ASSERT_EQ(mkdir(policies.c_str(), 0755), 0);
  WriteFile(policies + "/any.yaml", "id: 5712c7a0-0002-4000-8000-000000000002\nname: any\ntcb_status: [UpToDate]\n");
  pid_t pid = tdxvirt::testing::SpawnTdxvirt({"serve", "attestation", "--plain-http", "--listen", "127.0.0.1:0", "--port-file",
                     d.File("port"), "--signing-key", F().key, "--signing-chain", F().chain,
                     "--collateral", F().sim_dir + "/collateral.json", "--root",
                     F().sim_dir + "/root_ca.pem", "--api-key-file", d.File("keys"), "--policy-dir",
                     policies, "--issuer", "cli-test", "--rate-limit", "1000/300"},
                    d.File("serve.err"));
  ASSERT_GT(pid, 0);
  std::string port;
  for (int i = 0; i < 3000 && port.empty(); ++i) {
    std::ifstream in(d.File("port"));
    std::getline(in, port);
    if (port.empty()) std::this_thread::sleep_for(10ms);
  }
  ASSERT_FALSE(port.empty()) << "serve attestation did not start";
  std::string url = "http://127.0.0.1:" + port;
  WriteFile(d.File("cfg.json"), nlohmann::json({{"trustauthority_url", url},
                                                {"trustauthority_api_url", url},
                                                {"trustauthority_api_key", "cli-key"}}).dump());

  auto r = RunTdxvirt("attest create-key-pair --pub-path " + d.File("pub.pem") + " --key-path " +
                      d.File("priv.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(stat(d.File("priv.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::string common = " -c " + d.File("cfg.json") + " --allow-http --provider sim --sim-dir " + F().sim_dir;
  r = RunTdxvirt("attest evidence" + common + " -f " + d.File("pub.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ev = nlohmann::json::parse(r.out);
  EXPECT_TRUE(ev["tdx"].contains("verifier_nonce"));
  EXPECT_TRUE(ev["tdx"].contains("runtime_data"));

  r = RunTdxvirt("attest token" + common + " -f " + d.File("pub.pem") + " -p 5712c7a0-0002-4000-8000-000000000002 -r cli-req-1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string token = r.out.substr(0, r.out.find('\n'));
  WriteFile(d.File("token"), token);

  // --no-crl: a --signing-chain service's certificates have no CRL distribution points.
  r = RunTdxvirt("attest verify -c " + d.File("cfg.json") + " --allow-http --no-crl -t @" + d.File("token") +
                 " --issuer cli-test --expect tdx_is_debuggable=false --expect attester_tcb_status=UpToDate");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string ok_line = "Token is valid and issued by Intel Trust Authority hosted at  cli-test\n";
  ASSERT_EQ(r.out.substr(0, ok_line.size()), ok_line);
  auto claims = nlohmann::json::parse(r.out.substr(ok_line.size()), nullptr, false);
  ASSERT_TRUE(claims.is_object()) << r.out;
  EXPECT_EQ(claims["policy_ids_matched"][0]["id"], "5712c7a0-0002-4000-8000-000000000002");

  r = RunTdxvirt("attest verify -c " + d.File("cfg.json") + " --allow-http --no-crl -t @" + d.File("token") +
                 " --expect tdx_is_debuggable=true");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "tdxvirt: token invalid: claim tdx_is_debuggable: is false, expected true\n");
  std::string tampered = token;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  WriteFile(d.File("tampered"), tampered);
  r = RunTdxvirt("attest verify -c " + d.File("cfg.json") + " --allow-http --no-crl -t @" + d.File("tampered"));
  EXPECT_EQ(r.exit_code, 1);
  auto key = SigningKey::Load(F().key, F().chain);
  ASSERT_TRUE(key.ok()) << key.error();
  EXPECT_EQ(r.err, "tdxvirt: token invalid: token signature: does not verify with JWKS key " + key->kid() + "\n");

  // --ccel: a TD booted by `sim boot` (its TD config and CCEL files) sends its event log; the
  // token's tdx_measured_boot says the log replays to the quote's RTMRs and names the kernel.
  {
    std::string acpi = d.File("acpi");
    ASSERT_EQ(mkdir(acpi.c_str(), 0755), 0);
    ASSERT_EQ(mkdir((acpi + "/data").c_str(), 0755), 0);
    ASSERT_EQ(RunTdxvirt("sim tdvf --out " + d.File("fw.fd")).exit_code, 0);
    WriteFile(d.File("td.xml"), "<domain><name>td</name><os><loader>" + d.File("fw.fd") +
                                    "</loader><kernel>/boot/vmlinuz</kernel><cmdline>console=hvc0</cmdline></os>"
                                    "<launchSecurity type='tdx'/></domain>");
    r = RunTdxvirt("sim boot --domain " + d.File("td.xml") + " --out " + d.File("td.json") + " --ccel-out " +
                   acpi + "/data/CCEL --ccel-table-out " + acpi + "/CCEL");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = RunTdxvirt("attest token" + common + " --td " + d.File("td.json") + " --ccel --ccel-dir " + acpi);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    WriteFile(d.File("token-ccel"), r.out);
    r = RunTdxvirt("attest verify -c " + d.File("cfg.json") + " --allow-http --no-crl -t @" + d.File("token-ccel"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto c = nlohmann::json::parse(r.out.substr(ok_line.size()), nullptr, false);
    const auto& mb = c["tdx"]["tdx_measured_boot"];
    ASSERT_TRUE(mb.is_object()) << r.out;
    EXPECT_EQ(mb["rtmrs"], nlohmann::json({{"rtmr0", "match"}, {"rtmr1", "match"}, {"rtmr2", "match"}, {"rtmr3", "match"}}));
    EXPECT_EQ(mb["kernel"]["source"], "efi-app");
    EXPECT_EQ(mb["cmdline"]["source"], "efi-stub");
    // The same log with the default TD (other RTMRs): the service says the log does not match.
    r = RunTdxvirt("attest token" + common + " --ccel --ccel-dir " + acpi);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    WriteFile(d.File("token-ccel2"), r.out);
    r = RunTdxvirt("attest verify -c " + d.File("cfg.json") + " --allow-http --no-crl -t @" + d.File("token-ccel2"));
    c = nlohmann::json::parse(r.out.substr(ok_line.size()), nullptr, false);
    EXPECT_EQ(c["tdx"]["tdx_measured_boot"]["rtmrs"]["rtmr2"], "mismatch") << r.out;
  }

  // Rejected evidence is a negative result (1); a wrong API key is not (2).
  r = RunTdxvirt("attest token" + common + " -p 5712c7a0-00ff-4000-8000-0000000000ff");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  // After tdx-cli's "Trace Id: ..." and "Request Id: ..." lines.
  EXPECT_EQ(r.err.rfind("Trace Id: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.substr(r.err.find("tdxvirt: error:")), "tdxvirt: error: attest: HTTP 400: policy_ids: unknown policy id \"5712c7a0-00ff-4000-8000-0000000000ff\"; this "
                   "service has 1 policies (see its policy directory)\n");
  // As tdx-cli: -p elements must be UUIDs (refused before any request, so no ids printed), and an
  // upper-case one is sent in lower case, naming the same policy.
  r = RunTdxvirt("attest token" + common + " -p 5712c7a0-0002-4000-8000-000000000002,prod-web");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --policy-ids: Policy Id:\"prod-web\" is not a valid UUID\n");
  r = RunTdxvirt("attest token" + common + " -p 5712c7a0-0002-4000-8000-000000000002,");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --policy-ids: Policy Id:\"\" is not a valid UUID\n");
  r = RunTdxvirt("attest token" + common + " -p 5712C7A0-0002-4000-8000-000000000002");
  EXPECT_EQ(r.exit_code, 0) << r.err;

  WriteFile(d.File("bad.json"), nlohmann::json({{"trustauthority_api_url", url},
                                                {"trustauthority_api_key", "nope"}}).dump());
  r = RunTdxvirt("attest token -c " + d.File("bad.json") + " --allow-http --provider sim --sim-dir " + F().sim_dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: nonce: HTTP 401: x-api-key: not a valid API key for this service\n");

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = -1;
  for (int i = 0; i < 3000; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(10ms);
  }
  if (!WIFEXITED(status)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "serve attestation did not stop on SIGTERM";
  }
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::ifstream err(d.File("serve.err"));
  std::string line, last_event;
  int requests = 0;
  while (std::getline(err, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    last_event = j["event"];
    if (j["event"] == "request") ++requests;
    EXPECT_FALSE(Contains(line, "cli-key")) << line;
    EXPECT_FALSE(Contains(line, token.substr(0, 30))) << line;
  }
  EXPECT_EQ(last_event, "stopped");
  EXPECT_GE(requests, 6);
}

}  // namespace
}  // namespace tdxvirt::service
