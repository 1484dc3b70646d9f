// The TD's side of a key transfer (`tdxvirt attest secret`), shaped like a request of Intel's
// clients to Intel's KBS, so it works against `serve kbs` and against Intel's broker:
//   background-check: POST .../keys/{id}/transfer (no body) -> nonce; REPORTDATA =
//     SHA-512(val || iat || user_data) with user_data = the TD key in Intel's K layout (wrap.h);
//     quote; POST again with Attestation-Type: TDX -> {wrapped_key, wrapped_swk};
//   passport: POST {"attestation_token"} (a token obtained with the same key as runtime data).
// Then the wrapped key is opened with the TD's private key.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/openssl.h"
#include "common/result.h"
#include "guest/quote_provider.h"
#include "kbs/wrap.h"

namespace tdxvirt::kbs {

struct KbsClientOptions {
  std::string url;      // broker base URL, e.g. https://kbs.example:9443 (routes under /kbs/v1)
  std::string ca_file;  // PEM bundle to trust instead of the system CAs
  bool allow_http = false;
  std::chrono::seconds timeout{30};
};

struct TransferResult {
  WrappedSecret wrapped;
  nlohmann::json response;  // the broker's JSON as received (for `--save-response`)
};

// Background-check mode; `event_log` is sent when not empty. Errors carry the broker's status and
// its {"error"} text ("key broker URL: HTTP 403: ..."). `broker_status` gets the status of the
// broker's last answer, 0 when none arrived, so a caller tells a refusal (4xx) from a failure to
// reach it. Answers are limited to 64 KiB and the whole exchange to `timeout` per request.
Result<TransferResult> TransferWithEvidence(const KbsClientOptions& options, const std::string& key_id,
                                            guest::QuoteProvider& quotes, EVP_PKEY* td_key,
                                            ByteSpan event_log = {}, int* broker_status = nullptr);
// Passport mode.
Result<TransferResult> TransferWithToken(const KbsClientOptions& options, const std::string& key_id,
                                         const std::string& token, int* broker_status = nullptr);

}  // namespace tdxvirt::kbs
