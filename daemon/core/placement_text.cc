// Human renderings of a Placement (distorchctl plan, logs).
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

namespace distorch {

const char* PlacementReasonName(PlacementReason reason) {
  switch (reason) {
    case PlacementReason::kQuota:
      return "quota";
    case PlacementReason::kPinned:
      return "pinned";
    case PlacementReason::kTiny:
      return "tiny";
    case PlacementReason::kSpill:
      return "spill";
  }
  return "unknown";
}

std::string PlacementToText(const Placement& placement) {
  std::string out =
      absl::StrFormat("%u blocks, %s in all\n%-10s %12s %12s %7s\n", placement.blocks.size(),
                      FormatBytes(placement.total_bytes), "device", "quota", "placed", "blocks");
  for (const DevicePlan& d : placement.devices) {
    uint32_t by_reason[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < placement.block_device.size(); ++i) {
      if (placement.block_device[i] == d.device) {
        ++by_reason[static_cast<int>(placement.block_reason[i])];
      }
    }
    std::vector<std::string> extra;
    const std::pair<PlacementReason, const char*> kWords[] = {
        {PlacementReason::kPinned, " pinned"},
        {PlacementReason::kTiny, " tiny"},
        {PlacementReason::kSpill, " spilled"}};
    for (const auto& [reason, word] : kWords) {
      uint32_t count = by_reason[static_cast<int>(reason)];
      if (count > 0) extra.push_back(absl::StrCat(count, word));
    }
    absl::StrAppendFormat(
        &out, "%-10s %12s %12s %7u%s\n", d.device.ToString(), FormatBytes(d.quota),
        FormatBytes(d.bytes), d.blocks,
        extra.empty() ? "" : absl::StrCat("  (", absl::StrJoin(extra, ", "), ")"));
  }
  for (const std::string& note : placement.notes) absl::StrAppend(&out, "note: ", note, "\n");
  return out;
}

}  // namespace distorch
