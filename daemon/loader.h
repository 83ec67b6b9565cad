// Copies a model's tensors from the client-passed file into its arenas, with
// several reader threads. Host arenas are filled in place (pread into the
// mapping); device arenas through a bounce buffer.
#ifndef DISTORCH_DAEMON_LOADER_H_
#define DISTORCH_DAEMON_LOADER_H_

#include <atomic>

#include "absl/status/status.h"
#include "daemon/resident.h"

namespace distorch {

struct LoadOptions {
  int threads = 4;
  uint64_t chunk_bytes = 16ULL << 20;  // one pread at most this long
  const std::atomic<bool>* cancel = nullptr;  // set to stop early (Cancelled)
};

// Fills resident.arenas from `fd` per resident.layout, adding to
// resident.bytes_loaded as it goes. Errors name the tensor and the offset.
absl::Status LoadIntoArenas(int fd, Resident& resident, const LoadOptions& options);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOADER_H_
