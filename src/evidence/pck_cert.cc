#include "evidence/pck_cert.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/objects.h>

#include <algorithm>
#include <memory>

#include "common/hex.h"

namespace tdxvirt::evidence {

namespace {

struct SeqFree {
  void operator()(ASN1_SEQUENCE_ANY* s) const { sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free); }
};
using SeqPtr = std::unique_ptr<ASN1_SEQUENCE_ANY, SeqFree>;

SeqPtr DecodeSequence(const unsigned char* der, long len) {
  const unsigned char* p = der;
  ASN1_SEQUENCE_ANY* seq = d2i_ASN1_SEQUENCE_ANY(nullptr, &p, len);
  if (seq && p != der + len) {
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    return nullptr;
  }
  return SeqPtr(seq);
}

std::string OidText(const ASN1_OBJECT* obj) {
  char buf[128];
  int n = OBJ_obj2txt(buf, sizeof buf, obj, 1);
  return n > 0 && n < int(sizeof buf) ? std::string(buf) : std::string();
}

// Each SGX extension entry is SEQUENCE { OID, value }; calls fn(oid, value) for each entry.
template <typename Fn>
bool ForEachEntry(const ASN1_SEQUENCE_ANY* seq, Fn fn) {
  for (int i = 0; i < sk_ASN1_TYPE_num(seq); ++i) {
    const ASN1_TYPE* item = sk_ASN1_TYPE_value(seq, i);
    if (item->type != V_ASN1_SEQUENCE) return false;
    SeqPtr pair = DecodeSequence(item->value.sequence->data, item->value.sequence->length);
    if (!pair || sk_ASN1_TYPE_num(pair.get()) != 2) return false;
    const ASN1_TYPE* oid = sk_ASN1_TYPE_value(pair.get(), 0);
    if (oid->type != V_ASN1_OBJECT) return false;
    if (!fn(OidText(oid->value.object), sk_ASN1_TYPE_value(pair.get(), 1))) return false;
  }
  return true;
}

template <size_t N>
bool OctetsTo(const ASN1_TYPE* v, ByteArray<N>& out) {
  if (v->type != V_ASN1_OCTET_STRING || v->value.octet_string->length != int(N)) return false;
  std::copy_n(v->value.octet_string->data, N, out.begin());
  return true;
}

bool IntegerTo(const ASN1_TYPE* v, int64_t max, int64_t& out) {
  const ASN1_INTEGER* i = nullptr;
  if (v->type == V_ASN1_INTEGER) i = v->value.integer;
  if (v->type == V_ASN1_ENUMERATED) i = v->value.enumerated;
  if (!i) return false;
  int64_t value = 0;
  if (ASN1_INTEGER_get_int64(&value, i) != 1) return false;
  if (value < 0 || value > max) return false;
  out = value;
  return true;
}

}  // namespace

Result<PckExtensions> ExtractPckExtensions(X509* cert) {
  const std::string root = kSgxExtensionsOid;
  std::unique_ptr<ASN1_OBJECT, decltype(&ASN1_OBJECT_free)> oid(OBJ_txt2obj(root.c_str(), 1),
                                                                 ASN1_OBJECT_free);
  int idx = X509_get_ext_by_OBJ(cert, oid.get(), -1);
  if (idx < 0)
    return Error{"PCK certificate has no SGX extensions (OID " + root +
                 "); is this an Intel SGX PCK certificate?"};
  const ASN1_OCTET_STRING* ext = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
  SeqPtr seq = DecodeSequence(ext->data, ext->length);
  if (!seq) return Error{"PCK SGX extensions (OID " + root + ") are not a DER SEQUENCE"};

  PckExtensions out;
  bool have_ppid = false, have_pce_id = false, have_fmspc = false;
  int tcb_seen = 0;
  std::string bad;
  bool ok = ForEachEntry(seq.get(), [&](const std::string& name, const ASN1_TYPE* value) {
    if (name == root + ".1") {
      have_ppid = OctetsTo(value, out.ppid);
      if (!have_ppid) bad = name + " (PPID, 16-byte OCTET STRING)";
    } else if (name == root + ".2") {
      if (value->type != V_ASN1_SEQUENCE) {
        bad = name + " (TCB, SEQUENCE)";
        return false;
      }
      SeqPtr tcb = DecodeSequence(value->value.sequence->data, value->value.sequence->length);
      if (!tcb) {
        bad = name + " (TCB, SEQUENCE)";
        return false;
      }
      return ForEachEntry(tcb.get(), [&](const std::string& comp, const ASN1_TYPE* v) {
        const std::string prefix = root + ".2.";
        if (comp.rfind(prefix, 0) != 0) return true;  // unknown entries are tolerated
        int n = std::atoi(comp.c_str() + prefix.size());
        int64_t svn = 0;
        if (n >= 1 && n <= 16) {
          if (!IntegerTo(v, 255, svn)) {
            bad = comp + " (SGX TCB component SVN, INTEGER 0-255)";
            return false;
          }
          out.cpu_svn_components[n - 1] = uint8_t(svn);
        } else if (n == 17) {
          if (!IntegerTo(v, 65535, svn)) {
            bad = comp + " (PCESVN, INTEGER 0-65535)";
            return false;
          }
          out.pce_svn = uint16_t(svn);
        } else if (n == 18) {
          if (!OctetsTo(v, out.cpu_svn)) {
            bad = comp + " (CPUSVN, 16-byte OCTET STRING)";
            return false;
          }
        } else {
          return true;
        }
        ++tcb_seen;
        return true;
      });
    } else if (name == root + ".3") {
      have_pce_id = OctetsTo(value, out.pce_id);
      if (!have_pce_id) bad = name + " (PCE-ID, 2-byte OCTET STRING)";
    } else if (name == root + ".4") {
      have_fmspc = OctetsTo(value, out.fmspc);
      if (!have_fmspc) bad = name + " (FMSPC, 6-byte OCTET STRING)";
    } else if (name == root + ".5") {
      int64_t type = 0;
      if (IntegerTo(value, 2, type)) out.sgx_type = int(type);
    }
    return bad.empty();
  });
  if (!ok || !bad.empty())
    return Error{"PCK SGX extension " + (bad.empty() ? std::string("entry") : bad) +
                 " is malformed"};
  if (!have_ppid) return Error{"PCK SGX extensions lack " + root + ".1 (PPID)"};
  if (tcb_seen != 18)
    return Error{"PCK SGX extensions lack part of " + root +
                 ".2 (TCB): need 16 component SVNs, PCESVN and CPUSVN"};
  if (!have_pce_id) return Error{"PCK SGX extensions lack " + root + ".3 (PCE-ID)"};
  if (!have_fmspc) return Error{"PCK SGX extensions lack " + root + ".4 (FMSPC)"};
  return out;
}

std::string PckCaType(X509* pck_leaf) {
  std::string cn = ossl::CommonName(X509_get_issuer_name(pck_leaf));
  if (cn.find("Platform") != std::string::npos) return "platform";
  if (cn.find("Processor") != std::string::npos) return "processor";
  return "";
}

CertificateSummary Summarize(X509* cert) {
  CertificateSummary s;
  s.subject = ossl::NameToString(X509_get_subject_name(cert));
  s.issuer = ossl::NameToString(X509_get_issuer_name(cert));
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    Bytes raw(size_t(BN_num_bytes(bn)));
    BN_bn2bin(bn, raw.data());
    s.serial = ToHex(raw);
    BN_free(bn);
  }
  s.not_before = ossl::TimeToRfc3339(X509_get0_notBefore(cert));
  s.not_after = ossl::TimeToRfc3339(X509_get0_notAfter(cert));
  return s;
}

}  // namespace tdxvirt::evidence
