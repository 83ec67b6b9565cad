#include "daemon/load/lane_scheduler.h"

namespace distorch {

LaneScheduler::LaneScheduler(const std::vector<size_t>& lane_of_item, size_t lanes)
    : items_(lanes), next_(lanes, 0), workers_(lanes, 0) {
  for (size_t i = 0; i < lane_of_item.size(); ++i) items_[lane_of_item[i]].push_back(i);
}

std::optional<LaneScheduler::Grant> LaneScheduler::Next(std::optional<size_t> preferred) {
  absl::MutexLock lock(&mu_);
  auto left = [&](size_t lane) { return items_[lane].size() - next_[lane]; };
  std::optional<size_t> pick;
  if (preferred.has_value() && *preferred < items_.size() && left(*preferred) > 0 &&
      workers_[*preferred] == 0) {
    pick = preferred;
  } else {
    for (size_t lane = 0; lane < items_.size(); ++lane) {
      if (left(lane) == 0) continue;
      if (!pick.has_value() || workers_[lane] < workers_[*pick] ||
          (workers_[lane] == workers_[*pick] && left(lane) > left(*pick))) {
        pick = lane;
      }
    }
  }
  if (!pick.has_value()) return std::nullopt;
  ++workers_[*pick];
  return Grant{items_[*pick][next_[*pick]++], *pick};
}

void LaneScheduler::Done(size_t lane) {
  absl::MutexLock lock(&mu_);
  --workers_[lane];
}

}  // namespace distorch
