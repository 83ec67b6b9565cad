// Placement: which device holds each block of a model. Pure, deterministic,
// capacity-checked. DESIGN.md §5.
#ifndef DISTORCH_PLANNER_H_
#define DISTORCH_PLANNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "distorch/alloc_spec.h"
#include "distorch/device_id.h"
#include "distorch/tensor_info.h"

namespace distorch {

// A block is all tensors of one module: the tensor name minus its last
// dot-separated component ("blocks.3.attn.qkv.weight" -> "blocks.3.attn.qkv";
// a name with no dot is its own block). Blocks are in model order: the order of
// their first tensor's file_offset.
struct Block {
  std::string name;
  std::vector<size_t> tensor_indices;  // into the tensor list, in file order
  uint64_t bytes = 0;
};
std::vector<Block> GroupIntoBlocks(const std::vector<TensorInfo>& tensors);

// What one device can give right now.
struct DeviceCapacity {
  DeviceId id;
  uint64_t total = 0;        // physical (or simulated) size
  uint64_t free = 0;         // free now, as the device reports it
  uint64_t reserve = 0;      // left free for activations / other processes
  uint64_t broker_used = 0;  // already placed by the broker but not yet
                             // reflected in `free` (reservations in flight)
  // free - reserve - broker_used, clamped at 0.
  uint64_t available() const;
};

struct PlanRequest {
  std::vector<TensorInfo> tensors;
  AllocSpec alloc;
  DeviceId compute;                     // where the model runs
  std::vector<DeviceCapacity> devices;  // the inventory
  std::vector<std::string> pins;        // block names or prefixes kept on compute
  bool allow_spill = false;             // excess over a device's capacity goes
                                        // to the rest device instead of failing
};

enum class PlacementReason { kQuota, kPinned, kTiny, kSpill };

struct DevicePlan {
  DeviceId device;
  uint64_t quota = 0;   // bytes the allocation gave this device
  uint64_t bytes = 0;   // bytes actually placed
  uint32_t blocks = 0;
};

struct Placement {
  std::vector<Block> blocks;                  // model order
  std::vector<DeviceId> block_device;         // parallel to blocks
  std::vector<PlacementReason> block_reason;  // parallel to blocks
  std::vector<DevicePlan> devices;  // allocation order, then compute if unlisted
  std::vector<std::string> notes;   // human sentences, e.g. the implicit-cpu rule
  uint64_t total_bytes = 0;
};

// Tiny blocks are below this share of the model (0.01 %).
inline constexpr double kTinyBlockShare = 1e-4;

// Places the blocks:
//  - pinned blocks (name equal to a pin, or starting with pin + ".") and tiny
//    blocks go to the compute device;
//  - the rest in model order as contiguous runs over the allocation's devices
//    in the order written, each device taking blocks up to its quota; the rest
//    device ('*', or cpu when implicit) takes what is left;
//  - every device's placed bytes must fit its available(); otherwise
//    ResourceExhausted naming the device and the missing bytes
//    ("sim:1 is short by 1.50 GiB: placing 3.00 GiB, 1.50 GiB available (...)"),
//    unless allow_spill moves the excess to the rest device;
//  - a device in the allocation that is not in the inventory is NotFound
//    ("device cuda:3 is not on this host (have: cpu, sim:0)").
// Same request -> same placement.
absl::StatusOr<Placement> PlanPlacement(const PlanRequest& request);

}  // namespace distorch

#endif  // DISTORCH_PLANNER_H_
