// Intel PCS, the part a verifier uses, answering from a simulated platform's collateral: the same
// paths, query parameters, issuer-chain headers and status codes as PCS v4 (plus PCCS's
// /rootcacrl), so a verifier's PCS/PCCS collateral source runs unchanged against the simulator.
// Only the simulator's own FMSPC has collateral; others get 404 as on PCS.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "common/result.h"
#include "http/server.h"
#include "simulator/platform.h"
#include "verify/pcs_client.h"

namespace tdxvirt::simulator {

struct PcsReply {
  int status = 200;
  std::string content_type;
  verify::HttpHeaders headers;
  std::string body;
};

// One request: `path` without the query, `query` its decoded parameters. Answers
//   /tdx/certification/v4/tcb?fmspc=HEX12          {"tcbInfo":...,"signature":...}, TCB-Info-Issuer-Chain
//   /tdx/certification/v4/qe/identity              {"enclaveIdentity":...}, SGX-Enclave-Identity-Issuer-Chain
//   /sgx/certification/v4/pckcrl?ca=platform|processor[&encoding=der|pem]   SGX-PCK-CRL-Issuer-Chain
//   /sgx/certification/v4/rootcacrl                hex of the DER, as PCCS serves it
// Bad parameters are 400, an unknown FMSPC or path 404.
PcsReply AnswerPcsRequest(const SimPlatform& platform, std::string_view path,
                          const std::map<std::string, std::string>& query);

// AnswerPcsRequest over plain HTTP on loopback (the simulator never leaves the machine).
class SimPcsServer {
 public:
  explicit SimPcsServer(SimPlatform platform);
  ~SimPcsServer();
  SimPcsServer(const SimPcsServer&) = delete;
  SimPcsServer& operator=(const SimPcsServer&) = delete;

  // Listens on host:port (0: any free port); returns the port.
  Result<int> Start(const std::string& host = "127.0.0.1", int port = 0);
  void Stop();
  std::string base_url() const;
  uint64_t requests() const { return requests_.load(); }
  // Each request as one JSON line (path, status); default: none. Set before Start().
  void set_log(std::function<void(const std::string&)> log) { log_ = std::move(log); }

 private:
  SimPlatform platform_;
  std::unique_ptr<http::Server> http_;
  std::string host_;
  int port_ = 0;
  std::atomic<uint64_t> requests_{0};
  std::function<void(const std::string&)> log_;
};

}  // namespace tdxvirt::simulator
