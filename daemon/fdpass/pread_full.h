// Reading exact byte ranges of a file by offset: the one pread loop that the
// header reader, the loader, the CUDA copy and sealed arenas share, and the one
// message for a model file that ends early.
#ifndef DISTORCH_DAEMON_FDPASS_PREAD_FULL_H_
#define DISTORCH_DAEMON_FDPASS_PREAD_FULL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace distorch {

// DataLoss: "model file ended at offset OFFSET inside WHAT (was it truncated
// while loading?)". Headers are checked against the file's size when it is
// opened, so an early end later means the file changed underneath.
absl::Status TruncatedError(uint64_t offset, absl::string_view what);

// Reads exactly `n` bytes at `offset` of `fd` into `buf`, retrying short reads
// and EINTR. `what` names the bytes for errors ("tensor 'w'"): a failed read
// is the errno's status, "reading WHAT at offset X: <strerror>"; an early end
// of the file is TruncatedError. Thread-safe (pread moves no file offset).
absl::Status PreadFull(int fd, void* buf, size_t n, uint64_t offset, absl::string_view what);
// The same, naming the bytes at the offset where the read stopped (a read that
// spans several tensors names the one it failed in).
absl::Status PreadFull(int fd, void* buf, size_t n, uint64_t offset,
                       absl::FunctionRef<std::string(uint64_t offset)> what);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_FDPASS_PREAD_FULL_H_
