// Fixed-size byte arrays, little-endian codecs and a bounded reader/writer for binary formats.
//
// ByteReader never reads past its span: every read names the field it is for, and a short read
// raises ParseError with the field name and the absolute offset, so a parser's error message can say
// exactly where the input went wrong.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tdxvirt {

using Bytes = std::vector<uint8_t>;
using ByteSpan = std::span<const uint8_t>;
template <size_t N>
using ByteArray = std::array<uint8_t, N>;

inline ByteSpan AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view AsString(ByteSpan b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

template <size_t N>
bool IsAllZero(const ByteArray<N>& a) {
  for (uint8_t b : a)
    if (b != 0) return false;
  return true;
}

inline uint16_t LoadLe16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t LoadLe32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline uint64_t LoadLe64(const uint8_t* p) {
  return uint64_t(LoadLe32(p)) | uint64_t(LoadLe32(p + 4)) << 32;
}

// Raised by ByteReader; parsers catch it at their public boundary and return an Error.
class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ByteReader {
 public:
  // `what` names the structure in messages ("quote", "TDREPORT"); `base` is the absolute offset of
  // data[0] within the outer input, so nested readers still report absolute offsets.
  ByteReader(ByteSpan data, std::string_view what, size_t base = 0)
      : data_(data), what_(what), base_(base) {}

  size_t offset() const { return base_ + pos_; }  // absolute
  size_t remaining() const { return data_.size() - pos_; }

  ByteSpan Take(size_t n, std::string_view field) {
    if (n > remaining()) {
      throw ParseError(what_ + ": truncated: field " + std::string(field) + " at offset " +
                       std::to_string(offset()) + " needs " + std::to_string(n) + " bytes but " +
                       std::to_string(remaining()) + " remain; supply the complete " + what_);
    }
    ByteSpan out = data_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  template <size_t N>
  void Read(ByteArray<N>& out, std::string_view field) {
    ByteSpan s = Take(N, field);
    std::copy(s.begin(), s.end(), out.begin());
  }
  uint16_t U16(std::string_view field) { return LoadLe16(Take(2, field).data()); }
  uint32_t U32(std::string_view field) { return LoadLe32(Take(4, field).data()); }
  uint64_t U64(std::string_view field) { return LoadLe64(Take(8, field).data()); }

  // Throws ParseError "<what>: <field> at offset N <problem>".
  [[noreturn]] void Fail(size_t field_offset, std::string_view field, std::string_view problem) const {
    throw ParseError(what_ + ": " + std::string(field) + " at offset " +
                     std::to_string(field_offset) + " " + std::string(problem));
  }

 private:
  ByteSpan data_;
  std::string what_;
  size_t base_;
  size_t pos_ = 0;
};

class ByteWriter {
 public:
  void Put(ByteSpan b) { out_.insert(out_.end(), b.begin(), b.end()); }
  template <size_t N>
  void Put(const ByteArray<N>& a) {
    out_.insert(out_.end(), a.begin(), a.end());
  }
  void U16(uint16_t v) { PutLe(v, 2); }
  void U32(uint32_t v) { PutLe(v, 4); }
  void U64(uint64_t v) { PutLe(v, 8); }
  Bytes& bytes() { return out_; }
  Bytes Finish() { return std::move(out_); }

 private:
  void PutLe(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(uint8_t(v >> (8 * i)));
  }
  Bytes out_;
};

}  // namespace tdxvirt
