// Loopback ports for servers whose URL must be known before they start (a token PKI's CRL
// distribution points name the service's own URL; a test redis-server takes its port as a flag).
#pragma once

namespace tdxvirt {

// A 127.0.0.1 TCP port that was free a moment ago (0 if none could be bound). Another process may
// take it before the caller binds it: callers retry on a bind failure.
int FreeLoopbackPort();

}  // namespace tdxvirt
