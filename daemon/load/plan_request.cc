#include "daemon/load/plan_request.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "distorch/alloc_spec.h"

namespace distorch {

absl::StatusOr<PlanRequest> BuildPlanRequest(PlanInputs inputs, DeviceId default_compute,
                                             std::vector<DeviceCapacity> inventory) {
  PlanRequest request;
  request.tensors = std::move(inputs.tensors);
  request.pins = std::move(inputs.pins);
  request.allow_spill = inputs.allow_spill;
  std::optional<AllocSpec> spec;
  if (!inputs.allocation.empty()) {
    absl::StatusOr<AllocSpec> parsed = ParseAllocation(inputs.allocation);
    if (!parsed.ok()) return parsed.status();
    spec = *std::move(parsed);
  }
  if (!inputs.compute.empty()) {
    absl::StatusOr<DeviceId> id = ParseDeviceId(inputs.compute);
    if (!id.ok()) return id.status();
    request.compute = *id;
    if (spec.has_value() && spec->compute_device.has_value() &&
        *spec->compute_device != request.compute) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the allocation computes on ", spec->compute_device->ToString(), " but the request on ",
          request.compute.ToString(), ": give the same compute device to both"));
    }
  } else if (spec.has_value() && spec->compute_device.has_value()) {
    request.compute = *spec->compute_device;  // MultiGPU's "EXPERT#COMPUTE"
  } else {
    request.compute = default_compute;
  }
  if (!spec.has_value()) {
    // No allocation: the whole model on the compute device.
    request.alloc.mode = AllocMode::kBytes;
    AllocEntry all;
    all.device = request.compute;
    all.is_rest = true;
    request.alloc.entries.push_back(all);
  } else {
    request.alloc = *std::move(spec);
  }
  request.devices = std::move(inventory);
  return request;
}

}  // namespace distorch
