#include "common/base64.h"

#include <openssl/evp.h>

namespace tdxvirt {

namespace {

bool IsB64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

std::string Base64Encode(ByteSpan data) {
  std::string out((data.size() + 2) / 3 * 4 + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(), int(data.size()));
  out.resize(size_t(n));
  return out;
}

Result<Bytes> Base64Decode(std::string_view text, std::string_view field) {
  auto fail = [&](const std::string& why) {
    return Error{std::string(field) + ": not standard base64 (" + why + ")"};
  };
  if (text.size() % 4 != 0)
    return fail("length " + std::to_string(text.size()) + " is not a multiple of 4");
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  for (size_t i = 0; i < text.size() - pad; ++i)
    if (!IsB64Char(text[i])) return fail("bad character at offset " + std::to_string(i));
  if (text.size() > size_t(INT32_MAX) / 2) return fail("too long");
  Bytes out(text.size() / 4 * 3);
  // EVP_DecodeBlock decodes groups of 4 and counts '=' as zero bits; trim the padding bytes.
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                          int(text.size()));
  if (n < 0) return fail("undecodable");
  out.resize(size_t(n) - pad);
  // Canonical form only: the bits that padding drops must be zero.
  if (pad > 0 && Base64Encode(out) != text) return fail("non-canonical trailing bits");
  return out;
}

std::string Base64UrlEncode(ByteSpan data) {
  std::string s = Base64Encode(data);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return s;
}

Result<Bytes> Base64UrlDecode(std::string_view text, std::string_view field) {
  std::string s(text);
  for (char& c : s) {
    if (c == '+' || c == '/' || c == '=')
      return Error{std::string(field) + ": not base64url (character '" + c + "')"};
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  if (s.size() % 4 == 1) return Error{std::string(field) + ": not base64url (bad length)"};
  while (s.size() % 4) s += '=';
  auto out = Base64Decode(s, field);
  if (!out.ok()) return Error{std::string(field) + ": not base64url (non-canonical or bad characters)"};
  return out;
}

}  // namespace tdxvirt
