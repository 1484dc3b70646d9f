#include "evidence/quote.h"

#include "common/hex.h"

namespace tdxvirt::evidence {

namespace {

constexpr size_t kSignatureDataFixedSize = 64 + 64 + 2 + 4;  // signature, key, cert type, size
constexpr size_t kQeCertDataFixedSize = kEnclaveReportSize + 64 + 2 + 2 + 4;


void ReadEnclaveReport(ByteReader& r, EnclaveReportBody& q) {
  r.Read(q.cpu_svn, "qe_report.cpu_svn");
  q.misc_select = r.U32("qe_report.misc_select");
  r.Read(q.reserved1, "qe_report.reserved1");
  r.Read(q.isv_ext_prod_id, "qe_report.isv_ext_prod_id");
  r.Read(q.attributes, "qe_report.attributes");
  r.Read(q.mr_enclave, "qe_report.mr_enclave");
  r.Read(q.reserved2, "qe_report.reserved2");
  r.Read(q.mr_signer, "qe_report.mr_signer");
  r.Read(q.reserved3, "qe_report.reserved3");
  r.Read(q.config_id, "qe_report.config_id");
  q.isv_prod_id = r.U16("qe_report.isv_prod_id");
  q.isv_svn = r.U16("qe_report.isv_svn");
  q.config_svn = r.U16("qe_report.config_svn");
  r.Read(q.reserved4, "qe_report.reserved4");
  r.Read(q.isv_family_id, "qe_report.isv_family_id");
  r.Read(q.report_data, "qe_report.report_data");
}

void WriteEnclaveReport(ByteWriter& w, const EnclaveReportBody& q) {
  w.Put(q.cpu_svn);
  w.U32(q.misc_select);
  w.Put(q.reserved1);
  w.Put(q.isv_ext_prod_id);
  w.Put(q.attributes);
  w.Put(q.mr_enclave);
  w.Put(q.reserved2);
  w.Put(q.mr_signer);
  w.Put(q.reserved3);
  w.Put(q.config_id);
  w.U16(q.isv_prod_id);
  w.U16(q.isv_svn);
  w.U16(q.config_svn);
  w.Put(q.reserved4);
  w.Put(q.isv_family_id);
  w.Put(q.report_data);
}

void ReadHeader(ByteReader& r, QuoteHeader& h) {
  h.version = r.U16("header.version");
  if (h.version != 4 && h.version != 5)
    r.Fail(0, "header.version",
           "is " + std::to_string(h.version) +
               "; only TD quote versions 4 and 5 are supported (version 3 is an SGX quote)");
  h.att_key_type = r.U16("header.att_key_type");
  if (h.att_key_type != kAttKeyTypeEcdsaP256)
    r.Fail(2, "header.att_key_type",
           "is " + std::to_string(h.att_key_type) +
               "; only 2 (ECDSA-256-with-P-256) is supported (3, ECDSA-384, is not used by Intel's QE)");
  h.tee_type = r.U32("header.tee_type");
  if (h.tee_type != kTeeTypeTdx)
    r.Fail(4, "header.tee_type",
           "is " + HexU32(h.tee_type) + (h.tee_type == 0 ? " (SGX)" : "") +
               "; a TD quote has tee_type 0x81 (TDX)");
  r.Read(h.reserved, "header.reserved");
  r.Read(h.qe_vendor_id, "header.qe_vendor_id");
  r.Read(h.user_data, "header.user_data");
}

void WriteHeader(ByteWriter& w, const QuoteHeader& h) {
  w.U16(h.version);
  w.U16(h.att_key_type);
  w.U32(h.tee_type);
  w.Put(h.reserved);
  w.Put(h.qe_vendor_id);
  w.Put(h.user_data);
}

void ReadBody(ByteReader& r, TdQuoteBody& b) {
  r.Read(b.tee_tcb_svn, "body.tee_tcb_svn");
  r.Read(b.mr_seam, "body.mr_seam");
  r.Read(b.mr_signer_seam, "body.mr_signer_seam");
  r.Read(b.seam_attributes, "body.seam_attributes");
  r.Read(b.td.td_attributes, "body.td_attributes");
  r.Read(b.td.xfam, "body.xfam");
  r.Read(b.td.mr_td, "body.mr_td");
  r.Read(b.td.mr_config_id, "body.mr_config_id");
  r.Read(b.td.mr_owner, "body.mr_owner");
  r.Read(b.td.mr_owner_config, "body.mr_owner_config");
  for (int i = 0; i < 4; ++i) r.Read(b.td.rtmr[i], "body.rtmr" + std::to_string(i));
  r.Read(b.report_data, "body.report_data");
  if (b.type == BodyType::kTd15) {
    r.Read(b.tee_tcb_svn2, "body.tee_tcb_svn2");
    r.Read(b.mr_servicetd, "body.mr_servicetd");
  }
}

void WriteBody(ByteWriter& w, const TdQuoteBody& b) {
  w.Put(b.tee_tcb_svn);
  w.Put(b.mr_seam);
  w.Put(b.mr_signer_seam);
  w.Put(b.seam_attributes);
  w.Put(b.td.td_attributes);
  w.Put(b.td.xfam);
  w.Put(b.td.mr_td);
  w.Put(b.td.mr_config_id);
  w.Put(b.td.mr_owner);
  w.Put(b.td.mr_owner_config);
  for (const auto& rtmr : b.td.rtmr) w.Put(rtmr);
  w.Put(b.report_data);
  if (b.type == BodyType::kTd15) {
    w.Put(b.tee_tcb_svn2);
    w.Put(b.mr_servicetd);
  }
}

// Reads a length-prefixed region and checks it fits the bytes that remain.
ByteSpan TakeSized(ByteReader& r, size_t size, size_t size_field_offset, std::string_view size_field,
                   std::string_view field) {
  if (size > r.remaining())
    r.Fail(size_field_offset, size_field,
           "is " + std::to_string(size) + " but only " + std::to_string(r.remaining()) +
               " bytes follow; the " + std::string(field) + " would run past the end of its container");
  return r.Take(size, field);
}

void ReadQeCertification(ByteReader& r, QeReportCertificationData& c) {
  ReadEnclaveReport(r, c.qe_report);
  r.Read(c.qe_report_signature, "qe_report_signature");
  size_t at = r.offset();
  uint16_t auth_size = r.U16("qe_auth_data.size");
  ByteSpan auth = TakeSized(r, auth_size, at, "qe_auth_data.size", "QE auth data");
  c.qe_auth_data.assign(auth.begin(), auth.end());
  c.certification_data.type = r.U16("qe_certification_data.type");
  at = r.offset();
  uint32_t cert_size = r.U32("qe_certification_data.size");
  ByteSpan cert = TakeSized(r, cert_size, at, "qe_certification_data.size", "PCK certification data");
  c.certification_data.data.assign(cert.begin(), cert.end());
  if (r.remaining() != 0)
    r.Fail(r.offset(), "certification data",
           "has " + std::to_string(r.remaining()) +
               " bytes after the nested PCK certification data; its size field disagrees with its contents");
}

void ReadSignatureData(ByteReader& r, QuoteSignatureData& s) {
  r.Read(s.signature, "signature_data.quote_signature");
  r.Read(s.attestation_key, "signature_data.attestation_key");
  size_t at = r.offset();
  uint16_t cert_type = r.U16("signature_data.certification_data_type");
  if (cert_type != kCertDataQeReport)
    r.Fail(at, "signature_data.certification_data_type",
           "is " + std::to_string(cert_type) +
               "; TD quotes carry type 6 (QE report certification data)");
  at = r.offset();
  uint32_t cert_size = r.U32("signature_data.certification_data_size");
  size_t cert_start = r.offset();
  ByteSpan cert = TakeSized(r, cert_size, at, "signature_data.certification_data_size",
                            "certification data");
  if (r.remaining() != 0)
    r.Fail(at, "signature_data.certification_data_size",
           "is " + std::to_string(cert_size) + " but signature_data_len leaves " +
               std::to_string(cert_size + r.remaining()) + " bytes for it; the two lengths disagree");
  if (cert_size < kQeCertDataFixedSize)
    r.Fail(at, "signature_data.certification_data_size",
           "is " + std::to_string(cert_size) + "; QE report certification data needs at least " +
               std::to_string(kQeCertDataFixedSize) + " bytes");
  ByteReader inner(cert, "quote", cert_start);
  ReadQeCertification(inner, s.qe_certification);
}

void WriteSignatureData(ByteWriter& w, const QuoteSignatureData& s) {
  const auto& c = s.qe_certification;
  w.Put(s.signature);
  w.Put(s.attestation_key);
  w.U16(kCertDataQeReport);
  w.U32(uint32_t(kQeCertDataFixedSize + c.qe_auth_data.size() + c.certification_data.data.size()));
  WriteEnclaveReport(w, c.qe_report);
  w.Put(c.qe_report_signature);
  w.U16(uint16_t(c.qe_auth_data.size()));
  w.Put(c.qe_auth_data);
  w.U16(c.certification_data.type);
  w.U32(uint32_t(c.certification_data.data.size()));
  w.Put(c.certification_data.data);
}

}  // namespace

Result<Quote> ParseQuote(ByteSpan data) {
  try {
    ByteReader r(data, "quote");
    Quote q;
    ReadHeader(r, q.header);
    if (q.header.version == 5) {
      size_t at = r.offset();
      uint16_t type = r.U16("body_descriptor.type");
      if (type != uint16_t(BodyType::kTd10) && type != uint16_t(BodyType::kTd15))
        r.Fail(at, "body_descriptor.type",
               "is " + std::to_string(type) +
                   (type == 1 ? " (SGX enclave report)" : "") +
                   "; a TD quote v5 carries type 2 (TD 1.0 report) or 3 (TD 1.5 report)");
      q.body.type = BodyType(type);
      at = r.offset();
      uint32_t size = r.U32("body_descriptor.size");
      if (size != q.body.size())
        r.Fail(at, "body_descriptor.size",
               "is " + std::to_string(size) + "; a body of type " + std::to_string(type) +
                   " is " + std::to_string(q.body.size()) + " bytes");
    }
    ReadBody(r, q.body);
    size_t at = r.offset();
    uint32_t sig_len = r.U32("signature_data_len");
    if (sig_len < kSignatureDataFixedSize)
      r.Fail(at, "signature_data_len",
             "is " + std::to_string(sig_len) + "; ECDSA signature data needs at least " +
                 std::to_string(kSignatureDataFixedSize) + " bytes");
    size_t sig_start = r.offset();
    ByteSpan sig = TakeSized(r, sig_len, at, "signature_data_len", "signature data");
    ByteReader sr(sig, "quote", sig_start);
    ReadSignatureData(sr, q.signature_data);
    ByteSpan rest = r.Take(r.remaining(), "trailing bytes");
    q.trailing.assign(rest.begin(), rest.end());
    return q;
  } catch (const ParseError& e) {
    return Error{e.what()};
  }
}

Bytes SerializeQuote(const Quote& q) {
  ByteWriter w;
  WriteHeader(w, q.header);
  if (q.header.version == 5) {
    w.U16(uint16_t(q.body.type));
    w.U32(uint32_t(q.body.size()));
  }
  WriteBody(w, q.body);
  ByteWriter sig;
  WriteSignatureData(sig, q.signature_data);
  w.U32(uint32_t(sig.bytes().size()));
  w.Put(sig.bytes());
  w.Put(q.trailing);
  return w.Finish();
}

Bytes SerializeEnclaveReportBody(const EnclaveReportBody& report) {
  ByteWriter w;
  WriteEnclaveReport(w, report);
  return w.Finish();
}

Result<EnclaveReportBody> ParseEnclaveReportBody(ByteSpan data) {
  if (data.size() != kEnclaveReportSize)
    return Error{"QE report: expected 384 bytes, got " + std::to_string(data.size())};
  ByteReader r(data, "QE report");
  EnclaveReportBody out;
  ReadEnclaveReport(r, out);
  return out;
}

Result<std::string_view> PckCertChainPem(const Quote& quote) {
  const auto& cert = quote.signature_data.qe_certification.certification_data;
  if (cert.type != kCertDataPckCertChain)
    return Error{"the quote's QE certification data is type " + std::to_string(cert.type) +
                 ", not 5 (PCK certificate chain); fetch the PCK certificate from a PCCS instead"};
  return AsString(cert.data);
}

}  // namespace tdxvirt::evidence
