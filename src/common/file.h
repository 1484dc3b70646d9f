// File edges: bounded reads (so a huge or endless input cannot exhaust memory) and atomic writes.
#pragma once

#include <string>
#include <sys/types.h>

#include "common/bytes.h"
#include "common/result.h"

namespace tdxvirt {

inline constexpr size_t kDefaultMaxFileSize = 16 << 20;

// Reads a whole file; "-" reads standard input. Fails past `max_size` bytes.
Result<Bytes> ReadFile(const std::string& path, size_t max_size = kDefaultMaxFileSize);

// Reads evidence that may be stored raw or as hex text (with or without 0x, any white space).
Result<Bytes> ReadBinaryOrHex(const std::string& path, size_t max_size = kDefaultMaxFileSize);

// Writes through a temporary file in the same directory and renames it over `path`, so readers
// never see a partial file. `mode` applies from creation (use 0600 for keys).
Status WriteFileAtomic(const std::string& path, ByteSpan data, mode_t mode = 0644);

}  // namespace tdxvirt
