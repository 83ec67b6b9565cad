#include "distorch/arena_layout.h"

#include "absl/container/flat_hash_map.h"

namespace distorch {

ArenaLayout ComputeArenaLayout(const std::vector<TensorInfo>& tensors,
                               const Placement& placement, uint64_t alignment) {
  ArenaLayout layout;
  layout.slots.resize(tensors.size());
  absl::flat_hash_map<DeviceId, size_t> arena_of;
  // Arenas in the placement's device order, so the layout is deterministic.
  for (const DevicePlan& d : placement.devices) {
    if (d.bytes == 0 && d.blocks == 0) continue;
    arena_of[d.device] = layout.arenas.size();
    layout.arenas.push_back(ArenaPlan{d.device, 0, {}});
  }
  // Visit tensors in model order (blocks are in model order, and a block's
  // tensors are in file order) so each arena mirrors the file's layout.
  for (size_t b = 0; b < placement.blocks.size(); ++b) {
    const DeviceId& device = placement.block_device[b];
    auto it = arena_of.find(device);
    if (it == arena_of.end()) {  // a device the plan listed with no bytes
      it = arena_of.emplace(device, layout.arenas.size()).first;
      layout.arenas.push_back(ArenaPlan{device, 0, {}});
    }
    ArenaPlan& arena = layout.arenas[it->second];
    for (size_t t : placement.blocks[b].tensor_indices) {
      uint64_t offset = (arena.bytes + alignment - 1) & ~(alignment - 1);
      layout.slots[t] = TensorSlot{it->second, offset};
      arena.tensors.push_back(t);
      arena.bytes = offset + tensors[t].nbytes;
    }
  }
  return layout;
}

}  // namespace distorch
