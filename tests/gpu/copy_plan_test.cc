// PlanCopyChunks: how file ranges become preads into staging buffers. Pure
// logic, so this runs everywhere (label unit), GPU or not.
#include <catch2/catch.hpp>
#include <vector>

#include "daemon/devices/cuda/cuda_copy.h"

namespace distorch {
namespace {

TEST_CASE("PlanCopyChunks joins neighbours and splits large ranges", "[copy_plan]") {
  // 4 small ranges with a 10-byte gap, then one 250-byte range; 100-byte chunks.
  std::vector<FileRange> ranges = {
      {1000, 5000, 250, "big"},  // given out of file order
      {0, 0, 10, "a"},
      {10, 256, 20, "b"},
      {40, 512, 30, "c"},  // 10-byte gap before it
  };
  std::vector<CopyChunk> chunks = PlanCopyChunks(ranges, 100, 16);
  REQUIRE(chunks.size() == 4);
  CHECK(chunks[0].file_offset == 0);
  CHECK(chunks[0].size == 70);
  REQUIRE(chunks[0].pieces.size() == 3);
  CHECK(chunks[0].pieces[2].buffer_offset == 40);
  CHECK(chunks[0].pieces[2].arena_offset == 512);
  CHECK(chunks[0].pieces[2].name == "c");
  // "big" is far away: its own chunks, 100 + 100 + 50.
  for (int i = 1; i < 4; ++i) {
    CAPTURE(i);
    CHECK(chunks[i].file_offset == 1000 + 100 * static_cast<uint64_t>(i - 1));
    REQUIRE(chunks[i].pieces.size() == 1);
    CHECK(chunks[i].pieces[0].buffer_offset == 0);
    CHECK(chunks[i].pieces[0].arena_offset == 5000 + 100 * static_cast<uint64_t>(i - 1));
    CHECK(chunks[i].pieces[0].name == "big");
  }
  CHECK(chunks[3].size == 50);
}

TEST_CASE("PlanCopyChunks never exceeds a chunk and covers every byte once", "[copy_plan]") {
  auto [chunk_bytes, max_gap] =
      GENERATE(table<uint64_t, uint64_t>({{1, 0}, {7, 3}, {64, 0}, {64, 1000}, {4096, 64}}));
  CAPTURE(chunk_bytes, max_gap);
  std::vector<FileRange> ranges;
  uint64_t file_at = 3, arena_at = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    const uint64_t size = (i * 37) % 300 + 1;
    ranges.push_back({file_at, arena_at, size, {}});
    file_at += size + (i % 5 == 0 ? 50 : 0);
    arena_at += size;
  }
  std::vector<CopyChunk> chunks = PlanCopyChunks(ranges, chunk_bytes, max_gap);
  std::vector<int> arena_hits(arena_at, 0);
  uint64_t previous_end = 0;
  for (const CopyChunk& c : chunks) {
    CHECK(c.size <= chunk_bytes);
    CHECK(c.file_offset >= previous_end);  // file order, no overlap
    previous_end = c.file_offset + c.size;
    for (const CopyChunk::Piece& p : c.pieces) {
      CHECK(p.buffer_offset + p.size <= c.size);
      // The piece's file bytes land where its range says.
      const uint64_t file = c.file_offset + p.buffer_offset;
      bool found = false;
      for (const FileRange& r : ranges) {
        if (file >= r.file_offset && file + p.size <= r.file_offset + r.size) {
          CHECK(p.arena_offset == r.arena_offset + (file - r.file_offset));
          found = true;
        }
      }
      CHECK(found);
      for (uint64_t b = 0; b < p.size; ++b) ++arena_hits[p.arena_offset + b];
    }
  }
  for (uint64_t b = 0; b < arena_at; ++b) {
    if (arena_hits[b] != 1) FAIL("arena byte " << b << " written " << arena_hits[b] << " times");
  }
  CHECK(PlanCopyChunks({}, chunk_bytes, max_gap).empty());
}

}  // namespace
}  // namespace distorch
