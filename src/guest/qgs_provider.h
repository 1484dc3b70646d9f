// A TDREPORT quoted by a Quote Generation Service: what Intel's guest library does in vsock mode
// (host CID 2, port 4050) when configfs-tsm is missing. The report comes from /dev/tdx_guest on a
// TD, or from the simulator; the framed GET_QUOTE exchange is qgs::QgsClient's.
#pragma once

#include <memory>

#include "guest/quote_provider.h"
#include "guest/tdx_guest_device.h"
#include "qgs/client.h"

namespace tdxvirt::guest {

class QgsQuoteProvider : public QuoteProvider {
 public:
  // `name` is the provider kind it serves as ("tdx-guest" or "qgs").
  QgsQuoteProvider(std::string name, std::shared_ptr<TdxGuestDevice> device,
                   qgs::QgsAddress address, qgs::ClientOptions options = {});

  std::string_view name() const override { return name_; }
  Result<Bytes> GetQuote(const evidence::ReportData& report_data) override;

 private:
  std::string name_;
  std::shared_ptr<TdxGuestDevice> device_;
  qgs::QgsClient client_;
};

}  // namespace tdxvirt::guest
