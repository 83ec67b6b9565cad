#include "daemon/fdpass/pread_full.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace distorch {

absl::Status TruncatedError(uint64_t offset, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("model file ended at offset ", offset, " inside ", what,
                                          " (was it truncated while loading?)"));
}

absl::Status PreadFull(int fd, void* buf, size_t n, uint64_t offset, absl::string_view what) {
  return PreadFull(fd, buf, n, offset, [what](uint64_t) { return std::string(what); });
}

absl::Status PreadFull(int fd, void* buf, size_t n, uint64_t offset,
                       absl::FunctionRef<std::string(uint64_t offset)> what) {
  char* dst = static_cast<char*>(buf);
  for (size_t done = 0; done < n;) {
    const uint64_t at = offset + done;
    ssize_t got = pread(fd, dst + done, n - done, static_cast<off_t>(at));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int err = errno;  // before what() can change it
      return absl::ErrnoToStatus(err, absl::StrCat("reading ", what(at), " at offset ", at));
    }
    if (got == 0) return TruncatedError(at, what(at));
    done += static_cast<size_t>(got);
  }
  return absl::OkStatus();
}

}  // namespace distorch
