#include "kbs/transfer.h"

#include <cctype>

#include <nlohmann/json.hpp>

namespace tdxvirt::kbs {
namespace {

using nlohmann::json;

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

TransferParse Refuse(int status, std::string error) {
  TransferParse p;
  p.status = status;
  p.error = std::move(error);
  return p;
}

// Intel's ErrJsonDecodeFailed text, with what was wrong.
TransferParse BadBody(const std::string& why) { return Refuse(400, "Failed to JSON-decode request body: " + why); }

}  // namespace

// Intel's route: [a-fA-F0-9]{8}-[a-fA-F0-9]{4}-4[a-fA-F0-9]{3}-[89aAbB][a-fA-F0-9]{3}-[a-fA-F0-9]{12}
// (its class is written [8|9|aA|bB], which also admits '|', on which Intel's uuid.MustParse then
// panics; '|' is refused here).
bool IsUuidV4(std::string_view id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    char c = id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (i == 14) {
      if (c != '4') return false;
    } else if (i == 19) {
      if (c != '8' && c != '9' && c != 'a' && c != 'A' && c != 'b' && c != 'B') return false;
    } else if (!IsHex(c)) {
      return false;
    }
  }
  return true;
}

TransferParse ParseTransferRequest(const TransferHeaders& headers, std::string_view body) {
  // Go's Header.Get compared with "application/json": exact, no parameters.
  if (headers.accept != "application/json")
    return Refuse(415, "Invalid Accept header: send Accept: application/json");
  TransferParse out;
  TransferRequest& r = out.request;
  r.attestation_type = headers.attestation_type;
  if (!r.attestation_type.empty() && r.attestation_type != "TDX" && r.attestation_type != "SGX")
    return Refuse(400, "Invalid attestion type header: Attestation-Type must be TDX (or absent for a passport "
                       "or a nonce request)");

  if (body.empty()) {
    if (!r.attestation_type.empty())
      return Refuse(400, "Invalid request body: Attestation-Type: " + r.attestation_type +
                             " needs a body {\"quote\", \"nonce\", \"user_data\"} (get the nonce first with an "
                             "empty POST without Attestation-Type)");
    r.kind = TransferKind::kNonce;
    return out;
  }
  if (headers.content_type != "application/json")
    return Refuse(415, "Invalid Content-type header: send Content-Type: application/json");

  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return BadBody("not valid JSON");
  if (!j.is_object()) return BadBody("expected a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (k != "attestation_token" && k != "quote" && k != "nonce" && k != "user_data" && k != "event_log")
      return BadBody("unknown field \"" + k + "\" (allowed: attestation_token, quote, nonce, user_data, event_log)");
  }
  // Go reads JSON null as absent.
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  auto bytes = [&](const char* k, Bytes& dst) -> std::string {
    if (!has(k)) return "";
    if (!j[k].is_string()) return std::string(k) + ": expected a base64 string";
    auto b = service::DecodeEitherBase64(j[k].get<std::string>(), k);
    if (!b) return b.error();
    dst = std::move(*b);
    return "";
  };

  if (has("attestation_token")) {
    if (!j["attestation_token"].is_string()) return BadBody("attestation_token: expected a string (the JWT)");
    r.attestation_token = j["attestation_token"].get<std::string>();
  }
  const std::pair<const char*, Bytes*> fields[] = {
      {"quote", &r.quote}, {"user_data", &r.user_data}, {"event_log", &r.event_log}};
  for (const auto& [k, dst] : fields)
    if (auto e = bytes(k, *dst); !e.empty()) return BadBody(e);
  if (r.quote.size() > service::kMaxQuoteSize)
    return BadBody("quote: " + std::to_string(r.quote.size()) + " bytes, more than " +
                   std::to_string(service::kMaxQuoteSize) + " (a TDX quote is a few KiB)");
  if (has("nonce")) {
    auto n = service::NonceFromJson(j["nonce"], "nonce");
    if (!n) return BadBody(n.error());
    r.nonce = std::move(*n);
  }
  bool evidence_fields = !r.quote.empty() || r.nonce || !r.user_data.empty() || !r.event_log.empty();

  if (r.attestation_type.empty()) {
    // Intel's ErrInvalidRequest: a body without Attestation-Type is a passport.
    if (r.attestation_token.empty())
      return Refuse(400, "Invalid request body: without Attestation-Type the body must carry attestation_token "
                         "(passport); to send evidence add the header Attestation-Type: TDX");
    if (evidence_fields)
      return Refuse(400, "Invalid request body: a passport request sends only attestation_token; quote, nonce, "
                         "user_data and event_log go with Attestation-Type: TDX");
    r.kind = TransferKind::kPassport;
    return out;
  }
  if (!r.attestation_token.empty())
    return Refuse(400, "Invalid request body: attestation_token goes without the Attestation-Type header "
                       "(passport); with Attestation-Type: TDX send quote, nonce and user_data");
  std::string missing;
  if (r.quote.empty()) missing += "quote";
  if (!r.nonce) missing += std::string(missing.empty() ? "" : ", ") + "nonce";
  if (r.user_data.empty()) missing += std::string(missing.empty() ? "" : ", ") + "user_data";
  if (!missing.empty())
    return Refuse(400, "Invalid request body: evidence needs quote, nonce and user_data; missing: " + missing);
  r.kind = TransferKind::kEvidence;
  return out;
}

}  // namespace tdxvirt::kbs
