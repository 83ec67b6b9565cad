// The "plan" stage's input: a request's allocation string and compute device
// resolved against the devices. Used by loads (under the placement lock, so
// the inventory is what the planner may really take) and by Plan.
#ifndef DISTORCH_DAEMON_LOAD_PLAN_REQUEST_H_
#define DISTORCH_DAEMON_LOAD_PLAN_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "distorch/planner.h"

namespace distorch {

struct PlanInputs {
  std::vector<TensorInfo> tensors;
  std::string allocation;  // "" = the whole model on the compute device
  std::string compute;     // "" = the allocation's EXPERT#COMPUTE, else default_compute
  std::vector<std::string> pins;
  bool allow_spill = false;
};

// Parses the allocation and compute device (a mismatch between a request's
// compute device and the allocation's is refused here, so an attach is
// refused the same way as a load) and attaches `inventory`.
absl::StatusOr<PlanRequest> BuildPlanRequest(PlanInputs inputs, DeviceId default_compute,
                                             std::vector<DeviceCapacity> inventory);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_PLAN_REQUEST_H_
