// The "copy" and "seal" stages, outside every lock: the tensors go from the
// client's fd into the arenas (loader.h), then host arenas are sealed so
// nobody, daemon included, can change shared weights.
#ifndef DISTORCH_DAEMON_LOAD_COPY_AND_SEAL_H_
#define DISTORCH_DAEMON_LOAD_COPY_AND_SEAL_H_

#include <vector>

#include "absl/status/status.h"
#include "daemon/load/load_request.h"
#include "daemon/load/resident.h"
#include "distorch/tensor_info.h"

namespace distorch {

// Fills `resident`'s arenas from `fd` with `threads` readers, stopping early
// on resident.cancelled; `file_tensors` are the tensors as the file has them.
// `progress` (may be empty) is called every 100 ms from a watcher thread
// while the copy runs; not after this returns.
absl::Status CopyAndSeal(int fd, Resident& resident, const std::vector<TensorInfo>& file_tensors,
                         int threads, const LoadProgress& progress);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_COPY_AND_SEAL_H_
