// The TD event log: the CCEL table, the crypto-agile log with its decode, boot summary and replay,
// and IMA's sha384 binary log (eventlog/abi.h, decode.h, replay.h), all on the same input.
#include <cstddef>
#include <cstdint>

#include "eventlog/decode.h"
#include "eventlog/replay.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tdxvirt::eventlog;
  tdxvirt::ByteSpan in(data, size);
  (void)ParseCcelTable(in);
  auto log = ParseEventLog(in);
  if (log.ok()) {
    auto decoded = DecodeEvents(*log);
    auto summary = Summarize(*log, decoded);
    for (size_t i = 0; i < decoded.size(); ++i) {
      (void)EventToJson(log->events[i], decoded[i]).dump();
      (void)DescribeEvent(log->events[i], decoded[i]);
    }
    auto replayed = Replay(*log);
    (void)Judge(replayed, replayed.rtmrs);
  }
  auto ima = ParseImaLog(in);
  if (ima.ok()) (void)Judge(Replayed{}, Rtmrs{}, &*ima);
  return 0;
}
