// The seam between the broker and the memory it hands out. A Device gives
// Arenas; the broker never calls cudaMalloc or memfd_create itself.
// Backends: host (cpu, memfd), sim (host-backed stand-in for a GPU), cuda.
#ifndef DISTORCH_DAEMON_DEVICES_DEVICE_H_
#define DISTORCH_DAEMON_DEVICES_DEVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distorch/device_id.h"

namespace distorch {

// Tensors start at multiples of this inside an arena (CUDA wants 256).
inline constexpr uint64_t kArenaAlignment = 256;

// How a client reaches an arena's memory.
struct ArenaExport {
  enum class Kind { kHostMemfd, kCudaIpc };
  Kind kind = Kind::kHostMemfd;
  int memfd = -1;               // kHostMemfd: borrowed; dup/send, never close
  std::string cuda_ipc_handle;  // kCudaIpc: the 64-byte cudaIpcMemHandle_t
  int cuda_device = -1;
};

// One allocation per (residency, device) holding all of that residency's
// blocks on the device. Frees itself on destruction. Not thread-safe for
// writes to overlapping ranges; disjoint ranges may be written concurrently.
class Arena {
 public:
  virtual ~Arena() = default;
  virtual DeviceId device() const = 0;
  virtual uint64_t size() const = 0;
  // Host arenas: a writable mapping, valid until Seal(). Device arenas: null.
  virtual uint8_t* host_data() = 0;
  // Copies `n` host bytes to `offset` (any arena kind).
  virtual absl::Status Write(uint64_t offset, const void* src, size_t n) = 0;
  // Reads `n` bytes at `offset` into host memory (tests, dtype conversion).
  virtual absl::Status Read(uint64_t offset, void* dst, size_t n) const = 0;
  // The arena is complete: no writes after this (host: F_SEAL_WRITE, unmap).
  virtual absl::Status Seal() = 0;
  virtual ArenaExport Export() const = 0;
};

struct DeviceStats {
  uint64_t total = 0;         // what the device (or its limit) offers
  uint64_t free = 0;          // free now, limit applied
  uint64_t broker_bytes = 0;  // held by this device's live arenas
};

// Extra facts shown by `distorchctl devices` (CUDA fills them).
struct DeviceDetails {
  std::string pci_bus_id;
  std::string compute_capability;
  std::vector<std::string> peers;
};

// Thread-safe.
class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceId id() const = 0;
  virtual absl::string_view kind() const = 0;  // "host", "sim", "cuda"
  virtual std::string description() const = 0;
  virtual DeviceStats Stats() const = 0;
  virtual DeviceDetails Details() const { return {}; }
  // ResourceExhausted naming the device, the bytes asked and the bytes free.
  virtual absl::StatusOr<std::unique_ptr<Arena>> Allocate(uint64_t bytes,
                                                          absl::string_view label) = 0;
  // Gives back cached memory (staging pools, allocator caches). Returns bytes.
  virtual uint64_t Trim() { return 0; }
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DEVICES_DEVICE_H_
