// The loader's view of GPU loads, with no CUDA include: which file ranges go
// to which CUDA arena, copied by the GPUs' copy engines (daemon/devices/cuda/cuda_copy.h).
// A build without CUDA (-DDISTORCH_WITH_CUDA=OFF) links a stub that claims
// nothing (daemon/devices/cuda/cuda_none.cc).
#ifndef DISTORCH_DAEMON_DEVICES_CUDA_GPU_LOADS_H_
#define DISTORCH_DAEMON_DEVICES_CUDA_GPU_LOADS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace distorch {

class Arena;

// `size` bytes at `file_offset` in the file go to `arena_offset`.
struct FileRange {
  uint64_t file_offset = 0;
  uint64_t arena_offset = 0;
  uint64_t size = 0;
  absl::string_view name;  // for error messages (a tensor name); may be empty
};

// How the loader hands its CUDA arenas to their copy engines: it offers each
// chunk of file bytes with Claim(); chunks of CUDA arenas are kept, the rest
// stay with the caller. Start() then runs one thread per CUDA arena (so
// several GPUs load at once, beside the caller's host work) and Wait() joins
// them. Not thread-safe: one loader thread drives it. A failing or cancelled
// arena does not stop the others; they stop on `cancel`.
class CudaArenaLoads {
 public:
  CudaArenaLoads();
  ~CudaArenaLoads();  // waits for running copies
  CudaArenaLoads(const CudaArenaLoads&) = delete;
  CudaArenaLoads& operator=(const CudaArenaLoads&) = delete;

  // True if `arena` is a CudaArena: the range is now this object's to copy.
  bool Claim(Arena& arena, FileRange range);
  void Start(int fd, std::atomic<uint64_t>* progress, const std::atomic<bool>* cancel);
  // The first error of any arena, once every copy has stopped.
  absl::Status Wait();

 private:
  struct Load;
  std::vector<std::unique_ptr<Load>> loads_;
  std::vector<std::thread> threads_;
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DEVICES_CUDA_GPU_LOADS_H_
