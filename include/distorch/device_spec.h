// Device declarations as given to `distorchd --devices` and `distorchctl plan
// --devices`: "sim:0=24GiB,sim:1=12GiB,cpu=64GiB".
#ifndef DISTORCH_DEVICE_SPEC_H_
#define DISTORCH_DEVICE_SPEC_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distorch/device_id.h"

namespace distorch {

struct DeviceSpecEntry {
  DeviceId device;
  uint64_t bytes = 0;  // sim: its size; cpu/cuda: a limit on broker use
};

// Comma-separated DEVICE=SIZE entries, sizes in the allocation-string units.
// Only cpu, cuda:N and sim:N; each at most once. An empty spec is valid.
absl::StatusOr<std::vector<DeviceSpecEntry>> ParseDeviceSpec(absl::string_view text);

}  // namespace distorch

#endif  // DISTORCH_DEVICE_SPEC_H_
