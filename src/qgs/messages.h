// The QGS (Intel TD Quote Generation Service) wire protocol, version 1.1: pure encode/decode, no
// I/O.
//
// On the socket every message travels as [u32 length, BIG-endian][message]; inside a message every
// integer is little-endian. A message starts with a 16-byte header {u16 major, u16 minor, u32 type,
// u32 size (whole message), u32 error_code}. Intel's QGS answers one request per connection and
// then closes. A client may instead send a bare 1024-byte TDREPORT ("raw mode"): the reply is the
// bare quote, unframed, and the connection is closed. See docs/qgs.md.
//
// Decoders check exactly what Intel's qgs_msg_lib checks, in its order, and say which QGS error
// code a server should answer with (through `error_code`), plus a message naming field and offset.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"
#include "verify/collateral.h"

namespace tdxvirt::qgs {

inline constexpr uint16_t kMajorVersion = 1;
inline constexpr uint16_t kMinorVersion = 1;

inline constexpr size_t kFramePrefixSize = 4;
inline constexpr size_t kHeaderSize = 16;
inline constexpr size_t kGetQuoteRequestFixedSize = 24;   // header, report_size, id_list_size
inline constexpr size_t kGetQuoteResponseFixedSize = 24;  // header, selected_id_size, quote_size
inline constexpr size_t kGetCollateralRequestFixedSize = 24;     // header, fmspc_size, pck_ca_size
inline constexpr size_t kGetCollateralResponseFixedSize = 48;    // header, 2 x u16 version, 7 sizes
inline constexpr size_t kGetPlatformInfoRequestSize = 16;        // header only
inline constexpr size_t kGetPlatformInfoResponseFixedSize = 28;  // header, 2 x u16 SVN, 2 sizes
inline constexpr size_t kRawReportSize = 1024;

// Requests are small (a 1 KiB TDREPORT); the cap is checked on the length prefix, before any
// allocation. Responses carry quotes (5-8 KiB) or collateral (tens of KiB).
inline constexpr size_t kDefaultMaxRequestSize = 1 << 20;
inline constexpr size_t kDefaultMaxResponseSize = 16 << 20;

enum class MessageType : uint32_t {
  kGetQuoteRequest = 0,
  kGetQuoteResponse = 1,
  kGetCollateralRequest = 2,
  kGetCollateralResponse = 3,
  kGetPlatformInfoRequest = 4,
  kGetPlatformInfoResponse = 5,
};
inline constexpr uint32_t kMessageTypeMax = 6;

// header.error_code values: QGS_MSG_MK_ERROR(x) = 0x12000 | x.
inline constexpr uint32_t kSuccess = 0;
inline constexpr uint32_t kErrorUnexpected = 0x12001;
inline constexpr uint32_t kErrorOutOfMemory = 0x12002;
inline constexpr uint32_t kErrorInvalidParameter = 0x12003;
inline constexpr uint32_t kErrorInvalidVersion = 0x12004;
inline constexpr uint32_t kErrorInvalidType = 0x12005;
inline constexpr uint32_t kErrorInvalidSize = 0x12006;
inline constexpr uint32_t kErrorInvalidCode = 0x12007;
inline constexpr uint32_t kErrorMax = 0x12008;  // error codes in responses are below this

// "GET_QUOTE_REQ" ... "GET_PLATFORM_INFO_RESP", or "type N" for anything else.
std::string MessageTypeName(uint32_t type);
// "INVALID_SIZE (0x12006)", "success (0x0)", or the hex value.
std::string ErrorCodeName(uint32_t code);
// The response type answering a request type; nullopt when `type` is not a request.
std::optional<MessageType> ResponseTypeFor(uint32_t request_type);

struct Header {
  uint16_t major_version = kMajorVersion;
  uint16_t minor_version = kMinorVersion;
  uint32_t type = 0;
  uint32_t size = 0;  // the whole message, header included
  uint32_t error_code = 0;
  bool operator==(const Header&) const = default;
};

// Reads the 16 header bytes at the start of `message` (no field checks).
Result<Header> DecodeHeader(ByteSpan message);

// [BE u32 length][message].
Bytes Frame(ByteSpan message);
uint32_t LoadBe32(const uint8_t* p);
// The message inside one complete frame: the prefix must equal the bytes that follow, exactly, and
// be at most `max_message_size`.
Result<ByteSpan> Unframe(ByteSpan frame, size_t max_message_size);

struct GetQuoteRequest {
  Bytes report;   // a TDREPORT (1024 bytes) for a TD quote; cannot be empty
  Bytes id_list;  // optional list of attestation key IDs; empty for TDX
  bool operator==(const GetQuoteRequest&) const = default;
};

struct GetQuoteResponse {
  uint32_t error_code = kSuccess;
  Bytes selected_id;  // empty when the request carried no ID list (always, for QEMU)
  Bytes quote;
  bool operator==(const GetQuoteResponse&) const = default;
};

struct GetCollateralRequest {
  Bytes fmspc;  // 6 bytes for Intel platforms
  std::string
      pck_ca;  // as sent: "platform" or "processor", NUL-terminated (see MakeGetCollateralRequest)
  bool operator==(const GetCollateralRequest&) const = default;
};
// The request Intel's clients send: the CA name travels with its NUL terminator, because Intel's
// QGS hands the bytes to its provider library as a C string.
GetCollateralRequest MakeGetCollateralRequest(ByteSpan fmspc, std::string_view pck_ca);
// The CA name of a request without its terminator; fails on an embedded NUL or an empty name.
Result<std::string> PckCaName(const GetCollateralRequest& request);

// The seven collateral parts exactly as they travel (see CollateralToResponse for their forms).
struct GetCollateralResponse {
  uint32_t error_code = kSuccess;
  uint16_t collateral_major_version =
      0;  // of the collateral structure (3 for TDX), not the protocol
  uint16_t collateral_minor_version = 0;
  Bytes pck_crl_issuer_chain;
  Bytes root_ca_crl;
  Bytes pck_crl;
  Bytes tcb_info_issuer_chain;
  Bytes tcb_info;
  Bytes qe_identity_issuer_chain;
  Bytes qe_identity;
  bool operator==(const GetCollateralResponse&) const = default;
};

struct GetPlatformInfoResponse {
  uint32_t error_code = kSuccess;
  uint16_t tdqe_isvsvn = 0;
  uint16_t pce_isvsvn = 0;
  Bytes platform_id;
  Bytes cpu_svn;
  // Intel's qgs_msg_lib generator counts the two SVN fields twice, so its messages end with 4
  // zero bytes beyond the layout. Accepted on decode; kept so a message re-encodes identically.
  bool lib_padding = false;
  bool operator==(const GetPlatformInfoResponse&) const = default;
};

// Encoders write version 1.1 and the exact header.size. Part sizes must fit in u32 (callers bound
// them far below that).
Bytes EncodeGetQuoteRequest(const GetQuoteRequest& m);
Bytes EncodeGetQuoteResponse(const GetQuoteResponse& m);
Bytes EncodeGetCollateralRequest(const GetCollateralRequest& m);
Bytes EncodeGetCollateralResponse(const GetCollateralResponse& m);
Bytes EncodeGetPlatformInfoRequest();
Bytes EncodeGetPlatformInfoResponse(const GetPlatformInfoResponse& m);
// What Intel's qgs_msg_gen_error_resp sends: the response type's fixed part, all zero but the
// header. `response_type` must be a response type.
Bytes EncodeErrorResponse(MessageType response_type, uint32_t error_code);

// Decoders take one whole message (no length prefix). On failure `error_code` (if given) receives
// the QGS error code that answers it:
//   shorter than the fixed part -> INVALID_PARAMETER; major version != 1 -> INVALID_VERSION;
//   another type -> INVALID_TYPE; header.size != message size, or != fixed part + parts ->
//   INVALID_SIZE; request with error_code != 0 -> INVALID_CODE; GET_QUOTE_REQ report_size 0 ->
//   INVALID_CODE (qgs_msg_lib's choice); GET_COLLATERAL_REQ fmspc or CA size 0 -> INVALID_SIZE.
// Only the major version is checked ("minor change is deemed as compatible").
// Responses decode successfully when they carry an error code (< 0x12008, with every part size 0).
Result<GetQuoteRequest> DecodeGetQuoteRequest(ByteSpan message, uint32_t* error_code = nullptr);
Result<GetQuoteResponse> DecodeGetQuoteResponse(ByteSpan message, uint32_t* error_code = nullptr);
Result<GetCollateralRequest> DecodeGetCollateralRequest(ByteSpan message,
                                                        uint32_t* error_code = nullptr);
Result<GetCollateralResponse> DecodeGetCollateralResponse(ByteSpan message,
                                                          uint32_t* error_code = nullptr);
Status DecodeGetPlatformInfoRequest(ByteSpan message, uint32_t* error_code = nullptr);
Result<GetPlatformInfoResponse> DecodeGetPlatformInfoResponse(ByteSpan message,
                                                              uint32_t* error_code = nullptr);

// Collateral on the wire, as Intel's provider library (QPL/QCNL) hands it to QGS and QVL reads it:
//   issuer chains   PEM text + NUL terminator
//   CRLs            DER (decoding also takes hex text of DER, as PCCS serves it, and PEM)
//   tcb_info        the PCS body {"tcbInfo":<exact signed text>,"signature":"<hex r||s>"} + NUL
//   qe_identity     the PCS body {"enclaveIdentity":...,"signature":"..."} + NUL
// so the signed JSON is carried byte for byte and verify::ParsePcsSignedJson reads it back.
// Collateral::pck_certificate_chain has no slot in the message and is not carried.
inline constexpr uint16_t kTdxCollateralMajorVersion = 3;
GetCollateralResponse CollateralToResponse(const verify::Collateral& c);
Result<verify::Collateral> CollateralFromResponse(const GetCollateralResponse& r);

// The checks Intel's QGS applies to a raw-mode TDREPORT before quoting it: exactly 1024 bytes,
// REPORTTYPE type 0x81, subtype 0, version 0 or 1 (TDX 1.5 / service TD), reserved byte and the
// 12 reserved bytes after REPORTTYPE zero.
Status CheckRawReport(ByteSpan report);

}  // namespace tdxvirt::qgs
