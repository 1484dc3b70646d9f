// The in-TD client against a real HTTP server on 127.0.0.1: retries as Intel's Go connector (500,
// 503, 504; 2 s then 4 s; Retry-After; the same body; one nonce), request-id and trace-id as tdx-cli,
// --user-data over --pub-path, Intel's config keys, and create-key-pair/decrypt in Intel's forms.
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <filesystem>
#include <regex>

#include "common/base64.h"
#include "common/hex.h"
#include "eventlog/abi.h"
#include "eventlog/builder.h"
#include "eventlog/replay.h"
#include "service_test_util.h"

namespace tdxvirt::service {
namespace {

using namespace testing;
using namespace std::chrono_literals;
using tdxvirt::testing::RunTdxvirt;

// A stand-in for the appraisal API: a nonce, then the scripted attest answers (status,
// Retry-After), then 200 {"token": "a.b.c"}. Records what it was sent.
class FakeAppraisal {
 public:
  struct Answer {
    int status;
    std::string retry_after;
  };
  explicit FakeAppraisal(std::vector<Answer> script = {}) : script_(std::move(script)) {
    server_.Get("/appraisal/v2/nonce", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      nonce_request_ids.push_back(req.get_header_value("request-id"));
      res.set_content(R"({"val":"AAAA","iat":"AAAA","signature":"AAAA"})", "application/json");
    });
    server_.Post("/appraisal/v2/attest", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      attest_bodies.push_back(req.body);
      attest_request_ids.push_back(req.get_header_value("request-id"));
      res.set_header("trace-id", "trace-7");
      res.set_header("request-id", req.get_header_value("request-id"));
      size_t n = attest_bodies.size() - 1;
      if (n < script_.size()) {
        res.status = script_[n].status;
        if (!script_[n].retry_after.empty()) res.set_header("Retry-After", script_[n].retry_after);
        res.set_content(R"({"message":"busy"})", "application/json");
        return;
      }
      res.set_content(R"({"token":"a.b.c"})", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the loop runs would be lost: wait (bounded) until it runs.
    for (int i = 0; i < 10000 && port_ > 0 && !server_.is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeAppraisal() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::mutex mu_;
  std::vector<std::string> nonce_request_ids, attest_bodies, attest_request_ids;

 private:
  std::vector<Answer> script_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

class FixedQuote : public guest::QuoteProvider {
 public:
  std::string_view name() const override { return "fixed"; }
  Result<Bytes> GetQuote(const evidence::ReportData&) override { return Bytes{1, 2, 3}; }
};

struct Run {
  std::vector<std::chrono::milliseconds> waits;
  Result<std::string> token = Error{""};
  ResponseIds ids;
};

Run CollectWithWaitsRecorded(FakeAppraisal& api) {
  Run run;
  ClientConfig c;
  c.trustauthority_api_url = api.url();
  c.trustauthority_api_key = "k";
  c.allow_http = true;
  c.retry.sleep = [&run](std::chrono::milliseconds d) { run.waits.push_back(d); };
  auto client = TrustAuthorityClient::Create(c);
  EXPECT_TRUE(client.ok());
  FixedQuote q;
  run.token = CollectToken(*client, q, {.request_id = "req-1"}, &run.ids);
  return run;
}

TEST(ClientRetry, A503IsRetriedAfterTwoSecondsWithTheSameBodyAndOneNonce) {
  FakeAppraisal api({{503, ""}});
  auto run = CollectWithWaitsRecorded(api);
  ASSERT_TRUE(run.token.ok()) << run.token.error();
  EXPECT_EQ(*run.token, "a.b.c");
  EXPECT_EQ(run.waits, (std::vector<std::chrono::milliseconds>{2000ms}));
  EXPECT_EQ(api.nonce_request_ids.size(), 1u);
  ASSERT_EQ(api.attest_bodies.size(), 2u);
  EXPECT_EQ(api.attest_bodies[0], api.attest_bodies[1]);
  EXPECT_EQ(api.attest_request_ids, (std::vector<std::string>{"req-1", "req-1"}));
  EXPECT_EQ(run.ids.trace_id, "trace-7");
  EXPECT_EQ(run.ids.request_id, "req-1");
}

TEST(ClientRetry, RetryAfterOnA503Wins) {
  FakeAppraisal api({{503, "1"}, {503, "x"}});
  auto run = CollectWithWaitsRecorded(api);
  ASSERT_TRUE(run.token.ok()) << run.token.error();
  // A parseable Retry-After sets the wait; an unparseable one leaves the backoff (4 s).
  EXPECT_EQ(run.waits, (std::vector<std::chrono::milliseconds>{1000ms, 4000ms}));
}

TEST(ClientRetry, GivesUpAfterThreeAttemptsOf500And504) {
  FakeAppraisal api({{500, ""}, {504, ""}, {500, ""}});
  auto run = CollectWithWaitsRecorded(api);
  ASSERT_FALSE(run.token.ok());
  EXPECT_EQ(run.token.error(), "attest: HTTP 500: busy (gave up after 3 attempts)");
  EXPECT_EQ(run.waits, (std::vector<std::chrono::milliseconds>{2000ms, 4000ms}));
  EXPECT_EQ(api.attest_bodies.size(), 3u);
  EXPECT_TRUE(run.ids.answered);
}

TEST(ClientRetry, Status400And429AreNotRetried) {
  for (int status : {400, 429}) {
    FakeAppraisal api({{status, "1"}});
    auto run = CollectWithWaitsRecorded(api);
    ASSERT_FALSE(run.token.ok());
    EXPECT_EQ(run.token.error(), "attest: HTTP " + std::to_string(status) + ": busy");
    EXPECT_TRUE(run.waits.empty());
    EXPECT_EQ(api.attest_bodies.size(), 1u);
  }
}

TEST(ClientRetry, RefusedConnectionIsNotRetried) {
  std::string url;
  {
    FakeAppraisal gone;
    url = gone.url();
  }
  ClientConfig c;
  c.trustauthority_url = url;
  c.allow_http = true;
  std::vector<std::chrono::milliseconds> waits;
  c.retry.sleep = [&](std::chrono::milliseconds d) { waits.push_back(d); };
  auto client = TrustAuthorityClient::Create(c);
  auto certs = client->GetCerts();
  ASSERT_FALSE(certs.ok());
  EXPECT_EQ(certs.error(), "certs: " + url + "/certs: Connection");
  EXPECT_TRUE(waits.empty());
}

// ---- the CLI ----

struct CliSetup {
  TempDir dir;
  FakeAppraisal api;
  explicit CliSetup(std::vector<FakeAppraisal::Answer> script = {}) : api(std::move(script)) {
    WriteFile(dir.File("cfg.json"), nlohmann::json({{"trustauthority_api_url", api.url()},
                                                    {"trustauthority_api_key", "k"}}).dump());
  }
  std::string Common() const {
    return " -c " + dir.File("cfg.json") + " --allow-http --provider sim --sim-dir " + F().sim_dir;
  }
};

const std::regex kUuid("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");

TEST(ClientCli, TokenSendsARandomRequestIdAndPrintsTraceAndRequestIdLikeTdxCli) {
  CliSetup s;
  auto r = RunTdxvirt("attest token" + s.Common());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a.b.c");  // no newline, as tdx-cli
  ASSERT_EQ(s.api.attest_request_ids.size(), 1u);
  std::string id = s.api.attest_request_ids[0];
  EXPECT_TRUE(std::regex_match(id, kUuid)) << id;
  EXPECT_EQ(r.err, "Trace Id: trace-7\nRequest Id: " + id + "\n");
  // The nonce request has its own fresh UUID (Go's WithVerifierNonce).
  ASSERT_EQ(s.api.nonce_request_ids.size(), 1u);
  EXPECT_TRUE(std::regex_match(s.api.nonce_request_ids[0], kUuid));
  EXPECT_NE(s.api.nonce_request_ids[0], id);

  r = RunTdxvirt("attest token" + s.Common() + " -r my/req_1.x");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(s.api.attest_request_ids.back(), "my/req_1.x");
  EXPECT_EQ(r.err, "Trace Id: trace-7\nRequest Id: my/req_1.x\n");

  r = RunTdxvirt("attest token" + s.Common() + " -r 'no!'");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --request-id: Request ID should be atmost 128 characters long and should "
                   "contain only alphanumeric characters, _, space, -, ., / or \\\n");
}

TEST(ClientCli, TraceIdIsPrintedAlsoForARefusal) {
  CliSetup s({{400, ""}});
  auto r = RunTdxvirt("attest token" + s.Common() + " -r rid");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "Trace Id: trace-7\nRequest Id: rid\ntdxvirt: error: attest: HTTP 400: busy\n");
  EXPECT_EQ(r.out, "");
}

TEST(ClientCli, UserDataWinsOverPubPath) {
  CliSetup s;
  // The --pub-path file does not even exist: with -u it is not read, as tdx-cli.
  auto r = RunTdxvirt("attest evidence" + s.Common() + " --no-verifier-nonce -u AAEC -f " + s.dir.File("none.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["tdx"]["runtime_data"], "AAEC");
}

TEST(ClientConfigFile, IntelsKeysAsGoDecodesThem) {
  auto c = ParseClientConfig(R"({"TrustAuthority_URL":"https://a","trustauthority_api_key":null,
      "tpm":{"ak_handle":"0x81000003","owner_auth":"","pcr_selections":"sha256:all","ak_certificate":""},
      "nvgpu":{"nras_apikey":"x"}})");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->trustauthority_url, "https://a");
  EXPECT_EQ(ParseClientConfig(R"({"tpm":{"ak_handel":"1"}})").error(),
            "config: tpm: unknown key \"ak_handel\" (known: ak_handle, ek_handle, owner_auth, pcr_selections, "
            "ak_certificate)");
  EXPECT_EQ(ParseClientConfig(R"({"ca_file":"x"})").error(),
            "config: unknown key \"ca_file\" (known: cloud_provider, trustauthority_url, trustauthority_api_url, "
            "trustauthority_api_key, tpm, nvgpu)");
  EXPECT_EQ(ParseClientConfig(R"({"trustauthority_url":3})").error(), "config: trustauthority_url: expected a string");
  EXPECT_EQ(ParseClientConfig(R"({"nvgpu":[]})").error(), "config: nvgpu: expected an object");
}

// ---- create-key-pair and decrypt ----

std::string EncryptOaepSha256(const std::string& pub_pem, const Bytes& plain) {
  BIO* b = BIO_new_mem_buf(pub_pem.data(), int(pub_pem.size()));
  ossl::PkeyPtr key(PEM_read_bio_PUBKEY(b, nullptr, nullptr, nullptr));
  BIO_free(b);
  EXPECT_TRUE(key);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key.get(), nullptr),
                                                                  EVP_PKEY_CTX_free);
  EVP_PKEY_encrypt_init(ctx.get());
  EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING);
  EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256());
  EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256());
  size_t len = 0;
  EVP_PKEY_encrypt(ctx.get(), nullptr, &len, plain.data(), plain.size());
  Bytes out(len);
  EVP_PKEY_encrypt(ctx.get(), out.data(), &len, plain.data(), plain.size());
  out.resize(len);
  return Base64Encode(out);
}

TEST(ClientKeys, CreateKeyPairWritesPkcs1Key0600AndDecryptReadsIntelsFormAndOurs) {
  TempDir d;
  auto r = RunTdxvirt("attest create-key-pair -f " + d.File("pub.pem") + " -k " + d.File("priv.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(stat(d.File("priv.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto priv_bytes = ReadFile(d.File("priv.pem"));
  ASSERT_TRUE(priv_bytes.ok());
  std::string priv(AsString(*priv_bytes));
  EXPECT_EQ(priv.rfind("-----BEGIN RSA PRIVATE KEY-----\n", 0), 0u);  // PKCS#1, what Intel's decrypt parses
  auto pub_bytes = ReadFile(d.File("pub.pem"));
  ASSERT_TRUE(pub_bytes.ok());
  std::string pub(AsString(*pub_bytes));
  std::string blob = EncryptOaepSha256(pub, {104, 105, 0, 255});

  r = RunTdxvirt("attest decrypt --in " + blob + " -f " + d.File("priv.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[104 105 0 255]\n");  // Go's fmt.Println of a []byte

  // Intel's create-key-pair output: a PKCS#1 body under the label "PRIVATE KEY".
  auto key = ParseRsaPrivateKey(AsBytes(priv));
  ASSERT_TRUE(key.ok());
  int n = i2d_PrivateKey(key->get(), nullptr);
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  i2d_PrivateKey(key->get(), &p);
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio(b, "PRIVATE KEY", "", der.data(), long(der.size()));
  char* data = nullptr;
  long len = BIO_get_mem_data(b, &data);
  WriteFile(d.File("intel.pem"), std::string(data, size_t(len)));
  BIO_free(b);
  r = RunTdxvirt("attest decrypt --in " + blob + " --key-path " + d.File("intel.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[104 105 0 255]\n");
  // -k: base64 DER, and it wins over -f.
  r = RunTdxvirt("attest decrypt --in " + blob + " -k " + Base64Encode(der) + " -f " + d.File("none.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[104 105 0 255]\n");

  r = RunTdxvirt("attest decrypt --in " + blob);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: One of the --key-path or --key are required\n");
  std::string other = EncryptOaepSha256(pub, {1});
  other[10] = other[10] == 'A' ? 'B' : 'A';
  r = RunTdxvirt("attest decrypt --in " + other + " -f " + d.File("priv.pem"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "tdxvirt: error: RSA-OAEP (SHA-256) decryption failed: wrong key, or not a ciphertext for it\n");

  // An existing key file is never replaced.
  r = RunTdxvirt("attest create-key-pair -f " + d.File("pub2.pem") + " -k " + d.File("priv.pem"));
  EXPECT_EQ(r.exit_code, 2);
  auto again = ReadFile(d.File("priv.pem"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(std::string(AsString(*again)), priv);
  // Without -k, the key goes to stdout (as Intel's CLI), PKCS#1 too.
  r = RunTdxvirt("attest create-key-pair -f " + d.File("pub3.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("-----BEGIN RSA PRIVATE KEY-----\n", 0), 0u);
}

}  // namespace
}  // namespace tdxvirt::service

// ---- --ccel: the TD's event log, read and checked as Intel's go-tdx does ----

namespace tdxvirt::service {
namespace {

using namespace testing;
using tdxvirt::testing::RunTdxvirt;

// A TD boots on the simulator (sim boot): its CCEL table and log area land where a TD's kernel
// exposes them, DIR/CCEL and DIR/data/CCEL.
struct BootedTd {
  TempDir dir;
  std::string acpi = dir.File("acpi");
  BootedTd(const std::string& cmdline = "console=hvc0 root=/dev/vda1") {
    EXPECT_EQ(mkdir(acpi.c_str(), 0755), 0);
    EXPECT_EQ(mkdir((acpi + "/data").c_str(), 0755), 0);
    EXPECT_EQ(RunTdxvirt("sim tdvf --out " + dir.File("fw.fd")).exit_code, 0);
    WriteFile(dir.File("td.xml"), "<domain><name>td</name><vcpu>2</vcpu><memory unit='MiB'>2048</memory><os>"
                                  "<loader>" + dir.File("fw.fd") + "</loader><kernel>/boot/vmlinuz</kernel>"
                                  "<cmdline>" + cmdline + "</cmdline></os><launchSecurity type='tdx'/></domain>");
    auto r = RunTdxvirt("sim boot --domain " + dir.File("td.xml") + " --out " + dir.File("td.json") +
                        " --ccel-out " + acpi + "/data/CCEL --ccel-table-out " + acpi + "/CCEL");
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  Bytes Data() const { return *ReadFile(acpi + "/data/CCEL"); }
  Bytes Table() const { return *ReadFile(acpi + "/CCEL"); }
};

TEST(ClientCcel, SimBootWritesATableAndALogThatReplaysToTheTdConfig) {
  BootedTd td;
  Bytes data = td.Data();
  EXPECT_EQ(data.size(), 0x10000u);  // LAML, 0xFF after the log, as sysfs shows it
  auto table = eventlog::ParseCcelTable(td.Table());
  ASSERT_TRUE(table.ok()) << table.error();
  auto log = eventlog::ParseEventLog(data, {.laml = table->laml});
  ASSERT_TRUE(log.ok()) << log.error();
  auto config = nlohmann::json::parse(AsString(*ReadFile(td.dir.File("td.json"))));
  auto replayed = eventlog::Replay(*log);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(ToHex(replayed.rtmrs[size_t(i)]), config["rtmr" + std::to_string(i)]) << i;
}

TEST(ClientCcel, EvidenceCarriesTheLogCutWhereTheFillStarts) {
  BootedTd td;
  CliSetup s;
  auto r = RunTdxvirt("attest evidence" + s.Common() + " --td " + td.dir.File("td.json") + " --ccel --ccel-dir " + td.acpi);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ev = nlohmann::json::parse(r.out);
  auto sent = Base64Decode(ev["tdx"]["event_log"].get<std::string>(), "event_log");
  ASSERT_TRUE(sent.ok());
  Bytes data = td.Data();
  auto log = eventlog::ParseEventLog(data);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(*sent, Bytes(data.begin(), data.begin() + ptrdiff_t(log->log_bytes)));
  EXPECT_LT(sent->size(), 4096u);

  // The token request sends it the same way (Intel's composite: tdx.event_log).
  r = RunTdxvirt("attest token" + s.Common() + " --ccel --ccel-dir " + td.acpi);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(s.api.attest_bodies.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(s.api.attest_bodies[0])["tdx"]["event_log"], Base64Encode(*sent));
  // Without --ccel nothing is read or sent.
  r = RunTdxvirt("attest token" + s.Common());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(nlohmann::json::parse(s.api.attest_bodies[1])["tdx"].contains("event_log"));
}

TEST(ClientCcel, MissingFilesAreRefusedBeforeAnythingIsSent) {
  CliSetup s;
  TempDir empty;
  auto r = RunTdxvirt("attest token" + s.Common() + " --ccel --ccel-dir " + empty.File("none"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --ccel: the CCEL ACPI table is not readable (cannot open " + empty.File("none") +
                       "/CCEL: No such file or directory): a TD's kernel exposes it at "
                       "/sys/firmware/acpi/tables/CCEL (root only)\n");
  BootedTd td;
  std::filesystem::remove(td.acpi + "/data/CCEL");
  r = RunTdxvirt("attest evidence" + s.Common() + " --ccel --ccel-dir " + td.acpi);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --ccel: the CCEL log area is not readable (cannot open " + td.acpi +
                       "/data/CCEL: No such file or directory): a TD's kernel exposes it at "
                       "/sys/firmware/acpi/tables/data/CCEL (root only)\n");
  EXPECT_TRUE(s.api.nonce_request_ids.empty());
  EXPECT_TRUE(s.api.attest_bodies.empty());
  r = RunTdxvirt("attest token" + s.Common() + " --ccel-dir " + td.acpi);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "tdxvirt: error: --ccel-dir: give --ccel as well\n");
}

// Intel's checks, in its order, each with the value found.
TEST(ClientCcel, TableAndDataChecksAsIntels) {
  eventlog::EventLogBuilder b;
  b.AddHashed(1, eventlog::kEvSeparator, Bytes(4, 0));
  b.AddHashed(4, eventlog::kEvEventTag, AsBytes("an agent's RTMR3 event"));  // index 4: accepted
  Bytes data = b.Finish(0x10000);
  Bytes table = eventlog::MakeCcelTable(0x10000, 0x7D649000);
  auto ok = EventLogForEvidence(table, data);
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(*ok, b.Finish(0));  // the log without its fill

  auto with = [&](size_t offset, uint8_t value) {
    Bytes t = table;
    t[offset] = value;
    t[9] = uint8_t(t[9] - (value - table[offset]));  // keep the checksum right
    return EventLogForEvidence(t, data);
  };
  EXPECT_EQ(with(36, 1).error(),
            "CCEL table: CC type 1 (AMD SEV), not 2 (Intel TDX): this log does not describe a TD's RTMRs");
  EXPECT_EQ(with(37, 1).error(), "CCEL table: CC subtype 1, not 0");
  EXPECT_EQ(with(0, 'X').error(), "CCEL table: signature is not \"CCEL\"");
  EXPECT_EQ(EventLogForEvidence(ByteSpan(table).first(40), data).error(),
            "CCEL table: 40 bytes; an ACPI CCEL table has 56");
  Bytes longer = table;
  longer.push_back(0);
  EXPECT_EQ(EventLogForEvidence(longer, data).error(), "CCEL table: header length 56 but the file has 57 bytes");
  EXPECT_EQ(EventLogForEvidence(table, b.Finish(0)).error(),
            "CCEL data: " + std::to_string(b.Finish(0).size()) +
                " bytes, less than the table's log area minimum length (LAML) 65536");
  // The real SEV-typed table of the testdata (derived from the OVMF one) is refused.
  std::string dir = std::string(TDXVIRT_TESTDATA) + "/eventlogs/";
  auto sev = EventLogForEvidence(*ReadFile(dir + "derived-cctype-sev/ccel_table.bin"),
                                 *ReadFile(dir + "derived-cctype-sev/ccel.bin"));
  EXPECT_EQ(sev.error(), "CCEL table: CC type 1 (AMD SEV), not 2 (Intel TDX): this log does not describe a TD's RTMRs");
  // A log that does not parse is refused naming where.
  Bytes broken = data;
  broken[73] = 0xEE;  // the first TCG_PCR_EVENT2's digest count
  EXPECT_EQ(EventLogForEvidence(table, broken).error().rfind("CCEL data: ", 0), 0u);
}

}  // namespace
}  // namespace tdxvirt::service
