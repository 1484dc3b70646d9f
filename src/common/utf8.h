// UTF-8 validity, checked where text from outside becomes JSON strings: nlohmann::json throws on
// dump() of a string that is not UTF-8, and YAML parsers pass such bytes (and "\ud800"-style
// escapes) through, so documents are refused at parse time instead of crashing at output time.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace tdxvirt {

// The offset of the first byte that does not start or continue a valid UTF-8 sequence (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), or nullopt when all of `text` is valid.
std::optional<size_t> FirstInvalidUtf8(std::string_view text);

}  // namespace tdxvirt
