#include "service/appraisal.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <chrono>
#include <map>

#include "common/hex.h"
#include "common/openssl.h"
#include "common/time.h"
#include "evidence/pck_cert.h"

namespace tdxvirt::service {

namespace {

ByteArray<48> NonceMac(const ByteArray<48>& key, const Bytes& val, const Bytes& iat) {
  Bytes msg(val);
  msg.insert(msg.end(), iat.begin(), iat.end());
  ByteArray<48> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha384(), key.data(), int(key.size()), msg.data(), msg.size(), mac.data(), &len);
  return mac;
}

std::string RandomUuid() {
  uint8_t b[16];
  RAND_bytes(b, sizeof b);
  b[6] = uint8_t((b[6] & 0x0f) | 0x40);
  b[8] = uint8_t((b[8] & 0x3f) | 0x80);
  std::string h = ToHex(ByteSpan(b, sizeof b));
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
         h.substr(20);
}

AttestOutcome Fail(int status, std::string outcome, std::string message) {
  AttestOutcome o;
  o.status = status;
  o.outcome = std::move(outcome);
  o.message = std::move(message);
  return o;
}

}  // namespace

// Intel's C client sends quote, runtime_data and user_data of v2 bodies in the URL-safe alphabet
// with '=' padding (ita-ecosystem.md §2); everything else is standard. One value may use one
// alphabet, not both.
Result<Bytes> DecodeEitherBase64(std::string_view text, const std::string& field) {
  bool url = text.find_first_of("-_") != std::string_view::npos;
  if (!url) return Base64Decode(text, field);
  if (text.find_first_of("+/") != std::string_view::npos)
    return Error{field + ": mixes the standard (+ /) and URL-safe (- _) base64 alphabets; use one"};
  std::string std_text(text);
  for (char& c : std_text) c = c == '-' ? '+' : c == '_' ? '/' : c;
  auto out = Base64Decode(std_text, field);
  if (!out.ok()) {
    std::string e = out.error();
    if (auto at = e.find("not standard base64"); at != std::string::npos)
      e.replace(at, 19, "not URL-safe base64");
    return Error{e};
  }
  return out;
}

namespace {

Result<Bytes> B64Field(const nlohmann::json& obj, const char* key, const std::string& prefix,
                       size_t max) {
  if (!obj.contains(key) || obj[key].is_null()) return Bytes{};
  const auto& v = obj[key];
  std::string field = prefix + key;
  if (!v.is_string()) return Error{field + ": expected a base64 string"};
  if (v.get_ref<const std::string&>().size() > max / 3 * 4 + 4)
    return Error{field + ": larger than " + std::to_string(max) + " bytes"};
  return DecodeEitherBase64(v.get_ref<const std::string&>(), field);
}

// Evidence claims shared by v1 (top level) and v2 (under "tdx").
nlohmann::json TdxClaims(const evidence::Quote& q, const verify::VerificationResult& vr,
                         const AttestRequest& req, ByteSpan raw_quote, const nlohmann::json& collateral_hashes) {
  const auto& td = q.body.td;
  nlohmann::json c;
  c["attester_type"] = "TDX";
  c["attester_tcb_status"] = vr.tcb_status ? std::string(verify::TcbStatusName(*vr.tcb_status)) : "";
  if (!vr.tcb_date.empty()) c["attester_tcb_date"] = vr.tcb_date;
  // Absent when empty, as in Intel's tokens (Go omitempty; the pilot TDX token has none).
  if (!vr.advisory_ids.empty()) c["attester_advisory_ids"] = vr.advisory_ids;
  if (!req.runtime_data.empty()) {
    c["attester_held_data"] = Base64Encode(req.runtime_data);
    auto j = nlohmann::json::parse(AsString(req.runtime_data), nullptr, false);
    if (j.is_object()) c["attester_runtime_data"] = j;
  }
  if (!req.user_data.empty()) c["attester_user_data"] = Base64Encode(req.user_data);
  c["dbgstat"] = td.debug() ? "enabled" : "disabled";
  c["tdx_is_debuggable"] = td.debug();
  c["tdx_mrtd"] = ToHex(td.mr_td);
  for (int i = 0; i < 4; ++i) c["tdx_rtmr" + std::to_string(i)] = ToHex(td.rtmr[i]);
  c["tdx_mrconfigid"] = ToHex(td.mr_config_id);
  c["tdx_mrowner"] = ToHex(td.mr_owner);
  c["tdx_mrownerconfig"] = ToHex(td.mr_owner_config);
  c["tdx_mrseam"] = ToHex(q.body.mr_seam);
  c["tdx_mrsignerseam"] = ToHex(q.body.mr_signer_seam);
  c["tdx_seam_attributes"] = ToHex(q.body.seam_attributes);
  c["tdx_td_attributes"] = ToHex(td.td_attributes);
  c["tdx_td_attributes_debug"] = td.debug();
  c["tdx_td_attributes_septve_disable"] = td.sept_ve_disable();
  c["tdx_td_attributes_protection_keys"] = bool(td.attributes() & evidence::kTdAttrPks);
  c["tdx_td_attributes_key_locker"] = bool(td.attributes() & evidence::kTdAttrKl);
  c["tdx_td_attributes_perfmon"] = bool(td.attributes() & evidence::kTdAttrPerfmon);
  c["tdx_xfam"] = ToHex(td.xfam);
  c["tdx_tee_tcb_svn"] = ToHex(q.body.tee_tcb_svn);
  c["tdx_seamsvn"] = SeamSvn(q.body.tee_tcb_svn);
  c["tdx_report_data"] = ToHex(q.body.report_data);
  c["tdx_collateral"] = collateral_hashes;
  c["tdx_collateral"]["quotehash"] = ToHex(ossl::Sha256(raw_quote));
  return c;
}

}  // namespace

nlohmann::json NonceToJson(const VerifierNonce& n) {
  return {{"val", Base64Encode(n.val)}, {"iat", Base64Encode(n.iat)},
          {"signature", Base64Encode(n.signature)}};
}

Result<VerifierNonce> NonceFromJson(const nlohmann::json& j, std::string_view field) {
  std::string f(field);
  if (!j.is_object()) return Error{f + ": expected an object {val, iat, signature}"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "val" && it.key() != "iat" && it.key() != "signature")
      return Error{f + ": unknown field \"" + it.key() + "\""};
  VerifierNonce n;
  auto val = B64Field(j, "val", f + ".", 256);
  auto iat = B64Field(j, "iat", f + ".", 256);
  auto sig = B64Field(j, "signature", f + ".", 1024);
  if (!val.ok()) return Error{val.error()};
  if (!iat.ok()) return Error{iat.error()};
  if (!sig.ok()) return Error{sig.error()};
  if (val->empty() || iat->empty() || sig->empty())
    return Error{f + ": val, iat and signature are all required (as returned by GET /appraisal/v2/nonce)"};
  n.val = std::move(*val);
  n.iat = std::move(*iat);
  n.signature = std::move(*sig);
  return n;
}

evidence::ReportData BindReportData(const VerifierNonce* nonce, ByteSpan runtime_data) {
  evidence::ReportData rd{};
  if (!nonce && runtime_data.empty()) return rd;
  Bytes msg;
  if (nonce) {
    msg.insert(msg.end(), nonce->val.begin(), nonce->val.end());
    msg.insert(msg.end(), nonce->iat.begin(), nonce->iat.end());
  }
  msg.insert(msg.end(), runtime_data.begin(), runtime_data.end());
  return ossl::Sha512(msg);
}

Result<AttestRequest> ParseAttestRequest(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) return Error{"request body: malformed JSON"};
  if (!j.is_object()) return Error{"request body: expected a JSON object"};
  AttestRequest r;
  const nlohmann::json* evidence = &j;
  std::string prefix;
  static const char* kEvidenceKeys[] = {"quote", "runtime_data", "user_data", "verifier_nonce",
                                        "event_log"};
  auto is_evidence_key = [](const std::string& k) {
    for (const char* e : kEvidenceKeys)
      if (k == e) return true;
    return false;
  };
  // JSON null means absent for every optional field (Python sends null for what the caller left
  // unset, Go composite sends runtime_data null; ita-ecosystem.md §2).
  auto given = [&j](const char* k) { return j.contains(k) && !j[k].is_null(); };
  bool nested = given("tdx");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (it.value().is_null()) continue;  // absent
    if (k == "tdx" || k == "policy_ids" || k == "policy_must_match" || k == "token_signing_alg")
      continue;
    if (!nested && is_evidence_key(k)) continue;
    if (k == "tpm" || k == "nvgpu")
      return Error{k + ": this service appraises TDX evidence only; omit \"" + k + "\""};
    return Error{"request body: unknown field \"" + k + "\"" +
                 (nested && is_evidence_key(k) ? " (in the nested form it belongs inside \"tdx\")" : "")};
  }
  if (nested) {
    if (!j["tdx"].is_object()) return Error{"tdx: expected an object {quote, runtime_data, ...}"};
    evidence = &j["tdx"];
    prefix = "tdx.";
    r.evidence_prefix = prefix;
    for (auto it = evidence->begin(); it != evidence->end(); ++it)
      if (!is_evidence_key(it.key()) && !it.value().is_null())
        return Error{"tdx: unknown field \"" + it.key() + "\""};
  }
  auto quote = B64Field(*evidence, "quote", prefix, kMaxQuoteSize);
  if (!quote.ok()) return Error{quote.error()};
  if (quote->empty()) return Error{prefix + "quote: missing; send the TD quote in base64"};
  r.quote = std::move(*quote);
  auto rt = B64Field(*evidence, "runtime_data", prefix, 64 << 10);
  if (!rt.ok()) return Error{rt.error()};
  r.runtime_data = std::move(*rt);
  auto ud = B64Field(*evidence, "user_data", prefix, 64 << 10);
  if (!ud.ok()) return Error{ud.error()};
  r.user_data = std::move(*ud);
  auto el = B64Field(*evidence, "event_log", prefix, 1 << 20);
  if (!el.ok()) return Error{el.error()};
  r.event_log = std::move(*el);
  if (evidence->contains("verifier_nonce") && !(*evidence)["verifier_nonce"].is_null()) {
    auto n = NonceFromJson((*evidence)["verifier_nonce"], prefix + "verifier_nonce");
    if (!n.ok()) return Error{n.error()};
    r.verifier_nonce = std::move(*n);
  }
  if (given("policy_ids")) {
    const auto& p = j["policy_ids"];
    if (!p.is_array()) return Error{"policy_ids: expected a list of policy ids (UUIDs)"};
    if (p.size() > kMaxPolicyIds)
      return Error{"policy_ids: " + std::to_string(p.size()) + " ids; at most " +
                   std::to_string(kMaxPolicyIds) + " per request (Trust Authority's limit)"};
    for (size_t i = 0; i < p.size(); ++i) {
      std::string field = "policy_ids[" + std::to_string(i) + "]";
      if (!p[i].is_string()) return Error{field + ": expected a UUID string"};
      auto id = ParsePolicyId(p[i].get_ref<const std::string&>());
      if (!id.ok()) return Error{field + ": " + id.error()};
      r.policy_ids.push_back(std::move(*id));
    }
  }
  if (given("policy_must_match")) {
    if (!j["policy_must_match"].is_boolean()) return Error{"policy_must_match: expected true or false"};
    r.policy_must_match = j["policy_must_match"].get<bool>();
  }
  if (given("token_signing_alg")) {
    if (!j["token_signing_alg"].is_string()) return Error{"token_signing_alg: expected \"PS384\" or \"RS256\""};
    auto alg = ParseJwsAlg(j["token_signing_alg"].get<std::string>());
    if (!alg.ok()) return Error{alg.error()};
    r.alg = *alg;
  }
  return r;
}

// ---- collateral sources ----

nlohmann::json CollateralHashes(const verify::Collateral& c) {
  auto sha = [](std::string_view text) { return ToHex(ossl::Sha256(AsBytes(text))); };
  std::string root_crl = sha(ToHex(c.root_ca_crl));
  const std::string& qe_chain = c.qe_identity_issuer_chain.empty() ? c.tcb_info_issuer_chain
                                                                   : c.qe_identity_issuer_chain;
  return {{"qeidcerthash", sha(qe_chain)},         {"qeidcrlhash", root_crl},
          {"qeidhash", sha(c.qe_identity)},        {"tcbinfocerthash", sha(c.tcb_info_issuer_chain)},
          {"tcbinfocrlhash", root_crl},            {"tcbinfohash", sha(c.tcb_info)}};
}

namespace {

class FileCollateralSource : public CollateralSource {
 public:
  explicit FileCollateralSource(AppraisalCollateral c) : c_(std::move(c)) {}
  Result<AppraisalCollateral> For(const evidence::Quote&, int64_t) override { return c_; }
  Status Usable(int64_t now, bool check_crl) const override {
    return verify::CollateralUsable(*c_.prepared, now, check_crl);
  }

 private:
  AppraisalCollateral c_;
};

class PcsCollateralSource : public CollateralSource {
 public:
  PcsCollateralSource(verify::PcsClient client, verify::TrustedRoot root)
      : client_(std::move(client)), root_(std::move(root)) {}

  Result<AppraisalCollateral> For(const evidence::Quote& q, int64_t now) override {
    auto pem = evidence::PckCertChainPem(q);
    if (!pem.ok()) return Error{"quote: no PCK certificate chain to find its collateral: " + pem.error()};
    auto chain = ossl::ParsePemChain(*pem);
    if (!chain.ok()) return Error{"quote: PCK certificate chain: " + chain.error()};
    auto ext = evidence::ExtractPckExtensions((*chain)[0].get());
    if (!ext.ok()) return Error{"quote: PCK certificate: " + ext.error()};
    std::string ca = evidence::PckCaType((*chain)[0].get());
    if (ca.empty()) ca = "platform";
    std::string key = verify::CacheKey(ToHex(ext->fmspc), ca);
    std::lock_guard<std::mutex> l(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && now < it->second.next_update) return it->second.collateral;
    auto fetched = client_.Fetch(ToHex(ext->fmspc), ca);
    if (!fetched.ok()) return Error{fetched.error()};  // names the FMSPC, the URL and the status
    Entry e{{verify::PreparedCollateral::Prepare(fetched->collateral, root_),
             CollateralHashes(fetched->collateral)},
            fetched->next_update};
    cache_[key] = e;
    last_ = e.collateral.prepared;
    return e.collateral;
  }
  // Known only once a quote has named an FMSPC: the collateral fetched last.
  Status Usable(int64_t now, bool check_crl) const override {
    std::lock_guard<std::mutex> l(mu_);
    if (!last_) return OkStatus();
    return verify::CollateralUsable(*last_, now, check_crl);
  }

 private:
  struct Entry {
    AppraisalCollateral collateral;
    int64_t next_update = 0;
  };
  verify::PcsClient client_;
  verify::TrustedRoot root_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> cache_;
  std::shared_ptr<const verify::PreparedCollateral> last_;
};

}  // namespace

Result<std::unique_ptr<CollateralSource>> NewFileCollateralSource(const std::string& path,
                                                                  const verify::TrustedRoot& root) {
  auto c = verify::LoadCollateral(path);
  if (!c.ok()) return Error{"--collateral " + path + ": " + c.error()};
  return std::unique_ptr<CollateralSource>(new FileCollateralSource(
      {verify::PreparedCollateral::Prepare(*c, root), CollateralHashes(*c)}));
}

Result<std::unique_ptr<CollateralSource>> NewPcsCollateralSource(verify::PcsClientOptions options,
                                                                 const verify::TrustedRoot& root) {
  auto client = verify::PcsClient::Create(std::move(options));
  if (!client.ok()) return Error{"--pcs: " + client.error()};
  return std::unique_ptr<CollateralSource>(new PcsCollateralSource(std::move(*client), root));
}

// ---- appraiser ----

Appraiser::Appraiser(const SigningKey& key, const verify::QuoteVerifier& verifier,
                     CollateralSource& collateral, PolicyStore* policies, AppraisalOptions options)
    : key_(key), verifier_(verifier), collateral_(collateral), policies_(policies),
      options_(std::move(options)) {
  if (options_.instance_id.empty()) options_.instance_id = RandomUuid();
  if (!options_.replay_store) options_.replay_store = replay::NewMemoryReplayStore(options_.max_replay_entries);
}

VerifierNonce Appraiser::IssueNonce(int64_t now) const {
  VerifierNonce n;
  n.val.resize(32);
  RAND_bytes(n.val.data(), int(n.val.size()));
  std::string iat = FormatRfc3339(now);
  n.iat.assign(iat.begin(), iat.end());
  auto mac = NonceMac(key_.nonce_mac_key(), n.val, n.iat);
  n.signature.assign(mac.begin(), mac.end());
  return n;
}

Status Appraiser::CheckNonce(const VerifierNonce& n, int64_t now) const {
  auto mac = NonceMac(key_.nonce_mac_key(), n.val, n.iat);
  if (n.signature.size() != mac.size() ||
      CRYPTO_memcmp(n.signature.data(), mac.data(), mac.size()) != 0)
    return Error{"verifier_nonce: signature does not verify: the nonce was not issued by this "
                 "service (or was altered); get one from GET /appraisal/v2/nonce of this service"};
  auto iat = ParseRfc3339(AsString(n.iat));
  if (!iat.ok()) return Error{"verifier_nonce.iat: not a time: " + iat.error()};
  if (*iat > now + options_.clock_skew_seconds)
    return Error{"verifier_nonce.iat: " + FormatRfc3339(*iat) + " is in the future; check the clocks"};
  if (now > *iat + options_.nonce_lifetime_seconds)
    return Error{"verifier_nonce: expired (issued " + FormatRfc3339(*iat) + ", valid for " +
                 std::to_string(options_.nonce_lifetime_seconds) + " s); get a fresh nonce"};
  return OkStatus();
}

AttestOutcome Appraiser::Attest(std::string_view body, int api_version, int64_t now) {
  Bytes reserved;
  AttestOutcome o = AttestOnce(body, api_version, now, reserved);
  if (o.status >= 500 && !reserved.empty()) {
    Status s = options_.replay_store->Release(reserved);
    if (!s.ok())
      o.message += "; the nonce stays used (replay store " + options_.replay_store->Describe() +
                   ": " + s.error() + "), so retry with a fresh nonce";
  }
  return o;
}

AttestOutcome Appraiser::AttestOnce(std::string_view body, int api_version, int64_t now, Bytes& reserved) {
  auto req = ParseAttestRequest(body);
  if (!req.ok()) return Fail(400, "bad_request", req.error());

  auto policy_set = policies_ ? policies_->Get() : std::make_shared<const PolicySet>();
  std::vector<const Policy*> policies;
  for (const auto& id : req->policy_ids) {
    auto it = policy_set->find(id);
    if (it == policy_set->end())
      return Fail(400, "bad_request",
                  "policy_ids: unknown policy id \"" + id + "\"; this service has " +
                      std::to_string(policy_set->size()) + " policies (see its policy directory)");
    policies.push_back(&it->second);
  }

  auto quote = evidence::ParseQuote(req->quote);
  if (!quote.ok()) return Fail(400, "quote", "quote: " + quote.error());

  const VerifierNonce* nonce = req->verifier_nonce ? &*req->verifier_nonce : nullptr;
  if (!nonce && options_.require_nonce)
    return Fail(400, "nonce", "verifier_nonce: required by this service; get one from GET /appraisal/v2/nonce");
  if (nonce) {
    if (Status s = CheckNonce(*nonce, now); !s.ok()) return Fail(400, "nonce", s.error());
    int64_t iat = *ParseRfc3339(AsString(nonce->iat));
    auto& store = *options_.replay_store;
    auto mark = store.Mark(nonce->val, iat, iat + options_.nonce_lifetime_seconds, now);
    if (mark.verdict == replay::Verdict::kReplayed)
      return Fail(400, "nonce",
                  "verifier_nonce: " +
                      (mark.detail.empty() ? "already used (a nonce is good for one attest request)" : mark.detail) +
                      "; get a fresh nonce");
    if (mark.verdict != replay::Verdict::kFresh)
      return Fail(503, "replay_store",
                  "replay store " + store.Describe() + " unavailable: " + mark.detail +
                      "; no token is issued without the nonce replay check, retry later");
    reserved = nonce->val;
  }

  if (nonce || !req->runtime_data.empty()) {
    evidence::ReportData want = BindReportData(nonce, req->runtime_data);
    if (want != quote->body.report_data)
      return Fail(400, "reportdata",
                  "quote: REPORTDATA is not SHA-512(verifier_nonce.val || verifier_nonce.iat || "
                  "runtime_data); the quote was not made for this nonce and runtime_data (REPORTDATA " +
                      ToHex(quote->body.report_data).substr(0, 16) + "..., expected " +
                      ToHex(want).substr(0, 16) + "...)");
  }

  auto prepared = collateral_.For(*quote, now);
  if (!prepared.ok()) return Fail(503, "collateral", prepared.error());
  auto t0 = std::chrono::steady_clock::now();
  verify::VerificationResult vr =
      verifier_.Verify(req->quote, *prepared->prepared, {.now = now, .check_crl = options_.check_crl});
  double verify_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!vr.verified) {
    auto o = Fail(400, "quote", "quote verification failed: " + vr.error);
    o.verify_seconds = verify_seconds;
    return o;
  }

  // The event log only after the quote verified: its RTMRs are then the TD's own to judge it by,
  // and a log sent with a bad quote costs nothing more than before.
  std::optional<MeasuredBoot> measured_boot;
  if (!req->event_log.empty()) {
    eventlog::Rtmrs rtmrs;
    for (int i = 0; i < 4; ++i) rtmrs[i] = quote->body.td.rtmr[i];
    auto mb = AppraiseEventLog(req->event_log, rtmrs, req->evidence_prefix + "event_log");
    if (!mb.ok()) {
      auto o = Fail(400, "event_log", mb.error());
      o.verify_seconds = verify_seconds;
      return o;
    }
    measured_boot = std::move(*mb);
  }

  std::string tcb = vr.tcb_status ? std::string(verify::TcbStatusName(*vr.tcb_status)) : "";
  nlohmann::json matched = nlohmann::json::array(), unmatched = nlohmann::json::array();
  std::string mismatch;
  for (const Policy* p : policies) {
    auto reasons = EvaluatePolicy(*p, quote->body, tcb, measured_boot ? &*measured_boot : nullptr);
    nlohmann::json e = {{"id", p->id}, {"version", p->version}, {"hash", p->hash}};
    if (reasons.empty()) {
      matched.push_back(e);
    } else {
      e["reasons"] = reasons;
      unmatched.push_back(e);
      for (const auto& r : reasons) mismatch += (mismatch.empty() ? "" : "; ") + p->id + ": " + r;
    }
  }
  if (req->policy_must_match && !unmatched.empty()) {
    auto o = Fail(403, "policy", "policy_must_match: " + mismatch);
    o.verify_seconds = verify_seconds;
    return o;
  }

  nlohmann::json claims;
  nlohmann::json tdx = TdxClaims(*quote, vr, *req, req->quote, prepared->hashes);
  if (nonce) tdx["verifier_nonce"] = NonceToJson(*nonce);
  if (measured_boot) tdx["tdx_measured_boot"] = MeasuredBootClaim(*measured_boot);
  if (api_version == 1) {
    claims = tdx;
    claims["ver"] = "1.0.0";
  } else {
    claims["tdx"] = tdx;
    claims["ver"] = "2.0.0";
  }
  claims["eat_profile"] = "https://portal.trustauthority.intel.com/eat_profile.html";
  claims["intuse"] = "generic";
  if (!policies.empty()) {
    // null, not [], for an empty list, as Intel writes them (C client's dev token); no policy
    // here defines claims (Intel's Rego policies can), hence policy_defined_claims null.
    claims["policy_ids_matched"] = matched.empty() ? nlohmann::json(nullptr) : matched;
    claims["policy_ids_unmatched"] = unmatched.empty() ? nlohmann::json(nullptr) : unmatched;
    claims["policy_defined_claims"] = nullptr;
  }
  claims["verifier_instance_ids"] = {options_.instance_id};
  claims["iss"] = options_.issuer;
  claims["iat"] = now;
  claims["nbf"] = now;
  claims["exp"] = now + options_.token_lifetime_seconds;
  claims["jti"] = RandomUuid();

  auto token = key_.Sign(claims, req->alg, options_.jku);
  if (!token.ok()) return Fail(500, "internal", "token signing failed");
  AttestOutcome o;
  o.outcome = unmatched.empty() ? "ok" : "ok_policy_unmatched";
  o.token = std::move(*token);
  o.verify_seconds = verify_seconds;
  o.claims = std::move(claims);
  return o;
}

}  // namespace tdxvirt::service
