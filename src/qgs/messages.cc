#include "qgs/messages.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <initializer_list>
#include <limits>
#include <memory>
#include <stdexcept>

#include "common/hex.h"

namespace tdxvirt::qgs {

namespace {

// A decode failure: the QGS error code that answers it and a message naming field and offset.
// Thrown inside decoders only; every public decoder catches it and returns an Error.
struct MessageError {
  uint32_t code;
  std::string message;
};

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%x", v);
  return buf;
}

uint32_t CheckedU32(uint64_t v) {
  // Callers bound every part far below 4 GiB; a violation is a programming error.
  if (v > std::numeric_limits<uint32_t>::max()) throw std::length_error("QGS message over 4 GiB");
  return uint32_t(v);
}

void PutHeader(ByteWriter& w, MessageType type, uint64_t size, uint32_t error_code) {
  w.U16(kMajorVersion);
  w.U16(kMinorVersion);
  w.U32(uint32_t(type));
  w.U32(CheckedU32(size));
  w.U32(error_code);
}

Header ReadHeader(ByteSpan m) {
  Header h;
  h.major_version = LoadLe16(m.data());
  h.minor_version = LoadLe16(m.data() + 2);
  h.type = LoadLe32(m.data() + 4);
  h.size = LoadLe32(m.data() + 8);
  h.error_code = LoadLe32(m.data() + 12);
  return h;
}

// The checks every message gets, in qgs_msg_lib's order: fixed part present, major version, type,
// header.size against the bytes received, and (requests) a zero error_code.
Header CheckCommon(ByteSpan m, MessageType expected, size_t fixed_size, bool request) {
  const std::string what = MessageTypeName(uint32_t(expected));
  if (m.size() < fixed_size)
    throw MessageError{kErrorInvalidParameter, what + ": message is " + std::to_string(m.size()) +
                                                   " bytes, shorter than its fixed part of " +
                                                   std::to_string(fixed_size)};
  Header h = ReadHeader(m);
  if (h.major_version != kMajorVersion)
    throw MessageError{kErrorInvalidVersion, what + ": major_version at offset 0 is " +
                                                 std::to_string(h.major_version) + ", expected " +
                                                 std::to_string(kMajorVersion)};
  if (h.type != uint32_t(expected))
    throw MessageError{kErrorInvalidType, what + ": type at offset 4 is " + std::to_string(h.type) +
                                              " (" + MessageTypeName(h.type) + "), expected " +
                                              std::to_string(uint32_t(expected))};
  if (h.size != m.size())
    throw MessageError{kErrorInvalidSize, what + ": size at offset 8 is " + std::to_string(h.size) +
                                              " but the message is " + std::to_string(m.size()) +
                                              " bytes"};
  if (request && h.error_code != 0)
    throw MessageError{kErrorInvalidCode, what + ": error_code at offset 12 is " +
                                              Hex32(h.error_code) + ", must be 0 in a request"};
  return h;
}

struct SizeField {
  const char* name;
  size_t offset;
  uint32_t value;
};

// header.size must equal the fixed part plus every variable part (summed in 64 bits, so sizes
// near 4 GiB cannot wrap).
void CheckSizeSum(const Header& h, MessageType type, size_t fixed_size,
                  std::initializer_list<SizeField> fields) {
  uint64_t total = fixed_size;
  std::string terms;
  for (const SizeField& f : fields) {
    total += f.value;
    terms += " + " + std::string(f.name) + " " + std::to_string(f.value) + " (offset " +
             std::to_string(f.offset) + ")";
  }
  if (total != h.size)
    throw MessageError{kErrorInvalidSize,
                       MessageTypeName(uint32_t(type)) + ": fixed part " +
                           std::to_string(fixed_size) + terms + " = " + std::to_string(total) +
                           " bytes, but size at offset 8 is " + std::to_string(h.size)};
}

// A response's error_code: 0 (then `nonempty` must hold), or an error below kErrorMax with every
// part empty.
void CheckResponseCode(const Header& h, MessageType type, bool all_sizes_zero,
                       bool success_sizes_ok, const char* success_problem) {
  const std::string what = MessageTypeName(uint32_t(type));
  if (h.error_code == kSuccess) {
    if (!success_sizes_ok) throw MessageError{kErrorInvalidSize, what + ": " + success_problem};
  } else if (h.error_code < kErrorMax) {
    if (!all_sizes_zero)
      throw MessageError{kErrorInvalidSize,
                         what + ": error_code " + Hex32(h.error_code) + " with a non-empty body"};
  } else {
    throw MessageError{kErrorInvalidCode,
                       what + ": error_code at offset 12 is " + Hex32(h.error_code) +
                           ", not a QGS error code (0 or below " + Hex32(kErrorMax) + ")"};
  }
}

Bytes ToBytes(ByteSpan s) { return Bytes(s.begin(), s.end()); }

// Runs a decoder body, turning MessageError/ParseError into an Error and the QGS error code.
template <typename T, typename F>
Result<T> Decode(uint32_t* error_code, F&& body) {
  try {
    return body();
  } catch (const MessageError& e) {
    if (error_code) *error_code = e.code;
    return Error{e.message};
  } catch (const ParseError& e) {
    if (error_code) *error_code = kErrorInvalidSize;
    return Error{e.what()};
  }
}

Bytes TextPart(std::string_view text) {
  if (text.empty()) return {};
  Bytes b(text.begin(), text.end());
  b.push_back(0);  // Intel's sizes count the terminator
  return b;
}

std::string_view WithoutNul(const Bytes& b) {
  std::string_view s = AsString(b);
  while (!s.empty() && s.back() == '\0') s.remove_suffix(1);
  return s;
}

Bytes SignedBody(std::string_view key, const std::string& body, const ByteArray<64>& signature) {
  if (body.empty()) return {};
  std::string text =
      "{\"" + std::string(key) + "\":" + body + ",\"signature\":\"" + ToHex(signature) + "\"}";
  return TextPart(text);
}

Result<Bytes> CrlPart(const Bytes& part) {
  if (part.empty()) return Bytes{};
  if (part[0] == 0x30) return part;  // DER (which may legitimately end in zero bytes)
  std::string_view text = WithoutNul(part);
  if (text.starts_with("-----BEGIN")) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(text.data(), int(text.size())),
                                                  BIO_free);
    if (!bio) return Error{"out of memory"};
    std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(
        PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr), X509_CRL_free);
    if (!crl) return Error{"PEM CRL does not parse"};
    int n = i2d_X509_CRL(crl.get(), nullptr);
    if (n <= 0) return Error{"PEM CRL does not re-encode"};
    Bytes der(size_t(n), 0);
    uint8_t* p = der.data();
    i2d_X509_CRL(crl.get(), &p);
    return der;
  }
  return verify::CrlBytes(AsBytes(text));
}

}  // namespace

std::string MessageTypeName(uint32_t type) {
  switch (type) {
    case 0:
      return "GET_QUOTE_REQ";
    case 1:
      return "GET_QUOTE_RESP";
    case 2:
      return "GET_COLLATERAL_REQ";
    case 3:
      return "GET_COLLATERAL_RESP";
    case 4:
      return "GET_PLATFORM_INFO_REQ";
    case 5:
      return "GET_PLATFORM_INFO_RESP";
    default:
      return "type " + std::to_string(type);
  }
}

std::string ErrorCodeName(uint32_t code) {
  const char* name = nullptr;
  switch (code) {
    case kSuccess:
      name = "success";
      break;
    case kErrorUnexpected:
      name = "UNEXPECTED";
      break;
    case kErrorOutOfMemory:
      name = "OUT_OF_MEMORY";
      break;
    case kErrorInvalidParameter:
      name = "INVALID_PARAMETER";
      break;
    case kErrorInvalidVersion:
      name = "INVALID_VERSION";
      break;
    case kErrorInvalidType:
      name = "INVALID_TYPE";
      break;
    case kErrorInvalidSize:
      name = "INVALID_SIZE";
      break;
    case kErrorInvalidCode:
      name = "INVALID_CODE";
      break;
    default:
      return Hex32(code);
  }
  return std::string(name) + " (" + Hex32(code) + ")";
}

std::optional<MessageType> ResponseTypeFor(uint32_t request_type) {
  switch (request_type) {
    case uint32_t(MessageType::kGetQuoteRequest):
      return MessageType::kGetQuoteResponse;
    case uint32_t(MessageType::kGetCollateralRequest):
      return MessageType::kGetCollateralResponse;
    case uint32_t(MessageType::kGetPlatformInfoRequest):
      return MessageType::kGetPlatformInfoResponse;
    default:
      return std::nullopt;
  }
}

Result<Header> DecodeHeader(ByteSpan message) {
  if (message.size() < kHeaderSize)
    return Error{"QGS header: truncated: " + std::to_string(message.size()) + " bytes, need " +
                 std::to_string(kHeaderSize)};
  return ReadHeader(message);
}

uint32_t LoadBe32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

Bytes Frame(ByteSpan message) {
  uint32_t n = CheckedU32(message.size());
  Bytes out{uint8_t(n >> 24), uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)};
  out.insert(out.end(), message.begin(), message.end());
  return out;
}

Result<ByteSpan> Unframe(ByteSpan frame, size_t max_message_size) {
  if (frame.size() < kFramePrefixSize)
    return Error{"QGS frame: truncated: " + std::to_string(frame.size()) +
                 " bytes, the length prefix alone is 4"};
  uint32_t n = LoadBe32(frame.data());
  if (n > max_message_size)
    return Error{"QGS frame: length prefix at offset 0 is " + std::to_string(n) +
                 ", over the maximum message size " + std::to_string(max_message_size)};
  if (frame.size() - kFramePrefixSize != n)
    return Error{"QGS frame: length prefix at offset 0 is " + std::to_string(n) + " but " +
                 std::to_string(frame.size() - kFramePrefixSize) + " bytes follow it"};
  return frame.subspan(kFramePrefixSize);
}

GetCollateralRequest MakeGetCollateralRequest(ByteSpan fmspc, std::string_view pck_ca) {
  GetCollateralRequest r;
  r.fmspc = ToBytes(fmspc);
  r.pck_ca = std::string(pck_ca);
  r.pck_ca.push_back('\0');
  return r;
}

Result<std::string> PckCaName(const GetCollateralRequest& request) {
  std::string_view s = request.pck_ca;
  if (!s.empty() && s.back() == '\0') s.remove_suffix(1);
  if (s.find('\0') != std::string_view::npos)
    return Error{"GET_COLLATERAL_REQ: the PCK CA name has a NUL inside it"};
  if (s.empty()) return Error{"GET_COLLATERAL_REQ: the PCK CA name is empty"};
  return std::string(s);
}

Bytes EncodeGetQuoteRequest(const GetQuoteRequest& m) {
  ByteWriter w;
  PutHeader(w, MessageType::kGetQuoteRequest,
            uint64_t(kGetQuoteRequestFixedSize) + m.report.size() + m.id_list.size(), 0);
  w.U32(CheckedU32(m.report.size()));
  w.U32(CheckedU32(m.id_list.size()));
  w.Put(m.report);
  w.Put(m.id_list);
  return w.Finish();
}

Bytes EncodeGetQuoteResponse(const GetQuoteResponse& m) {
  ByteWriter w;
  PutHeader(w, MessageType::kGetQuoteResponse,
            uint64_t(kGetQuoteResponseFixedSize) + m.selected_id.size() + m.quote.size(),
            m.error_code);
  w.U32(CheckedU32(m.selected_id.size()));
  w.U32(CheckedU32(m.quote.size()));
  w.Put(m.selected_id);
  w.Put(m.quote);
  return w.Finish();
}

Bytes EncodeGetCollateralRequest(const GetCollateralRequest& m) {
  ByteWriter w;
  PutHeader(w, MessageType::kGetCollateralRequest,
            uint64_t(kGetCollateralRequestFixedSize) + m.fmspc.size() + m.pck_ca.size(), 0);
  w.U32(CheckedU32(m.fmspc.size()));
  w.U32(CheckedU32(m.pck_ca.size()));
  w.Put(m.fmspc);
  w.Put(AsBytes(m.pck_ca));
  return w.Finish();
}

Bytes EncodeGetCollateralResponse(const GetCollateralResponse& m) {
  const Bytes* parts[] = {&m.pck_crl_issuer_chain,
                          &m.root_ca_crl,
                          &m.pck_crl,
                          &m.tcb_info_issuer_chain,
                          &m.tcb_info,
                          &m.qe_identity_issuer_chain,
                          &m.qe_identity};
  uint64_t size = kGetCollateralResponseFixedSize;
  for (const Bytes* p : parts) size += p->size();
  ByteWriter w;
  PutHeader(w, MessageType::kGetCollateralResponse, size, m.error_code);
  w.U16(m.collateral_major_version);
  w.U16(m.collateral_minor_version);
  for (const Bytes* p : parts) w.U32(CheckedU32(p->size()));
  for (const Bytes* p : parts) w.Put(*p);
  return w.Finish();
}

Bytes EncodeGetPlatformInfoRequest() {
  ByteWriter w;
  PutHeader(w, MessageType::kGetPlatformInfoRequest, kGetPlatformInfoRequestSize, 0);
  return w.Finish();
}

Bytes EncodeGetPlatformInfoResponse(const GetPlatformInfoResponse& m) {
  uint64_t size = uint64_t(kGetPlatformInfoResponseFixedSize) + m.platform_id.size() +
                  m.cpu_svn.size() + (m.lib_padding ? 4 : 0);
  ByteWriter w;
  PutHeader(w, MessageType::kGetPlatformInfoResponse, size, m.error_code);
  w.U16(m.tdqe_isvsvn);
  w.U16(m.pce_isvsvn);
  w.U32(CheckedU32(m.platform_id.size()));
  w.U32(CheckedU32(m.cpu_svn.size()));
  w.Put(m.platform_id);
  w.Put(m.cpu_svn);
  if (m.lib_padding) w.U32(0);
  return w.Finish();
}

Bytes EncodeErrorResponse(MessageType response_type, uint32_t error_code) {
  size_t size = 0;
  switch (response_type) {
    case MessageType::kGetQuoteResponse:
      size = kGetQuoteResponseFixedSize;
      break;
    case MessageType::kGetCollateralResponse:
      size = kGetCollateralResponseFixedSize;
      break;
    case MessageType::kGetPlatformInfoResponse:
      size = kGetPlatformInfoResponseFixedSize;
      break;
    default:
      throw std::invalid_argument("EncodeErrorResponse: not a response type");
  }
  ByteWriter w;
  PutHeader(w, response_type, size, error_code);
  w.bytes().resize(size, 0);
  return w.Finish();
}

Result<GetQuoteRequest> DecodeGetQuoteRequest(ByteSpan m, uint32_t* error_code) {
  return Decode<GetQuoteRequest>(error_code, [&] {
    constexpr auto kType = MessageType::kGetQuoteRequest;
    Header h = CheckCommon(m, kType, kGetQuoteRequestFixedSize, /*request=*/true);
    uint32_t report_size = LoadLe32(m.data() + 16);
    uint32_t id_list_size = LoadLe32(m.data() + 20);
    if (report_size == 0)
      throw MessageError{kErrorInvalidCode, "GET_QUOTE_REQ: report_size at offset 16 is 0"};
    CheckSizeSum(h, kType, kGetQuoteRequestFixedSize,
                 {{"report_size", 16, report_size}, {"id_list_size", 20, id_list_size}});
    ByteReader r(m.subspan(kGetQuoteRequestFixedSize), "GET_QUOTE_REQ", kGetQuoteRequestFixedSize);
    GetQuoteRequest out;
    out.report = ToBytes(r.Take(report_size, "report"));
    out.id_list = ToBytes(r.Take(id_list_size, "id_list"));
    return out;
  });
}

Result<GetQuoteResponse> DecodeGetQuoteResponse(ByteSpan m, uint32_t* error_code) {
  return Decode<GetQuoteResponse>(error_code, [&] {
    constexpr auto kType = MessageType::kGetQuoteResponse;
    Header h = CheckCommon(m, kType, kGetQuoteResponseFixedSize, /*request=*/false);
    uint32_t id_size = LoadLe32(m.data() + 16);
    uint32_t quote_size = LoadLe32(m.data() + 20);
    CheckSizeSum(h, kType, kGetQuoteResponseFixedSize,
                 {{"selected_id_size", 16, id_size}, {"quote_size", 20, quote_size}});
    CheckResponseCode(h, kType, id_size == 0 && quote_size == 0, quote_size != 0,
                      "success with quote_size 0 (offset 20)");
    ByteReader r(m.subspan(kGetQuoteResponseFixedSize), "GET_QUOTE_RESP",
                 kGetQuoteResponseFixedSize);
    GetQuoteResponse out;
    out.error_code = h.error_code;
    out.selected_id = ToBytes(r.Take(id_size, "selected_id"));
    out.quote = ToBytes(r.Take(quote_size, "quote"));
    return out;
  });
}

Result<GetCollateralRequest> DecodeGetCollateralRequest(ByteSpan m, uint32_t* error_code) {
  return Decode<GetCollateralRequest>(error_code, [&] {
    constexpr auto kType = MessageType::kGetCollateralRequest;
    Header h = CheckCommon(m, kType, kGetCollateralRequestFixedSize, /*request=*/true);
    uint32_t fmspc_size = LoadLe32(m.data() + 16);
    uint32_t ca_size = LoadLe32(m.data() + 20);
    if (fmspc_size == 0 || ca_size == 0)
      throw MessageError{
          kErrorInvalidSize,
          std::string("GET_COLLATERAL_REQ: ") +
              (fmspc_size == 0 ? "fmspc_size at offset 16" : "pck_ca_size at offset 20") + " is 0"};
    CheckSizeSum(h, kType, kGetCollateralRequestFixedSize,
                 {{"fmspc_size", 16, fmspc_size}, {"pck_ca_size", 20, ca_size}});
    ByteReader r(m.subspan(kGetCollateralRequestFixedSize), "GET_COLLATERAL_REQ",
                 kGetCollateralRequestFixedSize);
    GetCollateralRequest out;
    out.fmspc = ToBytes(r.Take(fmspc_size, "fmspc"));
    out.pck_ca = std::string(AsString(r.Take(ca_size, "pck_ca")));
    return out;
  });
}

Result<GetCollateralResponse> DecodeGetCollateralResponse(ByteSpan m, uint32_t* error_code) {
  return Decode<GetCollateralResponse>(error_code, [&] {
    constexpr auto kType = MessageType::kGetCollateralResponse;
    Header h = CheckCommon(m, kType, kGetCollateralResponseFixedSize, /*request=*/false);
    GetCollateralResponse out;
    out.error_code = h.error_code;
    out.collateral_major_version = LoadLe16(m.data() + 16);
    out.collateral_minor_version = LoadLe16(m.data() + 18);
    Bytes* parts[] = {&out.pck_crl_issuer_chain,
                      &out.root_ca_crl,
                      &out.pck_crl,
                      &out.tcb_info_issuer_chain,
                      &out.tcb_info,
                      &out.qe_identity_issuer_chain,
                      &out.qe_identity};
    static constexpr const char* kNames[] = {"pck_crl_issuer_chain_size",
                                             "root_ca_crl_size",
                                             "pck_crl_size",
                                             "tcb_info_issuer_chain_size",
                                             "tcb_info_size",
                                             "qe_identity_issuer_chain_size",
                                             "qe_identity_size"};
    uint32_t sizes[7];
    bool all_zero = true;
    for (size_t i = 0; i < 7; ++i) {
      sizes[i] = LoadLe32(m.data() + 20 + 4 * i);
      all_zero = all_zero && sizes[i] == 0;
    }
    CheckSizeSum(h, kType, kGetCollateralResponseFixedSize,
                 {{kNames[0], 20, sizes[0]},
                  {kNames[1], 24, sizes[1]},
                  {kNames[2], 28, sizes[2]},
                  {kNames[3], 32, sizes[3]},
                  {kNames[4], 36, sizes[4]},
                  {kNames[5], 40, sizes[5]},
                  {kNames[6], 44, sizes[6]}});
    // Empty CRLs or QE Identity chain are allowed (verify::Collateral allows them); the two
    // signed documents and the TCB chain are what make collateral collateral.
    CheckResponseCode(h, kType, all_zero, sizes[3] != 0 && sizes[4] != 0 && sizes[6] != 0,
                      "success without tcb_info_issuer_chain, tcb_info or qe_identity");
    ByteReader r(m.subspan(kGetCollateralResponseFixedSize), "GET_COLLATERAL_RESP",
                 kGetCollateralResponseFixedSize);
    for (size_t i = 0; i < 7; ++i) *parts[i] = ToBytes(r.Take(sizes[i], kNames[i]));
    return out;
  });
}

Status DecodeGetPlatformInfoRequest(ByteSpan m, uint32_t* error_code) {
  return Decode<Ok>(error_code, [&] {
    Header h = CheckCommon(m, MessageType::kGetPlatformInfoRequest, kGetPlatformInfoRequestSize,
                           /*request=*/true);
    // Stricter than qgs_msg_lib, which lets trailing bytes through: the request has no body.
    CheckSizeSum(h, MessageType::kGetPlatformInfoRequest, kGetPlatformInfoRequestSize, {});
    return Ok{};
  });
}

Result<GetPlatformInfoResponse> DecodeGetPlatformInfoResponse(ByteSpan m, uint32_t* error_code) {
  return Decode<GetPlatformInfoResponse>(error_code, [&] {
    constexpr auto kType = MessageType::kGetPlatformInfoResponse;
    Header h = CheckCommon(m, kType, kGetPlatformInfoResponseFixedSize, /*request=*/false);
    GetPlatformInfoResponse out;
    out.error_code = h.error_code;
    out.tdqe_isvsvn = LoadLe16(m.data() + 16);
    out.pce_isvsvn = LoadLe16(m.data() + 18);
    uint32_t id_size = LoadLe32(m.data() + 20);
    uint32_t svn_size = LoadLe32(m.data() + 24);
    uint64_t exact = uint64_t(kGetPlatformInfoResponseFixedSize) + id_size + svn_size;
    if (h.size == exact + 4 && LoadLe32(m.data() + m.size() - 4) == 0) {
      out.lib_padding = true;  // qgs_msg_lib's double-counted SVN fields (calloc'ed: zero)
    } else {
      CheckSizeSum(h, kType, kGetPlatformInfoResponseFixedSize,
                   {{"platform_id_size", 20, id_size}, {"cpusvn_size", 24, svn_size}});
    }
    CheckResponseCode(h, kType, id_size == 0 && svn_size == 0, id_size != 0 && svn_size != 0,
                      "success with an empty platform_id or cpusvn");
    ByteReader r(m.subspan(kGetPlatformInfoResponseFixedSize), "GET_PLATFORM_INFO_RESP",
                 kGetPlatformInfoResponseFixedSize);
    out.platform_id = ToBytes(r.Take(id_size, "platform_id"));
    out.cpu_svn = ToBytes(r.Take(svn_size, "cpusvn"));
    return out;
  });
}

GetCollateralResponse CollateralToResponse(const verify::Collateral& c) {
  GetCollateralResponse r;
  r.collateral_major_version = kTdxCollateralMajorVersion;
  r.collateral_minor_version = 0;
  r.pck_crl_issuer_chain = TextPart(c.pck_crl_issuer_chain);
  r.root_ca_crl = c.root_ca_crl;
  r.pck_crl = c.pck_crl;
  r.tcb_info_issuer_chain = TextPart(c.tcb_info_issuer_chain);
  r.tcb_info = SignedBody("tcbInfo", c.tcb_info, c.tcb_info_signature);
  r.qe_identity_issuer_chain = TextPart(c.qe_identity_issuer_chain);
  r.qe_identity = SignedBody("enclaveIdentity", c.qe_identity, c.qe_identity_signature);
  return r;
}

Result<verify::Collateral> CollateralFromResponse(const GetCollateralResponse& r) {
  if (r.error_code != kSuccess)
    return Error{"GET_COLLATERAL_RESP carries error " + ErrorCodeName(r.error_code)};
  verify::Collateral c;
  c.pck_crl_issuer_chain = std::string(WithoutNul(r.pck_crl_issuer_chain));
  c.tcb_info_issuer_chain = std::string(WithoutNul(r.tcb_info_issuer_chain));
  c.qe_identity_issuer_chain = std::string(WithoutNul(r.qe_identity_issuer_chain));
  auto root_crl = CrlPart(r.root_ca_crl);
  if (!root_crl.ok()) return Error{"GET_COLLATERAL_RESP: root_ca_crl: " + root_crl.error()};
  c.root_ca_crl = std::move(*root_crl);
  auto pck_crl = CrlPart(r.pck_crl);
  if (!pck_crl.ok()) return Error{"GET_COLLATERAL_RESP: pck_crl: " + pck_crl.error()};
  c.pck_crl = std::move(*pck_crl);
  auto tcb = verify::ParsePcsSignedJson(WithoutNul(r.tcb_info), "tcbInfo");
  if (!tcb.ok()) return Error{"GET_COLLATERAL_RESP: tcb_info: " + tcb.error()};
  c.tcb_info = std::move(tcb->body);
  c.tcb_info_signature = tcb->signature;
  auto qe = verify::ParsePcsSignedJson(WithoutNul(r.qe_identity), "enclaveIdentity");
  if (!qe.ok()) return Error{"GET_COLLATERAL_RESP: qe_identity: " + qe.error()};
  c.qe_identity = std::move(qe->body);
  c.qe_identity_signature = qe->signature;
  return c;
}

Status CheckRawReport(ByteSpan report) {
  if (report.size() != kRawReportSize)
    return Error{"raw TDREPORT: " + std::to_string(report.size()) + " bytes, expected 1024"};
  if (report[0] != 0x81)
    return Error{"raw TDREPORT: REPORTTYPE.type at offset 0 is " + Hex32(report[0]) +
                 ", expected 0x81 (TDX)"};
  if (report[1] != 0)
    return Error{"raw TDREPORT: REPORTTYPE.subtype at offset 1 is " + std::to_string(report[1]) +
                 ", expected 0"};
  if (report[2] > 1)
    return Error{"raw TDREPORT: REPORTTYPE.version at offset 2 is " + std::to_string(report[2]) +
                 ", expected 0 or 1"};
  if (report[3] != 0) return Error{"raw TDREPORT: REPORTTYPE.reserved at offset 3 is not zero"};
  for (size_t i = 4; i < 16; ++i)
    if (report[i] != 0)
      return Error{"raw TDREPORT: reserved byte at offset " + std::to_string(i) + " is not zero"};
  return OkStatus();
}

}  // namespace tdxvirt::qgs
