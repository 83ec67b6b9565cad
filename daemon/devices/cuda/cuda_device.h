// CUDA GPUs through the CUDA runtime: discovery (name, PCI bus id, memory,
// compute capability, peer access), one cudaMalloc arena per (residency, GPU)
// exported with cudaIpcGetMemHandle (cuda_arena.h), and a copy engine per GPU
// for file → GPU loads (daemon/devices/cuda/cuda_copy.h). Always compiled; with no driver
// or no GPU, discovery finds nothing and says why once. cuda:N is the
// runtime's ordinal N in the daemon's environment (CUDA_VISIBLE_DEVICES and
// CUDA_DEVICE_ORDER apply): a client that numbers GPUs differently must map
// them by the PCI bus id ListDevices shows.
#ifndef DISTORCH_DAEMON_DEVICES_CUDA_CUDA_DEVICE_H_
#define DISTORCH_DAEMON_DEVICES_CUDA_CUDA_DEVICE_H_

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

// `settings` supplies per-GPU limits: a GPU's Stats report
// total = min(total, limit) and free = min(free, limit - broker bytes).
// The reserve is applied by the planner.
CudaDiscovery DiscoverCudaDevices(const std::map<DeviceId, DeviceSettings>& settings);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DEVICES_CUDA_CUDA_DEVICE_H_
