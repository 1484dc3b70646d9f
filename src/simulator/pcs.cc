#include "simulator/pcs.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cctype>

#include "common/hex.h"
#include "common/log.h"
#include "verify/collateral.h"

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
  http::Route route;
  route.method = "GET";
  route.path = "/";
  route.prefix = true;
  route.handler = [this](const http::Request& req, http::Response& res) {
    std::map<std::string, std::string> query;
    size_t pos = 0;
    while (pos < req.query.size()) {
      size_t amp = req.query.find('&', pos);
      std::string_view part = std::string_view(req.query).substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      pos = amp == std::string::npos ? req.query.size() : amp + 1;
      size_t eq = part.find('=');
      auto k = verify::UrlDecode(part.substr(0, eq));
      auto v = verify::UrlDecode(eq == std::string_view::npos ? "" : part.substr(eq + 1));
      if (!k.ok() || !v.ok()) {
        res.Set(400, "query: not valid percent-encoding", "text/plain");
        return;
      }
      query.emplace(*k, *v);
    }
    PcsReply r = AnswerPcsRequest(platform_, req.path, query);
    res.Set(r.status, r.body, r.content_type);
    res.headers = r.headers;
    res.headers.emplace_back("Request-ID", std::to_string(++requests_));
  };
  http::ServerOptions options;
  options.host = host;
  options.port = port;
  options.limits.workers = 1;
  options.on_response = [this](const http::Event& e) {
    if (!log_) return;
    auto j = LogRecord(e.status < 400 ? "info" : "warn", "sim-pcs", "request");
    j["path"] = e.path;
    j["status"] = e.status;
    if (!e.error.empty()) j["detail"] = e.error;
    log_(LogLine(j));
  };
  auto server = http::Server::Create(std::move(options), {std::move(route)});
  if (!server.ok()) return Error{"simulated PCS: " + server.error()};
  auto bound = (*server)->Start();
  if (!bound.ok()) return Error{"simulated PCS: " + bound.error()};
  http_ = std::move(*server);
  host_ = host;
  port_ = *bound;
  return port_;
}

void SimPcsServer::Stop() {
  if (!http_) return;
  http_->Stop();
  http_.reset();
}

std::string SimPcsServer::base_url() const { return "http://" + host_ + ":" + std::to_string(port_); }

}  // namespace tdxvirt::simulator
