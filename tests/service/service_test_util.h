// Shared by the service tests: one simulated platform and one token-signing key per test binary
// (key generation is the slow part), a service on 127.0.0.1 port 0 with an adjustable clock, and
// the in-TD client wired to the simulator.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>

#include "common/file.h"
#include "guest/quote_provider.h"
#include "service/client.h"
#include "service/jose.h"
#include "service/server.h"
#include "simulator/platform.h"
#include "test_util.h"

namespace tdxvirt::service::testing {

using tdxvirt::testing::TempDir;
using tdxvirt::testing::WriteFile;

// Created once per process, removed at exit.
struct Fixtures {
  TempDir dir;
  std::string sim_dir, key, chain, other_key, other_chain, debug_td, default_td;

  Fixtures() {
    sim_dir = dir.File("sim");
    auto p = simulator::SimPlatform::Create({});
    if (!p.ok() || !p->Save(sim_dir).ok()) ADD_FAILURE() << "cannot create the simulator platform";
    key = dir.File("signing_key.pem");
    chain = dir.File("signing_chain.pem");
    other_key = dir.File("other_key.pem");
    other_chain = dir.File("other_chain.pem");
    for (auto [k, c] : {std::pair{key, chain}, std::pair{other_key, other_chain}}) {
      Status s = CreateSigningKeyFiles(k, c, {.key_bits = 2048});
      if (!s.ok()) ADD_FAILURE() << s.error();
    }
    debug_td = dir.File("debug_td.json");
    WriteFile(debug_td, R"({"debug": true})");
    default_td = "";
  }
};

inline Fixtures& F() {
  static Fixtures f;
  return f;
}

inline std::string Hex48(char c) { return std::string(96, c); }

// A running service with plain HTTP and a clock the test moves.
struct TestService {
  std::shared_ptr<std::atomic<int64_t>> now = std::make_shared<std::atomic<int64_t>>(int64_t(std::time(nullptr)));
  std::unique_ptr<AttestationServer> server;
  TempDir policies;
  std::vector<std::string> log;
  std::shared_ptr<std::mutex> log_mu = std::make_shared<std::mutex>();
  std::shared_ptr<std::condition_variable> log_cv = std::make_shared<std::condition_variable>();

  explicit TestService(ServerOptions o = {}, bool use_other_key = false) {
    if (o.signing_key_path.empty() && o.token_pki_dir.empty()) {
      o.signing_key_path = use_other_key ? F().other_key : F().key;
      o.signing_chain_path = use_other_key ? F().other_chain : F().chain;
    }
    if (o.collateral_path.empty() && o.pcs.base_url.empty() && !o.pcs.offline)
      o.collateral_path = F().sim_dir + "/collateral.json";
    if (o.root_pem_path.empty()) o.root_pem_path = F().sim_dir + "/root_ca.pem";
    if (o.tls_cert_path.empty()) o.plain_http = true;
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
    auto s = AttestationServer::Create(std::move(o));
    if (!s.ok()) {
      ADD_FAILURE() << s.error();
      return;
    }
    server = std::move(*s);
    auto port = server->Start();
    if (!port.ok()) ADD_FAILURE() << port.error();
  }
  ~TestService() {
    if (server) server->Stop();
  }

  std::vector<std::string> Logs() {
    std::lock_guard g(*log_mu);
    return log;
  }
  // Waits until a log line contains `part` (the event itself, not a guess at its timing); false
  // when none did within the watchdog.
  bool WaitForLog(const std::string& part, std::chrono::milliseconds watchdog = std::chrono::seconds(30)) {
    std::unique_lock g(*log_mu);
    return log_cv->wait_for(g, watchdog, [&] {
      for (const auto& l : log)
        if (l.find(part) != std::string::npos) return true;
      return false;
    });
  }

  ClientConfig Config(const std::string& api_key = "test-api-key") const {
    ClientConfig c;
    c.trustauthority_url = server->base_url();
    c.trustauthority_api_url = server->base_url();
    c.trustauthority_api_key = api_key;
    c.allow_http = true;
    return c;
  }
  TrustAuthorityClient Client(const std::string& api_key = "test-api-key") const {
    auto c = TrustAuthorityClient::Create(Config(api_key));
    EXPECT_TRUE(c.ok()) << c.error();
    return std::move(*c);
  }
};

inline std::unique_ptr<guest::QuoteProvider> SimProvider(const std::string& td_config = "") {
  guest::ProviderOptions po;
  po.kind = guest::ProviderKind::kSim;
  po.sim_dir = F().sim_dir;
  po.td_config_path = td_config;
  auto p = guest::SelectQuoteProvider(po);
  EXPECT_TRUE(p.ok()) << p.error();
  return p.ok() ? std::move(*p) : nullptr;
}

inline bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace tdxvirt::service::testing
