// GPU load throughput and IPC attach time. Needs a CUDA device; without one it
// prints "SKIPPED: no CUDA device" and exits 77 (CTest: skipped).
//
// Figures (one JSON line each, tests/bench/bench_json.h):
//  - pinned_memcpy_h2d: cudaMemcpyAsync from pinned host memory, the
//    baseline the copy engine is measured against;
//  - file_to_gpu_<n>_readers: a page-cached model file into a CudaArena
//    through CudaArena::FillFromFile (target >= 0.8x pinned memcpy);
//  - file_to_gpu_bounce_write: pread into pageable buffers + Arena::Write,
//    what the loader does without the copy engine, for comparison;
//  - ipc_open_per_arena_{mean,max}: cudaIpcOpenMemHandle in another process,
//    one arena at a time, context creation excluded (target < 20 ms).
// Quick (default): a 1 GiB file, 8 arenas. --full: 4 GiB, 32 arenas.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/devices/cuda/cuda_arena.h"
#include "daemon/devices/cuda/cuda_copy.h"
#include "distorch/units.h"
#include "tests/bench/bench_json.h"
#include "tests/gpu/gpu_test_util.h"

namespace distorch {
namespace {

constexpr char kBench[] = "gpu_load";
using bench::Best;
using bench::Clock;
using bench::Seconds;

[[noreturn]] void Die(const std::string& what) { bench::Die("gpu_load_bench", what); }

void Check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) Die(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

void Check(const absl::Status& s) {
  if (!s.ok()) Die(std::string(s.message()));
}

// Pinned host → device bandwidth, GB/s, copying `bytes` in 256 MiB pieces.
double PinnedMemcpyGbps(uint64_t bytes, int runs) {
  const uint64_t piece = 256 * kMiB;
  void* host = nullptr;
  void* dev = nullptr;
  cudaStream_t stream = nullptr;
  Check(cudaHostAlloc(&host, piece, cudaHostAllocDefault), "cudaHostAlloc");
  Check(cudaMalloc(&dev, piece), "cudaMalloc");
  Check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  std::memset(host, 1, piece);
  double best = Best(runs, [&] {
    auto begin = Clock::now();
    for (uint64_t done = 0; done < bytes; done += piece) {
      Check(
          cudaMemcpyAsync(dev, host, std::min(piece, bytes - done), cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync");
    }
    Check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    return Seconds(begin);
  });
  cudaStreamDestroy(stream);
  cudaFree(dev);
  cudaFreeHost(host);
  return bytes / best / 1e9;
}

// A state dict's shape: per block a 16 MiB weight, a 12 KiB bias and a 4 KiB
// norm, packed in the file after a 64 KiB "header"; arena offsets aligned.
std::vector<FileRange> ModelRanges(uint64_t bytes, uint64_t* arena_bytes) {
  std::vector<FileRange> ranges;
  uint64_t file_at = 64 * kKiB, arena_at = 0;
  for (uint64_t total = 0; total < bytes;) {
    for (uint64_t size : {16 * kMiB, 12 * kKiB, 4 * kKiB}) {
      ranges.push_back({file_at, arena_at, size, {}});
      file_at += size;
      arena_at += (size + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
      total += size;
    }
  }
  *arena_bytes = arena_at;
  return ranges;
}

// pread into pageable buffers on `threads` threads, then Arena::Write.
double BounceWriteSeconds(int fd, const std::vector<FileRange>& ranges, CudaArena& arena,
                          int threads) {
  std::atomic<size_t> next{0};
  auto begin = Clock::now();
  auto worker = [&] {
    std::vector<uint8_t> buffer;
    for (size_t i = next.fetch_add(1); i < ranges.size(); i = next.fetch_add(1)) {
      const FileRange& r = ranges[i];
      buffer.resize(r.size);
      if (pread(fd, buffer.data(), r.size, static_cast<off_t>(r.file_offset)) !=
          static_cast<ssize_t>(r.size)) {
        Die("short read");
      }
      Check(arena.Write(r.arena_offset, buffer.data(), r.size));
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  Check(arena.Seal());
  return Seconds(begin);
}

// Per-arena cudaIpcOpenMemHandle times (ms) measured by gpu_ipc_child.
std::vector<double> IpcOpenMs(int arenas, uint64_t arena_bytes) {
  auto counter = std::make_shared<std::atomic<uint64_t>>(0);
  std::vector<std::unique_ptr<CudaArena>> held;
  std::vector<std::string> args = {GPU_IPC_CHILD, "time", "0"};
  for (int i = 0; i < arenas; ++i) {
    absl::StatusOr<std::unique_ptr<CudaArena>> a =
        CudaArena::Allocate(DeviceId::Cuda(0), 0, arena_bytes, counter, nullptr);
    Check(a.status());
    args.push_back(testing::ToHex((*a)->Export().cuda_ipc_handle));
    held.push_back(*std::move(a));
  }
  testing::Child child = testing::Spawn(args);
  if (child.pid <= 0) Die("cannot start gpu_ipc_child");
  std::string out = testing::ReadOutput(child);
  if (int code = testing::WaitChild(child.pid, std::chrono::seconds(120)); code != 0) {
    Die(absl::StrCat("gpu_ipc_child exited with ", code));
  }
  std::vector<double> ms;
  std::istringstream lines(out);
  for (double v; lines >> v;) ms.push_back(v);
  if (static_cast<int>(ms.size()) != arenas) Die("gpu_ipc_child printed too few times");
  return ms;
}

int Run(bool full) {
  const uint64_t bytes = (full ? 4 : 1) * kGiB;
  const int runs = 3;
  const int arenas = full ? 32 : 8;

  const double pinned = PinnedMemcpyGbps(bytes, runs);
  bench::Print({kBench, "pinned_memcpy_h2d", pinned, "GB/s"});

  uint64_t arena_bytes = 0;
  const std::vector<FileRange> ranges = ModelRanges(bytes, &arena_bytes);
  testing::TempFile file;
  if (!file.AppendPattern(7, ranges.back().file_offset + ranges.back().size)) Die("writing");
  const double gb = static_cast<double>(bytes) / 1e9;
  {  // Warm the page cache: the figures are about the copy, not the disk.
    std::vector<uint8_t> sink(64 * kMiB);
    for (off_t at = 0; pread(file.fd(), sink.data(), sink.size(), at) > 0;) at += sink.size();
  }

  for (int readers : {4, 8}) {
    CudaCopyEngine::Options options;
    options.readers = readers;
    auto engine = std::make_shared<CudaCopyEngine>(0, options);
    auto counter = std::make_shared<std::atomic<uint64_t>>(0);
    const double seconds = Best(runs, [&] {
      absl::StatusOr<std::unique_ptr<CudaArena>> arena =
          CudaArena::Allocate(DeviceId::Cuda(0), 0, arena_bytes, counter, engine);
      Check(arena.status());
      auto begin = Clock::now();
      Check((*arena)->FillFromFile(file.fd(), ranges, nullptr));
      Check((*arena)->Seal());
      return Seconds(begin);
    });
    bench::Print({kBench, absl::StrCat("file_to_gpu_", readers, "_readers"), gb / seconds, "GB/s",
                  pinned, 0.8 * pinned});
  }
  {
    auto counter = std::make_shared<std::atomic<uint64_t>>(0);
    const double seconds = Best(runs, [&] {
      absl::StatusOr<std::unique_ptr<CudaArena>> arena =
          CudaArena::Allocate(DeviceId::Cuda(0), 0, arena_bytes, counter, nullptr);
      Check(arena.status());
      return BounceWriteSeconds(file.fd(), ranges, **arena, 4);
    });
    bench::Print({kBench, "file_to_gpu_bounce_write_4_threads", gb / seconds, "GB/s", pinned});
  }

  std::vector<double> ms = IpcOpenMs(arenas, 256 * kMiB);
  double sum = 0;
  for (double v : ms) sum += v;
  bench::Print({kBench, "ipc_open_per_arena_mean", sum / ms.size(), "ms", std::nullopt, 20.0});
  bench::Print({kBench, "ipc_open_per_arena_max", *std::max_element(ms.begin(), ms.end()), "ms",
                std::nullopt, 20.0});
  return 0;
}

}  // namespace
}  // namespace distorch

int main(int argc, char** argv) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return distorch::testing::kSkipExitCode;
  }
  return distorch::Run(distorch::bench::FullRun(argc, argv));
}
