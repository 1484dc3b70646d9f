#include "qgs/client.h"

#include <sys/socket.h>

namespace tdxvirt::qgs {

namespace {

// A reply must be of the expected type and carry no error code.
Status CheckReplyHeader(ByteSpan message, MessageType expected, bool exact_minor) {
  auto h = DecodeHeader(message);
  if (!h.ok()) return Error{h.error()};
  if (h->major_version != kMajorVersion || (exact_minor && h->minor_version != kMinorVersion))
    return Error{"reply has version " + std::to_string(h->major_version) + "." +
                 std::to_string(h->minor_version) + ", expected 1.1"};
  if (h->type != uint32_t(expected))
    return Error{"reply is " + MessageTypeName(h->type) + ", expected " +
                 MessageTypeName(uint32_t(expected))};
  if (h->error_code != kSuccess)
    return Error{"the QGS answered with error " + ErrorCodeName(h->error_code)};
  return OkStatus();
}

}  // namespace

Result<Bytes> QgsClient::Transact(ByteSpan message) {
  const std::string where = "QGS at " + ToString(address_) + ": ";
  auto deadline = Clock::now() + options_.timeout;
  auto fd = Connect(address_, deadline);
  if (!fd.ok()) return Error{where + fd.error()};
  Bytes frame = Frame(message);
  IoResult w = WriteAll(fd->get(), frame, deadline);
  if (!w.ok()) return Error{where + "sending the request: " + w.Describe()};
  uint8_t prefix[kFramePrefixSize];
  IoResult r = ReadExact(fd->get(), prefix, deadline);
  if (!r.ok()) return Error{where + "reading the reply's length prefix: " + r.Describe()};
  uint32_t size = LoadBe32(prefix);
  if (size < kHeaderSize || size > options_.max_response_size)
    return Error{where + "reply length prefix " + std::to_string(size) + " is outside 16.." +
                 std::to_string(options_.max_response_size)};
  Bytes reply(size);
  r = ReadExact(fd->get(), reply, deadline);
  if (!r.ok())
    return Error{where + "reading the reply: " + r.Describe() + " of " + std::to_string(size)};
  return reply;
}

Result<Bytes> QgsClient::GetQuote(ByteSpan td_report, ByteSpan id_list) {
  const std::string where = "QGS at " + ToString(address_) + ": GET_QUOTE: ";
  if (td_report.empty()) return Error{where + "the TDREPORT is empty"};
  auto reply = Transact(EncodeGetQuoteRequest({.report = Bytes(td_report.begin(), td_report.end()),
                                               .id_list = Bytes(id_list.begin(), id_list.end())}));
  if (!reply.ok()) return Error{reply.error()};
  if (Status s = CheckReplyHeader(*reply, MessageType::kGetQuoteResponse, /*exact_minor=*/true);
      !s.ok())
    return Error{where + s.error()};
  auto resp = DecodeGetQuoteResponse(*reply);
  if (!resp.ok()) return Error{where + resp.error()};
  if (!resp->selected_id.empty() && id_list.empty())
    return Error{where + "the reply selects an attestation key ID that was not asked for"};
  return std::move(resp->quote);
}

Result<Bytes> QgsClient::GetQuoteRaw(ByteSpan td_report) {
  const std::string where = "QGS at " + ToString(address_) + ": raw GET_QUOTE: ";
  if (td_report.size() != kRawReportSize)
    return Error{where + "raw mode takes a 1024-byte TDREPORT, not " +
                 std::to_string(td_report.size()) + " bytes"};
  auto deadline = Clock::now() + options_.timeout;
  auto fd = Connect(address_, deadline);
  if (!fd.ok()) return Error{where + fd.error()};
  IoResult w = WriteAll(fd->get(), td_report, deadline);
  if (!w.ok()) return Error{where + "sending the report: " + w.Describe()};
  shutdown(fd->get(), SHUT_WR);
  Bytes quote;
  IoResult r = ReadUntilEof(fd->get(), quote, options_.max_response_size, deadline);
  if (!r.ok()) return Error{where + "reading the quote: " + r.Describe()};
  if (quote.empty()) return Error{where + "the QGS closed without a quote (it refused the report)"};
  return quote;
}

Result<GetCollateralResponse> QgsClient::GetCollateralResponseRaw(ByteSpan fmspc,
                                                                  std::string_view pck_ca) {
  const std::string where = "QGS at " + ToString(address_) + ": GET_COLLATERAL: ";
  if (fmspc.empty() || pck_ca.empty()) return Error{where + "FMSPC and PCK CA must not be empty"};
  auto reply = Transact(EncodeGetCollateralRequest(MakeGetCollateralRequest(fmspc, pck_ca)));
  if (!reply.ok()) return Error{reply.error()};
  // Intel's library checks only the major version; so do we, outside GET_QUOTE.
  if (Status s = CheckReplyHeader(*reply, MessageType::kGetCollateralResponse, false); !s.ok())
    return Error{where + s.error()};
  auto resp = DecodeGetCollateralResponse(*reply);
  if (!resp.ok()) return Error{where + resp.error()};
  return resp;
}

Result<verify::Collateral> QgsClient::GetCollateral(ByteSpan fmspc, std::string_view pck_ca) {
  auto resp = GetCollateralResponseRaw(fmspc, pck_ca);
  if (!resp.ok()) return Error{resp.error()};
  auto c = CollateralFromResponse(*resp);
  if (!c.ok()) return Error{"QGS at " + ToString(address_) + ": " + c.error()};
  return c;
}

Result<PlatformInfo> QgsClient::GetPlatformInfo() {
  const std::string where = "QGS at " + ToString(address_) + ": GET_PLATFORM_INFO: ";
  auto reply = Transact(EncodeGetPlatformInfoRequest());
  if (!reply.ok()) return Error{reply.error()};
  if (Status s = CheckReplyHeader(*reply, MessageType::kGetPlatformInfoResponse, false); !s.ok())
    return Error{where + s.error()};
  auto resp = DecodeGetPlatformInfoResponse(*reply);
  if (!resp.ok()) return Error{where + resp.error()};
  return PlatformInfo{.tdqe_isvsvn = resp->tdqe_isvsvn,
                      .pce_isvsvn = resp->pce_isvsvn,
                      .platform_id = std::move(resp->platform_id),
                      .cpu_svn = std::move(resp->cpu_svn)};
}

}  // namespace tdxvirt::qgs
