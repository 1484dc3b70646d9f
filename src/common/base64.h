// Base64 (RFC 4648 §4, padded) and base64url (§5, unpadded as JOSE uses it), strict: decoding
// refuses white space, bad characters, misplaced padding and non-canonical trailing bits, so a
// value has exactly one accepted spelling. `field` names the value in error messages.
#pragma once

#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"

namespace tdxvirt {

std::string Base64Encode(ByteSpan data);
Result<Bytes> Base64Decode(std::string_view text, std::string_view field);
std::string Base64UrlEncode(ByteSpan data);
Result<Bytes> Base64UrlDecode(std::string_view text, std::string_view field);

}  // namespace tdxvirt
