// How long PlanPlacement takes for a large model: 20,000 tensors (10,000
// blocks) over 8 devices, target < 5 ms; as wall time and as thread CPU time
// (the dev box has 2 cores shared by several builds). Also GroupIntoBlocks
// alone, as a share of the whole plan, and a plan whose tensor list is not in
// file order (the sort path). Quick by default; --full runs more iterations.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench_json.h"
#include "distorch/planner.h"
#include "distorch/units.h"

namespace distorch {
namespace {

constexpr int kTensors = 20000;

// FLUX-like names: 10,000 modules "double_blocks.I.img_attn_K", each with a
// weight (1-48 MiB) and a bias (6 KiB, so a tiny block's neighbour).
std::vector<TensorInfo> BigModel() {
  std::vector<TensorInfo> tensors;
  tensors.reserve(kTensors);
  std::mt19937_64 rng(42);
  uint64_t offset = 0;
  for (int i = 0; i < kTensors / 2; ++i) {
    std::string module =
        "double_blocks." + std::to_string(i / 8) + ".img_attn_" + std::to_string(i % 8);
    for (const char* leaf : {".weight", ".bias"}) {
      TensorInfo t;
      t.name = module + leaf;
      t.dtype = DType::kBF16;
      t.nbytes = leaf[1] == 'w' ? (1 + rng() % 48) * kMiB : 6144;
      t.shape = {static_cast<int64_t>(t.nbytes / 2)};
      t.file_offset = offset;
      offset += t.nbytes;
      tensors.push_back(std::move(t));
    }
  }
  return tensors;
}

PlanRequest BigRequest() {
  PlanRequest r;
  r.tensors = BigModel();
  r.compute = DeviceId::Cuda(0);
  r.alloc.mode = AllocMode::kBytes;
  for (int i = 0; i < 7; ++i) {
    AllocEntry e;
    e.device = DeviceId::Cuda(i);
    e.bytes = 16 * kGiB;
    r.alloc.entries.push_back(e);
    r.devices.push_back({DeviceId::Cuda(i), 80 * kGiB, 78 * kGiB, 2 * kGiB});
  }
  AllocEntry rest;
  rest.device = DeviceId::Cpu();
  rest.is_rest = true;
  r.alloc.entries.push_back(rest);
  r.devices.push_back({DeviceId::Cpu(), 512 * kGiB, 400 * kGiB, 8 * kGiB});
  r.pins = {"double_blocks.0", "double_blocks.1249.img_attn_7"};
  return r;
}

// Medians over `iterations` runs of `f`: wall time, and this thread's CPU
// time, which a busy shared machine inflates far less.
struct Timing {
  double wall_ms = 0;
  double cpu_ms = 0;
};

double ThreadCpuMs() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

double Median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

template <typename F>
Timing Measure(int iterations, F&& f) {
  std::vector<double> wall, cpu;
  wall.reserve(iterations);
  cpu.reserve(iterations);
  for (int i = 0; i < iterations; ++i) {
    double cpu_start = ThreadCpuMs();
    auto start = std::chrono::steady_clock::now();
    f();
    auto end = std::chrono::steady_clock::now();
    cpu.push_back(ThreadCpuMs() - cpu_start);
    wall.push_back(std::chrono::duration<double, std::milli>(end - start).count());
  }
  return {Median(wall), Median(cpu)};
}

int Main(int argc, char** argv) {
  const int iterations = bench::FullRun(argc, argv) ? 301 : 31;
  PlanRequest request = BigRequest();
  absl::StatusOr<Placement> check = PlanPlacement(request);
  if (!check.ok() || check->blocks.size() != kTensors / 2) {
    std::fprintf(stderr, "planner_bench: the plan failed: %s\n", check.status().ToString().c_str());
    return 1;
  }
  size_t sink = 0;
  Timing plan = Measure(iterations, [&] { sink += PlanPlacement(request)->blocks.size(); });
  Timing group = Measure(iterations, [&] { sink += GroupIntoBlocks(request.tensors).size(); });

  PlanRequest shuffled = request;
  std::mt19937_64 rng(7);
  std::shuffle(shuffled.tensors.begin(), shuffled.tensors.end(), rng);
  Timing unsorted = Measure(iterations, [&] { sink += PlanPlacement(shuffled)->blocks.size(); });

  const char* kBench = "planner";
  bench::Print({kBench, "plan_20k_tensors_8_devices", plan.wall_ms, "ms", std::nullopt, 5.0});
  bench::Print({kBench, "plan_20k_tensors_8_devices_cpu", plan.cpu_ms, "ms", std::nullopt, 5.0});
  // ratio: the share of the plan spent grouping tensors into blocks.
  bench::Print(
      {kBench, "group_into_blocks_20k_tensors_cpu", group.cpu_ms, "ms", plan.cpu_ms, std::nullopt});
  // ratio: what a tensor list out of file order costs (the sort, and cache
  // misses on the shuffled records), against the sorted list.
  bench::Print({kBench, "plan_20k_tensors_unsorted_cpu", unsorted.cpu_ms, "ms", plan.cpu_ms, 5.0});
  return sink == 0 ? 1 : 0;
}

}  // namespace
}  // namespace distorch

int main(int argc, char** argv) { return distorch::Main(argc, argv); }
