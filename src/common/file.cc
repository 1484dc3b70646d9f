#include "common/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <string_view>
#include <vector>

#include "common/hex.h"

namespace tdxvirt {

namespace {

// Reads `fd` to its end, at most `max_size` bytes. Does not close it.
Result<Bytes> ReadAll(int fd, const std::string& path, size_t max_size) {
  Bytes out;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{"cannot read " + path + ": " + std::strerror(errno)};
    if (n == 0) break;
    if (out.size() + size_t(n) > max_size)
      return Error{path + " is larger than the limit of " + std::to_string(max_size) + " bytes"};
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

const char* FileKind(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

}  // namespace

Result<Bytes> ReadFile(const std::string& path, size_t max_size) {
  int fd = path == "-" ? STDIN_FILENO : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{"cannot open " + path + ": " + std::strerror(errno)};
  auto out = ReadAll(fd, path, max_size);
  if (fd != STDIN_FILENO) close(fd);
  return out;
}

Result<Bytes> ReadRegularFile(const std::string& path, size_t max_size, bool follow_symlinks) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; O_NOCTTY: a terminal
  // in the file's place must not become the controlling terminal.
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (follow_symlinks ? 0 : O_NOFOLLOW);
  int fd = open(path.c_str(), flags);
  if (fd < 0) {
    if (errno == ELOOP && !follow_symlinks)
      return Error{path + " is a symbolic link, not a regular file"};
    return Error{"cannot open " + path + ": " + std::strerror(errno)};
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    std::string err = std::strerror(errno);
    close(fd);
    return Error{"cannot stat " + path + ": " + err};
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return Error{path + " is " + FileKind(st.st_mode) + ", not a regular file"};
  }
  auto out = ReadAll(fd, path, max_size);
  close(fd);
  return out;
}

namespace {
bool LooksLikeHexText(ByteSpan data) {
  if (data.empty()) return false;
  size_t i = 0;
  while (i < data.size() && std::isspace(data[i])) ++i;
  if (i + 1 < data.size() && data[i] == '0' && (data[i + 1] == 'x' || data[i + 1] == 'X')) i += 2;
  bool any_digit = false;
  for (; i < data.size(); ++i) {
    uint8_t c = data[i];
    if (std::isxdigit(c)) {
      any_digit = true;
    } else if (!(c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
      return false;
    }
  }
  return any_digit;
}
}  // namespace

Result<Bytes> ReadBinaryOrHex(const std::string& path, size_t max_size) {
  // Hex text is twice the size of the bytes it holds, plus white space.
  auto data = ReadFile(path, 2 * max_size + 4096);
  if (!data.ok()) return data;
  if (!LooksLikeHexText(*data)) {
    if (data->size() > max_size)
      return Error{path + " is larger than the limit of " + std::to_string(max_size) + " bytes"};
    return data;
  }
  auto decoded = FromHex(AsString(*data));
  if (!decoded.ok()) return Error{path + ": " + decoded.error()};
  return decoded;
}

Result<int> CreateNewFile(const std::string& path, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    int e = errno;  // kept for callers that retry on EEXIST
    Error err{"cannot create " + path + ": " + std::strerror(e)};
    errno = e;
    return err;
  }
  // The umask may have narrowed `mode`; set it exactly (a public file must end 0644, a key 0600,
  // and it was never wider than `mode` in between).
  if (fchmod(fd, mode) != 0) {
    std::string err = std::strerror(errno);
    close(fd);
    unlink(path.c_str());
    return Error{"cannot set the mode of " + path + ": " + err};
  }
  return fd;
}

namespace {

std::string TempPrefix(const std::string& name) { return "." + name + ".tmp-"; }

std::string RandomHex() {
  uint8_t b[8];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {  // no getrandom (old kernel, seccomp): still unique per process and call
      static unsigned counter = 0;
      uint64_t v = uint64_t(getpid()) << 32 ^ uint64_t(++counter) ^ uint64_t(time(nullptr)) << 16;
      std::memcpy(b, &v, sizeof b);
      break;
    }
    got += size_t(n);
  }
  return ToHex(ByteSpan(b, sizeof b));
}

// Removes temporaries of `name` in `dir` whose writer is gone: a live writer holds an flock on its
// temporary until the rename, and the kernel drops that lock when the writer dies (also on kill -9).
// A symbolic link with the prefix is never ours (CreateNewFile refuses to follow one): removed.
void RemoveStaleTemporaries(const std::string& dir, const std::string& name) {
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  DIR* d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return;
  }
  std::string prefix = TempPrefix(name);
  std::vector<std::string> stale;
  while (dirent* e = readdir(d)) {
    std::string_view entry = e->d_name;
    if (!entry.starts_with(prefix)) continue;
    struct stat before {};
    if (fstatat(dfd, e->d_name, &before, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISLNK(before.st_mode)) {
      stale.emplace_back(entry);
      continue;
    }
    if (!S_ISREG(before.st_mode)) continue;
    int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 && st.st_dev == before.st_dev &&
        st.st_ino == before.st_ino)
      stale.emplace_back(entry);
    close(fd);
  }
  for (const auto& s : stale) unlinkat(dfd, s.c_str(), 0);
  closedir(d);  // closes dfd
}

}  // namespace

Status FsyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error{"cannot open directory " + dir + ": " + std::strerror(errno)};
  // Some file systems cannot fsync a directory (EINVAL); the rename is then as durable as they get.
  bool ok = fsync(fd) == 0 || errno == EINVAL;
  std::string err = ok ? "" : std::strerror(errno);
  close(fd);
  if (!ok) return Error{"cannot sync directory " + dir + ": " + err};
  return OkStatus();
}

Status WriteFileAtomic(const std::string& path, ByteSpan data, mode_t mode, bool replace_existing) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..")
    return Error{"cannot write " + path + ": not a file name"};
  std::string tmp_dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  RemoveStaleTemporaries(dir, name);

  std::string tmp;
  Result<int> created = Error{""};
  // A name taken by chance (or planted) is never opened: try another.
  for (int attempt = 0; attempt < 8; ++attempt) {
    tmp = tmp_dir + TempPrefix(name) + RandomHex();
    created = CreateNewFile(tmp, mode);
    if (created.ok() || errno != EEXIST) break;
  }
  if (!created.ok()) return Error{created.error()};
  int fd = *created;
  auto fail = [&](const std::string& what) {
    std::string err = std::strerror(errno);
    unlink(tmp.c_str());
    close(fd);
    return Error{what + ": " + err};
  };
  // Marks the temporary as in use for RemoveStaleTemporaries of other writers.
  if (flock(fd, LOCK_EX) != 0) return fail("cannot lock " + tmp);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot write " + tmp);
    done += size_t(n);
  }
  if (fsync(fd) != 0) return fail("cannot finish " + tmp);
  if (replace_existing) {
    if (rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename " + tmp + " to " + path);
  } else if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) {
      unlink(tmp.c_str());
      close(fd);
      return Error{path + " exists; refusing to replace it"};
    }
    return fail("cannot rename " + tmp + " to " + path);
  }
  if (close(fd) != 0) {
    std::string err = std::strerror(errno);
    return Error{"cannot finish " + path + ": " + err};
  }
  return FsyncDirectory(dir);
}

}  // namespace tdxvirt
