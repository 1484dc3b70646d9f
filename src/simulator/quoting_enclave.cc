#include "simulator/quoting_enclave.h"

#include <openssl/crypto.h>

#include "common/openssl.h"
#include "evidence/td_report.h"
#include "simulator/pki.h"
#include "simulator/td.h"

namespace tdxvirt::simulator {

SimQuotingEnclave::SimQuotingEnclave(const SimPlatform& platform)
    : platform_(platform), pck_chain_pem_(platform.pck_chain_pem()) {
  if (auto raw = RawP256PublicKey(platform.attestation_key()); raw.ok()) attestation_key_raw_ = *raw;
}

Result<Bytes> SimQuotingEnclave::Quote(ByteSpan td_report, int version) const {
  if (version != 4 && version != 5) return Error{"quote version must be 4 or 5"};
  auto report = evidence::ParseTdReport(td_report);
  if (!report.ok()) return Error{report.error()};
  const evidence::TdReport& r = *report;
  // EVERIFYREPORT2: only reports from this platform's TDX module are quoted.
  ByteArray<32> mac = ReportMac(platform_.report_mac_key(), r);
  if (CRYPTO_memcmp(mac.data(), r.mac_struct.mac.data(), mac.size()) != 0)
    return Error{"TDREPORT MAC does not verify: the report was altered or comes from another platform"};
  if (ossl::Sha384(evidence::SerializeTeeTcbInfo(r.tee_tcb_info)) != r.mac_struct.tee_tcb_info_hash ||
      ossl::Sha384(evidence::SerializeTdInfo(r.td_info)) != r.mac_struct.tee_info_hash)
    return Error{"TDREPORT hashes do not match TEE_TCB_INFO/TDINFO: the report was altered"};
  if (version == 4 && r.is_td15())
    return Error{"a TDX 1.5 report needs a version 5 quote (body type 3)"};

  evidence::Quote q;
  q.header.version = uint16_t(version);
  q.header.qe_vendor_id = platform_.config().faults.qe_vendor_id;
  std::copy(platform_.qe_id().begin(), platform_.qe_id().end(), q.header.user_data.begin());
  evidence::TdQuoteBody& b = q.body;
  b.type = r.is_td15() ? evidence::BodyType::kTd15 : evidence::BodyType::kTd10;
  b.tee_tcb_svn = r.tee_tcb_info.tee_tcb_svn;
  b.mr_seam = r.tee_tcb_info.mr_seam;
  b.mr_signer_seam = r.tee_tcb_info.mr_signer_seam;
  b.seam_attributes = r.tee_tcb_info.attributes;
  b.td = r.td_info.td;
  b.report_data = r.mac_struct.report_data;
  if (r.is_td15()) {
    b.tee_tcb_svn2 = r.tee_tcb_svn2();
    b.mr_servicetd = r.servtd_hash();
  }

  auto& sig = q.signature_data;
  sig.attestation_key = attestation_key_raw_;
  auto& cert = sig.qe_certification;
  for (size_t i = 0; i < 32; ++i) cert.qe_auth_data.push_back(uint8_t(i));
  auto& qe = cert.qe_report;
  const PlatformConfig& pc = platform_.config();
  std::copy(pc.cpu_svn_components.begin(), pc.cpu_svn_components.end(), qe.cpu_svn.begin());
  qe.attributes = {0x11};  // INIT | PROVISIONKEY-free production enclave, as TD_QE identity expects
  qe.mr_enclave = ossl::Sha256(AsBytes("tdxvirt simulated TD QE enclave"));
  qe.mr_signer = SimQeMrSigner();
  qe.isv_prod_id = 2;
  qe.isv_svn = pc.qe_isv_svn;
  Bytes binding(sig.attestation_key.begin(), sig.attestation_key.end());
  binding.insert(binding.end(), cert.qe_auth_data.begin(), cert.qe_auth_data.end());
  auto digest = ossl::Sha256(binding);
  std::copy(digest.begin(), digest.end(), qe.report_data.begin());
  auto qe_sig = ossl::SignEcdsaP256Sha256(platform_.pck_key(), evidence::SerializeEnclaveReportBody(qe));
  if (!qe_sig.ok()) return Error{qe_sig.error()};
  cert.qe_report_signature = *qe_sig;
  cert.certification_data.type = evidence::kCertDataPckCertChain;
  cert.certification_data.data.assign(pck_chain_pem_.begin(), pck_chain_pem_.end());

  Bytes out = evidence::SerializeQuote(q);
  auto quote_sig = ossl::SignEcdsaP256Sha256(platform_.attestation_key(), ByteSpan(out).first(q.signed_size()));
  if (!quote_sig.ok()) return Error{quote_sig.error()};
  std::copy(quote_sig->begin(), quote_sig->end(), out.begin() + long(q.signed_size() + 4));
  return out;
}

}  // namespace tdxvirt::simulator
