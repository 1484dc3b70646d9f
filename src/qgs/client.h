// A QGS client: one connection per request, as QEMU and Intel's guest library do.
#pragma once

#include <chrono>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"
#include "qgs/backend.h"
#include "qgs/messages.h"
#include "qgs/transport.h"
#include "verify/collateral.h"

namespace tdxvirt::qgs {

struct ClientOptions {
  // From connect to the last reply byte: QEMU's TRANSACTION_TIMEOUT.
  std::chrono::milliseconds timeout{30000};
  size_t max_response_size = kDefaultMaxResponseSize;
};

class QgsClient {
 public:
  explicit QgsClient(QgsAddress address, ClientOptions options = {})
      : address_(std::move(address)), options_(options) {}

  // GET_QUOTE with the response checked as QEMU checks it: version exactly 1.1, type
  // GET_QUOTE_RESP, error_code 0, no selected ID (unless `id_list` was given), quote_size
  // matching the message. Returns the bare quote.
  Result<Bytes> GetQuote(ByteSpan td_report, ByteSpan id_list = {});
  // Raw mode: sends the bare 1024-byte TDREPORT and reads the bare quote until the server
  // closes. An empty reply means the server refused the report.
  Result<Bytes> GetQuoteRaw(ByteSpan td_report);
  // GET_COLLATERAL for `fmspc` and the PCK CA ("platform" or "processor").
  Result<verify::Collateral> GetCollateral(ByteSpan fmspc, std::string_view pck_ca);
  Result<GetCollateralResponse> GetCollateralResponseRaw(ByteSpan fmspc, std::string_view pck_ca);
  Result<PlatformInfo> GetPlatformInfo();

  // One framed exchange: sends `message` with its length prefix and returns the response message
  // (prefix checked and removed).
  Result<Bytes> Transact(ByteSpan message);

  const QgsAddress& address() const { return address_; }

 private:
  QgsAddress address_;
  ClientOptions options_;
};

}  // namespace tdxvirt::qgs
