// CUDA discovery, limits, CudaArena allocate/write/read/free, and OOM.
#include "daemon/devices/cuda/cuda_arena.h"

#include <cuda_runtime_api.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/devices/cuda/cuda_device.h"
#include "distorch/units.h"
#include "tests/gpu/gpu_test_util.h"

namespace distorch {
namespace {

using testing::GpuFreeBytes;
using testing::Pattern;

// cudaMalloc works in 2 MiB pages and the context may grow a little.
constexpr uint64_t kSlack = 16 * kMiB;

std::unique_ptr<Device> FirstGpu(uint64_t limit = 0) {
  std::map<DeviceId, DeviceSettings> settings;
  if (limit) settings[DeviceId::Cuda(0)].limit = limit;
  CudaDiscovery found = DiscoverCudaDevices(settings);
  REQUIRE(found.available);
  REQUIRE(!found.devices.empty());
  return std::move(found.devices[0]);
}

TEST_CASE("Discovery describes every CUDA GPU", "[discovery]") {
  CudaDiscovery found = DiscoverCudaDevices({});
  REQUIRE(found.available);
  REQUIRE(static_cast<int>(found.devices.size()) == testing::CudaDeviceCount());
  CHECK(found.note.rfind(absl::StrCat(found.devices.size(), " CUDA GPU(s): cuda:0 "), 0) == 0);
  for (size_t i = 0; i < found.devices.size(); ++i) {
    Device& d = *found.devices[i];
    CAPTURE(i, d.description());
    CHECK(d.id() == DeviceId::Cuda(static_cast<int>(i)));
    CHECK(d.kind() == "cuda");
    DeviceDetails details = d.Details();
    CHECK(details.pci_bus_id.size() >= 12);  // "0000:65:00.0"
    CHECK(!details.compute_capability.empty());
    for (const std::string& peer : details.peers) CHECK(peer != d.id().ToString());
    DeviceStats s = d.Stats();
    CHECK(s.total > 1 * kGiB);
    CHECK(s.free > 0);
    CHECK(s.free <= s.total);
    CHECK(s.broker_bytes == 0);
  }
}

TEST_CASE("A limit caps a GPU's stats and allocations", "[discovery][limit]") {
  std::unique_ptr<Device> gpu = FirstGpu(64 * kMiB);
  DeviceStats s = gpu->Stats();
  CHECK(s.total == 64 * kMiB);
  CHECK(s.free == 64 * kMiB);
  CHECK(gpu->description().find("(limit 64.00 MiB)") != std::string::npos);
  absl::StatusOr<std::unique_ptr<Arena>> held = gpu->Allocate(16 * kMiB, "held");
  REQUIRE(held.ok());
  s = gpu->Stats();
  CHECK(s.broker_bytes == 16 * kMiB);
  CHECK(s.free == 48 * kMiB);
  absl::StatusOr<std::unique_ptr<Arena>> over = gpu->Allocate(64 * kMiB, "over");
  REQUIRE(absl::IsResourceExhausted(over.status()));
  CHECK(over.status().message() ==
        "cuda:0: cannot allocate 64.00 MiB, 48.00 MiB free (limit 64.00 MiB)");
  held->reset();
  CHECK(gpu->Stats().free == 64 * kMiB);
}

TEST_CASE("A CUDA arena holds what was written and gives the memory back", "[arena]") {
  std::unique_ptr<Device> gpu = FirstGpu();
  const uint64_t free_before = GpuFreeBytes(0);
  const uint64_t asked = 256 * kMiB + 100;
  {
    absl::StatusOr<std::unique_ptr<Arena>> arena = gpu->Allocate(asked, "roundtrip");
    REQUIRE(arena.ok());
    Arena& a = **arena;
    CHECK(a.device() == DeviceId::Cuda(0));
    CHECK(a.size() == 256 * kMiB + 256);
    CHECK(a.host_data() == nullptr);
    CHECK(gpu->Stats().broker_bytes == a.size());
    CHECK(free_before - GpuFreeBytes(0) >= 256 * kMiB);

    // Three writes at unaligned places, then one read of all of it.
    const std::vector<uint8_t> bytes = Pattern(1, a.size());
    const uint64_t cuts[] = {0, 12345, 100 * kMiB + 7, a.size()};
    for (int i = 0; i < 3; ++i) {
      REQUIRE(a.Write(cuts[i], bytes.data() + cuts[i], cuts[i + 1] - cuts[i]).ok());
    }
    REQUIRE(a.Seal().ok());
    std::vector<uint8_t> back(a.size());
    REQUIRE(a.Read(0, back.data(), back.size()).ok());
    CHECK(back == bytes);

    absl::Status sealed = a.Write(0, bytes.data(), 1);
    CHECK(absl::IsFailedPrecondition(sealed));
    CHECK(sealed.message() == "arena is sealed");
    absl::Status outside = a.Read(a.size() - 1, back.data(), 2);
    CHECK(absl::IsOutOfRange(outside));

    ArenaExport e = a.Export();
    CHECK(e.kind == ArenaExport::Kind::kCudaIpc);
    CHECK(e.cuda_ipc_handle.size() == sizeof(cudaIpcMemHandle_t));
    CHECK(e.cuda_device == 0);
    CHECK(e.memfd == -1);
  }
  CHECK(gpu->Stats().broker_bytes == 0);
  CHECK(GpuFreeBytes(0) + kSlack >= free_before);
}

TEST_CASE("Arena calls leave the thread's current device alone", "[arena]") {
  const int last = testing::CudaDeviceCount() - 1;
  std::unique_ptr<Device> gpu = FirstGpu();
  REQUIRE(cudaSetDevice(last) == cudaSuccess);
  {
    absl::StatusOr<std::unique_ptr<Arena>> arena = gpu->Allocate(kMiB, "device");
    REQUIRE(arena.ok());
    std::vector<uint8_t> bytes = Pattern(2, kMiB);
    REQUIRE((*arena)->Write(0, bytes.data(), bytes.size()).ok());
    REQUIRE((*arena)->Read(0, bytes.data(), bytes.size()).ok());
    (void)gpu->Stats();
  }
  int current = -1;
  REQUIRE(cudaGetDevice(&current) == cudaSuccess);
  CHECK(current == last);
}

TEST_CASE("Asking for more than a GPU has is a clean ResourceExhausted", "[oom]") {
  std::unique_ptr<Device> gpu = FirstGpu();
  // Something already resident must come through untouched.
  absl::StatusOr<std::unique_ptr<Arena>> resident = gpu->Allocate(64 * kMiB, "resident");
  REQUIRE(resident.ok());
  const std::vector<uint8_t> bytes = Pattern(3, (*resident)->size());
  REQUIRE((*resident)->Write(0, bytes.data(), bytes.size()).ok());
  const uint64_t total = gpu->Stats().total;

  SECTION("the device refuses before calling cudaMalloc") {
    absl::StatusOr<std::unique_ptr<Arena>> big = gpu->Allocate(total + kGiB, "big");
    REQUIRE(absl::IsResourceExhausted(big.status()));
    CHECK(big.status().message().rfind(
              absl::StrCat("cuda:0: cannot allocate ", FormatBytes(total + kGiB), ", "), 0) == 0);
  }
  SECTION("cudaMalloc itself says out of memory") {
    auto counter = std::make_shared<std::atomic<uint64_t>>(0);
    absl::StatusOr<std::unique_ptr<CudaArena>> big =
        CudaArena::Allocate(DeviceId::Cuda(0), 0, total + kGiB, counter, nullptr);
    REQUIRE(absl::IsResourceExhausted(big.status()));
    CHECK(big.status().message().find("cudaMalloc: out of memory") != std::string::npos);
    CHECK(counter->load() == 0);
  }
  SECTION("filling the GPU until cudaMalloc fails") {
    auto counter = std::make_shared<std::atomic<uint64_t>>(0);
    std::vector<std::unique_ptr<CudaArena>> filler;
    absl::Status last;
    for (uint64_t i = 0; i <= total / kGiB + 1; ++i) {
      absl::StatusOr<std::unique_ptr<CudaArena>> a =
          CudaArena::Allocate(DeviceId::Cuda(0), 0, kGiB, counter, nullptr);
      if (!a.ok()) {
        last = a.status();
        break;
      }
      filler.push_back(*std::move(a));
    }
    CHECK(absl::IsResourceExhausted(last));
    CHECK(counter->load() == filler.size() * kGiB);
    filler.clear();
    CHECK(counter->load() == 0);
  }
  // No sticky error: the GPU still allocates and the resident bytes are intact.
  absl::StatusOr<std::unique_ptr<Arena>> after = gpu->Allocate(kMiB, "after");
  CHECK(after.ok());
  std::vector<uint8_t> back(bytes.size());
  REQUIRE((*resident)->Read(0, back.data(), back.size()).ok());
  CHECK(back == bytes);
}

}  // namespace
}  // namespace distorch
