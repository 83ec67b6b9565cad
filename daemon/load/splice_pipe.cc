#include "daemon/load/splice_pipe.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/fdpass/pread_full.h"

namespace distorch {
namespace {

// Larger pipes mean fewer splice calls; 1 MiB is the default most an
// unprivileged process may ask for (/proc/sys/fs/pipe-max-size).
constexpr int kWantedPipeBytes = 1 << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<SplicePipe>> SplicePipe::Open() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::ErrnoToStatus(errno, "pipe2");
  }
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  int capacity = fcntl(write_end.get(), F_SETPIPE_SZ, kWantedPipeBytes);
  if (capacity <= 0) capacity = fcntl(write_end.get(), F_GETPIPE_SZ);
  if (capacity <= 0) capacity = 64 << 10;
  return std::unique_ptr<SplicePipe>(
      new SplicePipe(std::move(read_end), std::move(write_end), static_cast<uint64_t>(capacity)));
}

absl::Status SplicePipe::Copy(int file_fd, uint64_t file_offset, int memfd, uint64_t memfd_offset,
                              uint64_t n, const std::string& what) {
  loff_t in = static_cast<loff_t>(file_offset);
  loff_t out = static_cast<loff_t>(memfd_offset);
  for (uint64_t done = 0; done < n;) {
    const size_t want = static_cast<size_t>(std::min(capacity_, n - done));
    ssize_t filled = splice(file_fd, &in, write_end_.get(), nullptr, want, SPLICE_F_MOVE);
    if (filled < 0 && errno == EINTR) continue;
    if (filled < 0 && errno == EINVAL && done == 0) {
      return absl::UnimplementedError(
          absl::StrCat("the model file's filesystem cannot splice (", what, ")"));
    }
    if (filled < 0) {
      const int err = errno;
      return absl::ErrnoToStatus(
          err, absl::StrCat("reading ", what, " at file offset ", file_offset + done));
    }
    if (filled == 0) {
      return TruncatedError(file_offset + done, what);
    }
    for (ssize_t left = filled; left > 0;) {
      ssize_t put =
          splice(read_end_.get(), nullptr, memfd, &out, static_cast<size_t>(left), SPLICE_F_MOVE);
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) {
        const int err = put < 0 ? errno : EIO;
        return absl::ErrnoToStatus(err, absl::StrCat("copying ", what, " into its arena"));
      }
      left -= put;
    }
    done += static_cast<uint64_t>(filled);
  }
  return absl::OkStatus();
}

}  // namespace distorch
