// The "arena layout" stage: a Resident for a planned model, its tensors laid
// out in arenas (one per GPU or sim device, the cpu part in up to
// load_threads memfd segments), before any memory is allocated.
#ifndef DISTORCH_DAEMON_LOAD_NEW_RESIDENT_H_
#define DISTORCH_DAEMON_LOAD_NEW_RESIDENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "daemon/load/open_model.h"
#include "daemon/load/resident.h"
#include "distorch/planner.h"

namespace distorch {

struct LayoutSettings {
  int load_threads = 4;           // host arenas are split into up to this many segments
  uint64_t host_segment_min = 0;  // ... of at least this many bytes
};

// Moves the stored tensors and type names out of `model.header` (its file
// tensors stay: the copy reads by them). `request` is the plan's request,
// `placement` the plan.
std::shared_ptr<Resident> LayOutResident(const std::string& name, OpenedModel& model,
                                         const PlanRequest& request, Placement placement,
                                         const LayoutSettings& settings);

// Bytes the resident's arenas hold per device (what the registry records).
std::map<DeviceId, uint64_t> ArenaBytes(const Resident& resident);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_NEW_RESIDENT_H_
