#include "daemon/load/new_resident.h"

#include <algorithm>
#include <utility>

#include "daemon/devices/device.h"
#include "distorch/arena_layout.h"

namespace distorch {

std::shared_ptr<Resident> LayOutResident(const std::string& name, OpenedModel& model,
                                         const PlanRequest& request, Placement placement,
                                         const LayoutSettings& settings) {
  auto resident = std::make_shared<Resident>();
  resident->name = name;
  resident->format = model.header.file.format;
  resident->weight_dtype = model.dtype.name;
  resident->tensor_prefixes = model.part;
  resident->allocation = request.alloc.ToString();
  resident->compute_device = request.compute.ToString();
  ArenaLayoutOptions options;
  options.alignment = kArenaAlignment;
  options.max_host_segments = std::max(1, settings.load_threads);
  options.min_host_segment_bytes = settings.host_segment_min;
  resident->layout = ComputeArenaLayout(model.header.stored, placement, options);
  resident->tensors = std::move(model.header.stored);
  resident->tensor_type_names = std::move(model.header.file.tensor_type_names);
  resident->placement = std::move(placement);
  for (const TensorInfo& t : resident->tensors) resident->bytes_total += t.nbytes;
  return resident;
}

std::map<DeviceId, uint64_t> ArenaBytes(const Resident& resident) {
  std::map<DeviceId, uint64_t> bytes;
  for (const auto& arena : resident.arenas) bytes[arena->device()] += arena->size();
  return bytes;
}

}  // namespace distorch
