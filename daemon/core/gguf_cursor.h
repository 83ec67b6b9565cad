// Bounds-checked little-endian reads over a prefix of a GGUF file.
// Private to gguf.cc; split out to keep that file readable.
#ifndef DISTORCH_DAEMON_CORE_GGUF_CURSOR_H_
#define DISTORCH_DAEMON_CORE_GGUF_CURSOR_H_

#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace distorch {
namespace gguf_internal {

// Reads forward through `data`. A read past the end fails with ShortRead()
// and remembers how many bytes the prefix would have needed, so the caller
// can tell "the file is truncated" from "read a longer prefix".
class Cursor {
 public:
  explicit Cursor(absl::string_view data) : data_(data) {}

  uint64_t pos() const { return pos_; }
  bool short_read() const { return needed_ != 0; }
  // Prefix length the failed read wanted (saturates at UINT64_MAX).
  uint64_t needed() const { return needed_; }

  // True when `n` more bytes are in the prefix; records the need if not.
  bool Has(uint64_t n) {
    if (n <= data_.size() - pos_) return true;
    needed_ = n > std::numeric_limits<uint64_t>::max() - pos_ ? std::numeric_limits<uint64_t>::max()
                                                              : pos_ + n;
    return false;
  }

  // Placeholder error for a short read; ParseGgufHeader replaces it with the
  // real "truncated" or "need more bytes" status.
  static absl::Status ShortRead() { return absl::OutOfRangeError("short read"); }

  absl::Status Skip(uint64_t n) {
    if (!Has(n)) return ShortRead();
    pos_ += n;
    return absl::OkStatus();
  }

  absl::Status ReadBytes(uint64_t n, absl::string_view* out) {
    if (!Has(n)) return ShortRead();
    *out = data_.substr(pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }

  // An unsigned little-endian integer of `bytes` (1 to 8) bytes.
  absl::Status ReadUint(uint64_t bytes, uint64_t* out) {
    if (!Has(bytes)) return ShortRead();
    uint64_t value = 0;
    for (uint64_t i = bytes; i-- > 0;) {
      value = (value << 8) | static_cast<unsigned char>(data_[pos_ + i]);
    }
    pos_ += bytes;
    *out = value;
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status Read(T* out) {
    static_assert(std::numeric_limits<T>::is_integer && !std::numeric_limits<T>::is_signed,
                  "unsigned integers only");
    uint64_t value = 0;
    absl::Status status = ReadUint(sizeof(T), &value);
    *out = static_cast<T>(value);
    return status;
  }

 private:
  absl::string_view data_;
  uint64_t pos_ = 0;
  uint64_t needed_ = 0;
};

}  // namespace gguf_internal
}  // namespace distorch

#endif  // DISTORCH_DAEMON_CORE_GGUF_CURSOR_H_
