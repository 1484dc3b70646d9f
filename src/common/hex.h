// Lower-case hex encoding and a tolerant decoder for evidence given as text.
#pragma once

#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"

namespace tdxvirt {

std::string ToHex(ByteSpan data);
template <size_t N>
std::string ToHex(const ByteArray<N>& a) {
  return ToHex(ByteSpan(a));
}

// "0x00000081": a 32-bit field as error messages show it.
std::string HexU32(uint32_t v);

// Decodes hex digits of either case. An optional "0x" prefix and ASCII white space anywhere are
// ignored (quotes are often pasted wrapped). Fails on an odd digit count or a non-hex character.
Result<Bytes> FromHex(std::string_view text);

// FromHex into a fixed-size array; `field` names the value in the error message.
template <size_t N>
Result<ByteArray<N>> FromHexFixed(std::string_view text, std::string_view field) {
  auto bytes = FromHex(text);
  if (!bytes.ok()) return Error{std::string(field) + ": " + bytes.error()};
  if (bytes->size() != N)
    return Error{std::string(field) + ": expected " + std::to_string(N) + " bytes (" +
                 std::to_string(2 * N) + " hex digits), got " + std::to_string(bytes->size())};
  ByteArray<N> out;
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return out;
}

}  // namespace tdxvirt
