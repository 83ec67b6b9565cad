// Where each tensor sits inside its device's arena: one arena per device of a
// placement, tensors in model order at aligned offsets.
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
  uint64_t bytes = 0;  // end of the last tensor (before any page rounding)
  std::vector<size_t> tensors;  // indices into the tensor list, model order
};

struct TensorSlot {
  size_t arena = 0;     // index into ArenaLayout::arenas
  uint64_t offset = 0;  // multiple of the alignment
};

struct ArenaLayout {
  std::vector<ArenaPlan> arenas;  // devices with at least one byte, placement order
  std::vector<TensorSlot> slots;  // parallel to the tensor list
};

// `alignment` must be a power of two. Zero-byte tensors get a slot (offset of
// the next free aligned byte) in their block's arena.
ArenaLayout ComputeArenaLayout(const std::vector<TensorInfo>& tensors,
                               const Placement& placement, uint64_t alignment);

}  // namespace distorch

#endif  // DISTORCH_ARENA_LAYOUT_H_
