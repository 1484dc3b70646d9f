// Quote parser: any input must parse or fail cleanly; a parsed quote must re-serialize to exactly
// the bytes it came from, and its JSON view must not fail.
#include <cstdlib>

#include "evidence/quote.h"
#include "evidence/quote_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tdxvirt::ByteSpan in(data, size);
  auto quote = tdxvirt::evidence::ParseQuote(in);
  if (!quote.ok()) return 0;
  tdxvirt::Bytes out = tdxvirt::evidence::SerializeQuote(*quote);
  if (out.size() != size || !std::equal(out.begin(), out.end(), data)) std::abort();
  (void)tdxvirt::evidence::QuoteToJson(*quote).dump();
  return 0;
}
