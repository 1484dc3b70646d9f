#include "qgs/handler.h"

namespace tdxvirt::qgs {

namespace {

HandledRequest ErrorReply(HandledRequest h, MessageType response_type, uint32_t code,
                          std::string detail) {
  h.response = EncodeErrorResponse(response_type, code);
  h.outcome = "error";
  h.error_code = code;
  h.detail = std::move(detail);
  return h;
}

HandledRequest Ok(HandledRequest h, Bytes response) {
  h.response = std::move(response);
  h.outcome = "ok";
  return h;
}

HandledRequest GetQuote(HandledRequest h, ByteSpan message, QuoteBackend& backend) {
  constexpr auto kResp = MessageType::kGetQuoteResponse;
  uint32_t code = kErrorUnexpected;
  auto req = DecodeGetQuoteRequest(message, &code);
  if (!req.ok()) return ErrorReply(std::move(h), kResp, code, req.error());
  auto quote = backend.GetQuote(req->report, req->id_list);
  if (!quote.ok())
    return ErrorReply(std::move(h), kResp, kErrorUnexpected, "backend: " + quote.error());
  if (quote->empty() || quote->size() > kMaxQuoteSize)
    return ErrorReply(std::move(h), kResp, kErrorUnexpected,
                      "backend returned a quote of " + std::to_string(quote->size()) + " bytes");
  return Ok(std::move(h), EncodeGetQuoteResponse({.quote = std::move(*quote)}));
}

HandledRequest GetCollateral(HandledRequest h, ByteSpan message, QuoteBackend& backend) {
  constexpr auto kResp = MessageType::kGetCollateralResponse;
  uint32_t code = kErrorUnexpected;
  auto req = DecodeGetCollateralRequest(message, &code);
  if (!req.ok()) return ErrorReply(std::move(h), kResp, code, req.error());
  auto ca = PckCaName(*req);
  if (!ca.ok()) return ErrorReply(std::move(h), kResp, kErrorInvalidParameter, ca.error());
  auto collateral = backend.GetCollateral(req->fmspc, *ca);
  if (!collateral.ok())
    return ErrorReply(std::move(h), kResp, kErrorUnexpected, "backend: " + collateral.error());
  GetCollateralResponse resp = CollateralToResponse(*collateral);
  if (resp.tcb_info_issuer_chain.empty() || resp.tcb_info.empty() || resp.qe_identity.empty())
    return ErrorReply(std::move(h), kResp, kErrorUnexpected,
                      "backend collateral lacks the TCB Info, its chain or the QE Identity");
  Bytes out = EncodeGetCollateralResponse(resp);
  if (out.size() > kDefaultMaxResponseSize)
    return ErrorReply(std::move(h), kResp, kErrorUnexpected,
                      "collateral of " + std::to_string(out.size()) + " bytes is over the limit");
  return Ok(std::move(h), std::move(out));
}

HandledRequest GetPlatformInfo(HandledRequest h, ByteSpan message, QuoteBackend& backend) {
  constexpr auto kResp = MessageType::kGetPlatformInfoResponse;
  uint32_t code = kErrorUnexpected;
  if (Status s = DecodeGetPlatformInfoRequest(message, &code); !s.ok())
    return ErrorReply(std::move(h), kResp, code, s.error());
  auto info = backend.GetPlatformInfo();
  if (!info.ok())
    return ErrorReply(std::move(h), kResp, kErrorUnexpected, "backend: " + info.error());
  // The protocol cannot say "success, but no ID": clients reject empty parts.
  if (info->platform_id.empty() || info->cpu_svn.empty() || info->platform_id.size() > 4096 ||
      info->cpu_svn.size() > 4096)
    return ErrorReply(std::move(h), kResp, kErrorUnexpected,
                      "backend platform info has an empty or oversized platform_id or cpu_svn");
  GetPlatformInfoResponse resp{.tdqe_isvsvn = info->tdqe_isvsvn,
                               .pce_isvsvn = info->pce_isvsvn,
                               .platform_id = std::move(info->platform_id),
                               .cpu_svn = std::move(info->cpu_svn)};
  return Ok(std::move(h), EncodeGetPlatformInfoResponse(resp));
}

}  // namespace

HandledRequest HandleMessage(ByteSpan message, QuoteBackend& backend) {
  HandledRequest h;
  auto header = DecodeHeader(message);
  if (!header.ok()) {
    h.type = "none";
    h.outcome = "rejected";
    h.detail = header.error();
    return h;
  }
  h.type = MessageTypeName(header->type);
  switch (header->type) {
    case uint32_t(MessageType::kGetQuoteRequest):
      return GetQuote(std::move(h), message, backend);
    case uint32_t(MessageType::kGetCollateralRequest):
      return GetCollateral(std::move(h), message, backend);
    case uint32_t(MessageType::kGetPlatformInfoRequest):
      return GetPlatformInfo(std::move(h), message, backend);
    default:
      // No response type answers a response or an unknown type; Intel's QGS closes too.
      h.outcome = "rejected";
      h.detail = h.type + " at offset 4 is not a request type";
      return h;
  }
}

HandledRequest HandleRawReport(ByteSpan report, QuoteBackend& backend) {
  HandledRequest h;
  h.type = "raw";
  h.outcome = "rejected";
  if (Status s = CheckRawReport(report); !s.ok()) {
    h.detail = s.error();
    return h;
  }
  auto quote = backend.GetQuote(report, {});
  if (!quote.ok()) {
    h.detail = "backend: " + quote.error();
    return h;
  }
  if (quote->empty() || quote->size() > kMaxQuoteSize) {
    h.detail = "backend returned a quote of " + std::to_string(quote->size()) + " bytes";
    return h;
  }
  h.outcome = "ok";
  h.response = std::move(*quote);
  return h;
}

}  // namespace tdxvirt::qgs
