// The key transfer request, POST /kbs/v1/keys/{id}/transfer, read as Intel's KBS reads it
// (transport/http/key_transfer.go, model/key_transfer.go; reference key-broker.md §1.1-1.2).
// Pure: the server hands in the headers and the (size-limited) body.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "service/appraisal.h"  // VerifierNonce

namespace tdxvirt::kbs {

// Intel's route only matches a version-4 UUID ({id}); anything else is a 404.
bool IsUuidV4(std::string_view id);

enum class TransferKind {
  kNonce,     // no body, no Attestation-Type: answer a verifier nonce (background-check, step 1)
  kEvidence,  // Attestation-Type: TDX and {quote, nonce, user_data, event_log?} (step 2)
  kPassport,  // no Attestation-Type and {attestation_token}
};

struct TransferRequest {
  TransferKind kind = TransferKind::kNonce;
  std::string attestation_type;   // the header ("" when absent)
  std::string attestation_token;  // passport
  Bytes quote;                    // evidence (decoded from base64)
  std::optional<service::VerifierNonce> nonce;
  Bytes user_data;                // the TD's public key (K layout), bound into REPORTDATA
  Bytes event_log;                // optional CCEL log
};

struct TransferHeaders {
  std::string accept, content_type, attestation_type;
};

// status 0 = parsed; otherwise Intel's status (415 for Accept/Content-Type, 400 for the body or
// the header) and a message naming the field and the fix. Unknown JSON fields are refused as
// Intel's decoder refuses them. Unlike Intel, evidence without quote, nonce or user_data is a 400
// here (Intel forwards it and answers 502 when Trust Authority refuses it).
struct TransferParse {
  int status = 0;
  std::string error;
  TransferRequest request;
};
TransferParse ParseTransferRequest(const TransferHeaders& headers, std::string_view body);

}  // namespace tdxvirt::kbs
