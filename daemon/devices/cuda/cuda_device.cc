// CUDA GPUs through the CUDA runtime. A CudaDevice answers Stats from
// cudaMemGetInfo (with its configured limit applied) and hands out CudaArenas;
// each GPU has one CudaCopyEngine for file → GPU loads.
#include "daemon/devices/cuda/cuda_device.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/devices/cuda/cuda_arena.h"
#include "daemon/devices/cuda/cuda_copy.h"
#include "daemon/log.h"
#include "distorch/units.h"

namespace distorch {
namespace {

// Thread-safe: the byte counter is atomic, the copy engine locks itself, and
// the rest is immutable. The runtime's ordinal is the N in cuda:N.
class CudaDevice : public Device {
 public:
  CudaDevice(int ordinal, std::string name, uint64_t total, uint64_t limit, DeviceDetails details)
      : ordinal_(ordinal),
        name_(std::move(name)),
        total_(total),
        limit_(limit),
        details_(std::move(details)),
        engine_(std::make_shared<CudaCopyEngine>(ordinal)) {}

  DeviceId id() const override { return DeviceId::Cuda(ordinal_); }
  absl::string_view kind() const override { return "cuda"; }
  std::string description() const override {
    return limit_ ? absl::StrCat(name_, " (limit ", FormatBytes(limit_), ")") : name_;
  }
  DeviceDetails Details() const override { return details_; }

  DeviceStats Stats() const override {
    DeviceStats s;
    s.broker_bytes = used_->load();
    s.total = limit_ ? std::min(limit_, total_) : total_;
    size_t free = 0, total = 0;
    ScopedCudaDevice on_device(ordinal_);
    if (!on_device.status().ok() || cudaMemGetInfo(&free, &total) != cudaSuccess) {
      (void)cudaGetLastError();
      return s;  // free = 0: nothing is placed on a GPU we cannot query
    }
    s.free = free;
    if (limit_)
      s.free = std::min<uint64_t>(s.free, limit_ > s.broker_bytes ? limit_ - s.broker_bytes : 0);
    return s;
  }

  absl::StatusOr<std::unique_ptr<Arena>> Allocate(uint64_t bytes,
                                                  absl::string_view label) override {
    const uint64_t size = (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
    DeviceStats s = Stats();
    if (size > s.free) {
      return absl::ResourceExhaustedError(absl::StrCat(
          id().ToString(), ": cannot allocate ", FormatBytes(size), ", ", FormatBytes(s.free),
          " free", limit_ ? absl::StrCat(" (limit ", FormatBytes(limit_), ")") : ""));
    }
    absl::StatusOr<std::unique_ptr<CudaArena>> arena =
        CudaArena::Allocate(id(), ordinal_, bytes, used_, engine_);
    if (!arena.ok()) return arena.status();
    spdlog::debug("{}: {} arena for '{}' at {}", id().ToString(), FormatBytes((*arena)->size()),
                  label, (*arena)->device_pointer());
    return std::unique_ptr<Arena>(std::move(*arena));
  }

  uint64_t Trim() override { return engine_->Trim(); }

 private:
  const int ordinal_;
  const std::string name_;
  const uint64_t total_;  // cudaDeviceProp::totalGlobalMem
  const uint64_t limit_;  // 0 = none
  const DeviceDetails details_;
  std::shared_ptr<std::atomic<uint64_t>> used_ = std::make_shared<std::atomic<uint64_t>>(0);
  std::shared_ptr<CudaCopyEngine> engine_;
};

std::string NoGpuNote(cudaError_t err) {
  return absl::StrCat("no CUDA GPU (", cudaGetErrorName(err), ": ", cudaGetErrorString(err),
                      "): host and sim devices only");
}

}  // namespace

CudaDiscovery DiscoverCudaDevices(const std::map<DeviceId, DeviceSettings>& settings) {
  CudaDiscovery out;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    out.note = NoGpuNote(err != cudaSuccess ? err : cudaErrorNoDevice);
    (void)cudaGetLastError();
    return out;
  }
  std::vector<std::string> names, problems;
  for (int i = 0; i < count; ++i) {
    const std::string id = DeviceId::Cuda(i).ToString();
    cudaDeviceProp prop;
    if (absl::Status s = CudaStatus(cudaGetDeviceProperties(&prop, i),
                                    absl::StrCat(id, ": cudaGetDeviceProperties"));
        !s.ok()) {
      problems.push_back(std::string(s.message()));
      continue;
    }
    int mode = cudaComputeModeDefault;
    if (cudaDeviceGetAttribute(&mode, cudaDevAttrComputeMode, i) == cudaSuccess &&
        mode == cudaComputeModeProhibited) {
      problems.push_back(absl::StrCat(id, ": compute mode is Prohibited (see nvidia-smi -c)"));
      continue;
    }
    DeviceDetails details;
    char bus_id[32] = {};
    if (cudaDeviceGetPCIBusId(bus_id, sizeof(bus_id), i) == cudaSuccess)
      details.pci_bus_id = bus_id;
    details.compute_capability = absl::StrCat(prop.major, prop.minor);  // shown as sm_90
    for (int j = 0; j < count; ++j) {
      int can = 0;
      if (j != i && cudaDeviceCanAccessPeer(&can, i, j) == cudaSuccess && can) {
        details.peers.push_back(DeviceId::Cuda(j).ToString());
      }
    }
    (void)cudaGetLastError();
    auto it = settings.find(DeviceId::Cuda(i));
    const uint64_t limit = it == settings.end() ? 0 : it->second.limit;
    names.push_back(absl::StrCat(id, " ", prop.name, " ", FormatBytes(prop.totalGlobalMem)));
    out.devices.push_back(
        std::make_unique<CudaDevice>(i, prop.name, prop.totalGlobalMem, limit, std::move(details)));
  }
  out.available = !out.devices.empty();
  out.note = out.available
                 ? absl::StrCat(out.devices.size(), " CUDA GPU(s): ", absl::StrJoin(names, ", "))
                 : "no usable CUDA GPU: host and sim devices only";
  if (!problems.empty()) absl::StrAppend(&out.note, "; skipped: ", absl::StrJoin(problems, "; "));
  return out;
}

}  // namespace distorch
