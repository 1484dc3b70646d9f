// File edges: bounded reads (so a huge or endless input cannot exhaust memory) and atomic writes
// (so a reader, or a writer killed with -9, never leaves a partial file).
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

// Reads a file that must be a regular file (host files, policy files): the open never blocks
// (O_NONBLOCK, so a FIFO in its place cannot hang the reader) and a FIFO, device, directory or
// socket is refused with the path and what it is. `follow_symlinks` false also refuses a symbolic
// link. Fails past `max_size` bytes.
Result<Bytes> ReadRegularFile(const std::string& path, size_t max_size, bool follow_symlinks = true);

// Creates `path` as a new, empty regular file open for writing, with exactly `mode` whatever the
// umask: O_CREAT|O_EXCL|O_NOFOLLOW, so a file or symbolic link already there (planted by another
// user in a shared directory) is refused, never written through. Returns the descriptor.
Result<int> CreateNewFile(const std::string& path, mode_t mode);

// fsync(2) of a directory, so a rename in it survives a crash. File systems that cannot sync a
// directory (EINVAL) count as done.
Status FsyncDirectory(const std::string& dir);

// Writes through a temporary file in the same directory and renames it over `path`, so readers
// never see a partial file and a writer killed at any moment leaves the old file or the new one.
// The temporary is ".<name>.tmp-<random>", created by CreateNewFile with `mode` (use 0600 for keys),
// fsynced, and kept locked (flock) until renamed; temporaries of `path` that no live writer holds
// (left by a killed writer) are removed first. The directory is fsynced after the rename. With
// `replace_existing` false an existing `path` is an error and is left as it is.
Status WriteFileAtomic(const std::string& path, ByteSpan data, mode_t mode = 0644,
                       bool replace_existing = true);

}  // namespace tdxvirt
