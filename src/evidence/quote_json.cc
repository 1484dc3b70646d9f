#include "evidence/quote_json.h"

#include "common/hex.h"
#include "common/openssl.h"
#include "evidence/pck_cert.h"

namespace tdxvirt::evidence {

namespace {

using Json = nlohmann::ordered_json;

void PutMeasurements(Json& j, const TdMeasurements& td) {
  j["td_attributes"] = ToHex(td.td_attributes);
  j["xfam"] = ToHex(td.xfam);
  j["mr_td"] = ToHex(td.mr_td);
  j["mr_config_id"] = ToHex(td.mr_config_id);
  j["mr_owner"] = ToHex(td.mr_owner);
  j["mr_owner_config"] = ToHex(td.mr_owner_config);
  for (int i = 0; i < 4; ++i) j["rtmr" + std::to_string(i)] = ToHex(td.rtmr[i]);
}

void PutAttributeFlags(Json& j, const TdMeasurements& td) {
  uint64_t a = td.attributes();
  j["debug"] = (a & kTdAttrDebug) != 0;
  j["sept_ve_disable"] = (a & kTdAttrSeptVeDisable) != 0;
  j["pks"] = (a & kTdAttrPks) != 0;
  j["kl"] = (a & kTdAttrKl) != 0;
  j["perfmon"] = (a & kTdAttrPerfmon) != 0;
}

// The PCK chain's certificates and the leaf's SGX extensions; errors are reported in the JSON,
// because a quote with a broken chain is still worth inspecting.
void PutPck(Json& j, const Quote& q) {
  auto pem = PckCertChainPem(q);
  if (!pem.ok()) {
    j["pck_error"] = pem.error();
    return;
  }
  auto chain = ossl::ParsePemChain(*pem);
  if (!chain.ok()) {
    j["pck_error"] = "PCK certificate chain: " + chain.error();
    return;
  }
  auto ext = ExtractPckExtensions(chain->front().get());
  if (ext.ok()) {
    j["fmspc"] = ToHex(ext->fmspc);
    j["pce_id"] = ToHex(ext->pce_id);
    j["pce_svn"] = ext->pce_svn;
    j["cpu_svn"] = ToHex(ext->cpu_svn);
    j["cpu_svn_components"] = ext->cpu_svn_components;
    j["pck_ca_type"] = PckCaType(chain->front().get());
  } else {
    j["pck_error"] = ext.error();
  }
  Json certs = Json::array();
  for (const auto& cert : *chain) {
    CertificateSummary s = Summarize(cert.get());
    certs.push_back({{"subject", s.subject},
                     {"issuer", s.issuer},
                     {"serial", s.serial},
                     {"not_before", s.not_before},
                     {"not_after", s.not_after}});
  }
  j["pck_chain"] = std::move(certs);
}

}  // namespace

Json QuoteToJson(const Quote& q) {
  Json j;
  const auto& b = q.body;
  const auto& c = q.signature_data.qe_certification;
  j["version"] = q.header.version;
  j["att_key_type"] = q.header.att_key_type;
  j["tee_type"] = q.header.tee_type;
  j["body_type"] = uint16_t(b.type);
  j["body_size"] = b.size();
  j["qe_vendor_id"] = ToHex(q.header.qe_vendor_id);
  j["user_data"] = ToHex(q.header.user_data);
  j["tee_tcb_svn"] = ToHex(b.tee_tcb_svn);
  if (b.type == BodyType::kTd15) j["tee_tcb_svn2"] = ToHex(b.tee_tcb_svn2);
  j["mr_seam"] = ToHex(b.mr_seam);
  j["mr_signer_seam"] = ToHex(b.mr_signer_seam);
  j["seam_attributes"] = ToHex(b.seam_attributes);
  PutMeasurements(j, b.td);
  if (b.type == BodyType::kTd15) j["mr_servicetd"] = ToHex(b.mr_servicetd);
  j["report_data"] = ToHex(b.report_data);
  PutAttributeFlags(j, b.td);
  j["signature_data_len"] = q.signature_data.size();
  j["trailing_bytes"] = q.trailing.size();
  j["quote_signature"] = ToHex(q.signature_data.signature);
  j["attestation_key"] = ToHex(q.signature_data.attestation_key);
  j["qe_report"] = {{"cpu_svn", ToHex(c.qe_report.cpu_svn)},
                    {"misc_select", c.qe_report.misc_select},
                    {"attributes", ToHex(c.qe_report.attributes)},
                    {"mr_enclave", ToHex(c.qe_report.mr_enclave)},
                    {"mr_signer", ToHex(c.qe_report.mr_signer)},
                    {"isv_prod_id", c.qe_report.isv_prod_id},
                    {"isv_svn", c.qe_report.isv_svn},
                    {"report_data", ToHex(c.qe_report.report_data)}};
  j["qe_report_signature"] = ToHex(c.qe_report_signature);
  j["qe_auth_data"] = ToHex(c.qe_auth_data);
  j["certification_data_type"] = c.certification_data.type;
  PutPck(j, q);
  return j;
}

Json TdReportToJson(const TdReport& r) {
  Json j;
  const auto& m = r.mac_struct;
  const auto& t = r.tee_tcb_info;
  j["report_type"] = ToHex(m.report_type);
  j["td15"] = r.is_td15();
  j["cpu_svn"] = ToHex(m.cpu_svn);
  j["tee_tcb_info_hash"] = ToHex(m.tee_tcb_info_hash);
  j["tee_info_hash"] = ToHex(m.tee_info_hash);
  j["report_data"] = ToHex(m.report_data);
  j["mac"] = ToHex(m.mac);
  j["tee_tcb_info_valid"] = ToHex(t.valid);
  j["tee_tcb_svn"] = ToHex(t.tee_tcb_svn);
  if (r.is_td15()) j["tee_tcb_svn2"] = ToHex(r.tee_tcb_svn2());
  j["mr_seam"] = ToHex(t.mr_seam);
  j["mr_signer_seam"] = ToHex(t.mr_signer_seam);
  j["seam_attributes"] = ToHex(t.attributes);
  PutMeasurements(j, r.td_info.td);
  if (r.is_td15()) j["servtd_hash"] = ToHex(r.servtd_hash());
  PutAttributeFlags(j, r.td_info.td);
  return j;
}

}  // namespace tdxvirt::evidence
