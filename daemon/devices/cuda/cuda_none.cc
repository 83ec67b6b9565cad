// A build without the CUDA toolkit (-DDISTORCH_WITH_CUDA=OFF): no GPU is
// discovered and the loader's GPU path claims nothing.
#include "daemon/devices/cuda/cuda_device.h"
#include "daemon/devices/cuda/gpu_loads.h"

namespace distorch {

CudaDiscovery DiscoverCudaDevices(const std::map<DeviceId, DeviceSettings>&) {
  CudaDiscovery out;
  out.note = "built without CUDA (DISTORCH_WITH_CUDA=OFF): host and sim devices only";
  return out;
}

struct CudaArenaLoads::Load {};
CudaArenaLoads::CudaArenaLoads() = default;
CudaArenaLoads::~CudaArenaLoads() = default;
bool CudaArenaLoads::Claim(Arena&, FileRange) { return false; }
void CudaArenaLoads::Start(int, std::atomic<uint64_t>*, const std::atomic<bool>*) {}
absl::Status CudaArenaLoads::Wait() { return absl::OkStatus(); }

}  // namespace distorch
