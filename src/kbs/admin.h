// The admin API's own authentication, as Intel's KBS does it (POST /kbs/v1/token with a username
// and password returns a bearer token valid for minutes): the attested key transfer needs no
// credential, managing keys and policies needs this one, and the two never mix.
//
// The credentials are a file (a Kubernetes Secret): {"username": "...", "password": "..."}.
// Bearer tokens are 32 random bytes (base64url), remembered only as their SHA-256 with an expiry;
// comparisons are constant-time. Outstanding tokens are capped (the oldest is dropped), so a
// client with the password cannot grow memory without bound.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tdxvirt::kbs {

struct AdminCredentials {
  std::string username, password;
};
// Refuses an empty username, a password shorter than 16 characters, unknown fields; names the file.
Result<AdminCredentials> LoadAdminCredentials(const std::string& path);
Result<AdminCredentials> ParseAdminCredentials(std::string_view json_text);

class AdminAuth {
 public:
  AdminAuth(AdminCredentials credentials, int64_t token_validity_seconds = 300,
            size_t max_tokens = 1024);
  // Intel's POST /token body {"username","password"}: a bearer token, or an error (401) that does
  // not say which of the two was wrong.
  Result<std::string> IssueToken(std::string_view username, std::string_view password, int64_t now);
  // The value of an Authorization header ("Bearer <token>"): true while the token is unexpired.
  bool Check(std::string_view authorization_header, int64_t now);
  int64_t token_validity_seconds() const { return validity_; }

 private:
  AdminCredentials credentials_;
  int64_t validity_;
  size_t max_tokens_;
  std::mutex mu_;
  std::map<std::string, int64_t> tokens_;  // SHA-256 of the token (binary) -> expiry
};

}  // namespace tdxvirt::kbs
