// Arena layout: tensors at aligned offsets in model order, one arena per GPU
// (or sim) device, and the cpu device split into segments for parallel loads.
#include "distorch/arena_layout.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace distorch {
namespace {

DeviceId Sim(int i) { return DeviceId{DeviceType::kSim, i}; }

// `count` one-tensor blocks of `bytes` each, placed by `device_of(block)`.
struct Fixture {
  std::vector<TensorInfo> tensors;
  Placement placement;
};

template <typename DeviceOf>
Fixture Blocks(int count, uint64_t bytes, DeviceOf device_of) {
  Fixture f;
  uint64_t offset = 0;
  for (int i = 0; i < count; ++i) {
    TensorInfo t;
    t.name = "blocks." + std::to_string(i) + ".weight";
    t.dtype = DType::kU8;
    t.shape = {static_cast<int64_t>(bytes)};
    t.file_offset = offset;
    t.nbytes = bytes;
    offset += bytes;
    f.tensors.push_back(t);
    f.placement.blocks.push_back(Block{"blocks." + std::to_string(i), {size_t(i)}, bytes});
    f.placement.block_device.push_back(device_of(i));
  }
  for (const DeviceId& d : f.placement.block_device) {
    bool listed = false;
    for (DevicePlan& p : f.placement.devices) {
      if (p.device == d) {
        listed = true;
        p.bytes += bytes;
        ++p.blocks;
      }
    }
    if (!listed) f.placement.devices.push_back(DevicePlan{d, 0, bytes, 1});
  }
  return f;
}

ArenaLayoutOptions Options(int segments, uint64_t min_segment) {
  ArenaLayoutOptions o;
  o.alignment = 256;
  o.max_host_segments = segments;
  o.min_host_segment_bytes = min_segment;
  return o;
}

// Every tensor sits inside its arena, aligned, in model order, with no overlap.
void CheckWellFormed(const Fixture& f, const ArenaLayout& layout) {
  REQUIRE(layout.slots.size() == f.tensors.size());
  for (size_t a = 0; a < layout.arenas.size(); ++a) {
    uint64_t end = 0;
    for (size_t t : layout.arenas[a].tensors) {
      const TensorSlot& slot = layout.slots[t];
      CHECK(slot.arena == a);
      CHECK(slot.offset % 256 == 0);
      CHECK(slot.offset >= end);
      end = slot.offset + f.tensors[t].nbytes;
    }
    CHECK(layout.arenas[a].bytes == end);
  }
}

TEST_CASE("one arena per device without segments, in placement order", "[arena_layout]") {
  Fixture f = Blocks(6, 1000, [](int i) {
    return i < 2 ? Sim(0) : i < 4 ? Sim(1) : DeviceId::Cpu();
  });
  ArenaLayout layout = ComputeArenaLayout(f.tensors, f.placement, Options(1, 0));
  CheckWellFormed(f, layout);
  REQUIRE(layout.arenas.size() == 3);
  CHECK(layout.arenas[0].device == Sim(0));
  CHECK(layout.arenas[1].device == Sim(1));
  CHECK(layout.arenas[2].device == DeviceId::Cpu());
  CHECK(layout.slots[1].offset == 1024);  // 1000 rounded up to 256
  CHECK(layout.arenas[2].bytes == 2024);
}

TEST_CASE("the cpu device is split into even segments; GPUs are not", "[arena_layout]") {
  // 8 blocks of 1000 on sim:0, 12 on cpu; 4 segments of at least 2000 bytes.
  Fixture f = Blocks(20, 1000, [](int i) { return i < 8 ? Sim(0) : DeviceId::Cpu(); });
  ArenaLayout layout = ComputeArenaLayout(f.tensors, f.placement, Options(4, 2000));
  CheckWellFormed(f, layout);
  REQUIRE(layout.arenas.size() == 5);
  CHECK(layout.arenas[0].device == Sim(0));
  CHECK(layout.arenas[0].tensors.size() == 8);
  for (int a = 1; a <= 4; ++a) {
    CHECK(layout.arenas[a].device == DeviceId::Cpu());
    CHECK(layout.arenas[a].tensors.size() == 3);  // 12 tensors of 1024 aligned, 3072 each
  }
  // Segments follow model order: blocks 8-10, 11-13, ...
  CHECK(layout.arenas[1].tensors.front() == 8);
  CHECK(layout.arenas[4].tensors.back() == 19);
  CHECK(layout.slots[11].arena == 2);
  CHECK(layout.slots[11].offset == 0);
}

TEST_CASE("small host parts stay in one arena; the minimum wins over the count", "[arena_layout]") {
  Fixture f = Blocks(12, 1000, [](int) { return DeviceId::Cpu(); });
  SECTION("below twice the minimum: one arena") {
    ArenaLayout layout = ComputeArenaLayout(f.tensors, f.placement, Options(4, 8000));
    CheckWellFormed(f, layout);
    CHECK(layout.arenas.size() == 1);
  }
  SECTION("the minimum caps the count") {
    ArenaLayout layout = ComputeArenaLayout(f.tensors, f.placement, Options(8, 4096));
    CheckWellFormed(f, layout);
    CHECK(layout.arenas.size() == 3);
  }
  SECTION("never more than the maximum") {
    ArenaLayout layout = ComputeArenaLayout(f.tensors, f.placement, Options(5, 1));
    CheckWellFormed(f, layout);
    CHECK(layout.arenas.size() <= 5);
    CHECK(layout.arenas.size() >= 4);
  }
}

TEST_CASE("a tensor larger than a segment gets one of its own", "[arena_layout]") {
  Fixture f = Blocks(3, 1000, [](int) { return DeviceId::Cpu(); });
  f.tensors[1].nbytes = 10000;
  f.tensors[2].file_offset = f.tensors[1].file_offset + 10000;
  ArenaLayout layout = ComputeArenaLayout(f.tensors, f.placement, Options(3, 1000));
  CheckWellFormed(f, layout);
  REQUIRE(layout.arenas.size() == 3);
  CHECK(layout.arenas[1].tensors == std::vector<size_t>{1});
}

TEST_CASE("a device listed without blocks keeps an empty arena", "[arena_layout]") {
  Fixture f = Blocks(2, 1000, [](int) { return Sim(0); });
  f.placement.devices.push_back(DevicePlan{DeviceId::Cpu(), 5000, 1, 0});
  ArenaLayout layout = ComputeArenaLayout(f.tensors, f.placement, Options(4, 1));
  CheckWellFormed(f, layout);
  REQUIRE(layout.arenas.size() == 2);
  CHECK(layout.arenas[1].device == DeviceId::Cpu());
  CHECK(layout.arenas[1].bytes == 0);
}

}  // namespace
}  // namespace distorch
