// Pieces of the planner shared between its files; not part of the public API.
#ifndef DISTORCH_DAEMON_CORE_PLANNER_INTERNAL_H_
#define DISTORCH_DAEMON_CORE_PLANNER_INTERNAL_H_

#include "absl/status/status.h"
#include "distorch/planner.h"

namespace distorch::planner_internal {

// Checks what ParseAllocation normally guarantees (no duplicate devices, one
// '*', virtual-VRAM settings consistent), for requests built in code.
absl::Status ValidateRequest(const PlanRequest& request);

}  // namespace distorch::planner_internal

#endif  // DISTORCH_DAEMON_CORE_PLANNER_INTERNAL_H_
