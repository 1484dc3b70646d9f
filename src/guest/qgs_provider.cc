#include "guest/qgs_provider.h"

namespace tdxvirt::guest {

QgsQuoteProvider::QgsQuoteProvider(std::string name, std::shared_ptr<TdxGuestDevice> device,
                                   qgs::QgsAddress address, qgs::ClientOptions options)
    : name_(std::move(name)), device_(std::move(device)), client_(std::move(address), options) {}

Result<Bytes> QgsQuoteProvider::GetQuote(const evidence::ReportData& report_data) {
  auto report = device_->GetReport(report_data);
  if (!report.ok()) return Error{report.error()};
  // Framed GET_QUOTE, as Intel's guest library sends it; the QGS's raw mode is QEMU's business.
  auto quote = client_.GetQuote(*report);
  if (!quote.ok()) return Error{quote.error()};
  if (Status s =
          CheckQuoteReportData(*quote, report_data, "QGS at " + qgs::ToString(client_.address()));
      !s.ok())
    return Error{s.error()};
  return quote;
}

}  // namespace tdxvirt::guest
