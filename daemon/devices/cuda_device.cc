// Placeholder discovery until the CUDA backend lands: reports what the runtime
// says and serves no GPU.
#include "daemon/devices/cuda_device.h"

#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"

namespace distorch {

CudaDiscovery DiscoverCudaDevices(const std::map<DeviceId, DeviceSettings>&) {
  CudaDiscovery out;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    out.note = absl::StrCat("no CUDA GPU (", cudaGetErrorName(err), ": ",
                            cudaGetErrorString(err), "): host and sim devices only");
    return out;
  }
  out.note = absl::StrCat(count, " CUDA GPU(s) found; the CUDA backend is not built yet");
  return out;
}

}  // namespace distorch
