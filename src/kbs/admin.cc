#include "kbs/admin.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/file.h"
#include "common/openssl.h"

namespace tdxvirt::kbs {
namespace {

constexpr size_t kMinPassword = 16;

// Equal-length digests compared in constant time, so neither length nor content leaks.
bool SameSecret(std::string_view a, std::string_view b) {
  auto da = ossl::Sha256(AsBytes(a)), db = ossl::Sha256(AsBytes(b));
  return CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
}

}  // namespace

Result<AdminCredentials> ParseAdminCredentials(std::string_view json_text) {
  auto j = nlohmann::json::parse(json_text, nullptr, false);
  if (!j.is_object()) return Error{"admin credentials: expected a JSON object {\"username\", \"password\"}"};
  AdminCredentials c;
  for (auto& [k, v] : j.items()) {
    if (k != "username" && k != "password")
      return Error{"admin credentials: unknown field \"" + k + "\" (allowed: username, password)"};
    if (!v.is_string()) return Error{"admin credentials: " + k + " must be a string"};
  }
  c.username = j.value("username", "");
  c.password = j.value("password", "");
  if (c.username.empty()) return Error{"admin credentials: username is empty; set a user name"};
  if (c.password.size() < kMinPassword)
    return Error{"admin credentials: password is shorter than " + std::to_string(kMinPassword) +
                 " characters; use a long random one (openssl rand -base64 24)"};
  return c;
}

Result<AdminCredentials> LoadAdminCredentials(const std::string& path) {
  auto bytes = ReadFile(path, 64 << 10);
  if (!bytes.ok()) return Error{"--admin-credentials " + path + ": " + bytes.error()};
  auto c = ParseAdminCredentials(AsString(*bytes));
  if (!c.ok()) return Error{"--admin-credentials " + path + ": " + c.error()};
  return c;
}

AdminAuth::AdminAuth(AdminCredentials credentials, int64_t token_validity_seconds, size_t max_tokens)
    : credentials_(std::move(credentials)), validity_(token_validity_seconds), max_tokens_(max_tokens) {}

Result<std::string> AdminAuth::IssueToken(std::string_view username, std::string_view password,
                                          int64_t now) {
  // Both compared, always, so the time does not tell which one was wrong.
  bool user_ok = SameSecret(username, credentials_.username);
  bool pass_ok = SameSecret(password, credentials_.password);
  if (!(user_ok & pass_ok)) return Error{"invalid username or password"};
  Bytes raw(32);
  if (RAND_bytes(raw.data(), int(raw.size())) != 1) return Error{"no randomness: " + ossl::LastError()};
  std::string token = Base64UrlEncode(raw);
  auto digest = ossl::Sha256(AsBytes(token));
  std::lock_guard lock(mu_);
  for (auto it = tokens_.begin(); it != tokens_.end();) it = it->second <= now ? tokens_.erase(it) : std::next(it);
  if (tokens_.size() >= max_tokens_) {
    auto oldest = tokens_.begin();
    for (auto it = tokens_.begin(); it != tokens_.end(); ++it)
      if (it->second < oldest->second) oldest = it;
    tokens_.erase(oldest);
  }
  tokens_[std::string(digest.begin(), digest.end())] = now + validity_;
  return token;
}

bool AdminAuth::Check(std::string_view header, int64_t now) {
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() || header.substr(0, kBearer.size()) != kBearer) return false;
  // Looked up by digest: the map compares SHA-256 values, which reveals nothing about the token.
  auto digest = ossl::Sha256(AsBytes(header.substr(kBearer.size())));
  std::lock_guard lock(mu_);
  auto it = tokens_.find(std::string(digest.begin(), digest.end()));
  if (it == tokens_.end()) return false;
  if (it->second <= now) {
    tokens_.erase(it);
    return false;
  }
  return true;
}

}  // namespace tdxvirt::kbs
