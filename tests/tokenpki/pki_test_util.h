// For any test folder: `serve attestation` with a fresh token PKI whose public URL is the server's
// own http://127.0.0.1:PORT, so the CRL distribution points in the x5c certificates point at the
// live server (what Intel's Go, Python and C clients fetch).
//
// The port chicken-and-egg (the certificates need the URL before the server listens) is solved by
// binding 127.0.0.1:0, reading the port the kernel chose and closing it, then creating the PKI for
// that port and starting the server on exactly it (--listen 127.0.0.1:PORT). Should another process
// take the port in between, the start fails and the helper retries with a new port and PKI (up to
// 5 times), so a test never sees the race.
//
//   #include "tokenpki/pki_test_util.h"   (tests/ is on the include path)
//   tokenpki::testing::PkiService s;                 // in process, clock the test moves
//   s.public_url                // "http://127.0.0.1:PORT" (== s.server->base_url())
//   s.pki_dir                   // root-ca.crt, token-signing.crt, revocations.json, ...
//   s.Client() / s.Config()     // the in-TD client (API key "test-api-key"), as TestService
//   s.now->store(t)             // the server's clock (CRL re-signing, token times)
//   tokenpki::testing::PkiServiceProcess p({"--require-nonce"});   // the tdxvirt binary
//   p.public_url, p.pki_dir, p.log_path; SIGTERM and reaped by the destructor
// Both use the simulator platform of service::testing::F() (collateral and root), plain HTTP and
// 2048-bit keys (fast to generate).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "common/net.h"
#include "service/service_test_util.h"
#include "tokenpki/tokenpki.h"

namespace tdxvirt::tokenpki::testing {

using tdxvirt::testing::TempDir;


// `tdxvirt token-pki init` in process: a new directory `dir` for `public_url`.
inline void InitPki(const std::string& dir, const std::string& public_url, int key_bits = 2048) {
  Status s = InitDirectory(dir, {.public_url = public_url, .key_bits = key_bits});
  if (!s.ok()) ADD_FAILURE() << s.error();
}

// `serve attestation --token-pki` in process (service::AttestationServer), options as TestService.
struct PkiService {
  std::shared_ptr<std::atomic<int64_t>> now =
      std::make_shared<std::atomic<int64_t>>(int64_t(std::time(nullptr)));
  std::unique_ptr<service::AttestationServer> server;
  TempDir dir, policies;
  std::string pki_dir, public_url;
  int port = 0;
  std::vector<std::string> log;
  std::shared_ptr<std::mutex> log_mu = std::make_shared<std::mutex>();
  std::shared_ptr<std::condition_variable> log_cv = std::make_shared<std::condition_variable>();

  explicit PkiService(service::ServerOptions o = {}) {
    using service::testing::F;
    if (o.collateral_path.empty() && o.pcs.base_url.empty() && !o.pcs.offline)
      o.collateral_path = F().sim_dir + "/collateral.json";
    if (o.root_pem_path.empty()) o.root_pem_path = F().sim_dir + "/root_ca.pem";
    o.plain_http = true;
    o.host = "127.0.0.1";
    if (o.policy_dir.empty()) o.policy_dir = policies.path();
    if (o.api_keys.empty()) o.api_keys = {"test-api-key"};
    o.policy_reload_interval = std::chrono::milliseconds(100);
    auto clock = now;
    o.clock = [clock] { return clock->load(); };
    auto mu = log_mu;
    auto cv = log_cv;
    auto* lines = &log;
    o.log = [mu, cv, lines](const std::string& l) {
      {
        std::lock_guard g(*mu);
        lines->push_back(l);
      }
      cv->notify_all();
    };
    std::string last_error;
    for (int attempt = 0; attempt < 5 && !server; ++attempt) {
      port = FreeLoopbackPort();
      public_url = "http://127.0.0.1:" + std::to_string(port);
      pki_dir = dir.File("pki-" + std::to_string(attempt));
      InitPki(pki_dir, public_url);
      service::ServerOptions so = o;
      so.port = port;
      so.token_pki_dir = pki_dir;
      so.public_url = public_url;
      auto s = service::AttestationServer::Create(std::move(so));
      if (!s.ok()) {
        ADD_FAILURE() << s.error();
        return;
      }
      auto started = (*s)->Start();
      if (started.ok()) server = std::move(*s);
      else last_error = started.error();
    }
    if (!server) ADD_FAILURE() << "cannot start serve attestation: " << last_error;
  }
  ~PkiService() {
    if (server) server->Stop();
  }

  std::vector<std::string> Logs() {
    std::lock_guard g(*log_mu);
    return log;
  }
  // Waits until a log line contains `part`; false when none did within the watchdog.
  bool WaitForLog(const std::string& part, std::chrono::milliseconds watchdog = std::chrono::seconds(30)) {
    std::unique_lock g(*log_mu);
    return log_cv->wait_for(g, watchdog, [&] {
      for (const auto& l : log)
        if (l.find(part) != std::string::npos) return true;
      return false;
    });
  }
  service::ClientConfig Config(const std::string& api_key = "test-api-key") const {
    service::ClientConfig c;
    c.trustauthority_url = public_url;
    c.trustauthority_api_url = public_url;
    c.trustauthority_api_key = api_key;
    c.allow_http = true;
    return c;
  }
  service::TrustAuthorityClient Client(const std::string& api_key = "test-api-key") const {
    auto c = service::TrustAuthorityClient::Create(Config(api_key));
    EXPECT_TRUE(c.ok()) << c.error();
    return std::move(*c);
  }
};

// The tdxvirt binary: `serve attestation --plain-http --listen 127.0.0.1:PORT --token-pki DIR
// --public-url http://127.0.0.1:PORT --collateral/--root (simulator) --api-key-file (key
// "test-api-key") --port-file` plus `extra_args`. Ready (port file written) when constructed;
// SIGTERM and reaped when destroyed.
struct PkiServiceProcess {
  TempDir dir;
  std::string pki_dir, public_url, log_path;
  int port = 0;
  pid_t pid = -1;

  explicit PkiServiceProcess(const std::vector<std::string>& extra_args = {}) {
    using service::testing::F;
    tdxvirt::testing::WriteFile(dir.File("api-keys"), "test-api-key\n");
    for (int attempt = 0; attempt < 5 && pid < 0; ++attempt) {
      port = FreeLoopbackPort();
      public_url = "http://127.0.0.1:" + std::to_string(port);
      pki_dir = dir.File("pki-" + std::to_string(attempt));
      log_path = dir.File("serve-" + std::to_string(attempt) + ".log");
      std::string port_file = dir.File("port-" + std::to_string(attempt));
      InitPki(pki_dir, public_url);
      std::vector<std::string> args = {"serve", "attestation", "--plain-http", "--listen",
                                       "127.0.0.1:" + std::to_string(port), "--token-pki", pki_dir,
                                       "--public-url", public_url, "--collateral",
                                       F().sim_dir + "/collateral.json", "--root",
                                       F().sim_dir + "/root_ca.pem", "--api-key-file",
                                       dir.File("api-keys"), "--port-file", port_file};
      args.insert(args.end(), extra_args.begin(), extra_args.end());
      pid_t p = tdxvirt::testing::SpawnTdxvirt(args, log_path);
      if (p <= 0) break;
      // The port file appears once it listens; an exit (port taken, bad flag) ends the wait.
      bool up = false, exited = false;
      for (int i = 0; i < 6000 && !up && !exited; ++i) {  // watchdog: 60 s on a loaded machine
        std::ifstream in(port_file);
        std::string line;
        up = static_cast<bool>(std::getline(in, line)) && !line.empty();
        int status = 0;
        if (!up && waitpid(p, &status, WNOHANG) == p) exited = true;
        if (!up && !exited) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (up) pid = p;
      else if (!exited) tdxvirt::testing::TerminateAndWait(p);
    }
    if (pid < 0) ADD_FAILURE() << "serve attestation did not start: " << tdxvirt::testing::ReadFileText(log_path);
  }
  ~PkiServiceProcess() {
    if (pid > 0) tdxvirt::testing::TerminateAndWait(pid);
  }
};

}  // namespace tdxvirt::tokenpki::testing
