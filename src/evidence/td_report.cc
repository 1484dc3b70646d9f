#include "evidence/td_report.h"

#include <algorithm>

namespace tdxvirt::evidence {

namespace {

void ReadMeasurements(ByteReader& r, TdMeasurements& td) {
  r.Read(td.td_attributes, "TDINFO.ATTRIBUTES");
  r.Read(td.xfam, "TDINFO.XFAM");
  r.Read(td.mr_td, "TDINFO.MRTD");
  r.Read(td.mr_config_id, "TDINFO.MRCONFIGID");
  r.Read(td.mr_owner, "TDINFO.MROWNER");
  r.Read(td.mr_owner_config, "TDINFO.MROWNERCONFIG");
  for (int i = 0; i < 4; ++i) r.Read(td.rtmr[i], "TDINFO.RTMR" + std::to_string(i));
}

void WriteMeasurements(ByteWriter& w, const TdMeasurements& td) {
  w.Put(td.td_attributes);
  w.Put(td.xfam);
  w.Put(td.mr_td);
  w.Put(td.mr_config_id);
  w.Put(td.mr_owner);
  w.Put(td.mr_owner_config);
  for (const auto& rtmr : td.rtmr) w.Put(rtmr);
}

}  // namespace

TeeTcbSvn TdReport::tee_tcb_svn2() const {
  TeeTcbSvn out{};
  if (is_td15()) std::copy_n(tee_tcb_info.reserved.begin(), out.size(), out.begin());
  return out;
}

Sha384Digest TdReport::servtd_hash() const {
  Sha384Digest out{};
  if (is_td15()) std::copy_n(td_info.reserved.begin(), out.size(), out.begin());
  return out;
}

Result<TdReport> ParseTdReport(ByteSpan data) {
  if (data.size() != kTdReportSize)
    return Error{"TDREPORT: expected exactly 1024 bytes, got " + std::to_string(data.size())};
  try {
    ByteReader r(data, "TDREPORT");
    TdReport rep;
    auto& m = rep.mac_struct;
    r.Read(m.report_type, "REPORTMACSTRUCT.REPORTTYPE");
    if (m.report_type[0] != kReportTypeTdx)
      r.Fail(0, "REPORTMACSTRUCT.REPORTTYPE.type",
             "is " + std::to_string(m.report_type[0]) +
                 "; a TD report has type 0x81 (129). Is this an SGX report?");
    r.Read(m.reserved1, "REPORTMACSTRUCT.reserved");
    r.Read(m.cpu_svn, "REPORTMACSTRUCT.CPUSVN");
    r.Read(m.tee_tcb_info_hash, "REPORTMACSTRUCT.TEE_TCB_INFO_HASH");
    r.Read(m.tee_info_hash, "REPORTMACSTRUCT.TEE_INFO_HASH");
    r.Read(m.report_data, "REPORTMACSTRUCT.REPORTDATA");
    r.Read(m.reserved2, "REPORTMACSTRUCT.reserved");
    r.Read(m.mac, "REPORTMACSTRUCT.MAC");
    auto& t = rep.tee_tcb_info;
    r.Read(t.valid, "TEE_TCB_INFO.VALID");
    r.Read(t.tee_tcb_svn, "TEE_TCB_INFO.TEE_TCB_SVN");
    r.Read(t.mr_seam, "TEE_TCB_INFO.MRSEAM");
    r.Read(t.mr_signer_seam, "TEE_TCB_INFO.MRSIGNERSEAM");
    r.Read(t.attributes, "TEE_TCB_INFO.ATTRIBUTES");
    r.Read(t.reserved, "TEE_TCB_INFO.reserved");
    r.Read(rep.reserved, "reserved");
    ReadMeasurements(r, rep.td_info.td);
    r.Read(rep.td_info.reserved, "TDINFO.reserved");
    return rep;
  } catch (const ParseError& e) {
    return Error{e.what()};
  }
}

Bytes SerializeTeeTcbInfo(const TeeTcbInfo& t) {
  ByteWriter w;
  w.Put(t.valid);
  w.Put(t.tee_tcb_svn);
  w.Put(t.mr_seam);
  w.Put(t.mr_signer_seam);
  w.Put(t.attributes);
  w.Put(t.reserved);
  return w.Finish();
}

Bytes SerializeTdInfo(const TdInfo& info) {
  ByteWriter w;
  WriteMeasurements(w, info.td);
  w.Put(info.reserved);
  return w.Finish();
}

ByteArray<kTdReportSize> SerializeTdReport(const TdReport& rep) {
  ByteWriter w;
  const auto& m = rep.mac_struct;
  w.Put(m.report_type);
  w.Put(m.reserved1);
  w.Put(m.cpu_svn);
  w.Put(m.tee_tcb_info_hash);
  w.Put(m.tee_info_hash);
  w.Put(m.report_data);
  w.Put(m.reserved2);
  w.Put(m.mac);
  w.Put(SerializeTeeTcbInfo(rep.tee_tcb_info));
  w.Put(rep.reserved);
  w.Put(SerializeTdInfo(rep.td_info));
  ByteArray<kTdReportSize> out;
  std::copy_n(w.bytes().begin(), kTdReportSize, out.begin());
  return out;
}

}  // namespace tdxvirt::evidence
