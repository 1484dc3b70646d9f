#include "common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/hex.h"

namespace tdxvirt {

Result<Bytes> ReadFile(const std::string& path, size_t max_size) {
  int fd = path == "-" ? STDIN_FILENO : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{"cannot open " + path + ": " + std::strerror(errno)};
  Bytes out;
  uint8_t buf[65536];
  Status status = OkStatus();
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = Error{"cannot read " + path + ": " + std::strerror(errno)};
      break;
    }
    if (n == 0) break;
    if (out.size() + size_t(n) > max_size) {
      status = Error{path + " is larger than the limit of " + std::to_string(max_size) + " bytes"};
      break;
    }
    out.insert(out.end(), buf, buf + n);
  }
  if (fd != STDIN_FILENO) close(fd);
  if (!status.ok()) return Error{status.error()};
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

Status WriteFileAtomic(const std::string& path, ByteSpan data, mode_t mode) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Error{"cannot create " + tmp + ": " + std::strerror(errno)};
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string err = std::strerror(errno);
      close(fd);
      unlink(tmp.c_str());
      return Error{"cannot write " + tmp + ": " + err};
    }
    done += size_t(n);
  }
  // fchmod: the umask may have narrowed `mode` at creation; keys must still end exactly 0600.
  bool finished = fchmod(fd, mode) == 0 && fsync(fd) == 0;
  std::string err = finished ? "" : std::strerror(errno);
  if (close(fd) != 0 && finished) {
    finished = false;
    err = std::strerror(errno);
  }
  if (!finished) {
    unlink(tmp.c_str());
    return Error{"cannot finish " + tmp + ": " + err};
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    std::string err = std::strerror(errno);
    unlink(tmp.c_str());
    return Error{"cannot rename " + tmp + " to " + path + ": " + err};
  }
  return OkStatus();
}

}  // namespace tdxvirt
