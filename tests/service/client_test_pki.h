// For the `attest verify` tests: a token-signing PKI shaped like Intel's (Root CA, Signing CA, leaf
// with CRL distribution points), CRLs signed at will, and a small HTTP server for /certs and CRLs.
#pragma once

#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/openssl.h"

namespace tdxvirt::service::testing {

inline ossl::PkeyPtr NewRsaKey(int bits = 2048) {
  EVP_PKEY* k = EVP_RSA_gen(static_cast<unsigned>(bits));
  return ossl::PkeyPtr(k);
}

inline std::string PemOfKey(EVP_PKEY* k) {
  std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  char* d = nullptr;
  long n = BIO_get_mem_data(b.get(), &d);
  return std::string(d, size_t(n));
}

inline std::string PemOfCert(X509* c) {
  std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(b.get(), c);
  char* d = nullptr;
  long n = BIO_get_mem_data(b.get(), &d);
  return std::string(d, size_t(n));
}

struct CertSpec {
  std::string cn;
  long serial = 1;
  bool ca = false;
  std::string cdp;  // "" = no CRL distribution point
  int64_t not_before = 0, not_after = 0;
};

inline ossl::X509Ptr IssueCert(const CertSpec& s, EVP_PKEY* subject_key, X509* issuer, EVP_PKEY* issuer_key) {
  ossl::X509Ptr c(X509_new());
  X509_set_version(c.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), s.serial);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(s.cn.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
  ASN1_TIME_set(X509_getm_notBefore(c.get()), time_t(s.not_before));
  ASN1_TIME_set(X509_getm_notAfter(c.get()), time_t(s.not_after));
  X509_set_pubkey(c.get(), subject_key);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer ? issuer : c.get(), c.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    EXPECT_NE(e, nullptr) << value;
    if (e) X509_add_ext(c.get(), e, -1);
    X509_EXTENSION_free(e);
  };
  add(NID_basic_constraints, s.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add(NID_key_usage, s.ca ? "critical,keyCertSign,cRLSign" : "digitalSignature");
  add(NID_subject_key_identifier, "hash");
  if (!s.cdp.empty()) add(NID_crl_distribution_points, "URI:" + s.cdp);
  X509_sign(c.get(), issuer_key, EVP_sha384());
  return c;
}

inline Bytes CertDerOf(X509* c) {
  int n = i2d_X509(c, nullptr);
  Bytes out(static_cast<size_t>(n));
  uint8_t* p = out.data();
  i2d_X509(c, &p);
  return out;
}

// A DER CRL by `issuer`, signed with `key`, listing `revoked_serials`.
inline Bytes MakeCrl(X509* issuer, EVP_PKEY* key, const std::vector<long>& revoked_serials, int64_t this_update,
                     int64_t next_update) {
  ossl::X509CrlPtr crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer));
  ASN1_TIME* t = ASN1_TIME_set(nullptr, time_t(this_update));
  X509_CRL_set1_lastUpdate(crl.get(), t);
  ASN1_TIME_set(t, time_t(next_update));
  X509_CRL_set1_nextUpdate(crl.get(), t);
  for (long serial : revoked_serials) {
    X509_REVOKED* r = X509_REVOKED_new();
    ASN1_INTEGER* s = ASN1_INTEGER_new();
    ASN1_INTEGER_set(s, serial);
    X509_REVOKED_set_serialNumber(r, s);
    ASN1_TIME_set(t, time_t(this_update));
    X509_REVOKED_set_revocationDate(r, t);
    X509_CRL_add0_revoked(crl.get(), r);
    ASN1_INTEGER_free(s);
  }
  ASN1_TIME_free(t);
  X509_CRL_sort(crl.get());
  X509_CRL_sign(crl.get(), key, EVP_sha384());
  int n = i2d_X509_CRL(crl.get(), nullptr);
  Bytes out(static_cast<size_t>(n));
  uint8_t* p = out.data();
  i2d_X509_CRL(crl.get(), &p);
  return out;
}

// Root CA (serial 0x1000) <- Signing CA (0x2000, CDP {base}/crl/root-ca-crl.der) <- leaf (0x3000,
// CDP {base}/crl/ats-ca-crl.der), valid [now - 1 h, now + 1 y].
struct TestPki {
  ossl::PkeyPtr root_key, ca_key, leaf_key;
  ossl::X509Ptr root, ca, leaf;
  int64_t not_before = 0, not_after = 0;

  explicit TestPki(const std::string& base_url, bool leaf_cdp = true, int64_t now = std::time(nullptr)) {
    not_before = now - 3600;
    not_after = now + 365 * 86400;
    root_key = NewRsaKey();
    ca_key = NewRsaKey();
    leaf_key = NewRsaKey();
    root = IssueCert({"Test Token Root CA", 0x1000, true, "", not_before, not_after}, root_key.get(), nullptr,
                     root_key.get());
    ca = IssueCert({"Test Token Signing CA", 0x2000, true, base_url + "/crl/root-ca-crl.der", not_before, not_after},
                   ca_key.get(), root.get(), root_key.get());
    leaf = IssueCert({"Test Token Signing Certificate", 0x3000, false,
                      leaf_cdp ? base_url + "/crl/ats-ca-crl.der" : "", not_before, not_after},
                     leaf_key.get(), ca.get(), ca_key.get());
  }
  std::string ChainPem() const { return PemOfCert(leaf.get()) + PemOfCert(ca.get()) + PemOfCert(root.get()); }
  Bytes RootCrl(const std::vector<long>& revoked = {}) const {
    return MakeCrl(root.get(), root_key.get(), revoked, not_before, not_after);
  }
  Bytes AtsCrl(const std::vector<long>& revoked = {}) const {
    return MakeCrl(ca.get(), ca_key.get(), revoked, not_before, not_after);
  }
};

// Serves fixed bodies by path on 127.0.0.1 (port 0 = any free port).
class TestHttpServer {
 public:
  explicit TestHttpServer(int port = 0) {
    server_.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      ++hits_[req.path];
      auto it = bodies_.find(req.path);
      if (it == bodies_.end()) {
        res.status = 404;
        return;
      }
      res.set_content(it->second, "application/octet-stream");
    });
    if (port == 0) {
      port_ = server_.bind_to_any_port("127.0.0.1");
    } else if (server_.bind_to_port("127.0.0.1", port)) {
      port_ = port;
    }
    if (port_ > 0) thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the loop runs would be lost: wait (bounded) until it runs.
    for (int i = 0; i < 10000 && port_ > 0 && !server_.is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~TestHttpServer() { Stop(); }
  void Stop() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void Set(const std::string& path, const std::string& body) {
    std::lock_guard<std::mutex> lock(mu_);
    bodies_[path] = body;
  }
  void Remove(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    bodies_.erase(path);
  }
  void Set(const std::string& path, const Bytes& body) { Set(path, std::string(body.begin(), body.end())); }
  int Hits(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return hits_[path];
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = -1;
  std::mutex mu_;
  std::map<std::string, std::string> bodies_;
  std::map<std::string, int> hits_;
};

}  // namespace tdxvirt::service::testing
