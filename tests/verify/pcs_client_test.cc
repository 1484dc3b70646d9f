// The PCS/PCCS collateral client against a loopback HTTP(S) server that serves the real responses
// of shared/testdata/quotes/tdx-v4-spr-e4-pcs-2023 exactly as Intel PCS / a PCCS would (paths,
// query parameters, URL-encoded issuer-chain headers), plus `tdxvirt collateral fetch`.
#include "verify/pcs_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/file.h"
#include "common/hex.h"
#include "common/http_listen.h"
#include "common/openssl.h"
#include "evidence/quote.h"
#include "test_util.h"
#include "verify/collateral.h"

namespace tdxvirt::verify {
namespace {

using testing::ReadTestdata;
using testing::RunTdxvirt;
using testing::TempDir;
using testing::TestdataPath;

const std::string kDir = "quotes/tdx-v4-spr-e4-pcs-2023/";
const std::string kFmspc = "50806f000000";
// The sample collateral's common validity window: 2023-06-18T08:42:58Z .. 2023-07-08T07:24:59Z
// (the QE identity's nextUpdate ends it).
constexpr int64_t kInWindow = 1688173200;    // 2023-07-01T01:00:00Z
constexpr int64_t kNextUpdate = 1688801099;  // 2023-07-08T07:24:59Z

std::string Text(const std::string& relative) {
  Bytes b = ReadTestdata(relative);
  return std::string(AsString(b));
}

// The exact text of the signed member: what PCS signed and what the client must keep.
std::string SignedMember(const std::string& body, const std::string& key) {
  std::string prefix = "{\"" + key + "\":";
  size_t end = body.rfind(",\"signature\":\"");
  EXPECT_EQ(body.rfind(prefix, 0), 0u);
  EXPECT_NE(end, std::string::npos);
  return body.substr(prefix.size(), end - prefix.size());
}

std::string ToLowerHex(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string SignatureHex(const std::string& body) {
  size_t at = body.rfind(",\"signature\":\"") + 14;
  return body.substr(at, 128);
}

// A fake Intel PCS / PCCS. Handlers answer like the real service; `intercept` lets a test replace
// any answer (return true when it handled the request).
class FakePcs {
 public:
  enum class RootCrlMode { kHex, kDer, kNotFound };

  explicit FakePcs(std::unique_ptr<httplib::Server> server = std::make_unique<httplib::Server>())
      : server_(std::move(server)) {
    tcb_body_ = Text(kDir + "sample_tcbInfo_response");
    qe_body_ = Text(kDir + "sample_qeIdentity_response");
    pck_crl_ = Text(kDir + "pckcrl");
    root_crl_ = Text(kDir + "rootcrl.der");
    tcb_chain_ = Text(kDir + "tcb_info_issuer_chain.pem");
    qe_chain_ = Text(kDir + "qe_identity_issuer_chain.pem");
    crl_chain_ = Text(kDir + "pck_crl_issuer_chain.pem");

    server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        targets_.push_back(req.target);
        if (req.has_header("Ocp-Apim-Subscription-Key"))
          api_keys_seen_[req.path] = req.get_header_value("Ocp-Apim-Subscription-Key");
      }
      res.set_header("Request-ID", "req-" + std::to_string(++request_id_));
      std::function<bool(const httplib::Request&, httplib::Response&)> hook;
      {
        std::lock_guard<std::mutex> lock(mu_);
        hook = intercept;
      }
      return hook && hook(req, res) ? httplib::Server::HandlerResponse::Handled
                                    : httplib::Server::HandlerResponse::Unhandled;
    });
    server_->Get(
        "/tdx/certification/v4/tcb", [this](const httplib::Request& req, httplib::Response& res) {
          if (!req.has_param("fmspc") || req.get_param_value("fmspc").size() != 12) {
            res.status = 400;
            return;
          }
          if (!serve_any_fmspc && !EqualsIgnoreCase(req.get_param_value("fmspc"), kFmspc)) {
            res.status = 404;
            return;
          }
          res.set_header(tcb_chain_header, UrlEncode(tcb_chain_));
          res.set_content(tcb_body_, "application/json");
        });
    server_->Get("/tdx/certification/v4/qe/identity",
                 [this](const httplib::Request&, httplib::Response& res) {
                   res.set_header("SGX-Enclave-Identity-Issuer-Chain", UrlEncode(qe_chain_));
                   res.set_content(qe_body_, "application/json");
                 });
    server_->Get("/sgx/certification/v4/pckcrl", [this](const httplib::Request& req,
                                                        httplib::Response& res) {
      std::string ca = req.get_param_value("ca");
      if ((ca != "platform" && ca != "processor") || req.get_param_value("encoding") != "der") {
        res.status = 400;
        return;
      }
      res.set_header("SGX-PCK-CRL-Issuer-Chain", UrlEncode(crl_chain_));
      res.set_content(pck_crl_, "application/pkix-crl");
    });
    server_->Get("/sgx/certification/v4/rootcacrl",
                 [this](const httplib::Request&, httplib::Response& res) {
                   switch (root_mode) {
                     case RootCrlMode::kHex:  // as PCCS serves it
                       res.set_content(ToHex(AsBytes(root_crl_)) + "\n", "application/pkix-crl");
                       break;
                     case RootCrlMode::kDer:
                       res.set_content(root_crl_, "application/pkix-crl");
                       break;
                     case RootCrlMode::kNotFound:
                       res.status = 404;
                       break;
                   }
                 });
    server_->Get("/IntelSGXRootCA.der", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(root_crl_, "application/pkix-crl");
    });
    server_->Get("/sgx/certification/v4/pckcert",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   if (req.get_header_value("Ocp-Apim-Subscription-Key") != "secret-key") {
                     res.status = 401;
                     return;
                   }
                   res.set_header("SGX-PCK-Certificate-Issuer-Chain", UrlEncode(crl_chain_));
                   res.set_header("SGX-TCBm", "0303020202010002000000000000000000000b00");
                   res.set_header("SGX-FMSPC", "50806F000000");
                   res.set_header("SGX-PCK-Certificate-CA-Type", "platform");
                   res.set_content(pck_leaf_pem, "application/x-pem-file");
                 });

    port_ = server_->bind_to_any_port("127.0.0.1");
    // The socket listens from here on, so requests queue until the thread accepts them.
    thread_ = ListenInThread(*server_);
  }

  ~FakePcs() {
    server_->stop();
    thread_.join();
  }

  std::string url() const {
    return std::string(dynamic_cast<httplib::SSLServer*>(server_.get()) ? "https" : "http") +
           "://127.0.0.1:" + std::to_string(port_);
  }
  std::vector<std::string> targets() {
    std::lock_guard<std::mutex> lock(mu_);
    return targets_;
  }
  size_t count(std::string_view path_prefix) {
    std::lock_guard<std::mutex> lock(mu_);
    return size_t(std::count_if(targets_.begin(), targets_.end(), [&](const std::string& t) {
      return t.rfind(path_prefix, 0) == 0;
    }));
  }
  std::map<std::string, std::string> api_keys_seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return api_keys_seen_;
  }
  void set_intercept(std::function<bool(const httplib::Request&, httplib::Response&)> f) {
    std::lock_guard<std::mutex> lock(mu_);
    intercept = std::move(f);
  }

  static bool EqualsIgnoreCase(const std::string& a, const std::string& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  }

  std::string tcb_body_, qe_body_, pck_crl_, root_crl_, tcb_chain_, qe_chain_, crl_chain_;
  std::atomic<RootCrlMode> root_mode{RootCrlMode::kHex};
  std::atomic<bool> serve_any_fmspc{false};
  const char* tcb_chain_header = "TCB-Info-Issuer-Chain";
  std::string pck_leaf_pem;

 private:
  std::unique_ptr<httplib::Server> server_;
  int port_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> targets_;
  std::map<std::string, std::string> api_keys_seen_;
  std::function<bool(const httplib::Request&, httplib::Response&)> intercept;
  std::atomic<int> request_id_{0};
};

PcsClientOptions Options(const std::string& base, const std::string& cache_dir = "") {
  PcsClientOptions o;
  o.base_url = base;
  o.cache_dir = cache_dir;
  o.now = kInWindow;
  o.retry.initial_backoff = std::chrono::milliseconds(1);
  o.retry.max_backoff = std::chrono::milliseconds(4);
  o.http.connect_timeout = std::chrono::seconds(2);
  o.http.read_timeout = std::chrono::seconds(5);
  return o;
}

Result<FetchedCollateral> FetchWith(PcsClientOptions o, const std::string& fmspc = kFmspc,
                                    const std::string& ca = "platform") {
  auto client = PcsClient::Create(std::move(o));
  if (!client.ok()) return Error{client.error()};
  return client->Fetch(fmspc, ca);
}

void ExpectSampleCollateral(const Collateral& c) {
  std::string tcb = Text(kDir + "sample_tcbInfo_response");
  std::string qe = Text(kDir + "sample_qeIdentity_response");
  EXPECT_EQ(c.tcb_info, SignedMember(tcb, "tcbInfo"));
  EXPECT_EQ(ToHex(c.tcb_info_signature), ToLowerHex(SignatureHex(tcb)));
  EXPECT_EQ(c.qe_identity, SignedMember(qe, "enclaveIdentity"));
  EXPECT_EQ(ToHex(c.qe_identity_signature), ToLowerHex(SignatureHex(qe)));
  EXPECT_EQ(c.pck_crl, ReadTestdata(kDir + "pckcrl"));
  EXPECT_EQ(c.root_ca_crl, ReadTestdata(kDir + "rootcrl.der"));
  EXPECT_EQ(c.tcb_info_issuer_chain, Text(kDir + "tcb_info_issuer_chain.pem"));
  EXPECT_EQ(c.qe_identity_issuer_chain, Text(kDir + "qe_identity_issuer_chain.pem"));
  EXPECT_EQ(c.pck_crl_issuer_chain, Text(kDir + "pck_crl_issuer_chain.pem"));
}

TEST(PcsClient, FetchesTheFourItemsExactlyAsServed) {
  FakePcs pcs;
  auto o = Options(pcs.url());
  o.api_key = "secret-key";
  auto r = FetchWith(o);
  ASSERT_TRUE(r.ok()) << r.error();
  ExpectSampleCollateral(r->collateral);
  EXPECT_EQ(r->source, CollateralSource::kNetwork);
  EXPECT_EQ(r->next_update, kNextUpdate);
  EXPECT_EQ(r->cache_entry, "");
  EXPECT_EQ(pcs.targets(), (std::vector<std::string>{
                               "/tdx/certification/v4/tcb?fmspc=50806f000000",
                               "/tdx/certification/v4/qe/identity",
                               "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
                               "/sgx/certification/v4/rootcacrl",
                           }));
  // The subscription key is for PCK certificates only.
  EXPECT_TRUE(pcs.api_keys_seen().empty());
}

TEST(PcsClient, ProcessorCaAndUpperCaseFmspc) {
  FakePcs pcs;
  auto r = FetchWith(Options(pcs.url()), "50806F000000", "processor");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(pcs.targets()[0], "/tdx/certification/v4/tcb?fmspc=50806f000000");
  EXPECT_EQ(pcs.targets()[2], "/sgx/certification/v4/pckcrl?ca=processor&encoding=der");
}

TEST(PcsClient, BaseUrlWithApiSuffixIsStripped) {
  FakePcs pcs;
  for (std::string suffix : {"/sgx/certification/v4", "/tdx/certification/v4/", "/"}) {
    auto r = FetchWith(Options(pcs.url() + suffix));
    ASSERT_TRUE(r.ok()) << suffix << ": " << r.error();
  }
  EXPECT_EQ(pcs.count("/tdx/certification/v4/tcb?"), 3u);
}

TEST(PcsClient, NormalizeBaseUrl) {
  EXPECT_EQ(*NormalizePcsBaseUrl("https://api.trustedservices.intel.com/sgx/certification/v4/"),
            "https://api.trustedservices.intel.com");
  EXPECT_EQ(*NormalizePcsBaseUrl("https://pccs.example:8081/tdx/certification/v4"),
            "https://pccs.example:8081");
  EXPECT_EQ(*NormalizePcsBaseUrl("http://[::1]:8081/proxy/pccs/"), "http://[::1]:8081/proxy/pccs");
  EXPECT_EQ(*NormalizePcsBaseUrl("HTTPS://Host"), "https://Host");
  EXPECT_FALSE(NormalizePcsBaseUrl("ftp://host").ok());
  EXPECT_FALSE(NormalizePcsBaseUrl("host:8081").ok());
  EXPECT_FALSE(NormalizePcsBaseUrl("https://").ok());
  EXPECT_FALSE(NormalizePcsBaseUrl("https://host/?x=1").ok());
  EXPECT_FALSE(PcsClient::Create(PcsClientOptions{}).ok());  // online needs a URL
}

TEST(PcsClient, RejectsBadKeys) {
  FakePcs pcs;
  auto bad_fmspc = FetchWith(Options(pcs.url()), "50806f00000");
  ASSERT_FALSE(bad_fmspc.ok());
  EXPECT_NE(bad_fmspc.error().find("12 hex digits"), std::string::npos) << bad_fmspc.error();
  auto bad_ca = FetchWith(Options(pcs.url()), kFmspc, "root");
  ASSERT_FALSE(bad_ca.ok());
  EXPECT_NE(bad_ca.error().find("platform or processor"), std::string::npos) << bad_ca.error();
  EXPECT_TRUE(pcs.targets().empty());
}

TEST(PcsClient, CacheHitDoesNotContactTheServer) {
  FakePcs pcs;
  TempDir cache;
  auto first = FetchWith(Options(pcs.url(), cache.path()));
  ASSERT_TRUE(first.ok()) << first.error();
  EXPECT_EQ(first->cache_error, "");
  EXPECT_EQ(first->cache_entry, cache.path() + "/50806f000000-platform");
  for (const char* name :
       {"tcb_info.json", "qe_identity.json", "pck_crl.der", "root_ca_crl.der",
        "tcb_info_issuer_chain.pem", "qe_identity_issuer_chain.pem", "pck_crl_issuer_chain.pem"})
    EXPECT_TRUE(std::filesystem::exists(first->cache_entry + "/" + name)) << name;
  ASSERT_EQ(pcs.targets().size(), 4u);

  for (int64_t now : {kInWindow, kNextUpdate - 1}) {
    auto o = Options(pcs.url(), cache.path());
    o.now = now;
    auto again = FetchWith(o);
    ASSERT_TRUE(again.ok()) << again.error();
    EXPECT_EQ(again->source, CollateralSource::kCache);
    EXPECT_EQ(again->next_update, kNextUpdate);
    ExpectSampleCollateral(again->collateral);
  }
  EXPECT_EQ(pcs.targets().size(), 4u);
  // Another CA type is another entry.
  ASSERT_TRUE(FetchWith(Options(pcs.url(), cache.path()), kFmspc, "processor").ok());
  EXPECT_EQ(pcs.targets().size(), 8u);
}

TEST(PcsClient, CacheRefetchesAtNextUpdate) {
  FakePcs pcs;
  TempDir cache;
  ASSERT_TRUE(FetchWith(Options(pcs.url(), cache.path())).ok());
  auto o = Options(pcs.url(), cache.path());
  o.now = kNextUpdate;  // due exactly at nextUpdate
  auto r = FetchWith(o);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->source, CollateralSource::kNetwork);
  EXPECT_EQ(pcs.targets().size(), 8u);
  ExpectSampleCollateral(r->collateral);
  // The entry was swapped in whole: only it remains, no temporary or old directories.
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(cache.path()))
    names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"50806f000000-platform"});
}

TEST(PcsClient, CorruptCacheEntryIsRefetchedOnline) {
  FakePcs pcs;
  TempDir cache;
  ASSERT_TRUE(FetchWith(Options(pcs.url(), cache.path())).ok());
  std::string entry = cache.path() + "/50806f000000-platform";
  testing::WriteFile(entry + "/pck_crl.der", "not a CRL");
  auto r = FetchWith(Options(pcs.url(), cache.path()));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->source, CollateralSource::kNetwork);
  EXPECT_EQ(ReadFile(entry + "/pck_crl.der").value(), ReadTestdata(kDir + "pckcrl"));

  testing::WriteFile(entry + "/tcb_info.json", "{}");
  auto o = Options("", cache.path());
  o.offline = true;
  auto offline = FetchWith(o);
  ASSERT_FALSE(offline.ok());
  EXPECT_NE(offline.error().find("unusable entry"), std::string::npos) << offline.error();
}

TEST(PcsClient, OfflineUsesOnlyTheCache) {
  TempDir cache;
  auto o = Options("", cache.path());
  o.offline = true;
  auto missing = FetchWith(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("offline: no usable cached collateral for FMSPC 50806f000000 "
                                 "(platform CA)"),
            std::string::npos)
      << missing.error();
  EXPECT_NE(missing.error().find("no entry"), std::string::npos) << missing.error();

  {
    FakePcs pcs;
    ASSERT_TRUE(FetchWith(Options(pcs.url(), cache.path())).ok());
  }  // the server is gone
  auto hit = FetchWith(o);
  ASSERT_TRUE(hit.ok()) << hit.error();
  EXPECT_EQ(hit->source, CollateralSource::kCache);
  ExpectSampleCollateral(hit->collateral);

  PcsClientOptions no_cache;
  no_cache.offline = true;
  auto refused = PcsClient::Create(no_cache);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("cache directory"), std::string::npos);
}

TEST(PcsClient, OfflineExpiredFailsUnlessStaleIsAllowed) {
  TempDir cache;
  {
    FakePcs pcs;
    ASSERT_TRUE(FetchWith(Options(pcs.url(), cache.path())).ok());
  }
  auto o = Options("", cache.path());
  o.offline = true;
  o.now = kNextUpdate + 86400;
  auto expired = FetchWith(o);
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.error().find("expired at 2023-07-08T07:24:59Z (now 2023-07-09T07:24:59Z)"),
            std::string::npos)
      << expired.error();
  EXPECT_NE(expired.error().find("allow stale"), std::string::npos) << expired.error();

  o.allow_stale = true;
  auto stale = FetchWith(o);
  ASSERT_TRUE(stale.ok()) << stale.error();
  EXPECT_EQ(stale->source, CollateralSource::kStaleCache);
  EXPECT_EQ(stale->next_update, kNextUpdate);
  ExpectSampleCollateral(stale->collateral);
}

TEST(PcsClient, NotFoundNamesUrlStatusAndMeaningWithoutRetry) {
  FakePcs pcs;
  auto r = FetchWith(Options(pcs.url()), "00906ed50000");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("GET " + pcs.url() +
                           "/tdx/certification/v4/tcb?fmspc=00906ed50000: "
                           "HTTP 404 (no TCB info for this FMSPC); Request-ID req-1"),
            std::string::npos)
      << r.error();
  EXPECT_EQ(pcs.targets().size(), 1u);
}

TEST(PcsClient, ServerErrorsAreRetriedThenReported) {
  FakePcs pcs;
  pcs.set_intercept([](const httplib::Request& req, httplib::Response& res) {
    if (req.path != "/tdx/certification/v4/qe/identity") return false;
    res.status = 500;
    return true;
  });
  auto r = FetchWith(Options(pcs.url()));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("/tdx/certification/v4/qe/identity: HTTP 500 (internal server error)"),
            std::string::npos)
      << r.error();
  EXPECT_NE(r.error().find("gave up after 3 attempts"), std::string::npos) << r.error();
  EXPECT_EQ(pcs.count("/tdx/certification/v4/qe/identity"), 3u);
}

TEST(PcsClient, TransientServerErrorRecovers) {
  FakePcs pcs;
  std::atomic<int> failures{2};
  pcs.set_intercept([&](const httplib::Request& req, httplib::Response& res) {
    if (req.path != "/sgx/certification/v4/pckcrl" || failures-- <= 0) return false;
    res.status = 503;
    return true;
  });
  auto r = FetchWith(Options(pcs.url()));
  ASSERT_TRUE(r.ok()) << r.error();
  ExpectSampleCollateral(r->collateral);
  EXPECT_EQ(pcs.count("/sgx/certification/v4/pckcrl"), 3u);
}

TEST(PcsClient, TooManyRequestsWaitsForRetryAfter) {
  FakePcs pcs;
  std::atomic<int> failures{1};
  pcs.set_intercept([&](const httplib::Request& req, httplib::Response& res) {
    if (req.path != "/tdx/certification/v4/tcb" || failures-- <= 0) return false;
    res.status = 429;
    res.set_header("Retry-After", "1");
    return true;
  });
  auto start = std::chrono::steady_clock::now();
  auto r = FetchWith(Options(pcs.url()));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(950));
  EXPECT_EQ(pcs.count("/tdx/certification/v4/tcb"), 2u);
}

TEST(PcsClient, TooManyRequestsWithLongRetryAfterFailsAtOnce) {
  FakePcs pcs;
  pcs.set_intercept([](const httplib::Request& req, httplib::Response& res) {
    if (req.path != "/tdx/certification/v4/tcb") return false;
    res.status = 429;
    res.set_header("Retry-After", "3600");
    return true;
  });
  auto r = FetchWith(Options(pcs.url()));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("HTTP 429 (too many requests); Request-ID req-1; Retry-After 3600 s is "
                           "longer than the retry limit of 60 s"),
            std::string::npos)
      << r.error();
  EXPECT_EQ(pcs.targets().size(), 1u);
}

TEST(PcsClient, LegacyTcbInfoIssuerChainHeader) {
  FakePcs pcs;
  pcs.tcb_chain_header = "SGX-TCB-Info-Issuer-Chain";
  auto r = FetchWith(Options(pcs.url()));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->collateral.tcb_info_issuer_chain, Text(kDir + "tcb_info_issuer_chain.pem"));
}

TEST(PcsClient, UrlEncodedHeaderIsDecoded) {
  // PEM's '+', '/', '=' and newlines all arrive escaped; '+' must not turn into a space.
  std::string pem = Text(kDir + "tcb_info_issuer_chain.pem");
  std::string encoded = UrlEncode(pem);
  ASSERT_NE(encoded.find("%2B"), std::string::npos);
  ASSERT_NE(encoded.find("%0A"), std::string::npos);
  FakePcs pcs;
  auto r = FetchWith(Options(pcs.url()));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->collateral.tcb_info_issuer_chain, pem);
}

TEST(PcsClient, MissingOrBadIssuerChainHeaderIsAnError) {
  FakePcs pcs;
  pcs.tcb_chain_header = "X-Other";
  auto r = FetchWith(Options(pcs.url()));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("has no TCB-Info-Issuer-Chain header"), std::string::npos) << r.error();

  FakePcs bad;
  bad.qe_chain_ = "not%2";
  auto r2 = FetchWith(Options(bad.url()));
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().find("SGX-Enclave-Identity-Issuer-Chain"), std::string::npos) << r2.error();
}

TEST(PcsClient, OversizedBodyIsRejected) {
  FakePcs pcs;
  auto o = Options(pcs.url());
  o.http.max_response_size = 2000;  // the TCB info response is 2401 bytes
  auto r = FetchWith(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("response body exceeds the limit of 2000 bytes"), std::string::npos)
      << r.error();
  EXPECT_EQ(pcs.targets().size(), 1u);  // not retried

  // Without Content-Length (chunked) the limit applies while reading.
  pcs.set_intercept([](const httplib::Request& req, httplib::Response& res) {
    if (req.path != "/tdx/certification/v4/qe/identity") return false;
    res.set_chunked_content_provider("application/json", [](size_t, httplib::DataSink& sink) {
      std::string chunk(1024, ' ');
      for (int i = 0; i < 8; ++i)
        if (!sink.write(chunk.data(), chunk.size())) return false;
      sink.done();
      return true;
    });
    return true;
  });
  o.http.max_response_size = 4096;
  auto chunked = FetchWith(o);
  ASSERT_FALSE(chunked.ok());
  EXPECT_NE(chunked.error().find("/qe/identity: response body exceeds the limit of 4096 bytes"),
            std::string::npos)
      << chunked.error();
}

TEST(PcsClient, RootCaCrlAsHexTextOrDer) {
  for (auto mode : {FakePcs::RootCrlMode::kHex, FakePcs::RootCrlMode::kDer}) {
    FakePcs pcs;
    pcs.root_mode = mode;
    auto r = FetchWith(Options(pcs.url()));
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r->collateral.root_ca_crl, ReadTestdata(kDir + "rootcrl.der"));
  }
}

TEST(PcsClient, RootCaCrlFallbackOnlyWhenConfiguredOrIntel) {
  FakePcs pcs;
  pcs.root_mode = FakePcs::RootCrlMode::kNotFound;
  auto none = FetchWith(Options(pcs.url()));  // a PCCS: no fallback
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().find("/sgx/certification/v4/rootcacrl: HTTP 404 (no root CA CRL here)"),
            std::string::npos)
      << none.error();
  EXPECT_EQ(pcs.count("/IntelSGXRootCA.der"), 0u);

  auto o = Options(pcs.url());
  o.root_ca_crl_fallback_url = pcs.url() + "/IntelSGXRootCA.der";
  auto r = FetchWith(o);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->collateral.root_ca_crl, ReadTestdata(kDir + "rootcrl.der"));
  EXPECT_EQ(pcs.count("/IntelSGXRootCA.der"), 1u);
}

// The transport seam: Intel PCS has no /rootcacrl, so for its host (and only there) the root CA
// CRL comes from the CRL distribution point. No network: a fake transport answers.
class ScriptedTransport : public HttpTransport {
 public:
  Result<HttpResponse> Get(const std::string& url, const HttpHeaders&) override {
    urls.push_back(url);
    HttpResponse r;
    r.status = 200;
    auto chain = [](const std::string& name) { return UrlEncode(Text(kDir + name)); };
    if (url.find("/tdx/certification/v4/tcb?") != std::string::npos) {
      r.headers = {{"tcb-info-issuer-chain", chain("tcb_info_issuer_chain.pem")}};
      r.body = Text(kDir + "sample_tcbInfo_response");
    } else if (url.find("/qe/identity") != std::string::npos) {
      r.headers = {{"SGX-Enclave-Identity-Issuer-Chain", chain("qe_identity_issuer_chain.pem")}};
      r.body = Text(kDir + "sample_qeIdentity_response");
    } else if (url.find("/pckcrl?") != std::string::npos) {
      r.headers = {{"SGX-PCK-CRL-Issuer-Chain", chain("pck_crl_issuer_chain.pem")}};
      r.body = Text(kDir + "pckcrl");
    } else if (url == kIntelRootCaCrlUrl) {
      r.body = Text(kDir + "rootcrl.der");
    } else {
      r.status = 404;
    }
    return r;
  }
  std::vector<std::string> urls;
};

TEST(PcsClient, IntelPcsRootCaCrlFromTheCrlDistributionPoint) {
  auto transport = std::make_shared<ScriptedTransport>();
  auto o = Options("https://api.trustedservices.intel.com/sgx/certification/v4/");
  auto client = PcsClient::Create(o, transport);
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client->base_url(), "https://api.trustedservices.intel.com");
  auto r = client->Fetch(kFmspc, "platform");
  ASSERT_TRUE(r.ok()) << r.error();
  ExpectSampleCollateral(r->collateral);
  EXPECT_EQ(transport->urls,
            (std::vector<std::string>{
                "https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=50806f000000",
                "https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity",
                "https://api.trustedservices.intel.com/sgx/certification/v4/"
                "pckcrl?ca=platform&encoding=der",
                "https://api.trustedservices.intel.com/sgx/certification/v4/rootcacrl",
                kIntelRootCaCrlUrl,
            }));
}

TEST(PcsClient, WrongFmspcInResponseIsNotCached) {
  FakePcs pcs;
  pcs.serve_any_fmspc = true;
  TempDir cache;
  auto r = FetchWith(Options(pcs.url(), cache.path()), "00906ed50000");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("tcbInfo is for FMSPC 50806f000000, not 00906ed50000"),
            std::string::npos)
      << r.error();
  EXPECT_FALSE(std::filesystem::exists(cache.path() + "/00906ed50000-platform"));
}

TEST(PcsClient, ConnectionRefusedIsRetriedThenReported) {
  // A port that was just free: bound, never listened on, closed.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  close(fd);
  auto r = FetchWith(Options("http://127.0.0.1:" + std::to_string(port)));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("/tdx/certification/v4/tcb?fmspc=50806f000000: cannot connect"),
            std::string::npos)
      << r.error();
  EXPECT_NE(r.error().find("gave up after 3 attempts"), std::string::npos) << r.error();
}

TEST(PcsClient, PckCertCarriesTheApiKey) {
  FakePcs pcs;
  auto quote = evidence::ParseQuote(ReadTestdata(kDir + "quote.bin"));
  ASSERT_TRUE(quote.ok()) << quote.error();
  std::string chain(*evidence::PckCertChainPem(*quote));
  pcs.pck_leaf_pem = chain.substr(0, chain.find("-----END CERTIFICATE-----") + 25) + "\n";

  auto o = Options(pcs.url());
  o.api_key = "secret-key";
  auto client = PcsClient::Create(o);
  ASSERT_TRUE(client.ok()) << client.error();
  auto cert = client->FetchPckCert({{"encrypted_ppid", std::string(768, 'a')},
                                    {"cpusvn", "03030202020100020000000000000000"},
                                    {"pcesvn", "0b00"},
                                    {"pceid", "0000"}});
  ASSERT_TRUE(cert.ok()) << cert.error();
  EXPECT_EQ(cert->pck_cert_pem, pcs.pck_leaf_pem);
  EXPECT_EQ(cert->issuer_chain, Text(kDir + "pck_crl_issuer_chain.pem"));
  EXPECT_EQ(cert->fmspc, "50806F000000");
  EXPECT_EQ(cert->ca_type, "platform");
  EXPECT_EQ(pcs.api_keys_seen(),
            (std::map<std::string, std::string>{{"/sgx/certification/v4/pckcert", "secret-key"}}));
  EXPECT_EQ(pcs.targets().back().rfind("/sgx/certification/v4/pckcert?encrypted_ppid=aaa", 0), 0u);

  o.api_key = "wrong";
  auto denied = PcsClient::Create(o)->FetchPckCert({});
  ASSERT_FALSE(denied.ok());
  EXPECT_NE(denied.error().find("HTTP 401 (missing or invalid API key"), std::string::npos)
      << denied.error();
}


TEST(PcsClient, HttpsWithTrustedTestCa) {
  tdxvirt::testing::TlsIdentity id = tdxvirt::testing::MakeLoopbackTlsIdentity("tdxvirt test PCCS");
  ASSERT_FALSE(id.cert_pem.empty());
  FakePcs pcs(std::make_unique<httplib::SSLServer>(id.cert.get(), id.key.get()));
  ASSERT_EQ(pcs.url().rfind("https://127.0.0.1:", 0), 0u);

  auto untrusted = FetchWith(Options(pcs.url()));
  ASSERT_FALSE(untrusted.ok());
  EXPECT_NE(untrusted.error().find("not trusted"), std::string::npos) << untrusted.error();

  auto o = Options(pcs.url());
  o.http.extra_ca_pem = id.cert_pem;
  auto r = FetchWith(o);
  ASSERT_TRUE(r.ok()) << r.error();
  ExpectSampleCollateral(r->collateral);

  TempDir tmp;
  testing::WriteFile(tmp.File("ca.pem"), id.cert_pem);
  auto with_file = Options(pcs.url());
  with_file.http.ca_file = tmp.File("ca.pem");
  auto r2 = FetchWith(with_file);
  ASSERT_TRUE(r2.ok()) << r2.error();

  with_file.http.ca_file = tmp.File("missing.pem");
  auto r3 = FetchWith(with_file);
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().find("cannot read CA file"), std::string::npos) << r3.error();
}

// `tdxvirt collateral fetch` against the loopback server.
TEST(CollateralFetchCli, WritesABundleThatParsesBack) {
  FakePcs pcs;
  TempDir tmp;
  std::string quote = TestdataPath(kDir + "quote.bin");
  auto run = RunTdxvirt("collateral fetch --quote " + quote + " --pcs " + pcs.url() + " --out " +
                        tmp.File("bundle.json") + " --cache-dir " + tmp.File("cache") +
                        " --at 2023-07-01T01:00:00Z");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto summary = nlohmann::json::parse(run.out);
  EXPECT_EQ(summary["fmspc"], kFmspc);
  EXPECT_EQ(summary["pck_ca_type"], "platform");
  EXPECT_EQ(summary["source"], "network");
  EXPECT_EQ(summary["next_update"], "2023-07-08T07:24:59Z");
  auto text = ReadFile(tmp.File("bundle.json"));
  ASSERT_TRUE(text.ok()) << text.error();
  auto bundle = ParseCollateralBundle(AsString(*text));
  ASSERT_TRUE(bundle.ok()) << bundle.error();
  ExpectSampleCollateral(*bundle);
  EXPECT_EQ(pcs.targets().size(), 4u);

  // Offline from the cache, into a directory of raw responses.
  auto offline =
      RunTdxvirt("collateral fetch --quote " + quote + " --offline --out " + tmp.File("raw") +
                 "/ --cache-dir " + tmp.File("cache") + " --at 2023-07-02T00:00:00Z");
  ASSERT_EQ(offline.exit_code, 0) << offline.err;
  EXPECT_EQ(nlohmann::json::parse(offline.out)["source"], "cache");
  auto dir = LoadCollateralDirectory(tmp.File("raw"));
  ASSERT_TRUE(dir.ok()) << dir.error();
  ExpectSampleCollateral(*dir);
  EXPECT_EQ(pcs.targets().size(), 4u);

  // Expired: refused offline unless --allow-stale.
  std::string late = "collateral fetch --quote " + quote + " --offline --out " +
                     tmp.File("late.json") + " --cache-dir " + tmp.File("cache") +
                     " --at 2023-08-01T00:00:00Z";
  auto expired = RunTdxvirt(late);
  EXPECT_EQ(expired.exit_code, 2);
  EXPECT_NE(expired.err.find("expired at 2023-07-08T07:24:59Z"), std::string::npos) << expired.err;
  auto stale = RunTdxvirt(late + " --allow-stale");
  ASSERT_EQ(stale.exit_code, 0) << stale.err;
  EXPECT_EQ(nlohmann::json::parse(stale.out)["source"], "stale-cache");
  EXPECT_TRUE(ParseCollateralBundle(AsString(ReadFile(tmp.File("late.json")).value())).ok());
}

TEST(CollateralFetchCli, ErrorsExitTwo) {
  FakePcs pcs;
  TempDir tmp;
  std::string quote = TestdataPath(kDir + "quote.bin");
  auto no_source = RunTdxvirt("collateral fetch --quote " + quote + " --out " + tmp.File("b.json"));
  EXPECT_EQ(no_source.exit_code, 2);
  EXPECT_NE(no_source.err.find("--pcs URL or --offline"), std::string::npos) << no_source.err;

  auto no_cache = RunTdxvirt("collateral fetch --quote " + quote + " --offline --out " +
                             tmp.File("b.json") + " --cache-dir " + tmp.File("empty"));
  EXPECT_EQ(no_cache.exit_code, 2);
  EXPECT_NE(no_cache.err.find("offline: no usable cached collateral"), std::string::npos)
      << no_cache.err;

  auto not_found = RunTdxvirt("collateral fetch --fmspc 00906ed50000 --ca platform --pcs " +
                              pcs.url() + " --out " + tmp.File("b.json"));
  EXPECT_EQ(not_found.exit_code, 2);
  EXPECT_NE(not_found.err.find("HTTP 404 (no TCB info for this FMSPC)"), std::string::npos)
      << not_found.err;

  auto bad_at = RunTdxvirt("collateral fetch --quote " + quote + " --pcs " + pcs.url() + " --out " +
                           tmp.File("b.json") + " --at yesterday");
  EXPECT_EQ(bad_at.exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(tmp.File("b.json")));

  auto bad_quote = RunTdxvirt("collateral fetch --quote " + tmp.File("nope") + " --pcs " +
                              pcs.url() + " --out " + tmp.File("b.json"));
  EXPECT_EQ(bad_quote.exit_code, 2);

  auto help = RunTdxvirt("collateral fetch --help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag :
       {"--quote", "--pcs", "--offline", "--out", "--cache-dir", "--at", "--api-key", "--ca-file"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
}

}  // namespace
}  // namespace tdxvirt::verify
