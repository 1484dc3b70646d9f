// What a relying party pays to verify a token the way Intel's clients do, against the baseline of
// the signature check alone, in the same run:
//   BM_Baseline_TokenSignature   VerifyToken with the JWKS key (signature, exp, claims);
//   BM_TokenChainAndCrls         the same plus the x5c chain (leaf <- Signing CA <- Root CA) and
//                                both CRLs checked (CRLs held in memory: the CPU cost, not the
//                                network, which a cache or Intel's per-call fetch adds);
//   BM_SignCrl                   the service re-signing one CRL with 1,000 revocations (paid once
//                                per half-life or revocations change, not per request).
// All keys RSA-3072, as Trust Authority's. Report ratios against the baseline.
//
// Run: build/bench/bench_tokenpki --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <ctime>
#include <map>
#include <stdexcept>

#include "service/jose.h"
#include "service/token_chain.h"
#include "tokenpki/tokenpki.h"

namespace {

using namespace tdxvirt;

struct Setup {
  tokenpki::Pki pki;
  std::unique_ptr<service::SigningKey> key;
  std::string token, jwks;
  Bytes leaf_crl, root_crl;
  int64_t now = std::time(nullptr);
  Setup() {
    auto p = tokenpki::CreatePki({.public_url = "https://attestation.example", .key_bits = 3072});
    if (!p.ok()) throw std::runtime_error(p.error());
    pki = std::move(*p);
    auto k = service::SigningKey::FromTokenPki(pki);
    if (!k.ok()) throw std::runtime_error(k.error());
    key = std::make_unique<service::SigningKey>(std::move(*k));
    nlohmann::json claims = {{"iss", "bench"}, {"exp", now + 300}, {"iat", now}, {"nbf", now},
                             {"tdx_mrtd", std::string(96, 'a')}};
    token = *key->Sign(claims, service::JwsAlg::kPS384, "https://attestation.example/certs");
    jwks = key->jwks().dump();
    leaf_crl = *tokenpki::SignCrl(pki.signing_ca.get(), pki.signing_ca_key.get(), tokenpki::Issuer::kSigningCa,
                                  {}, now, now);
    root_crl = *tokenpki::SignCrl(pki.root_ca.get(), pki.root_ca_key.get(), tokenpki::Issuer::kRootCa, {},
                                  now, now);
  }
};

Setup& S() {
  static Setup s;
  return s;
}

struct MemoryCrls : service::CrlFetcher {
  Result<service::FetchedCrl> Fetch(const std::string& url) override {
    if (url.ends_with(tokenpki::kLeafCrlPath)) return service::FetchedCrl{S().leaf_crl, url};
    if (url.ends_with(tokenpki::kRootCrlPath)) return service::FetchedCrl{S().root_crl, url};
    return Error{"no CRL at " + url};
  }
};

service::VerifyTokenOptions Options() {
  service::VerifyTokenOptions vo;
  vo.issuer = "bench";
  vo.now = S().now;
  vo.expected_claims["tdx_mrtd"] = std::string(96, 'a');
  return vo;
}

void BM_Baseline_TokenSignature(benchmark::State& state) {
  auto vo = Options();
  for (auto _ : state) {
    auto r = service::VerifyToken(S().token, S().jwks, vo);
    if (!r.ok()) state.SkipWithError(r.error().c_str());
  }
}
BENCHMARK(BM_Baseline_TokenSignature)->Unit(benchmark::kMicrosecond);

void BM_TokenChainAndCrls(benchmark::State& state) {
  auto vo = Options();
  MemoryCrls crls;
  service::ChainCheckOptions chain;
  chain.now = S().now;
  vo.jwk_key = [&](const nlohmann::json& jwk) { return service::CheckTokenSigningJwk(jwk, chain, crls); };
  for (auto _ : state) {
    auto r = service::VerifyToken(S().token, S().jwks, vo);
    if (!r.ok()) state.SkipWithError(r.error().c_str());
  }
}
BENCHMARK(BM_TokenChainAndCrls)->Unit(benchmark::kMicrosecond);

void BM_SignCrl(benchmark::State& state) {
  std::vector<tokenpki::Revocation> revoked;
  for (int i = 0; i < 1000; ++i) {
    char serial[17];
    snprintf(serial, sizeof serial, "%016x", 0x10000 + i);
    revoked.push_back({.serial = serial + std::string(serial).find_first_not_of('0'),
                       .issuer = tokenpki::Issuer::kSigningCa, .revoked_at = S().now});
  }
  for (auto _ : state) {
    auto crl = tokenpki::SignCrl(S().pki.signing_ca.get(), S().pki.signing_ca_key.get(),
                                 tokenpki::Issuer::kSigningCa, revoked, S().now, S().now);
    if (!crl.ok()) state.SkipWithError(crl.error().c_str());
  }
}
BENCHMARK(BM_SignCrl)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
