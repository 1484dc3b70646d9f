// The key broker's per-transfer cost: WrapSecret (fresh SWK, AES-256-GCM, RSA-OAEP-SHA-256 to an
// RSA-3072 key) next to a bare RSA-OAEP encryption of 32 bytes, its dominant part; and the policy
// decision (ClaimsFromToken + EvaluatePolicy on the real pilot TDX token with a measured-boot
// claim, against a policy pinning every field) next to parsing the claims JSON alone.
#include <benchmark/benchmark.h>

#include <openssl/rsa.h>

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "common/openssl.h"
#include "kbs/policy.h"
#include "kbs/wrap.h"

namespace {

using namespace tdxvirt;

EVP_PKEY* Key() {
  static ossl::PkeyPtr key(EVP_RSA_gen(3072));
  return key.get();
}

// Baseline: RSA-OAEP (SHA-256) of a 32-byte SWK, nothing else.
void BM_RsaOaepEncrypt(benchmark::State& state) {
  Bytes swk(32, 7);
  (void)Key();  // generated outside the timing
  for (auto _ : state) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(Key(), nullptr);
    size_t len = 0;
    EVP_PKEY_encrypt_init(ctx);
    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING);
    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256());
    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256());
    EVP_PKEY_encrypt(ctx, nullptr, &len, swk.data(), swk.size());
    Bytes out(len);
    EVP_PKEY_encrypt(ctx, out.data(), &len, swk.data(), swk.size());
    EVP_PKEY_CTX_free(ctx);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_RsaOaepEncrypt);

void BM_WrapSecret(benchmark::State& state) {
  Bytes secret(32, 9);
  (void)Key();
  for (auto _ : state) {
    auto w = kbs::WrapSecret(secret, Key());
    if (!w.ok()) state.SkipWithError(w.error().c_str());
    benchmark::DoNotOptimize(w);
  }
}
BENCHMARK(BM_WrapSecret);

const std::string& TokenText() {
  static const std::string text = [] {
    auto b = ReadFile(std::string(TDXVIRT_TESTDATA) + "/ita/kbs-pilot-tdx-token.payload.json");
    if (!b.ok()) throw std::runtime_error(b.error());
    auto j = nlohmann::json::parse(b->begin(), b->end());
    std::string d96(96, 'a');
    j["tdx_measured_boot"] = {{"rtmrs", {{"rtmr0", "match"}, {"rtmr1", "match"}, {"rtmr2", "match"}, {"rtmr3", "unexplained"}}},
                              {"secure_boot", true},
                              {"kernel", {{"digest", d96}}},
                              {"initrd", {{"digest", d96}}},
                              {"cmdline", nullptr}};
    return j.dump();
  }();
  return text;
}

// Baseline: parsing the claims JSON (what the token verifier has already done).
void BM_ParseClaimsJson(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(nlohmann::json::parse(TokenText()));
}
BENCHMARK(BM_ParseClaimsJson);

void BM_ClaimsAndEvaluatePolicy(benchmark::State& state) {
  auto j = nlohmann::json::parse(TokenText());
  auto c = kbs::ClaimsFromToken(j);
  if (!c.ok()) throw std::runtime_error(c.error());
  kbs::KeyTransferPolicy p;
  p.attributes.mrsignerseam = {c->tdx_mrsignerseam};
  p.attributes.mrseam = {c->tdx_mrseam};
  p.attributes.seamsvn = *c->tdx_seamsvn;
  p.attributes.mrtd = {std::string(96, 'b'), c->tdx_mrtd};
  for (size_t i = 0; i < 4; ++i) p.attributes.rtmr[i] = c->tdx_rtmr[i];
  p.attributes.enforce_tcb_upto_date = true;
  p.attributes.mrconfigid = {c->tdx_mrconfigid};
  p.attributes.tcb_status = {"UpToDate"};
  p.attributes.measured_boot = {{"kernel_digest", {std::string(96, 'a')}},
                                {"initrd_digest", {std::string(96, 'a')}},
                                {"secure_boot", true}};
  for (auto _ : state) {
    auto claims = kbs::ClaimsFromToken(j);
    auto d = kbs::EvaluatePolicy(p, *claims);
    if (!d.allowed) state.SkipWithError("policy refused");
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_ClaimsAndEvaluatePolicy);

}  // namespace

BENCHMARK_MAIN();
