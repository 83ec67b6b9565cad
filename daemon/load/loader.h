// Copies a model's tensors from the client-passed file into its arenas, with
// several reader threads, converting floating tensors to the load's weight
// dtype on the way when asked.
//
// Paths, per chunk of a tensor:
//  - host arena, same dtype: the kernel copies the file's page-cache pages
//    into the arena's memfd (splice through a pipe per thread, splice_pipe.h).
//    No page faults on the arena, no zeroing of its fallocate'd pages and
//    nothing mapped from the file; a file that shrinks under us reads as an
//    early end (DataLoss), never SIGBUS. A file that cannot be spliced, and
//    the kPread option (load_bench compares), pread into the arena's mapping.
//  - host arena, converted: pread 1 MiB chunks into a bounce buffer, convert
//    (LibTorch) into a second one and pwrite that into the memfd, so all
//    three steps stay in cache; a host arena without a memfd is converted
//    straight into its mapping.
//  - device arena: pread (and convert) into bounce buffers, then Arena::Write.
#ifndef DISTORCH_DAEMON_LOAD_LOADER_H_
#define DISTORCH_DAEMON_LOAD_LOADER_H_

#include <atomic>
#include <vector>

#include "absl/status/status.h"
#include "daemon/load/resident.h"
#include "distorch/tensor_info.h"

namespace distorch {

struct LoadOptions {
  int threads = 4;
  uint64_t chunk_bytes = 16ULL << 20;         // one read or write at most this long
  const std::atomic<bool>* cancel = nullptr;  // set to stop early (Cancelled)
  // The tensors as the file has them, parallel to resident.tensors, when the
  // load converts dtypes (resident.tensors then hold the stored dtype and
  // nbytes). Null: every tensor is stored as it is in the file.
  const std::vector<TensorInfo>* file_tensors = nullptr;
  // How same-dtype chunks reach a host arena's memfd. Tests and benchmarks
  // pick the others; kPread is also used when the arena has no memfd.
  enum class HostCopy { kSplice, kPread };
  HostCopy host_copy = HostCopy::kSplice;
};

// Fills resident.arenas from `fd` per resident.layout, adding stored bytes to
// resident.bytes_loaded as it goes. Errors name the tensor and the offset.
absl::Status LoadIntoArenas(int fd, Resident& resident, const LoadOptions& options);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_LOADER_H_
