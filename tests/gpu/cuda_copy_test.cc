// The file → GPU copy engine: byte-exact fills through pinned staging
// buffers, errors, cancel, Trim, and two GPUs at once.
#include "daemon/devices/cuda/cuda_copy.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon/devices/cuda/cuda_arena.h"
#include "distorch/units.h"
#include "tests/gpu/gpu_test_util.h"

namespace distorch {
namespace {

using testing::Pattern;
using testing::TempFile;

constexpr uint64_t kSeed = 11;

// Tensor-like ranges over a pattern file: tiny and large, gaps in the file,
// and arena offsets (256-aligned) in the reverse of file order.
std::vector<FileRange> MakeRanges(uint64_t* arena_bytes) {
  std::vector<uint64_t> sizes = {1, 255, 4096, 20 * kMiB, 33 * kMiB + 7, 3};
  for (int i = 0; i < 500; ++i) sizes.push_back(1000 + static_cast<uint64_t>(i));
  sizes.push_back(5 * kMiB);
  std::vector<FileRange> ranges;
  uint64_t file_at = 64;  // a "header"
  for (size_t i = 0; i < sizes.size(); ++i) {
    ranges.push_back({file_at, 0, sizes[i], {}});
    // Some ranges skip file bytes: a few by more than max_gap, more by less.
    if (i % 7 == 3) file_at += i < 30 ? 3 * kMiB : 100;
    file_at += sizes[i];
  }
  uint64_t arena_at = 0;
  for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
    it->arena_offset = arena_at;
    arena_at += (it->size + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
  }
  *arena_bytes = arena_at;
  return ranges;
}

void CheckArenaHolds(const CudaArena& arena, const std::vector<FileRange>& ranges) {
  std::vector<uint8_t> back(arena.size());
  REQUIRE(arena.Read(0, back.data(), back.size()).ok());
  for (const FileRange& r : ranges) {
    CAPTURE(r.file_offset, r.arena_offset, r.size);
    std::vector<uint8_t> want = Pattern(kSeed, r.size, r.file_offset);
    REQUIRE(std::equal(want.begin(), want.end(), back.begin() + r.arena_offset));
  }
}

TEST_CASE("FillFromFile copies file ranges to the GPU byte-exact", "[copy]") {
  auto [readers, buffers, chunk] = GENERATE(table<int, int, uint64_t>({
      {4, 2, 4 * kMiB},   // double-buffered, several readers
      {1, 3, 1 * kMiB},   // triple-buffered, one reader
      {8, 2, 16 * kMiB},  // the defaults' shape, more readers than some chunks
  }));
  CAPTURE(readers, buffers, chunk);
  uint64_t arena_bytes = 0;
  const std::vector<FileRange> ranges = MakeRanges(&arena_bytes);
  const FileRange& last = ranges.back();
  TempFile file;
  REQUIRE(file.AppendPattern(kSeed, last.file_offset + last.size + 100));

  CudaCopyEngine::Options options;
  options.readers = readers;
  options.buffers_per_reader = buffers;
  options.chunk_bytes = chunk;
  auto engine = std::make_shared<CudaCopyEngine>(0, options);
  auto counter = std::make_shared<std::atomic<uint64_t>>(0);
  absl::StatusOr<std::unique_ptr<CudaArena>> arena =
      CudaArena::Allocate(DeviceId::Cuda(0), 0, arena_bytes, counter, engine);
  REQUIRE(arena.ok());
  std::atomic<uint64_t> progress{0};
  absl::Status filled = (*arena)->FillFromFile(file.fd(), ranges, &progress);
  REQUIRE(filled.ok());
  uint64_t total = 0;
  for (const FileRange& r : ranges) total += r.size;
  CHECK(progress.load() == total);
  REQUIRE((*arena)->Seal().ok());
  CheckArenaHolds(**arena, ranges);

  CHECK(engine->staging_bytes() == static_cast<uint64_t>(readers * buffers) * chunk);
  CHECK(engine->Trim() == static_cast<uint64_t>(readers * buffers) * chunk);
  CHECK(engine->staging_bytes() == 0);
}

TEST_CASE("FillFromFile reports short files, bad ranges and cancels", "[copy]") {
  TempFile file;
  REQUIRE(file.AppendPattern(kSeed, 2 * kMiB));
  auto counter = std::make_shared<std::atomic<uint64_t>>(0);
  absl::StatusOr<std::unique_ptr<CudaArena>> arena =
      CudaArena::Allocate(DeviceId::Cuda(0), 0, 4 * kMiB, counter, nullptr);
  REQUIRE(arena.ok());
  CudaArena& a = **arena;

  absl::Status short_file =
      a.FillFromFile(file.fd(), {{kMiB, 0, 2 * kMiB, "blocks.0.weight"}}, nullptr);
  CHECK(absl::IsDataLoss(short_file));
  CHECK(short_file.message() ==
        "model file ended at offset 2097152 inside tensor 'blocks.0.weight' (was it truncated "
        "while loading?)");

  absl::Status outside = a.FillFromFile(file.fd(), {{0, 3 * kMiB, 2 * kMiB, "w"}}, nullptr);
  CHECK(absl::IsOutOfRange(outside));
  CHECK(outside.message() ==
        "cuda:0: tensor 'w' of 2097152 bytes at arena offset 3145728 does not fit the "
        "4194304-byte arena");

  std::atomic<bool> cancel{true};
  absl::Status cancelled = a.FillFromFile(file.fd(), {{0, 0, kMiB, "w"}}, nullptr, &cancel);
  CHECK(absl::IsCancelled(cancelled));

  // The engine is still healthy after the errors.
  const std::vector<FileRange> good = {{0, 0, 2 * kMiB, "w"}};
  REQUIRE(a.FillFromFile(file.fd(), good, nullptr).ok());
  CheckArenaHolds(a, good);

  REQUIRE(a.Seal().ok());
  CHECK(absl::IsFailedPrecondition(a.FillFromFile(file.fd(), good, nullptr)));
}

TEST_CASE("Two GPUs fill in parallel", "[copy][multi]") {
  if (testing::CudaDeviceCount() < 2) {
    WARN("one GPU: the parallel fill needs two");
    return;
  }
  uint64_t arena_bytes = 0;
  const std::vector<FileRange> ranges = MakeRanges(&arena_bytes);
  TempFile file;
  REQUIRE(file.AppendPattern(kSeed, ranges.back().file_offset + ranges.back().size));
  std::vector<std::unique_ptr<CudaArena>> arenas;
  for (int gpu = 0; gpu < 2; ++gpu) {
    auto counter = std::make_shared<std::atomic<uint64_t>>(0);
    absl::StatusOr<std::unique_ptr<CudaArena>> a =
        CudaArena::Allocate(DeviceId::Cuda(gpu), gpu, arena_bytes, counter, nullptr);
    REQUIRE(a.ok());
    arenas.push_back(*std::move(a));
  }
  absl::Status results[2];
  std::thread other([&] { results[1] = arenas[1]->FillFromFile(file.fd(), ranges, nullptr); });
  results[0] = arenas[0]->FillFromFile(file.fd(), ranges, nullptr);
  other.join();
  REQUIRE(results[0].ok());
  REQUIRE(results[1].ok());
  for (const auto& a : arenas) CheckArenaHolds(*a, ranges);
}

}  // namespace
}  // namespace distorch
