#include "daemon/load/lane_scheduler.h"

namespace distorch {
namespace {

std::vector<std::vector<size_t>> ItemsByLane(const std::vector<size_t>& lane_of_item,
                                             size_t lanes) {
  std::vector<std::vector<size_t>> items(lanes);
  for (size_t i = 0; i < lane_of_item.size(); ++i) items[lane_of_item[i]].push_back(i);
  return items;
}

}  // namespace

LaneScheduler::LaneScheduler(const std::vector<size_t>& lane_of_item, size_t lanes)
    : items_(ItemsByLane(lane_of_item, lanes)), next_(lanes, 0), workers_(lanes, 0) {}

std::optional<LaneScheduler::Grant> LaneScheduler::Next(std::optional<size_t> preferred) {
  absl::MutexLock lock(&mu_);
  std::optional<size_t> pick;
  if (preferred.has_value() && *preferred < items_.size() && LeftLocked(*preferred) > 0 &&
      workers_[*preferred] == 0) {
    pick = preferred;
  } else {
    for (size_t lane = 0; lane < items_.size(); ++lane) {
      if (LeftLocked(lane) == 0) continue;
      if (!pick.has_value() || workers_[lane] < workers_[*pick] ||
          (workers_[lane] == workers_[*pick] && LeftLocked(lane) > LeftLocked(*pick))) {
        pick = lane;
      }
    }
  }
  if (!pick.has_value()) return std::nullopt;
  ++workers_[*pick];
  return Grant{items_[*pick][next_[*pick]++], *pick};
}

size_t LaneScheduler::LeftLocked(size_t lane) const { return items_[lane].size() - next_[lane]; }

void LaneScheduler::Done(size_t lane) {
  absl::MutexLock lock(&mu_);
  --workers_[lane];
}

}  // namespace distorch
