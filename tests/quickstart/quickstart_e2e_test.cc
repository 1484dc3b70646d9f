// The quickstart end to end: the tdxvirt binary runs every component on loopback; this test checks
// what a newcomer is promised (a verified token, a refused debug/misconfigured/tampered TD, the
// (N+1)th TD without a key) and then re-checks the artefacts independently of the run.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/file.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "service/jose.h"
#include "test_util.h"

namespace tdxvirt {
namespace {

using testing::RunTdxvirt;
using testing::TempDir;
using testing::TestdataPath;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Whether xmllint is on PATH, as the quickstart looks for it.
bool XmllintInstalled() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty() && access((dir + "/xmllint").c_str(), X_OK) == 0) return true;
  return false;
}

std::string SchemaDir() { return TestdataPath("libvirt-schemas"); }

class QuickstartE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    result_ = new testing::CommandResult(RunTdxvirt(
        "quickstart --json --keys 3 --dir " + dir_->File("run") + " --schema-dir " + SchemaDir()));
    report_ = new nlohmann::json(nlohmann::json::parse(result_->out, nullptr, false));
  }
  static void TearDownTestSuite() {
    delete report_;
    delete result_;
    delete dir_;
  }
  static std::string Run(const std::string& f) { return dir_->File("run/" + f); }

  static TempDir* dir_;
  static testing::CommandResult* result_;
  static nlohmann::json* report_;
};
TempDir* QuickstartE2E::dir_ = nullptr;
testing::CommandResult* QuickstartE2E::result_ = nullptr;
nlohmann::json* QuickstartE2E::report_ = nullptr;

TEST_F(QuickstartE2E, EveryStepPasses) {
  ASSERT_EQ(result_->exit_code, 0) << result_->err << result_->out;
  ASSERT_FALSE(report_->is_discarded()) << result_->out;
  EXPECT_EQ((*report_)["ok"], true);
  std::vector<std::string> names;
  for (const auto& s : (*report_)["steps"]) {
    names.push_back(s["name"]);
    EXPECT_EQ(s["ok"], true) << s.dump();
  }
  EXPECT_EQ(names, (std::vector<std::string>{"platform", "admission", "placement", "domain", "attest", "refuse",
                                             "measured-boot", "key-broker"}));
  // One progress line per step on stderr.
  for (int i = 1; i <= 8; ++i)
    EXPECT_NE(result_->err.find("[" + std::to_string(i) + "/8]"), std::string::npos) << result_->err;
}

// The default release, KubeVirt 1.8: upstream selects TDX nodes; tdxvirt adds the key and hook.
TEST_F(QuickstartE2E, AdmissionPatchRequestsAKeyAndLeavesNodeSelectionToKubevirt) {
  ASSERT_EQ(result_->exit_code, 0);
  std::string patch = (*report_)["admission"]["patch"].dump();
  EXPECT_NE(patch.find("tdxvirt.io/tdx-key"), std::string::npos) << patch;
  EXPECT_EQ(patch.find("/spec/template/spec/nodeSelector"), std::string::npos) << patch;
  EXPECT_NE(patch.find("hooks.kubevirt.io~1hookSidecars"), std::string::npos) << patch;
  const auto& d = (*report_)["division"];
  EXPECT_EQ(d["kubevirt_version"], "1.8");
  EXPECT_NE(d["kubevirt"].dump().find("kubevirt.io/tdx=true"), std::string::npos) << d.dump();
  EXPECT_NE(d["tdxvirt"].dump().find("TDX key resource: tdxvirt.io/tdx-key"), std::string::npos)
      << d.dump();
}

TEST_F(QuickstartE2E, TheNPlusFirstTdFindsNoKey) {
  ASSERT_EQ(result_->exit_code, 0);
  const auto& p = (*report_)["placement"];
  EXPECT_EQ(p["devices"], 3);
  EXPECT_NE(p["td_n_plus_1"].get<std::string>().find("TD #4 stays Pending"), std::string::npos);
  EXPECT_NE(p["td_n_plus_1"].get<std::string>().find("insufficient tdxvirt.io/tdx-key"), std::string::npos);
  // The allocation mounts the QGS socket directory into the launcher pod.
  EXPECT_NE(p["mounts"].dump().find("/var/run/tdx-qgs"), std::string::npos) << p.dump();
}

TEST_F(QuickstartE2E, DomainIsATdValidAgainstLibvirtSchema) {
  ASSERT_EQ(result_->exit_code, 0);
  std::string xml = Slurp(Run("domain.xml"));
  EXPECT_NE(xml.find("<launchSecurity type=\"tdx\">"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<quoteGenerationService path=\"/var/run/tdx-qgs/qgs.socket\""), std::string::npos);
  const auto& schema = (*report_)["domain"]["schema"];
  if (!XmllintInstalled()) {
    // Said, not silently passed: CI installs libxml2-utils, so there the check below is required.
    EXPECT_EQ(schema["checked"], false) << schema.dump();
    GTEST_SKIP() << "xmllint is not installed (Debian package libxml2-utils): the domain was not "
                    "validated against libvirt's schema";
  }
  EXPECT_EQ(schema["checked"], true) << schema.dump();
  EXPECT_EQ(schema["valid"], true) << schema.dump();
}

TEST_F(QuickstartE2E, TokenCarriesTheOwnersValuesAndVerifiesIndependently) {
  ASSERT_EQ(result_->exit_code, 0);
  const auto& a = (*report_)["attest"];
  EXPECT_EQ(a["tcb_status"], "UpToDate");
  EXPECT_EQ(a["is_debuggable"], false);
  // MRCONFIGID of examples/vm-tdx.yaml; MRTD of the firmware the run measured.
  auto mrtd = RunTdxvirt("sim mrtd " + Run("node/host/usr/share/OVMF/OVMF.inteltdx.fd"));
  ASSERT_EQ(mrtd.exit_code, 0) << mrtd.err;
  EXPECT_EQ(nlohmann::json::parse(mrtd.out)["mr_td"], a["mrtd"]);

  // The run's relying party checked the chain and fetched both CRLs from the distribution points,
  // which the service answered.
  ASSERT_EQ(a["crls_checked"].size(), 2u) << a.dump();
  std::string service_log = Slurp(Run("logs/attestation-service.log"));
  for (const auto& u : a["crls_checked"]) {
    std::string url = u.get<std::string>();
    std::string path = url.substr(url.find("/crl/"));
    EXPECT_TRUE(path == "/crl/ats-ca-crl.der" || path == "/crl/root-ca-crl.der") << url;
    EXPECT_NE(service_log.find("\"path\":\"" + path + "\",\"status\":200"), std::string::npos) << path;
  }
  EXPECT_NE(a["crls_checked"][0], a["crls_checked"][1]);

  // The relying party's check, redone here from the files the run left.
  std::string token = Slurp(Run("token.jwt"));
  while (!token.empty() && token.back() == '\n') token.pop_back();
  service::VerifyTokenOptions vo;
  vo.issuer = a["issuer"];
  vo.now = std::time(nullptr);
  vo.expected_claims["tdx_mrtd"] = a["mrtd"];
  vo.expected_claims["tdx_mrconfigid"] = a["mrconfigid"];
  auto v = service::VerifyToken(token, Slurp(Run("jwks.json")), vo);
  ASSERT_TRUE(v.ok()) << v.error();
  // One changed claim byte breaks the signature.
  std::string tampered = token;
  tampered[tampered.find('.') + 5] ^= 0x01;
  EXPECT_FALSE(service::VerifyToken(tampered, Slurp(Run("jwks.json")), vo).ok());

  // The quote verifies under the simulator's root, and not under Intel's.
  auto ok = RunTdxvirt("quote verify --compact --quote " + Run("quote.bin") + " --collateral " +
                       Run("sim/collateral.json") + " --root " + Run("sim/root_ca.pem"));
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  auto intel = RunTdxvirt("quote verify --compact --quote " + Run("quote.bin") + " --collateral " +
                          Run("sim/collateral.json"));
  EXPECT_EQ(intel.exit_code, 1) << intel.out;
}

TEST_F(QuickstartE2E, DebugWrongMrConfigIdAndTamperedQuoteAreRefusedWithTheirReason) {
  ASSERT_EQ(result_->exit_code, 0);
  std::map<std::string, std::string> reasons;
  for (const auto& r : (*report_)["refused"]) reasons[r["case"]] = r["reason"];
  ASSERT_EQ(reasons.size(), 4u) << (*report_)["refused"].dump();
  EXPECT_NE(reasons["debug TD requested in the VM"].find("debug"), std::string::npos);
  EXPECT_NE(reasons["debug TD booted anyway"].find("HTTP 403"), std::string::npos);
  EXPECT_NE(reasons["debug TD booted anyway"].find("td_attributes"), std::string::npos);
  EXPECT_NE(reasons["wrong MRCONFIGID"].find("mrconfigid"), std::string::npos);
  EXPECT_NE(reasons["tampered quote"].find("quote_signature"), std::string::npos);
}

// Measured boot: the TD sent the CCEL its firmware left; the token's tdx_measured_boot shows the
// kernel and the command line the policy pinned, every register its log covers matching the quote;
// the same TD booted with another command line is refused, the reason naming the stub's event.
TEST_F(QuickstartE2E, MeasuredBootPinsKernelAndCommandLineAndRefusesAnother) {
  ASSERT_EQ(result_->exit_code, 0);
  const auto& m = (*report_)["measured_boot"];
  ASSERT_TRUE(m.is_object()) << report_->dump();
  EXPECT_EQ(m["cmdline"], "console=hvc0 root=/dev/vda1 ro");
  // The relying party's own check of the token the step got, claims included.
  auto token = Slurp(Run("token-measured-boot.jwt"));
  token.pop_back();
  auto jwks = Slurp(Run("jwks.json"));
  service::VerifyTokenOptions vo;
  vo.issuer = (*report_)["attest"]["issuer"];
  vo.now = std::time(nullptr);
  auto verified = service::VerifyToken(token, jwks, vo);
  ASSERT_TRUE(verified.ok()) << verified.error();
  const auto& claim = verified->claims["tdx"]["tdx_measured_boot"];
  EXPECT_EQ(claim, m["claim"]);
  EXPECT_EQ(claim["rtmrs"], nlohmann::json({{"rtmr0", "match"}, {"rtmr1", "match"}, {"rtmr2", "match"}, {"rtmr3", "match"}}));
  EXPECT_EQ(claim["secure_boot"], false);
  EXPECT_EQ(claim["kernel"]["digest"], m["pinned"]["kernel_digest"]);
  EXPECT_EQ(claim["kernel"]["source"], "efi-app");
  // The command line's digest is SHA-384 of the load options OVMF passes (UTF-16LE, NUL), computed
  // here from the text alone; the stub logs only that digest (opaque).
  std::string text = m["cmdline"];
  Bytes utf16;
  for (char ch : text + '\0') utf16.insert(utf16.end(), {uint8_t(ch), 0});
  EXPECT_EQ(claim["cmdline"]["digest"], ToHex(ossl::Sha384(utf16)));
  EXPECT_EQ(claim["cmdline"]["digest"], m["cmdline_digest"]);
  EXPECT_EQ(m["pinned"]["cmdline"], text);  // the policy names the command line as text
  EXPECT_EQ(claim["cmdline"]["source"], "efi-stub");
  EXPECT_EQ(claim["cmdline"]["binding"], "opaque");
  // The log the TD sent is the one sim boot would write for it: the CCEL data, cut at its fill.
  auto data = ReadFile(Run("td-measured-acpi/data/CCEL"));
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->size(), 0x10000u);
  auto table = ReadFile(Run("td-measured-acpi/CCEL"));
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->size(), 56u);

  const auto& refused = m["refused"];
  EXPECT_EQ(refused["case"], "another command line: \"console=hvc0 root=/dev/vda1 ro init=/bin/sh\"");
  std::string reason = refused["reason"];
  EXPECT_EQ(reason.rfind("attest: HTTP 403: policy_must_match: 5b2c1a0e-7d3f-4e8a-9c61-0f4b2d8e6a14: "
                         "cmdline: event 17 (EV_EVENT_TAG LOADED_IMAGE::LoadOptions, RTMR2, offset 1733) measured ",
                         0),
            0u)
      << reason;
  EXPECT_NE(reason.find(", the digest of none of the allowed command lines"), std::string::npos) << reason;
}

// The key broker: the disk key in the store went to the TD (wrapped to a key made in the TD; the
// report has only its SHA-256), and a TD with another MRCONFIGID was refused 403 naming it.
TEST_F(QuickstartE2E, TheKeyBrokerReleasesTheDiskKeyOnlyToThePinnedConfiguration) {
  ASSERT_EQ(result_->exit_code, 0);
  const auto& k = (*report_)["key_broker"];
  ASSERT_TRUE(k.is_object()) << report_->dump();
  std::string key_id = k["key_id"];
  // The stored key file: its key_data's SHA-256 is what the TD unwrapped.
  auto stored = nlohmann::json::parse(Slurp(Run("kbs/store/key-" + key_id + ".json")), nullptr, false);
  ASSERT_TRUE(stored.is_object());
  struct stat st {};
  ASSERT_EQ(stat(Run("kbs/store/key-" + key_id + ".json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto key_data = Base64Decode(stored["key_information"]["key_data"].get<std::string>(), "key_data");
  ASSERT_TRUE(key_data.ok());
  EXPECT_EQ(key_data->size(), 32u);
  EXPECT_EQ(k["released"]["sha256"], ToHex(ossl::Sha256(*key_data)));
  EXPECT_EQ(k["released"]["status"], 200);
  EXPECT_EQ(k["released"]["bytes"], 32);
  EXPECT_EQ(k["mode"], "background-check");
  // The policy pins the run's MRTD and the VM's MRCONFIGID.
  EXPECT_EQ(k["pinned"]["mrtd"], (*report_)["attest"]["mrtd"]);
  EXPECT_EQ(k["pinned"]["mrconfigid"], (*report_)["attest"]["mrconfigid"]);
  // The saved answer holds the key only wrapped.
  std::string response = Slurp(Run("kbs/transfer-response.json"));
  EXPECT_NE(response.find("\"wrapped_swk\""), std::string::npos);
  EXPECT_EQ(response.find(stored["key_information"]["key_data"].get<std::string>()), std::string::npos);
  // Another MRCONFIGID: 403, the policy's reason naming it.
  EXPECT_EQ(k["refused"]["status"], 403);
  std::string other = ToHex(ossl::Sha384(AsBytes("someone else's configuration")));
  EXPECT_EQ(k["refused"]["reason"],
            "key broker " + k["url"].get<std::string>() + "/kbs/v1/keys/" + key_id +
                "/transfer: HTTP 403: Token claims validation against key-transfer-policy failed: mrconfigid: "
                "the TD has " + other + ", the policy allows [" + k["pinned"]["mrconfigid"].get<std::string>() + "]");
  // Nothing of the key in the logs.
  namespace fs = std::filesystem;
  std::string key_hex = ToHex(*key_data);
  for (const auto& e : fs::directory_iterator(Run("logs"))) {
    std::string log = Slurp(e.path().string());
    EXPECT_EQ(log.find(key_hex), std::string::npos) << e.path();
    EXPECT_EQ(log.find(stored["key_information"]["key_data"].get<std::string>()), std::string::npos) << e.path();
  }
}

TEST_F(QuickstartE2E, SecretsAre0600AndEveryServerStopped) {
  ASSERT_EQ(result_->exit_code, 0);
  for (const char* f : {"service/token-pki/token-signing.key", "service/token-pki/signing-ca.key",
                        "service/token-pki/root-ca.key", "service/tls-key.pem", "service/api-key", "td-key.pem"}) {
    struct stat st {};
    ASSERT_EQ(stat(Run(f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  // Sockets are removed when their servers stop.
  namespace fs = std::filesystem;
  EXPECT_FALSE(fs::exists(Run("node/host/var/run/tdx-qgs/qgs.socket")));
  for (const auto& e : fs::directory_iterator(Run("node/device-plugins")))
    ADD_FAILURE() << "left behind: " << e.path();
  // Nothing secret in the logs.
  std::string api_key = Slurp(Run("service/api-key"));
  api_key.pop_back();
  for (const auto& e : fs::directory_iterator(Run("logs")))
    EXPECT_EQ(Slurp(e.path().string()).find(api_key), std::string::npos) << e.path();
}

TEST(QuickstartErrors, AVmWithoutTdxFailsStepOneAndSaysWhy) {
  TempDir dir;
  auto r = RunTdxvirt("quickstart --dir " + dir.File("run") + " --manifest " +
                      TestdataPath("kubevirt/examples/vm-cirros.yaml"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("quickstart: step 1 (platform) failed:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("does not ask for TDX"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.File("run/node/host/var/run/tdx-qgs/qgs.socket")));
}

// Ctrl-C: the run ends after the current step, stops every server it started, and says so.
TEST(QuickstartErrors, InterruptStopsEveryServer) {
  TempDir dir;
  int err_pipe[2];
  ASSERT_EQ(pipe(err_pipe), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(err_pipe[1], 2);
    close(err_pipe[0]);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    std::string run = dir.File("run");
    execl(TDXVIRT_BIN, TDXVIRT_BIN, "quickstart", "--dir", run.c_str(), "--schema-dir", "", nullptr);
    _exit(127);
  }
  close(err_pipe[1]);
  // Interrupt as soon as step 2 starts (step 1 has started the QGS and the service by then).
  std::string err;
  char buf[256];
  bool sent = false;
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof buf)) > 0;) {
    err.append(buf, size_t(n));
    if (!sent && err.find("[2/8]") != std::string::npos) {
      kill(pid, SIGINT);
      sent = true;
    }
  }
  close(err_pipe[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(sent) << err;
  ASSERT_TRUE(WIFEXITED(status)) << "killed by the signal instead of stopping cleanly";
  EXPECT_EQ(WEXITSTATUS(status), 1) << err;
  EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
  EXPECT_EQ(err.find("[4/8]"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(dir.File("run/node/host/var/run/tdx-qgs/qgs.socket")));
}

TEST(QuickstartErrors, BadOptionsAreUsageErrors) {
  EXPECT_EQ(RunTdxvirt("quickstart --keys 0").exit_code, 2);
  EXPECT_EQ(RunTdxvirt("quickstart --manifest /nonexistent.yaml --dir /tmp/tdxvirt-qs-missing").exit_code, 1);
}

}  // namespace
}  // namespace tdxvirt
