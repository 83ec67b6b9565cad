#include "daemon/load/residency_choice.h"

#include "absl/strings/str_cat.h"

namespace distorch {

ResidencyChoice ChooseResidency(const std::vector<std::pair<ResidencyId, ModelKey>>& same,
                                const ModelKey& model, bool own_placement,
                                const std::string& allocation, const std::string& compute,
                                const FindResidentFn& find) {
  ResidencyChoice choice;
  choice.new_key = model;
  if (same.empty()) return choice;  // the first copy is the model's shared residency
  if (!own_placement) {
    choice.attach = same.front();
    for (const auto& entry : same) {
      if (entry.second.placement.empty()) choice.attach = entry;
    }
    return choice;
  }
  bool have_shared = false;
  for (const auto& entry : same) {
    have_shared |= entry.second.placement.empty();
    std::shared_ptr<const Resident> r = find(entry.first);
    if (r != nullptr && r->allocation == allocation && r->compute_device == compute) {
      choice.attach = entry;
      return choice;
    }
  }
  // None is placed as asked: a residency of its own, keyed by its placement
  // (or the shared one, when only other own-placement residencies are left).
  if (have_shared) choice.new_key.placement = absl::StrCat(allocation, "@", compute);
  return choice;
}

std::string SharedPlacementNote(const Resident& current, const std::string& asked_allocation,
                                const std::string& asked_compute,
                                const std::string& wanted_allocation,
                                const std::string& wanted_compute) {
  if (asked_allocation.empty()) return "";
  if (current.allocation == wanted_allocation &&
      (asked_compute.empty() || current.compute_device == wanted_compute)) {
    return "";
  }
  return absl::StrCat("already resident with allocation ", current.allocation, " (compute ",
                      current.compute_device, "); the requested ", wanted_allocation, " (compute ",
                      wanted_compute,
                      ") was not applied: one copy is shared (ask with "
                      "own_placement for a residency of its own)");
}

}  // namespace distorch
