// CUDA GPUs through the CUDA runtime: discovery, one cudaMalloc arena per
// (residency, GPU), exported with cudaIpcGetMemHandle. Always compiled; with no
// driver or no GPU, discovery finds nothing and says why once.
#ifndef DISTORCH_DAEMON_DEVICES_CUDA_DEVICE_H_
#define DISTORCH_DAEMON_DEVICES_CUDA_DEVICE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "daemon/devices/device.h"

namespace distorch {

struct CudaDiscovery {
  std::vector<std::unique_ptr<Device>> devices;  // cuda:0, cuda:1, ...
  bool available = false;
  std::string note;  // "2 CUDA GPUs", "no CUDA driver (error 35): host devices only"
};

// `settings` supplies per-GPU limits (reserve is applied by the planner).
CudaDiscovery DiscoverCudaDevices(const std::map<DeviceId, DeviceSettings>& settings);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DEVICES_CUDA_DEVICE_H_
