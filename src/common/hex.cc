#include "common/hex.h"

#include <cstdio>

namespace tdxvirt {

std::string ToHex(ByteSpan data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.resize(data.size() * 2);
  for (size_t i = 0; i < data.size(); ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

std::string HexU32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
}  // namespace

Result<Bytes> FromHex(std::string_view text) {
  size_t start = 0;
  while (start < text.size() && IsSpace(text[start])) ++start;
  if (text.size() - start >= 2 && text[start] == '0' && (text[start + 1] == 'x' || text[start + 1] == 'X'))
    start += 2;
  Bytes out;
  out.reserve((text.size() - start) / 2);
  int high = -1;
  for (size_t i = start; i < text.size(); ++i) {
    char c = text[i];
    if (IsSpace(c)) continue;
    int v = HexValue(c);
    if (v < 0)
      return Error{"invalid hex character at position " + std::to_string(i) +
                   "; expected 0-9, a-f or A-F"};
    if (high < 0) {
      high = v;
    } else {
      out.push_back(uint8_t(high << 4 | v));
      high = -1;
    }
  }
  if (high >= 0) return Error{"odd number of hex digits; each byte needs two"};
  return out;
}

}  // namespace tdxvirt
