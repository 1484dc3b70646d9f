#include "simulator/pcs.h"

#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cctype>

#include "common/hex.h"
#include "common/http_listen.h"
#include "common/log.h"

namespace tdxvirt::simulator {

namespace {

PcsReply Refusal(int status, std::string message) {
  PcsReply r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(message) + "\n";
  return r;
}

PcsReply SignedJson(std::string_view key, const std::string& text, const ByteArray<64>& signature,
                    const char* chain_header, const std::string& chain) {
  PcsReply r;
  r.content_type = "application/json";
  // The signed member's exact text, then its signature: the shape PCS returns.
  r.body = "{\"" + std::string(key) + "\":" + text + ",\"signature\":\"" + ToHex(signature) + "\"}";
  r.headers.push_back({chain_header, verify::UrlEncode(chain)});
  return r;
}

Result<std::string> CrlPem(const Bytes& der) {
  const unsigned char* p = der.data();
  std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(d2i_X509_CRL(nullptr, &p, long(der.size())),
                                                          &X509_CRL_free);
  if (!crl) return Error{"the simulated PCK CRL is not DER"};
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1) return Error{"PEM encoding failed"};
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size_t(n));
}

std::string Param(const std::map<std::string, std::string>& q, const std::string& name) {
  auto it = q.find(name);
  return it == q.end() ? std::string() : it->second;
}

}  // namespace

PcsReply AnswerPcsRequest(const SimPlatform& platform, std::string_view path,
                          const std::map<std::string, std::string>& query) {
  const verify::Collateral& c = platform.collateral();
  if (path == "/tdx/certification/v4/tcb") {
    std::string fmspc = Param(query, "fmspc");
    bool hex = fmspc.size() == 12;
    for (char ch : fmspc) hex = hex && std::isxdigit(static_cast<unsigned char>(ch));
    if (!hex) return Refusal(400, "fmspc: expected 12 hex digits");
    std::string ours = ToHex(platform.config().fmspc);
    for (size_t i = 0; i < fmspc.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(fmspc[i])) != ours[i])
        return Refusal(404, "no TCB info for FMSPC " + fmspc + " (this simulated platform is " + ours + ")");
    return SignedJson("tcbInfo", c.tcb_info, c.tcb_info_signature, "TCB-Info-Issuer-Chain",
                      c.tcb_info_issuer_chain);
  }
  if (path == "/tdx/certification/v4/qe/identity")
    return SignedJson("enclaveIdentity", c.qe_identity, c.qe_identity_signature,
                      "SGX-Enclave-Identity-Issuer-Chain",
                      c.qe_identity_issuer_chain.empty() ? c.tcb_info_issuer_chain : c.qe_identity_issuer_chain);
  if (path == "/sgx/certification/v4/pckcrl") {
    std::string ca = Param(query, "ca"), encoding = Param(query, "encoding");
    if (ca != "platform" && ca != "processor") return Refusal(400, "ca: expected platform or processor");
    // The simulated PCK certificates are issued by a Platform CA only.
    if (ca != "platform") return Refusal(404, "no CRL for ca=" + ca + " on this simulated platform");
    if (!encoding.empty() && encoding != "der" && encoding != "pem")
      return Refusal(400, "encoding: expected der or pem");
    PcsReply r;
    r.content_type = "application/pkix-crl";
    if (encoding == "der") {
      r.body.assign(c.pck_crl.begin(), c.pck_crl.end());
    } else {
      auto pem = CrlPem(c.pck_crl);
      if (!pem.ok()) return Refusal(500, pem.error());
      r.content_type = "application/x-pem-file";
      r.body = *pem;
    }
    r.headers.push_back({"SGX-PCK-CRL-Issuer-Chain", verify::UrlEncode(c.pck_crl_issuer_chain)});
    return r;
  }
  if (path == "/sgx/certification/v4/rootcacrl") {
    PcsReply r;
    r.content_type = "application/pkix-crl";
    r.body = ToHex(c.root_ca_crl);
    return r;
  }
  return Refusal(404, "not a PCS path this simulator serves");
}

SimPcsServer::SimPcsServer(SimPlatform platform) : platform_(std::move(platform)) {}

SimPcsServer::~SimPcsServer() { Stop(); }

Result<int> SimPcsServer::Start(const std::string& host, int port) {
  if (http_) return Error{"simulated PCS: Start() called twice"};
  http_ = std::make_unique<httplib::Server>();
  http_->Get(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
    std::map<std::string, std::string> query;
    for (const auto& [k, v] : req.params) query.emplace(k, v);
    PcsReply r = AnswerPcsRequest(platform_, req.path, query);
    res.status = r.status;
    for (const auto& [k, v] : r.headers) res.set_header(k, v);
    res.set_header("Request-ID", std::to_string(++requests_));
    res.set_content(r.body, r.content_type);
    if (log_) {
      auto j = LogRecord(r.status < 400 ? "info" : "warn", "sim-pcs", "request");
      j["path"] = req.path;
      j["status"] = r.status;
      log_(LogLine(j));
    }
  });
  host_ = host;
  port_ = port == 0 ? http_->bind_to_any_port(host) : (http_->bind_to_port(host, port) ? port : -1);
  if (port_ <= 0) {
    http_.reset();
    return Error{"simulated PCS: cannot listen on " + host + ":" + std::to_string(port)};
  }
  thread_ = ListenInThread(*http_);
  return port_;
}

void SimPcsServer::Stop() {
  if (!http_) return;
  http_->stop();
  if (thread_.joinable()) thread_.join();
  http_.reset();
}

std::string SimPcsServer::base_url() const { return "http://" + host_ + ":" + std::to_string(port_); }

}  // namespace tdxvirt::simulator
