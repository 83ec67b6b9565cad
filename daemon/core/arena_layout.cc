#include "distorch/arena_layout.h"

#include <algorithm>
#include <optional>

#include "absl/container/flat_hash_map.h"

namespace distorch {
namespace {

uint64_t AlignUp(uint64_t n, uint64_t alignment) { return (n + alignment - 1) & ~(alignment - 1); }

// One device's arenas while they are filled.
struct DeviceArenas {
  DeviceId device;
  uint64_t segment_bytes = 0;  // 0: never split
  int max_segments = 1;
  std::vector<ArenaPlan> arenas;
  std::vector<std::pair<size_t, uint64_t>> slots;  // per tensor: local arena, offset
};

}  // namespace

ArenaLayout ComputeArenaLayout(const std::vector<TensorInfo>& tensors, const Placement& placement,
                               const ArenaLayoutOptions& options) {
  const uint64_t alignment = options.alignment;
  // Devices in the placement's order, so the layout is deterministic; a block
  // on a device the plan did not list (or listed with no bytes) goes last.
  std::vector<DeviceArenas> devices;
  absl::flat_hash_map<DeviceId, size_t> device_index;
  auto device_of = [&](const DeviceId& id) -> size_t {
    auto [it, added] = device_index.emplace(id, devices.size());
    if (added) {
      devices.emplace_back();
      devices.back().device = id;
    }
    return it->second;
  };
  for (const DevicePlan& d : placement.devices) {
    if (d.bytes != 0 || d.blocks != 0) device_of(d.device);
  }

  // Host segments: as many as fit at least the minimum each (at most the
  // maximum), and the device's aligned total shared evenly between them.
  if (options.max_host_segments > 1) {
    uint64_t host_bytes = 0;
    std::optional<size_t> host;
    for (size_t b = 0; b < placement.blocks.size(); ++b) {
      if (!placement.block_device[b].is_cpu()) continue;
      if (!host.has_value()) host = device_of(placement.block_device[b]);
      for (size_t t : placement.blocks[b].tensor_indices)
        host_bytes += AlignUp(tensors[t].nbytes, alignment);
    }
    const uint64_t fit = host_bytes / std::max<uint64_t>(1, options.min_host_segment_bytes);
    const uint64_t segments =
        std::clamp<uint64_t>(fit, 1, static_cast<uint64_t>(options.max_host_segments));
    if (host.has_value() && segments > 1) {
      devices[*host].segment_bytes = (host_bytes + segments - 1) / segments;
      devices[*host].max_segments = static_cast<int>(segments);
    }
  }

  constexpr size_t kUnplaced = ~size_t{0};
  // Per tensor: its device and its slot in that device's list.
  std::vector<std::pair<size_t, size_t>> tensor_home(tensors.size(), {kUnplaced, 0});
  // Model order (blocks are in model order, a block's tensors in file order),
  // so each arena mirrors the file's layout.
  for (size_t b = 0; b < placement.blocks.size(); ++b) {
    const size_t d = device_of(placement.block_device[b]);
    DeviceArenas& dev = devices[d];
    for (size_t t : placement.blocks[b].tensor_indices) {
      if (dev.arenas.empty()) dev.arenas.push_back(ArenaPlan{dev.device, 0, {}});
      ArenaPlan* arena = &dev.arenas.back();
      if (dev.segment_bytes != 0 && !arena->tensors.empty() &&
          static_cast<int>(dev.arenas.size()) < dev.max_segments &&
          AlignUp(arena->bytes, alignment) + tensors[t].nbytes > dev.segment_bytes) {
        dev.arenas.push_back(ArenaPlan{dev.device, 0, {}});
        arena = &dev.arenas.back();
      }
      const uint64_t offset = AlignUp(arena->bytes, alignment);
      tensor_home[t] = {d, dev.slots.size()};
      dev.slots.push_back({dev.arenas.size() - 1, offset});
      arena->tensors.push_back(t);
      arena->bytes = offset + tensors[t].nbytes;
    }
  }

  ArenaLayout layout;
  std::vector<size_t> first_arena(devices.size());
  for (size_t d = 0; d < devices.size(); ++d) {
    first_arena[d] = layout.arenas.size();
    // A device the plan listed without any block still gets its (empty) arena.
    if (devices[d].arenas.empty()) devices[d].arenas.push_back(ArenaPlan{devices[d].device, 0, {}});
    for (ArenaPlan& a : devices[d].arenas) layout.arenas.push_back(std::move(a));
  }
  layout.slots.resize(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    const auto [d, local] = tensor_home[t];
    if (d == kUnplaced) continue;  // in no block: left at arena 0, offset 0
    const auto [arena, offset] = devices[d].slots[local];
    layout.slots[t] = TensorSlot{first_arena[d] + arena, offset};
  }
  return layout;
}

}  // namespace distorch
