// The fast file → GPU path. Each GPU has one CudaCopyEngine: a non-blocking
// stream and pinned staging buffers (cudaHostAlloc). A copy is cut into
// chunks of at most chunk_bytes of file; `readers` threads each pread a chunk
// into one of their own pinned buffers and queue cudaMemcpyAsync from it,
// then read the next chunk into their other buffer while that copy runs
// (double buffering; buffers_per_reader = 3 for triple). Small neighbouring
// ranges (a model's many biases and norms) share one pread.
#ifndef DISTORCH_DAEMON_DEVICES_CUDA_CUDA_COPY_H_
#define DISTORCH_DAEMON_DEVICES_CUDA_CUDA_COPY_H_

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "daemon/devices/cuda/gpu_loads.h"

namespace distorch {

class Arena;

// One pread into a staging buffer and the copies out of it.
struct CopyChunk {
  struct Piece {
    uint64_t buffer_offset;  // inside the chunk (= file_offset - chunk file_offset)
    uint64_t arena_offset;
    uint64_t size;
    absl::string_view name;  // of its FileRange
  };
  uint64_t file_offset = 0;
  uint64_t size = 0;  // bytes to read, gaps between pieces included
  std::vector<Piece> pieces;
};

// Cuts `ranges` (any order) into chunks of at most `chunk_bytes`, in file
// order. Ranges closer than `max_gap` in the file share a chunk (the gap is
// read and dropped); a range larger than a chunk spans several. Pure; tested
// without a GPU.
std::vector<CopyChunk> PlanCopyChunks(std::vector<FileRange> ranges, uint64_t chunk_bytes,
                                      uint64_t max_gap);

// Thread-safe. One copy at a time per engine (so per GPU: one PCIe link);
// engines of different GPUs copy in parallel. Staging buffers are allocated
// on first use and kept until Trim().
class CudaCopyEngine {
 public:
  struct Options {
    int readers = 4;
    int buffers_per_reader = 2;
    uint64_t chunk_bytes = 16ULL << 20;
    uint64_t max_gap = 1ULL << 20;
  };

  explicit CudaCopyEngine(int ordinal) : CudaCopyEngine(ordinal, Options()) {}
  CudaCopyEngine(int ordinal, Options options);
  ~CudaCopyEngine();
  CudaCopyEngine(const CudaCopyEngine&) = delete;
  CudaCopyEngine& operator=(const CudaCopyEngine&) = delete;

  // Copies `ranges` of `fd` into device memory [dst, dst + dst_size) on this
  // engine's GPU. Adds bytes that have landed to `progress` (may be null);
  // stops with Cancelled soon after `*cancel` turns true. Whatever the
  // outcome, returns only once no copy it queued is still running.
  absl::Status CopyFileRanges(int fd, const std::vector<FileRange>& ranges, uint8_t* dst,
                              uint64_t dst_size, std::atomic<uint64_t>* progress,
                              const std::atomic<bool>* cancel);

  // Frees the staging buffers unless a copy is running. Returns bytes freed.
  uint64_t Trim();
  uint64_t staging_bytes();
  const Options& options() const { return options_; }

 private:
  struct Staging;  // one pinned buffer and the event of its last copy
  absl::Status PrepareLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int ordinal_;
  const Options options_;
  absl::Mutex mu_;  // held for a whole copy
  cudaStream_t stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::unique_ptr<Staging>> staging_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DEVICES_CUDA_CUDA_COPY_H_
