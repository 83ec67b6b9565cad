#include "daemon/devices/cuda/cuda_arena.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/devices/cuda/cuda_copy.h"
#include "daemon/log.h"
#include "distorch/units.h"

namespace distorch {

absl::Status CudaStatus(cudaError_t err, absl::string_view what, absl::StatusCode code) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::Status(
      code, absl::StrCat(what, ": ", cudaGetErrorName(err), ": ", cudaGetErrorString(err)));
}

ScopedCudaDevice::ScopedCudaDevice(int ordinal) {
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current == ordinal) return;
  cudaError_t err = cudaSetDevice(ordinal);
  if (err != cudaSuccess) {
    status_ = CudaStatus(err, absl::StrCat("cudaSetDevice(", ordinal, ")"));
    return;
  }
  previous_ = current;  // -1 when cudaGetDevice failed: leave ours current
}

ScopedCudaDevice::~ScopedCudaDevice() {
  if (previous_ >= 0) (void)cudaSetDevice(previous_);
}

absl::StatusOr<std::unique_ptr<CudaArena>> CudaArena::Allocate(
    DeviceId id, int ordinal, uint64_t bytes, std::shared_ptr<std::atomic<uint64_t>> accounted,
    std::shared_ptr<CudaCopyEngine> engine) {
  const uint64_t size =
      std::max(kArenaAlignment, (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment);
  ScopedCudaDevice on_device(ordinal);
  if (!on_device.status().ok()) return on_device.status();
  void* data = nullptr;
  cudaError_t err = cudaMalloc(&data, size);
  if (err != cudaSuccess) {
    // Out of memory is not sticky; clear it so the next runtime call on this
    // thread does not report it again.
    (void)cudaGetLastError();
    size_t free = 0, total = 0;
    (void)cudaMemGetInfo(&free, &total);
    if (err == cudaErrorMemoryAllocation) {
      return absl::ResourceExhaustedError(absl::StrCat(
          id.ToString(), ": cannot allocate ", FormatBytes(size), ", ", FormatBytes(free),
          " free (cudaMalloc: out of memory; free memory may be fragmented or held by "
          "other processes)"));
    }
    return CudaStatus(err, absl::StrCat(id.ToString(), ": cudaMalloc(", FormatBytes(size), ")"));
  }
  if (engine == nullptr) engine = std::make_shared<CudaCopyEngine>(ordinal);
  // From here the arena owns `data`: an early return frees it.
  std::unique_ptr<CudaArena> arena(
      new CudaArena(id, ordinal, size, data, std::move(accounted), std::move(engine)));
  cudaIpcMemHandle_t handle;
  err = cudaIpcGetMemHandle(&handle, data);
  if (err != cudaSuccess) {
    return CudaStatus(err,
                      absl::StrCat(id.ToString(),
                                   ": cudaIpcGetMemHandle (clients could not "
                                   "open this arena; CUDA IPC is unavailable on WSL and on "
                                   "some virtualised GPUs)"),
                      absl::StatusCode::kFailedPrecondition);
  }
  arena->ipc_handle_.assign(reinterpret_cast<const char*>(&handle), sizeof(handle));
  return arena;
}

CudaArena::CudaArena(DeviceId id, int ordinal, uint64_t size, void* data,
                     std::shared_ptr<std::atomic<uint64_t>> accounted,
                     std::shared_ptr<CudaCopyEngine> engine)
    : id_(id),
      ordinal_(ordinal),
      size_(size),
      data_(data),
      accounted_(std::move(accounted)),
      engine_(std::move(engine)) {
  accounted_->fetch_add(size_);
}

CudaArena::~CudaArena() {
  ScopedCudaDevice on_device(ordinal_);
  if (!on_device.status().ok()) {
    spdlog::error("{}: cannot free a {} arena: {}", id_.ToString(), FormatBytes(size_),
                  std::string(on_device.status().message()));
  } else if (cudaError_t err = cudaFree(data_); err != cudaSuccess) {
    // cudaErrorCudartUnloading: the process is exiting and the driver takes
    // the memory back anyway.
    if (err != cudaErrorCudartUnloading) {
      spdlog::error("{}: cudaFree of a {} arena failed: {}: {}", id_.ToString(), FormatBytes(size_),
                    cudaGetErrorName(err), cudaGetErrorString(err));
    }
  }
  accounted_->fetch_sub(size_);
}

absl::Status CudaArena::CheckRange(uint64_t offset, size_t n) const {
  if (offset > size_ || n > size_ - offset) {
    return absl::OutOfRangeError(absl::StrCat(id_.ToString(), " arena range [", offset, ", +", n,
                                              ") is outside its ", size_, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status CudaArena::CheckWritable(uint64_t offset, size_t n) const {
  if (sealed_.load()) return absl::FailedPreconditionError("arena is sealed");
  return CheckRange(offset, n);
}

absl::Status CudaArena::Write(uint64_t offset, const void* src, size_t n) {
  if (absl::Status s = CheckWritable(offset, n); !s.ok()) return s;
  if (n == 0) return absl::OkStatus();
  ScopedCudaDevice on_device(ordinal_);
  if (!on_device.status().ok()) return on_device.status();
  return CudaStatus(
      cudaMemcpy(static_cast<uint8_t*>(data_) + offset, src, n, cudaMemcpyHostToDevice),
      absl::StrCat(id_.ToString(), ": copying ", n, " bytes to arena offset ", offset));
}

absl::Status CudaArena::Read(uint64_t offset, void* dst, size_t n) const {
  if (absl::Status s = CheckRange(offset, n); !s.ok()) return s;
  if (n == 0) return absl::OkStatus();
  ScopedCudaDevice on_device(ordinal_);
  if (!on_device.status().ok()) return on_device.status();
  return CudaStatus(
      cudaMemcpy(dst, static_cast<const uint8_t*>(data_) + offset, n, cudaMemcpyDeviceToHost),
      absl::StrCat(id_.ToString(), ": reading ", n, " bytes at arena offset ", offset));
}

absl::Status CudaArena::Seal() {
  if (sealed_.exchange(true)) return absl::OkStatus();
  // cudaMemcpy from pageable memory may return before its DMA lands; a client
  // opening the handle must see every byte, so wait for the legacy stream
  // Write used. FillFromFile has already drained its own stream.
  ScopedCudaDevice on_device(ordinal_);
  if (!on_device.status().ok()) return on_device.status();
  return CudaStatus(cudaStreamSynchronize(cudaStreamLegacy),
                    absl::StrCat(id_.ToString(), ": finishing copies into the arena"));
}

ArenaExport CudaArena::Export() const {
  ArenaExport e;
  e.kind = ArenaExport::Kind::kCudaIpc;
  e.cuda_ipc_handle = ipc_handle_;
  e.cuda_device = ordinal_;
  return e;
}

absl::Status CudaArena::FillFromFile(int fd, const std::vector<FileRange>& ranges,
                                     std::atomic<uint64_t>* progress,
                                     const std::atomic<bool>* cancel) {
  if (sealed_.load()) return absl::FailedPreconditionError("arena is sealed");
  return engine_->CopyFileRanges(fd, ranges, static_cast<uint8_t*>(data_), size_, progress, cancel);
}

}  // namespace distorch
