// QGS messages: every decoder, the request handler and address parsing on arbitrary bytes. Anything
// that decodes must re-encode to the identical bytes (but for the minor version, which decoders do
// not judge), and every reply the handler builds must decode with the client's decoders.
#include <cstdlib>
#include <string_view>

#include "qgs/handler.h"
#include "qgs/messages.h"
#include "qgs/transport.h"

namespace {

using namespace tdxvirt;
using namespace tdxvirt::qgs;

// Deterministic and cheap: the handler's paths matter here, not quotes.
class FuzzBackend : public QuoteBackend {
 public:
  Result<Bytes> GetQuote(ByteSpan report, ByteSpan) override {
    if (report.size() != 1024) return Error{"not a TDREPORT"};
    return Bytes(report.begin(), report.begin() + 64);
  }
  Result<verify::Collateral> GetCollateral(ByteSpan fmspc, std::string_view ca) override {
    if (fmspc.size() != 6 || (ca != "platform" && ca != "processor")) return Error{"unknown"};
    verify::Collateral c;
    c.tcb_info_issuer_chain = "chain";
    c.tcb_info = "{\"id\":\"TDX\"}";
    c.qe_identity = "{\"id\":\"TD_QE\"}";
    return c;
  }
  Result<PlatformInfo> GetPlatformInfo() override {
    return PlatformInfo{
        .tdqe_isvsvn = 1, .pce_isvsvn = 2, .platform_id = Bytes(16, 1), .cpu_svn = Bytes(16, 2)};
  }
};

void Require(bool condition) {
  if (!condition) std::abort();
}

// `encoded` is what our encoder made of a decoded `input`: identical but for the minor version.
void RequireSame(ByteSpan input, Bytes encoded) {
  Require(encoded.size() == input.size() && input.size() >= kHeaderSize);
  encoded[2] = input[2];
  encoded[3] = input[3];
  Require(std::equal(encoded.begin(), encoded.end(), input.begin()));
}

void DecodeAll(ByteSpan m) {
  if (auto r = DecodeGetQuoteRequest(m); r.ok()) RequireSame(m, EncodeGetQuoteRequest(*r));
  if (auto r = DecodeGetQuoteResponse(m); r.ok()) RequireSame(m, EncodeGetQuoteResponse(*r));
  if (auto r = DecodeGetCollateralRequest(m); r.ok()) {
    RequireSame(m, EncodeGetCollateralRequest(*r));
    (void)PckCaName(*r);
  }
  if (auto r = DecodeGetCollateralResponse(m); r.ok()) {
    RequireSame(m, EncodeGetCollateralResponse(*r));
    (void)CollateralFromResponse(*r);
  }
  if (DecodeGetPlatformInfoRequest(m).ok()) RequireSame(m, EncodeGetPlatformInfoRequest());
  if (auto r = DecodeGetPlatformInfoResponse(m); r.ok())
    RequireSame(m, EncodeGetPlatformInfoResponse(*r));
}

void RequireDecodableReply(const HandledRequest& h) {
  if (h.response.empty()) return;
  auto header = DecodeHeader(h.response);
  Require(header.ok() && header->size == h.response.size());
  switch (MessageType(header->type)) {
    case MessageType::kGetQuoteResponse:
      Require(DecodeGetQuoteResponse(h.response).ok());
      break;
    case MessageType::kGetCollateralResponse:
      Require(DecodeGetCollateralResponse(h.response).ok());
      break;
    case MessageType::kGetPlatformInfoResponse:
      Require(DecodeGetPlatformInfoResponse(h.response).ok());
      break;
    default:
      Require(false);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteSpan input(data, size);
  FuzzBackend backend;
  DecodeAll(input);
  if (auto m = Unframe(input, kDefaultMaxRequestSize); m.ok()) {
    DecodeAll(*m);
    RequireDecodableReply(HandleMessage(*m, backend));
  }
  RequireDecodableReply(HandleMessage(input, backend));
  HandledRequest raw = HandleRawReport(input, backend);
  Require(raw.response.empty() == (raw.outcome != "ok"));
  (void)ParseQgsAddress(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
