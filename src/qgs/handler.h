// Answering one QGS request, independent of sockets: the core of QgsServer, and what the fuzz
// target drives.
#pragma once

#include <string>

#include "common/bytes.h"
#include "qgs/backend.h"
#include "qgs/messages.h"

namespace tdxvirt::qgs {

// A backend's quote larger than this is treated as a backend failure (real quotes are 5-8 KiB).
inline constexpr size_t kMaxQuoteSize = 1 << 20;

struct HandledRequest {
  // The reply: a response message (to be framed) or, in raw mode, the bare quote. Empty means
  // close the connection without replying, as Intel's QGS does for what it cannot answer.
  Bytes response;
  std::string type;                // request type name, for the log ("GET_QUOTE_REQ", "raw")
  std::string outcome;             // "ok", "error" (an error response is sent), "rejected" (closed)
  uint32_t error_code = kSuccess;  // the QGS code sent with an error response
  std::string detail;              // why it failed, for the log; never report or key material
};

// One request message (without its length prefix). Malformed requests of a request type get an
// error response with the decoder's code; backend failures get UNEXPECTED (as Intel's QGS sends);
// a message that is not a request at all (no header, response or unknown type) is closed on.
HandledRequest HandleMessage(ByteSpan message, QuoteBackend& backend);

// Raw mode: a bare 1024-byte TDREPORT. On success `response` is the bare quote; anything that
// fails (CheckRawReport, the backend) closes without a reply, as Intel's QGS does.
HandledRequest HandleRawReport(ByteSpan report, QuoteBackend& backend);

}  // namespace tdxvirt::qgs
