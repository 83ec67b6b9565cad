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
  uint64_t total = 0;    // physical (or simulated) size
  uint64_t free = 0;     // free now, as the device reports it
  uint64_t reserve = 0;  // left free for activations / other processes
  // free - reserve, clamped at 0. The broker's own arenas are already out of
  // `free`: they are allocated under the placement lock, before the next plan.
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
  uint64_t quota = 0;  // bytes the allocation gave this device
  uint64_t bytes = 0;  // bytes actually placed
  uint32_t blocks = 0;
};

struct Placement {
  std::vector<Block> blocks;                  // model order
  std::vector<DeviceId> block_device;         // parallel to blocks
  std::vector<PlacementReason> block_reason;  // parallel to blocks
  std::vector<DevicePlan> devices;            // allocation order, then compute if unlisted
  std::vector<std::string> notes;             // human sentences, e.g. the implicit-cpu rule
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
//
// The rules in detail (docs/placement.md has a worked example):
//  - Tiny means bytes < kTinyBlockShare of the model; zero-byte blocks are
//    always tiny. Pinned and tiny blocks count against the compute device's
//    quota when the allocation lists it: "cuda:0,2.5gb" puts 2.5 GiB of the
//    model on cuda:0 in all, pins included. An unlisted compute device gets
//    only pinned and tiny blocks (quota 0).
//  - Quotas, per mode. kBytes: the bytes written. kFraction: the fraction of
//    the device's total. kRatio: the share of the model's bytes; with a '*' and
//    written shares adding up to at most 100 %, they are read literally and '*'
//    gets the remainder, otherwise they are normalised to 100 % (MultiGPU's
//    rule). kVirtualVram: each donor in order takes up to what is still to
//    move of virtual_vram bytes, limited by its available(); the compute device
//    is the rest device and keeps the other blocks. The spec's compute device
//    (virtual_vram->compute, and compute_device in any mode) must equal
//    request.compute (InvalidArgument naming both otherwise).
//  - Quotas in kBytes, kFraction and kVirtualVram are caps: a device never
//    takes a block that would put it over its quota, so a block bigger than a
//    device's remaining quota goes to the next device that can take it; the
//    devices it passes take nothing (runs stay contiguous) and a note names
//    them. The rest device takes any block. kRatio shares describe a split of
//    the whole model, so there a block goes where its byte midpoint falls and
//    the shares always cover the model (no rounding residue on cpu).
//  - Where the rest device stands: devices listed before it take runs from
//    the front of the model, devices after it from the back, and the rest
//    device the middle. With no '*', the rest goes to cpu: a listed cpu entry
//    becomes the rest device (its size is then not a limit), an unlisted cpu
//    is added last; a note says how much it got. cpu need be in the inventory
//    only when something lands on it. A spec with no rest device at all
//    (built in code, not parsed) must cover the model or it is
//    InvalidArgument.
//  - Spilling takes blocks off the end of a short device's run that faces the
//    rest device (reason kSpill). Pinned and tiny blocks never move, and the
//    rest device cannot spill; either being short fails the plan.
//  - Other InvalidArgument: a device twice in the allocation or the inventory,
//    two '*', negative shares, an empty pin, a virtual-VRAM donor equal to the
//    compute device.
absl::StatusOr<Placement> PlanPlacement(const PlanRequest& request);

// "quota", "pinned", "tiny", "spill".
const char* PlacementReasonName(PlacementReason reason);

// A human table for `distorchctl plan` and logs: one line per device (quota,
// placed bytes, block counts by reason), then the notes. Ends with '\n'.
std::string PlacementToText(const Placement& placement);

}  // namespace distorch

#endif  // DISTORCH_PLANNER_H_
