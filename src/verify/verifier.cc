#include "verify/verifier.h"

#include <openssl/x509v3.h>

#include <algorithm>

#include "common/hex.h"
#include "evidence/pck_cert.h"
#include "verify/tcb_status.h"

namespace tdxvirt::verify {

namespace {

using ossl::X509Ptr;

struct StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};

bool SameCert(X509* a, X509* b) { return X509_cmp(a, b) == 0; }

// Verifies that chain[0] chains to `root` through the other certificates. Time is not checked here
// (the caller checks every window against its own `now`), so the result can be cached.
Status VerifyChainToRoot(const std::vector<X509Ptr>& chain, const TrustedRoot& root) {
  if (chain.empty()) return Error{"empty certificate chain"};
  X509* last = chain.back().get();
  if (X509_check_issued(last, last) == X509_V_OK && !SameCert(last, root.cert()))
    return Error{"chain ends in the self-signed \"" + ossl::CommonName(X509_get_subject_name(last)) +
                 "\" (SHA-256 of the trusted root is " + root.fingerprint() +
                 "); it is not the trusted root. Pass --root with the right CA, or check the evidence"};
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx || X509_STORE_add_cert(store.get(), root.cert()) != 1)
    return Error{"OpenSSL: " + ossl::LastError()};
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted.get(), chain[i].get());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get()) != 1)
    return Error{"OpenSSL: " + ossl::LastError()};
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_NO_CHECK_TIME);
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ossl::LastError();
    return Error{std::string("certificate \"") +
                 ossl::CommonName(X509_get_subject_name(chain[0].get())) +
                 "\" does not chain to the trusted root: " + X509_verify_cert_error_string(err)};
  }
  // Every certificate supplied must be on the path OpenSSL built: a stray or altered extra
  // certificate (say, a corrupted copy of the root) is a tampered chain, not noise to skip.
  STACK_OF(X509)* path = X509_STORE_CTX_get0_chain(ctx.get());
  for (size_t i = 0; i < chain.size(); ++i) {
    bool on_path = false;
    for (int k = 0; k < sk_X509_num(path) && !on_path; ++k) on_path = SameCert(chain[i].get(), sk_X509_value(path, k));
    if (!on_path)
      return Error{"certificate " + std::to_string(i + 1) + " of the chain (\"" +
                   ossl::CommonName(X509_get_subject_name(chain[i].get())) +
                   "\") is not on the path to the trusted root; the chain was altered"};
  }
  return OkStatus();
}

Result<std::vector<PreparedCollateral::Window>> CertWindows(const std::vector<X509Ptr>& chain,
                                                            const std::string& check, bool crl = false) {
  std::vector<PreparedCollateral::Window> out;
  for (const auto& cert : chain) {
    auto nb = ossl::TimeToUnix(X509_get0_notBefore(cert.get()));
    auto na = ossl::TimeToUnix(X509_get0_notAfter(cert.get()));
    if (!nb.ok() || !na.ok()) return Error{"certificate with a malformed validity time"};
    out.push_back({check, "certificate \"" + ossl::CommonName(X509_get_subject_name(cert.get())) + "\"",
                   *nb, *na, crl});
  }
  return out;
}

bool Contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

}  // namespace

const Check* VerificationResult::find(std::string_view name) const {
  for (const auto& c : checks)
    if (c.name == name) return &c;
  return nullptr;
}

// ---- Collateral preparation -------------------------------------------------------------------

namespace {

class Preparer {
 public:
  Preparer(std::vector<PreparedCollateral::StaticCheck>& checks,
           std::vector<PreparedCollateral::Window>& windows)
      : checks_(checks), windows_(windows) {}

  void Add(std::string name, Status status, std::string ok_detail, bool crl = false) {
    checks_.push_back({{std::move(name), status.ok(), status.ok() ? std::move(ok_detail) : status.error()}, crl});
  }

  // A signing chain given as PEM: verified to the root, its leaf's CN checked. Returns the chain.
  std::optional<std::vector<X509Ptr>> Chain(const std::string& check, const std::string& pem,
                                            std::string_view expected_leaf_cn, const TrustedRoot& root,
                                            bool crl = false) {
    auto chain = ossl::ParsePemChain(pem);
    if (!chain.ok()) {
      Add(check, Error{"issuer chain: " + chain.error()}, "", crl);
      return std::nullopt;
    }
    // The signer may stand anywhere in the file (Intel's tools write chains root-first too).
    for (size_t i = 1; i < chain->size(); ++i)
      if (Contains(ossl::CommonName(X509_get_subject_name((*chain)[i].get())), expected_leaf_cn))
        std::swap((*chain)[0], (*chain)[i]);
    std::string cn = ossl::CommonName(X509_get_subject_name(chain->front().get()));
    if (!Contains(cn, expected_leaf_cn)) {
      Add(check,
          Error{"issuer chain has no \"" + std::string(expected_leaf_cn) +
                "\" certificate (it starts with \"" + cn + "\"); supply the chain PCS sent"},
          "", crl);
      return std::nullopt;
    }
    Status s = VerifyChainToRoot(*chain, root);
    if (!s.ok()) {
      Add(check, s, "", crl);
      return std::nullopt;
    }
    auto w = CertWindows(*chain, check + "_validity", crl);
    if (!w.ok()) {
      Add(check, Error{w.error()}, "", crl);
      return std::nullopt;
    }
    windows_.insert(windows_.end(), w->begin(), w->end());
    Add(check, OkStatus(), "\"" + cn + "\" chains to the trusted root", crl);
    return std::move(*chain);
  }

  // A CRL signed by `issuer`; returns it when the signature verifies.
  ossl::X509CrlPtr Crl(const std::string& name, const Bytes& der, X509* issuer) {
    if (der.empty()) {
      Add(name + "_signature",
          Error{"the collateral has no " + name + "; supply it (tdxvirt collateral fetch) or skip CRL "
                "checks with --no-crl"},
          "", true);
      return nullptr;
    }
    auto crl = ossl::ParseDerCrl(der);
    if (!crl.ok()) {
      Add(name + "_signature", Error{crl.error()}, "", true);
      return nullptr;
    }
    ossl::PkeyPtr key(X509_get_pubkey(issuer));
    if (!key || X509_CRL_verify(crl->get(), key.get()) != 1) {
      ossl::LastError();
      Add(name + "_signature",
          Error{"the " + name + " signature does not verify with the key of \"" +
                ossl::CommonName(X509_get_subject_name(issuer)) + "\"; the CRL is corrupt or forged"},
          "", true);
      return nullptr;
    }
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl->get()), X509_get_subject_name(issuer)) != 0) {
      Add(name + "_signature", Error{"the " + name + " issuer name differs from its signer"}, "", true);
      return nullptr;
    }
    Add(name + "_signature", OkStatus(),
        "signed by \"" + ossl::CommonName(X509_get_subject_name(issuer)) + "\"", true);
    auto this_update = ossl::TimeToUnix(X509_CRL_get0_lastUpdate(crl->get()));
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl->get());
    auto next_update = next ? ossl::TimeToUnix(next) : Result<int64_t>(Error{"no nextUpdate"});
    if (!this_update.ok() || !next_update.ok()) {
      Add(name + "_validity", Error{"the " + name + " lacks a well-formed thisUpdate/nextUpdate"}, "", true);
      return nullptr;
    }
    windows_.push_back({name + "_validity", name, *this_update, *next_update, /*crl=*/true});
    return std::move(*crl);
  }

 private:
  std::vector<PreparedCollateral::StaticCheck>& checks_;
  std::vector<PreparedCollateral::Window>& windows_;
};

// "<thing> is revoked by <crl>" when `serial` is on the CRL.
Status NotRevoked(X509_CRL* crl, X509* cert, const std::string& crl_name) {
  X509_REVOKED* entry = nullptr;
  if (X509_CRL_get0_by_cert(crl, &entry, cert) == 1)
    return Error{"\"" + ossl::CommonName(X509_get_subject_name(cert)) + "\" (serial " +
                 evidence::Summarize(cert).serial + ") is revoked by the " + crl_name};
  return OkStatus();
}

}  // namespace

std::shared_ptr<const PreparedCollateral> PreparedCollateral::Prepare(const Collateral& c,
                                                                      const TrustedRoot& root) {
  auto out = std::shared_ptr<PreparedCollateral>(new PreparedCollateral());
  out->root_fingerprint_ = root.fingerprint();
  out->pck_certificate_chain_ = c.pck_certificate_chain;
  Preparer p(out->checks_, out->windows_);

  // Root CA CRL, signed by the root itself.
  out->root_crl_ = p.Crl("root_ca_crl", c.root_ca_crl, root.cert());

  // PCK CRL, signed by the PCK Platform/Processor CA.
  if (c.pck_crl_issuer_chain.empty()) {
    p.Add("pck_crl_issuer_chain",
          Error{"the collateral has no PCK CRL issuer chain; supply it or use --no-crl"}, "", true);
  } else if (auto chain = p.Chain("pck_crl_issuer_chain", c.pck_crl_issuer_chain, "SGX PCK", root, true)) {
    out->pck_crl_ = p.Crl("pck_crl", c.pck_crl, chain->front().get());
    if (out->root_crl_) {
      p.Add("pck_crl_issuer_revocation", NotRevoked(out->root_crl_.get(), chain->front().get(), "root CA CRL"),
            "the PCK CA is not revoked by the root CA CRL", true);
    }
  }

  // TCB Info and QE Identity, each signed by the TCB Signing key over its exact bytes.
  struct Doc {
    const char* name;
    const std::string& chain;
    const std::string& body;
    const ByteArray<64>& signature;
  };
  for (const Doc& d : {Doc{"tcb_info", c.tcb_info_issuer_chain, c.tcb_info, c.tcb_info_signature},
                       Doc{"qe_identity", c.qe_identity_issuer_chain, c.qe_identity, c.qe_identity_signature}}) {
    std::string name = d.name;
    auto chain = p.Chain(name + "_issuer_chain", d.chain, "SGX TCB Signing", root);
    if (!chain) continue;
    X509* signer = chain->front().get();
    if (out->root_crl_) {
      p.Add(name + "_signer_revocation", NotRevoked(out->root_crl_.get(), signer, "root CA CRL"),
            "the TCB Signing certificate is not revoked by the root CA CRL", true);
    }
    ossl::PkeyPtr key(X509_get_pubkey(signer));
    bool ok = key && ossl::VerifyEcdsaP256Sha256(key.get(), AsBytes(d.body), d.signature);
    p.Add(name + "_signature",
          ok ? OkStatus()
             : Status(Error{"the " + name + " signature does not verify over its exact JSON text; the "
                            "document was edited or the signature belongs to another document"}),
          "signed by \"Intel SGX TCB Signing\" key over the exact JSON text");
    if (!ok) continue;
    if (name == "tcb_info") {
      auto info = ParseTcbInfo(d.body);
      p.Add("tcb_info_format", info.ok() ? OkStatus() : Status(Error{info.error()}),
            "TDX TCB Info v3 parsed");
      if (info.ok()) {
        out->windows_.push_back({"tcb_info_validity", "TCB Info issueDate..nextUpdate", info->issue_date,
                                 info->next_update});
        out->tcb_info_ = std::move(*info);
      }
    } else {
      auto qe = ParseQeIdentity(d.body);
      p.Add("qe_identity_format", qe.ok() ? OkStatus() : Status(Error{qe.error()}), "TD_QE identity parsed");
      if (qe.ok()) {
        out->windows_.push_back({"qe_identity_validity", "QE Identity issueDate..nextUpdate",
                                 qe->issue_date, qe->next_update});
        out->qe_identity_ = std::move(*qe);
      }
    }
  }
  return out;
}

// ---- PCK chain cache --------------------------------------------------------------------------

struct QuoteVerifier::PckChain {
  Status status = OkStatus();
  evidence::PckExtensions extensions;
  ossl::PkeyPtr leaf_key;
  X509Ptr leaf;
  X509Ptr ca;  // PCK Platform/Processor CA
  std::vector<PreparedCollateral::Window> windows;
};

std::shared_ptr<const QuoteVerifier::PckChain> QuoteVerifier::PckChainFor(std::string_view pem) const {
  std::string key(pem);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pck_cache_.find(key);
    if (it != pck_cache_.end()) return it->second;
  }
  auto info = std::make_shared<PckChain>();
  auto fail = [&](std::string why) {
    info->status = Error{std::move(why)};
    return info;
  };
  auto build = [&]() -> std::shared_ptr<PckChain> {
    auto chain = ossl::ParsePemChain(pem, /*strict=*/true);
    if (!chain.ok()) return fail("PCK certificate chain in the quote: " + chain.error());
    if (chain->size() < 2) return fail("PCK certificate chain has no issuing CA");
    std::string leaf_cn = ossl::CommonName(X509_get_subject_name((*chain)[0].get()));
    if (!Contains(leaf_cn, "SGX PCK Certificate"))
      return fail("PCK leaf common name is \"" + leaf_cn + "\", expected \"Intel SGX PCK Certificate\"");
    // The CA is the certificate that issued the leaf, wherever it stands (files differ in order).
    for (size_t i = 2; i < chain->size(); ++i)
      if (X509_check_issued((*chain)[i].get(), (*chain)[0].get()) == X509_V_OK)
        std::swap((*chain)[1], (*chain)[i]);
    std::string ca_cn = ossl::CommonName(X509_get_subject_name((*chain)[1].get()));
    if (!Contains(ca_cn, "SGX PCK Platform CA") && !Contains(ca_cn, "SGX PCK Processor CA"))
      return fail("PCK issuer is \"" + ca_cn + "\", expected an Intel SGX PCK Platform or Processor CA");
    Status s = VerifyChainToRoot(*chain, root_);
    if (!s.ok()) return fail(s.error());
    auto ext = evidence::ExtractPckExtensions((*chain)[0].get());
    if (!ext.ok()) return fail(ext.error());
    auto windows = CertWindows(*chain, "pck_chain_validity");
    if (!windows.ok()) return fail(windows.error());
    info->extensions = *ext;
    info->leaf_key.reset(X509_get_pubkey((*chain)[0].get()));
    if (!info->leaf_key) return fail("PCK leaf has no usable public key");
    info->windows = std::move(*windows);
    info->leaf = std::move((*chain)[0]);
    info->ca = std::move((*chain)[1]);
    return info;
  };
  std::shared_ptr<const PckChain> result = build();
  std::lock_guard<std::mutex> lock(mu_);
  if (pck_cache_.size() >= 4096) pck_cache_.clear();  // bound memory; chains are per platform
  pck_cache_.emplace(std::move(key), result);
  return result;
}

// ---- Per-quote verification -------------------------------------------------------------------

VerificationResult QuoteVerifier::Verify(ByteSpan raw, const PreparedCollateral& collateral,
                                         const VerifyOptions& options) const {
  VerificationResult r;
  auto add = [&r](std::string name, Status s, std::string ok_detail) {
    r.checks.push_back({std::move(name), s.ok(), s.ok() ? std::move(ok_detail) : s.error()});
    return s.ok();
  };

  auto parsed = evidence::ParseQuote(raw);
  if (!add("quote_format", parsed.ok() ? OkStatus() : Status(Error{parsed.error()}),
           "TD quote parsed"))
    return r.error = "quote_format: " + parsed.error(), r;
  const evidence::Quote& q = *parsed;
  const auto& qe = q.signature_data.qe_certification;
  add("qe_vendor_id",
      q.header.qe_vendor_id == evidence::kIntelQeVendorId
          ? OkStatus()
          : Status(Error{"QE vendor ID " + ToHex(q.header.qe_vendor_id) +
                         " is not Intel's 939a7233f79c4ca9940a0db3957f0607"}),
      "Intel quoting enclave");

  if (collateral.root_fingerprint() != root_.fingerprint())
    add("collateral_root",
        Error{"the collateral was prepared for another trusted root; prepare it with this verifier's root"},
        "");

  // PCK chain (cached by its bytes) and its validity now.
  std::shared_ptr<const PckChain> pck;
  auto pem = evidence::PckCertChainPem(q);
  bool quote_has_chain = pem.ok() && pem->find("-----BEGIN CERTIFICATE-----") != std::string_view::npos;
  if (!quote_has_chain && !collateral.pck_certificate_chain().empty())
    pem = std::string_view(collateral.pck_certificate_chain());
  if (!pem.ok()) {
    add("pck_chain", Error{pem.error()}, "");
  } else {
    pck = PckChainFor(*pem);
    if (!add("pck_chain", pck->status, "PCK leaf chains to the trusted root")) pck.reset();
  }

  // Collateral checks done at preparation time.
  for (const auto& sc : collateral.checks()) {
    if (sc.crl && !options.check_crl) continue;
    r.checks.push_back(sc.check);
  }

  // Every time window, at `now`.
  std::vector<PreparedCollateral::Window> windows = collateral.windows();
  if (pck) windows.insert(windows.end(), pck->windows.begin(), pck->windows.end());
  std::vector<std::string> window_checks;
  for (const auto& w : windows) {
    if (w.crl && !options.check_crl) continue;
    if (std::find(window_checks.begin(), window_checks.end(), w.check) == window_checks.end())
      window_checks.push_back(w.check);
  }
  for (const auto& name : window_checks) {
    Status s = OkStatus();
    for (const auto& w : windows) {
      if (w.check != name) continue;
      if (options.now < w.not_before) {
        s = Error{w.what + " is not valid until " + FormatRfc3339(w.not_before) + " (verifying at " +
                  FormatRfc3339(options.now) + ")"};
        break;
      }
      if (options.now > w.not_after) {
        s = Error{w.what + " expired at " + FormatRfc3339(w.not_after) + " (verifying at " +
                  FormatRfc3339(options.now) + "); fetch fresh collateral"};
        break;
      }
    }
    add(name, s, "valid at " + FormatRfc3339(options.now));
  }

  // Revocation of this PCK leaf and its CA.
  if (pck && options.check_crl) {
    if (!collateral.pck_crl()) {
      add("pck_revocation", Error{"no verified PCK CRL to check the PCK certificate against"}, "");
    } else {
      Status s = X509_NAME_cmp(X509_CRL_get_issuer(collateral.pck_crl()),
                               X509_get_issuer_name(pck->leaf.get())) == 0
                     ? NotRevoked(collateral.pck_crl(), pck->leaf.get(), "PCK CRL")
                     : Status(Error{"the PCK CRL is issued by another CA than the PCK certificate "
                                    "(platform vs processor); fetch the CRL for ca=" +
                                    evidence::PckCaType(pck->leaf.get())});
      if (s.ok() && collateral.root_crl()) s = NotRevoked(collateral.root_crl(), pck->ca.get(), "root CA CRL");
      add("pck_revocation", s, "PCK certificate and its CA are not revoked");
    }
  }

  const auto& tcb_info = collateral.tcb_info();
  const auto& qe_identity = collateral.qe_identity();
  if (pck && tcb_info) {
    Status s = OkStatus();
    if (pck->extensions.fmspc != tcb_info->fmspc)
      s = Error{"PCK FMSPC " + ToHex(pck->extensions.fmspc) + " differs from TCB Info FMSPC " +
                ToHex(tcb_info->fmspc) + "; fetch the TCB Info for this platform's FMSPC"};
    else if (pck->extensions.pce_id != tcb_info->pce_id)
      s = Error{"PCK PCE-ID " + ToHex(pck->extensions.pce_id) + " differs from TCB Info pceId " +
                ToHex(tcb_info->pce_id)};
    add("tcb_info_platform", s, "FMSPC " + ToHex(pck->extensions.fmspc) + " and PCE-ID match");
  }
  if (tcb_info) add("tdx_module", MatchTdxModule(*tcb_info, q.body), "TDX module identity matches");

  if (pck) {
    Bytes report = evidence::SerializeEnclaveReportBody(qe.qe_report);
    add("qe_report_signature",
        ossl::VerifyEcdsaP256Sha256(pck->leaf_key.get(), report, qe.qe_report_signature)
            ? OkStatus()
            : Status(Error{"the QE report signature does not verify with the PCK key"}),
        "QE report signed by the PCK key");
  }
  {
    Bytes bound(q.signature_data.attestation_key.begin(), q.signature_data.attestation_key.end());
    bound.insert(bound.end(), qe.qe_auth_data.begin(), qe.qe_auth_data.end());
    auto digest = ossl::Sha256(bound);
    bool ok = std::equal(digest.begin(), digest.end(), qe.qe_report.report_data.begin());
    add("qe_report_data",
        ok ? OkStatus()
           : Status(Error{"QE report data is not SHA-256(attestation key || QE auth data); the "
                          "attestation key is not the one the QE certified"}),
        "attestation key bound to the QE report");
  }
  if (qe_identity) add("qe_identity", MatchQeIdentity(*qe_identity, qe.qe_report), "QE matches TD_QE identity");

  {
    auto key = ossl::P256PublicKeyFromRaw(q.signature_data.attestation_key);
    bool ok = key.ok() && ossl::VerifyEcdsaP256Sha256(key->get(), raw.first(q.signed_size()),
                                                      q.signature_data.signature);
    add("quote_signature",
        ok ? OkStatus()
           : Status(Error{"the quote signature does not verify with the attestation key: header or "
                          "TD report was altered"}),
        "header and TD report signed by the attestation key");
  }

  if (pck && tcb_info && qe_identity) {
    TcbInput in{pck->extensions.cpu_svn_components, pck->extensions.pce_svn, &q.body,
                qe.qe_report.isv_svn, q.header.version};
    TcbResult t = EvaluateTcb(*tcb_info, *qe_identity, in);
    r.tcb_status = t.status;
    r.qe_tcb_status = t.qe_status;
    r.module_tcb_status = t.module_status;
    r.tcb_date = t.tcb_date;
    r.advisory_ids = t.advisory_ids;
    bool acceptable = t.status != TcbStatus::kRevoked && t.status != TcbStatus::kTcbNotSupported &&
                      t.status != TcbStatus::kTdxModuleMismatch;
    add("tcb_status",
        acceptable ? OkStatus()
                   : Status(Error{std::string(TcbStatusName(t.status)) + ": " + t.detail}),
        std::string(TcbStatusName(t.status)) + (t.detail.empty() ? "" : ": " + t.detail));
  } else {
    add("tcb_status", Error{"not evaluated: the PCK chain, TCB Info or QE Identity is unusable"}, "");
  }

  r.verified = true;
  for (const auto& c : r.checks) {
    if (!c.ok) {
      r.verified = false;
      if (r.error.empty()) r.error = c.name + ": " + c.detail;
    }
  }
  return r;
}

nlohmann::ordered_json VerificationResultToJson(const VerificationResult& r) {
  nlohmann::ordered_json j;
  auto status = [](const std::optional<TcbStatus>& s) -> nlohmann::ordered_json {
    return s ? nlohmann::ordered_json(std::string(TcbStatusName(*s))) : nlohmann::ordered_json(nullptr);
  };
  j["verified"] = r.verified;
  j["tcb_status"] = status(r.tcb_status);
  j["tcb_date"] = r.tcb_date.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.tcb_date);
  j["advisory_ids"] = r.advisory_ids;
  j["qe_tcb_status"] = status(r.qe_tcb_status);
  j["module_tcb_status"] = status(r.module_tcb_status);
  nlohmann::ordered_json checks = nlohmann::ordered_json::array();
  for (const auto& c : r.checks) checks.push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
  j["checks"] = std::move(checks);
  j["error"] = r.error.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.error);
  return j;
}

Status CollateralUsable(const PreparedCollateral& collateral, int64_t now, bool check_crl) {
  for (const auto& sc : collateral.checks()) {
    if (sc.crl && !check_crl) continue;
    if (!sc.check.ok) return Error{sc.check.name + ": " + sc.check.detail};
  }
  for (const auto& w : collateral.windows()) {
    if (w.crl && !check_crl) continue;
    if (now < w.not_before)
      return Error{w.check + ": " + w.what + " is not valid until " + FormatRfc3339(w.not_before)};
    if (now > w.not_after)
      return Error{w.check + ": " + w.what + " expired at " + FormatRfc3339(w.not_after) +
                   "; fetch fresh collateral"};
  }
  return OkStatus();
}

}  // namespace tdxvirt::verify
