// Load throughput: a page-cached safetensors file into a host (memfd) arena.
//
// Runs the daemon's own code in-process: Broker::Load on the `cpu` device with
// the file's fd put in the ticket book as the fd channel would (everything
// distorchd does for a load except the gRPC call), plus the pieces on their
// own (arena allocation; LoadIntoArenas with each host copy path, into one
// memfd and into one segment per thread, and converting bf16 -> fp16).
// Baselines measured in the same run:
//  - single-thread memcpy bandwidth (target: copy >= 0.8x of it);
//  - an in-process Python load of the same file by /usr/bin/python3
//    (DISTORCH_PYTHON): read + torch.frombuffer per tensor, as
//    safetensors.torch.load_file does (target: Broker::Load >= 2x faster).
//
// Quick (default): a 256 MiB model. --full: 2 GiB, the documented numbers.
// Each figure is the best of several rounds; the measurements interleave
// round by round (the machine is shared, and its load changes by the second).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/broker.h"
#include "daemon/devices/host_device.h"
#include "daemon/devices/memfd_arena.h"
#include "daemon/load/dtype_convert.h"
#include "daemon/load/loader.h"
#include "daemon/load/model_file.h"
#include "spdlog/spdlog.h"
#include "tests/bench/bench_json.h"

namespace distorch {
namespace {

constexpr char kBench[] = "load";
using bench::Best;
using bench::Clock;
using bench::Seconds;

[[noreturn]] void Die(const std::string& what) { bench::Die("load_bench", what); }

// A model shaped like a diffusion model's state dict: per block a large bf16
// weight (~16 MiB), a bf16 bias and an f32 norm; written once, then read
// into the page cache.
std::string WriteModel(const std::string& path, uint64_t target_bytes) {
  struct T {
    std::string name, dtype;
    std::vector<int64_t> shape;
    uint64_t bytes;
  };
  std::vector<T> tensors;
  const int64_t width = 3072, rows = 2688;  // 3072 x 2688 bf16 = 15.75 MiB
  uint64_t total = 0;
  for (int b = 0; total + width * rows * 2 <= target_bytes; ++b) {
    std::string block = absl::StrCat("blocks.", b, ".");
    tensors.push_back(
        {block + "linear.weight", "BF16", {rows, width}, static_cast<uint64_t>(rows * width * 2)});
    tensors.push_back({block + "linear.bias", "BF16", {rows}, static_cast<uint64_t>(rows * 2)});
    tensors.push_back({block + "norm.scale", "F32", {width}, static_cast<uint64_t>(width * 4)});
    for (int i = 0; i < 3; ++i) total += tensors[tensors.size() - 3 + i].bytes;
  }
  std::string json = "{";
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const T& t = tensors[i];
    absl::StrAppend(&json, i ? "," : "", "\"", t.name, "\":{\"dtype\":\"", t.dtype,
                    "\",\"shape\":[", absl::StrJoin(t.shape, ","), "],\"data_offsets\":[", offset,
                    ",", offset + t.bytes, "]}");
    offset += t.bytes;
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) Die("cannot write " + path);
  uint64_t n = json.size();
  std::fwrite(&n, 8, 1, f);
  std::fwrite(json.data(), 1, json.size(), f);
  // Finite bf16 values in [0.125, 0.25) from a cheap generator.
  std::vector<uint16_t> chunk(4 << 20);
  uint32_t x = 12345;
  for (uint64_t left = offset; left > 0;) {
    for (uint16_t& v : chunk) {
      x = x * 1664525u + 1013904223u;
      v = static_cast<uint16_t>(0x3E00 | ((x >> 16) & 0x7F));
    }
    uint64_t put = std::min<uint64_t>(left, chunk.size() * 2);
    std::fwrite(chunk.data(), 1, put, f);
    left -= put;
  }
  std::fclose(f);
  return path;
}

void ReadIntoPageCache(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  std::vector<char> buf(16 << 20);
  while (read(fd, buf.data(), buf.size()) > 0) {
  }
  close(fd);
}

// Single-thread memcpy between two pre-faulted buffers of `bytes`.
double MemcpyGBps(uint64_t bytes, int runs) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  return bytes /
         Best(runs,
              [&] {
                auto t = Clock::now();
                std::memcpy(b.data(), a.data(), bytes);
                asm volatile("" : : "r"(b.data()) : "memory");
                return Seconds(t);
              }) /
         1e9;
}

// A resident with every tensor on the cpu device in fresh arenas, laid out
// as the broker does: `segments` memfds (arena_layout.h).
std::unique_ptr<Resident> HostResident(const std::vector<TensorInfo>& tensors, int segments) {
  auto r = std::make_unique<Resident>();
  r->tensors = tensors;
  Placement placement;
  placement.blocks = GroupIntoBlocks(tensors);
  placement.block_device.assign(placement.blocks.size(), DeviceId::Cpu());
  placement.devices.push_back(DevicePlan{DeviceId::Cpu(), 0, 1, 1});
  ArenaLayoutOptions options;
  options.alignment = kArenaAlignment;
  options.max_host_segments = segments;
  r->layout = ComputeArenaLayout(tensors, placement, options);
  for (const TensorInfo& t : tensors) r->bytes_total += t.nbytes;
  for (const ArenaPlan& plan : r->layout.arenas) {
    auto arena = MemfdArena::Create(DeviceId::Cpu(), plan.bytes, "bench",
                                    std::make_shared<std::atomic<uint64_t>>(0));
    if (!arena.ok()) Die(std::string(arena.status().message()));
    r->arenas.push_back(*std::move(arena));
  }
  return r;
}

// Seconds LoadIntoArenas takes into a fresh arena (allocation not counted),
// converting floating tensors to `weight_dtype` when one is given.
double CopySeconds(const std::string& path, int threads, int segments, LoadOptions::HostCopy how,
                   const std::string& weight_dtype = "") {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  absl::StatusOr<ModelFile> file = ReadModelFile(fd);
  if (!file.ok()) Die(std::string(file.status().message()));
  absl::StatusOr<WeightDtype> dtype = ParseWeightDtype(weight_dtype);
  if (!dtype.ok()) Die(std::string(dtype.status().message()));
  absl::StatusOr<std::vector<TensorInfo>> stored =
      StoredTensors(file->tensors, file->format, *dtype);
  if (!stored.ok()) Die(std::string(stored.status().message()));
  std::unique_ptr<Resident> r = HostResident(*stored, segments);
  LoadOptions options;
  options.threads = threads;
  options.host_copy = how;
  options.file_tensors = &file->tensors;
  auto t = Clock::now();
  absl::Status s = LoadIntoArenas(fd, *r, options);
  double seconds = Seconds(t);
  if (!s.ok()) Die(std::string(s.message()));
  close(fd);
  return seconds;
}

double AllocSeconds(uint64_t bytes) {
  auto t = Clock::now();
  auto arena = MemfdArena::Create(DeviceId::Cpu(), bytes, "bench",
                                  std::make_shared<std::atomic<uint64_t>>(0));
  double seconds = Seconds(t);
  if (!arena.ok()) Die(std::string(arena.status().message()));
  return seconds;
}

// Broker::Load end to end: header, plan, arena allocation, copy, seal.
double BrokerLoadSeconds(Broker& broker, SessionId session, const std::string& path) {
  LoadArgs args;
  args.session = session;
  args.file_ticket = broker.tickets().PutFile(UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC)));
  args.name = "bench";
  args.allocation = "cpu,*";
  auto t = Clock::now();
  absl::StatusOr<LoadOutcome> out = broker.Load(args, nullptr);
  double seconds = Seconds(t);
  if (!out.ok()) Die(std::string(out.status().message()));
  if (!broker.Release(session, out->lease).ok()) Die("release failed");
  return seconds;
}

// The Python side: a /usr/bin/python3 process that imports torch once, then
// for each line "readinto" or "clone" on stdin loads the file and prints the
// seconds it took. Kept running so its runs interleave with the daemon's (the
// machine's load changes by the second).
constexpr char kPythonLoad[] = R"PY(
import json, struct, sys, time
import torch
DT = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
      "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
      "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
def load(path, clone):
    out = {}
    with open(path, "rb", buffering=0) as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name, t in header.items():
            if name == "__metadata__":
                continue
            b, e = t["data_offsets"]
            buf = bytearray(e - b)
            f.seek(base + b)
            f.readinto(buf)
            x = torch.frombuffer(buf, dtype=DT[t["dtype"]]).reshape(t["shape"])
            out[name] = x.clone() if clone else x
    return out
print("ready", flush=True)
for line in sys.stdin:
    t = time.perf_counter()
    tensors = load(sys.argv[1], line.strip() == "clone")
    seconds = time.perf_counter() - t
    del tensors
    print(seconds, flush=True)
)PY";

// The Python loader process; Run() returns one load's seconds.
class PythonLoader {
 public:
  explicit PythonLoader(const std::string& path) {
    const char* python = std::getenv("DISTORCH_PYTHON");
    const std::string script = path + ".py";
    FILE* f = std::fopen(script.c_str(), "w");
    std::fputs(kPythonLoad, f);
    std::fclose(f);
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) Die("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(to_child[0], 0);
      dup2(from_child[1], 1);
      close(to_child[1]);
      close(from_child[0]);
      const char* exe = python ? python : "/usr/bin/python3";
      execl(exe, exe, script.c_str(), path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    in_ = fdopen(to_child[1], "w");
    out_ = fdopen(from_child[0], "r");
    char ready[16] = {};
    if (std::fscanf(out_, "%15s", ready) != 1 || std::string(ready) != "ready") {
      Die("the Python loader did not start (is torch installed for DISTORCH_PYTHON?)");
    }
  }
  ~PythonLoader() {
    std::fclose(in_);
    std::fclose(out_);
    waitpid(pid_, nullptr, 0);
  }
  double Run(bool clone) {
    std::fprintf(in_, "%s\n", clone ? "clone" : "readinto");
    std::fflush(in_);
    double seconds = 0;
    if (std::fscanf(out_, "%lf", &seconds) != 1) Die("the Python loader failed");
    return seconds;
  }

 private:
  pid_t pid_ = -1;
  FILE* in_ = nullptr;
  FILE* out_ = nullptr;
};

}  // namespace
}  // namespace distorch

int main(int argc, char** argv) {
  using namespace distorch;
  using bench::Print;
  spdlog::set_level(spdlog::level::warn);
  const bool full = bench::FullRun(argc, argv);
  const uint64_t target = full ? (2ULL << 30) : (256ULL << 20);
  const int rounds = full ? 5 : 3;

  std::string dir =
      (std::filesystem::temp_directory_path() / "distorch-load-bench-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) Die("mkdtemp failed");
  const std::string path = WriteModel(dir + "/model.safetensors", target);
  ReadIntoPageCache(path);
  const uint64_t bytes = std::filesystem::file_size(path);
  const double gb = static_cast<double>(bytes) / 1e9;

  DaemonConfig config;
  config.cuda = false;
  const int threads = config.load_threads;
  absl::StatusOr<std::unique_ptr<DeviceSet>> devices = DeviceSet::Build(config);
  if (!devices.ok()) Die(std::string(devices.status().message()));
  Broker broker(config, *std::move(devices));
  SessionId session = broker.OpenSession("load_bench", getpid());
  PythonLoader python(path);
  const bool convert = absl::StartsWith(ConversionEngine(), "LibTorch");

  // Every measurement once per round, interleaved; the best of each is kept.
  std::map<std::string, double> best;
  auto keep = [&best](const std::string& what, double seconds) {
    auto it = best.find(what);
    if (it == best.end() || seconds < it->second) best[what] = seconds;
  };
  const uint64_t memcpy_bytes = std::min<uint64_t>(target, 512ULL << 20);
  for (int round = 0; round < rounds; ++round) {
    keep("memcpy", memcpy_bytes / 1e9 / MemcpyGBps(memcpy_bytes, 3));
    keep("alloc", AllocSeconds(bytes));
    using How = LoadOptions::HostCopy;
    keep("pread", CopySeconds(path, threads, 1, How::kPread));
    keep("splice_1", CopySeconds(path, 1, 1, How::kSplice));
    keep("splice_1_memfd", CopySeconds(path, threads, 1, How::kSplice));
    keep("splice_segments", CopySeconds(path, threads, threads, How::kSplice));
    if (convert) {
      keep("fp16_1", CopySeconds(path, 1, 1, How::kSplice, "fp16"));
      keep("fp16_segments", CopySeconds(path, threads, threads, How::kSplice, "fp16"));
    }
    keep("broker", BrokerLoadSeconds(broker, session, path));
    keep("python", python.Run(false));
    keep("python_clone", python.Run(true));
  }

  const double memcpy_gbps = memcpy_bytes / 1e9 / best["memcpy"];
  Print({kBench, "model_size", gb, "GB"});
  // 1 when the kernel gives memfd writes 2 MiB pages (shmem_enabled
  // within_size/always): arena allocation then costs next to nothing.
  Print({kBench, "shmem_huge_pages_on_write",
         ShmemHugePagesOnWrite(ShmemHugePagePolicy()) ? 1.0 : 0.0, "bool"});
  Print({kBench, "memcpy_1_thread", memcpy_gbps, "GB/s"});
  // ratio: page allocation for the arena (memfd + fallocate) against memcpy.
  Print({kBench, "arena_alloc_memfd_fallocate", gb / best["alloc"], "GB/s", memcpy_gbps});
  // Copy alone (LoadIntoArenas into allocated arenas); ratios against memcpy.
  // The paths: pread into the arena's mapping (faults and zeroes every page);
  // splice file -> pipe -> memfd (the default). "1_memfd": the whole cpu part in one arena, where
  // the kernel runs writes one at a time; "N_segments": as the broker lays a
  // cpu part out, one memfd per load thread.
  const std::string n = absl::StrCat(threads);
  const std::vector<std::pair<std::string, std::string>> copies = {
      {"pread", "copy_pread_" + n + "_threads_1_memfd"},
      {"splice_1", "copy_splice_1_thread_1_memfd"},
      {"splice_1_memfd", "copy_splice_" + n + "_threads_1_memfd"},
      {"splice_segments", "copy_splice_" + n + "_threads_" + n + "_segments"},
  };
  for (const auto& [key, metric] : copies) {
    const bool is_default = key == "splice_segments";
    Print({kBench, metric, gb / best[key], "GB/s", memcpy_gbps,
           is_default ? std::optional<double>(0.8 * memcpy_gbps) : std::nullopt});
  }
  // weight_dtype=fp16 on this bf16 model: read, convert (LibTorch), store;
  // GB/s of file bytes, allocation not counted.
  if (convert) {
    Print({kBench, "convert_bf16_to_fp16_1_thread_1_memfd", gb / best["fp16_1"], "GB/s",
           memcpy_gbps});
    Print({kBench,
           absl::StrCat("convert_bf16_to_fp16_", threads, "_threads_", threads, "_segments"),
           gb / best["fp16_segments"], "GB/s", memcpy_gbps});
  }
  // Everything a load does: header, plan, arena allocation, copy, seal.
  Print({kBench, "broker_load_end_to_end", gb / best["broker"], "GB/s", memcpy_gbps,
         0.8 * memcpy_gbps});
  Print({kBench, "python_load_readinto_frombuffer", gb / best["python"], "GB/s"});
  Print({kBench, "python_load_readinto_frombuffer_clone", gb / best["python_clone"], "GB/s"});
  // ratio: how many times faster than the faster of the two Python loads.
  const double python_best = std::min(best["python"], best["python_clone"]);
  Print({kBench, "broker_load_vs_python", gb / best["broker"], "GB/s", gb / python_best,
         2.0 * gb / python_best});

  std::filesystem::remove_all(dir);
  return 0;
}
