// Where each tensor sits inside its device's arenas: tensors in model order at
// aligned offsets. A GPU (or sim) device gets one arena per residency (one IPC
// handle to open). The host device may get a few: its arenas are memfds, and
// the kernel serialises writes to one memfd (its inode lock), so a loader can
// only spread a host load over cores by writing several memfds at once.
#ifndef DISTORCH_ARENA_LAYOUT_H_
#define DISTORCH_ARENA_LAYOUT_H_

#include <cstdint>
#include <vector>

#include "distorch/device_id.h"
#include "distorch/planner.h"
#include "distorch/tensor_info.h"

namespace distorch {

struct ArenaPlan {
  DeviceId device;
  uint64_t bytes = 0;           // end of the last tensor (before any page rounding)
  std::vector<size_t> tensors;  // indices into the tensor list, model order
};

struct TensorSlot {
  size_t arena = 0;     // index into ArenaLayout::arenas
  uint64_t offset = 0;  // multiple of the alignment
};

struct ArenaLayout {
  // Devices in placement order; a device's arenas are adjacent and hold its
  // tensors in model order.
  std::vector<ArenaPlan> arenas;
  std::vector<TensorSlot> slots;  // parallel to the tensor list
};

struct ArenaLayoutOptions {
  uint64_t alignment = 256;  // a power of two
  // The `cpu` device's tensors are split into arenas ("segments") of about
  // equal size: as many as hold `min_host_segment_bytes` each, at most
  // `max_host_segments`. A tensor is never split; one larger than a segment
  // gets a segment of its own.
  int max_host_segments = 1;
  uint64_t min_host_segment_bytes = 64ULL << 20;
};

// Zero-byte tensors get a slot (offset of the next free aligned byte) in
// their block's arena.
ArenaLayout ComputeArenaLayout(const std::vector<TensorInfo>& tensors, const Placement& placement,
                               const ArenaLayoutOptions& options);

}  // namespace distorch

#endif  // DISTORCH_ARENA_LAYOUT_H_
