// A CUDA arena: one cudaMalloc per (residency, GPU), exported to clients with
// cudaIpcGetMemHandle (DESIGN.md §7). Also the two small helpers every CUDA
// file in the daemon uses: CudaStatus and ScopedCudaDevice.
#ifndef DISTORCH_DAEMON_DEVICES_CUDA_CUDA_ARENA_H_
#define DISTORCH_DAEMON_DEVICES_CUDA_CUDA_ARENA_H_

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/devices/device.h"

namespace distorch {

class CudaCopyEngine;
struct FileRange;

// OK for cudaSuccess; otherwise `code` with "<what>: <cudaErrorName>: <text>".
absl::Status CudaStatus(cudaError_t err, absl::string_view what,
                        absl::StatusCode code = absl::StatusCode::kInternal);

// Makes `ordinal` the calling thread's current device; puts the previous one
// back on destruction, so callers on any thread keep their own device.
class ScopedCudaDevice {
 public:
  explicit ScopedCudaDevice(int ordinal);
  ~ScopedCudaDevice();
  ScopedCudaDevice(const ScopedCudaDevice&) = delete;
  ScopedCudaDevice& operator=(const ScopedCudaDevice&) = delete;
  // Not OK when the device could not be made current; make no CUDA call then.
  const absl::Status& status() const { return status_; }

 private:
  int previous_ = -1;  // -1: nothing to restore
  absl::Status status_;
};

// Owns one cudaMalloc'd arena on one GPU and frees it there (cudaFree with
// that device current, the thread's device restored) when destroyed. Clients
// map it with the IPC handle from Export(). Thread contract as Arena: disjoint
// ranges may be written concurrently; FillFromFile calls on one GPU take turns
// through its copy engine.
class CudaArena : public Arena {
 public:
  // Allocates at least `bytes` (rounded up to kArenaAlignment) on GPU
  // `ordinal`, named `id`. No capacity pre-check: cudaMalloc decides, and an
  // out-of-memory answer (too little free, or too fragmented) is
  // ResourceExhausted naming the device, the bytes asked and the bytes free.
  // `accounted` grows by size() now and shrinks when the arena goes (the
  // device's broker_bytes). `engine` is the GPU's copy engine (null: a new one).
  static absl::StatusOr<std::unique_ptr<CudaArena>> Allocate(
      DeviceId id, int ordinal, uint64_t bytes, std::shared_ptr<std::atomic<uint64_t>> accounted,
      std::shared_ptr<CudaCopyEngine> engine);
  ~CudaArena() override;
  CudaArena(const CudaArena&) = delete;
  CudaArena& operator=(const CudaArena&) = delete;

  DeviceId device() const override { return id_; }
  uint64_t size() const override { return size_; }
  uint8_t* host_data() override { return nullptr; }
  // cudaMemcpy from host memory (the slow path: one synchronous copy).
  absl::Status Write(uint64_t offset, const void* src, size_t n) override;
  absl::Status Read(uint64_t offset, void* dst, size_t n) const override;
  // Waits for every copy into the arena; rejects writes afterwards.
  absl::Status Seal() override;
  ArenaExport Export() const override;

  // The fast path: copies each range of `fd` to its arena offset through the
  // GPU's pinned staging buffers (cuda_copy.h), adding bytes that have landed
  // on the GPU to `progress` (may be null). Stops with Cancelled soon after
  // `*cancel` becomes true. Returns only when no copy into the arena is in
  // flight.
  absl::Status FillFromFile(int fd, const std::vector<FileRange>& ranges,
                            std::atomic<uint64_t>* progress,
                            const std::atomic<bool>* cancel = nullptr);

  int ordinal() const { return ordinal_; }
  void* device_pointer() const { return data_; }  // tests and benchmarks

 private:
  CudaArena(DeviceId id, int ordinal, uint64_t size, void* data,
            std::shared_ptr<std::atomic<uint64_t>> accounted,
            std::shared_ptr<CudaCopyEngine> engine);
  absl::Status CheckWritable(uint64_t offset, size_t n) const;
  absl::Status CheckRange(uint64_t offset, size_t n) const;

  const DeviceId id_;
  const int ordinal_;
  const uint64_t size_;
  void* const data_;        // device pointer from cudaMalloc
  std::string ipc_handle_;  // the 64 cudaIpcMemHandle_t bytes, set once
  std::atomic<bool> sealed_{false};
  std::shared_ptr<std::atomic<uint64_t>> accounted_;
  std::shared_ptr<CudaCopyEngine> engine_;
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DEVICES_CUDA_CUDA_ARENA_H_
