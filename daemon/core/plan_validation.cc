// Checks a PlanRequest before planning: the shape of the allocation, pins and
// devices. Split from planner.cc to keep each file one concept.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "distorch/planner.h"
#include "distorch/units.h"
#include "planner_internal.h"

namespace distorch::planner_internal {

// Checks what the parser normally guarantees, for specs built in code.
absl::Status ValidateRequest(const PlanRequest& req) {
  for (size_t i = 0; i < req.devices.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (req.devices[i].id == req.devices[j].id) {
        return absl::InvalidArgumentError(absl::StrCat("device ", req.devices[i].id.ToString(),
                                                       " is listed twice in the inventory"));
      }
    }
  }
  for (size_t i = 0; i < req.pins.size(); ++i) {
    if (req.pins[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("pin ", i, " is empty: give a block name or a prefix of one"));
    }
  }
  const AllocSpec& spec = req.alloc;
  // MultiGPU's "EXPERT#COMPUTE" names the compute device in the string; the
  // request must agree (the broker fills an empty one from the spec).
  if (spec.compute_device.has_value() && *spec.compute_device != req.compute) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the allocation computes on ", spec.compute_device->ToString(), " but the request on ",
        req.compute.ToString(), ": give the same compute device to both"));
  }
  if (spec.mode == AllocMode::kVirtualVram) {
    if (!spec.virtual_vram) {
      return absl::InvalidArgumentError(
          "virtual-VRAM allocation without its settings (compute, "
          "virtual_vram_gb, donors)");
    }
    const VirtualVram& vv = *spec.virtual_vram;
    if (vv.compute != req.compute) {
      return absl::InvalidArgumentError(
          absl::StrCat("the allocation computes on ", vv.compute.ToString(), " but the request on ",
                       req.compute.ToString(), ": give the same compute device to both"));
    }
    for (size_t i = 0; i < vv.donors.size(); ++i) {
      if (vv.donors[i] == vv.compute) {
        return absl::InvalidArgumentError(absl::StrCat(
            "donor ", vv.donors[i].ToString(), " is the compute device: name other devices"));
      }
      for (size_t j = 0; j < i; ++j) {
        if (vv.donors[i] == vv.donors[j]) {
          return absl::InvalidArgumentError(
              absl::StrCat("donor ", vv.donors[i].ToString(), " is named twice"));
        }
      }
    }
    return absl::OkStatus();
  }
  int rests = 0;
  for (size_t i = 0; i < spec.entries.size(); ++i) {
    const AllocEntry& e = spec.entries[i];
    for (size_t j = 0; j < i; ++j) {
      if (spec.entries[j].device == e.device) {
        return absl::InvalidArgumentError(
            absl::StrCat("device ", e.device.ToString(), " appears twice in the allocation"));
      }
    }
    if (e.is_rest && ++rests > 1) {
      return absl::InvalidArgumentError("the allocation has more than one '*'");
    }
    if (!(e.ratio >= 0) || !(e.fraction >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("allocation entry for ", e.device.ToString(), " has a negative share"));
    }
  }
  return absl::OkStatus();
}

}  // namespace distorch::planner_internal
