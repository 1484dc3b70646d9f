#include "kbs/client.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

#include "common/base64.h"
#include "service/appraisal.h"
#include "service/client.h"

namespace tdxvirt::kbs {

namespace {

// The broker's answers are small: a nonce, two base64 blobs, or an error. Anything past this is
// refused while it arrives, never buffered.
constexpr size_t kMaxResponseBytes = 64 << 10;

struct Target {
  std::string origin;  // scheme://host[:port]
  std::string path;    // {prefix}/kbs/v1/keys/{id}/transfer
};

// The key id goes into the path: only a UUID's characters, so it cannot change the route. The
// broker itself (Intel's and ours) answers 404 for anything but a version-4 UUID.
bool UuidShaped(const std::string& id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? id[i] != '-' : !std::isxdigit(static_cast<unsigned char>(id[i]))) return false;
  }
  return true;
}

Result<Target> TransferTarget(const KbsClientOptions& o, const std::string& key_id) {
  auto split = service::SplitHttpUrl(o.url, "--kbs", o.allow_http);
  if (!split.ok()) return Error{split.error()};
  if (!UuidShaped(key_id))
    return Error{"--key-id: \"" + key_id + "\" is not a UUID (the broker's key ids are version-4 UUIDs, "
                 "e.g. 3fa85f64-5717-4562-b3fc-2c963f66afa6)"};
  if (o.timeout.count() <= 0) return Error{"--timeout must be positive"};
  if (split->prefix.find_first_of("?#") != std::string::npos)
    return Error{"--kbs: \"" + o.url + "\" has a query or fragment; give the broker's base URL"};
  return Target{split->origin, split->prefix + "/kbs/v1/keys/" + key_id + "/transfer"};
}

using Answer = service::HttpAnswer;

// One POST to the transfer route. Headers as Intel's KBS requires them (transport/http/
// key_transfer.go): Accept always, Content-Type with a body, Attestation-Type in evidence mode.
Result<Answer> Post(const KbsClientOptions& o, const Target& t, const std::string& body,
                    const std::string& attestation_type) {
  service::HttpExchange x;
  x.origin = t.origin;
  x.path = t.path;
  x.method = "POST";
  x.body = body;
  x.headers.emplace_back("Accept", "application/json");
  if (!body.empty()) x.headers.emplace_back("Content-Type", "application/json");
  if (!attestation_type.empty()) x.headers.emplace_back("Attestation-Type", attestation_type);
  x.limit = kMaxResponseBytes;
  x.timeout = o.timeout;
  x.ca_file = o.ca_file;
  service::HttpFailure failure = service::HttpFailure::kNone;
  auto a = service::SendBounded(x, &failure);
  if (!a.ok())
    return Error{"key broker " + a.error() +
                 (failure == service::HttpFailure::kTls
                      ? " (the broker's TLS certificate is not trusted: give its CA with --ca-file)"
                      : "")};
  return a;
}

// "HTTP 403: <the broker's error>" — Intel's errors are {"error": "..."}.
std::string Refusal(const Target& t, const Answer& a) {
  std::string text;
  auto j = nlohmann::json::parse(a.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    text = j["error"].get<std::string>();
  } else {
    text = a.body.substr(0, 200);
    std::replace_if(text.begin(), text.end(), [](char c) { return c < 0x20 || c == 0x7f; }, ' ');
  }
  return "key broker " + t.origin + t.path + ": HTTP " + std::to_string(a.status) +
         (text.empty() ? "" : ": " + text);
}

Result<nlohmann::json> JsonObject(const Target& t, const Answer& a, const std::string& what) {
  auto j = nlohmann::json::parse(a.body, nullptr, false);
  if (!j.is_object())
    return Error{"key broker " + t.origin + t.path + ": the " + what + " is not a JSON object"};
  return j;
}

Result<TransferResult> ReadWrapped(const Target& t, const Answer& a) {
  auto j = JsonObject(t, a, "transfer response");
  if (!j.ok()) return Error{j.error()};
  std::string where = "key broker " + t.origin + t.path + ": transfer response: ";
  TransferResult r;
  for (const char* field : {"wrapped_key", "wrapped_swk"}) {
    if (!j->contains(field) || !(*j)[field].is_string())
      return Error{where + "no \"" + field + "\" (base64) in the answer" +
                   (std::string(field) == "wrapped_swk"
                        ? " (a key released without attestation is not wrapped to this TD's key)"
                        : "")};
    auto bytes = Base64Decode((*j)[field].get<std::string>(), field);
    if (!bytes.ok()) return Error{where + bytes.error()};
    (std::string(field) == "wrapped_key" ? r.wrapped.wrapped_key : r.wrapped.wrapped_swk) = std::move(*bytes);
  }
  r.response = std::move(*j);
  return r;
}

}  // namespace

Result<TransferResult> TransferWithEvidence(const KbsClientOptions& options, const std::string& key_id,
                                            guest::QuoteProvider& quotes, EVP_PKEY* td_key,
                                            ByteSpan event_log, int* broker_status) {
  if (broker_status) *broker_status = 0;
  auto target = TransferTarget(options, key_id);
  if (!target.ok()) return Error{target.error()};
  // Intel's KBS wraps only to an RSA modulus over 2048 bits: say so before a quote is spent.
  if (!td_key || !EVP_PKEY_is_a(td_key, "RSA") || EVP_PKEY_get_bits(td_key) <= 2048)
    return Error{"TD key: the broker wraps keys only to RSA keys over 2048 bits; this one is " +
                 (td_key && EVP_PKEY_is_a(td_key, "RSA") ? "RSA-" + std::to_string(EVP_PKEY_get_bits(td_key))
                                                         : std::string("not RSA")) +
                 " (use RSA-3072, the default without --key)"};
  auto user_data = HeldDataForKey(td_key);
  if (!user_data.ok()) return Error{"TD key: " + user_data.error()};

  // 1. A bodiless POST: the broker answers a verifier nonce from its attestation service.
  auto first = Post(options, *target, "", "");
  if (!first.ok()) return Error{first.error()};
  if (broker_status) *broker_status = first->status;
  if (first->status != 200) return Error{Refusal(*target, *first)};
  auto nonce_json = JsonObject(*target, *first, "nonce");
  if (!nonce_json.ok()) return Error{nonce_json.error()};
  auto nonce = service::NonceFromJson(*nonce_json, "nonce");
  if (!nonce.ok()) return Error{"key broker " + target->origin + target->path + ": " + nonce.error()};

  // 2. The quote binds the nonce and the TD's key: SHA-512(val || iat || user_data), the
  //    attestation service's rule, which it checks before it issues the token the broker reads.
  evidence::ReportData report_data = service::BindReportData(&*nonce, *user_data);
  auto quote = quotes.GetQuote(report_data);
  if (!quote.ok()) return Error{std::string(quotes.name()) + " provider: " + quote.error()};

  nlohmann::json body = {{"quote", Base64Encode(*quote)},
                         {"nonce", service::NonceToJson(*nonce)},
                         {"user_data", Base64Encode(*user_data)}};
  if (!event_log.empty()) body["event_log"] = Base64Encode(event_log);
  auto second = Post(options, *target, body.dump(), "TDX");
  if (!second.ok()) return Error{second.error()};
  if (broker_status) *broker_status = second->status;
  if (second->status != 200) return Error{Refusal(*target, *second)};
  return ReadWrapped(*target, *second);
}

Result<TransferResult> TransferWithToken(const KbsClientOptions& options, const std::string& key_id,
                                         const std::string& token, int* broker_status) {
  if (broker_status) *broker_status = 0;
  auto target = TransferTarget(options, key_id);
  if (!target.ok()) return Error{target.error()};
  if (token.empty()) return Error{"--token: the attestation token is empty"};
  nlohmann::json body = {{"attestation_token", token}};
  auto a = Post(options, *target, body.dump(), "");
  if (!a.ok()) return Error{a.error()};
  if (broker_status) *broker_status = a->status;
  if (a->status != 200) return Error{Refusal(*target, *a)};
  return ReadWrapped(*target, *a);
}

}  // namespace tdxvirt::kbs
