// Hands out work items that each belong to a lane (for the loader: the arena
// a chunk is written into) so that concurrent workers sit in different lanes
// when they can. Writes into one memfd are serialised by the kernel (the
// inode lock), so two loader threads on one arena queue behind each other
// while threads on different arenas copy in parallel.
#ifndef DISTORCH_DAEMON_LOAD_LANE_SCHEDULER_H_
#define DISTORCH_DAEMON_LOAD_LANE_SCHEDULER_H_

#include <cstddef>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace distorch {

// Thread-safe. Within a lane, items go out in index order.
class LaneScheduler {
 public:
  // `lane_of_item[i]`: item i's lane, any value below `lanes`.
  LaneScheduler(const std::vector<size_t>& lane_of_item, size_t lanes);

  struct Grant {
    size_t item;
    size_t lane;
  };
  // The next item: from `preferred` (the worker's last lane) when nobody else
  // works there, else from the lane with the fewest workers (ties: the most
  // items left). Every Grant must be followed by Done(grant.lane).
  std::optional<Grant> Next(std::optional<size_t> preferred);
  void Done(size_t lane);

 private:
  // Items not yet granted in `lane`.
  size_t LeftLocked(size_t lane) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  // Per lane, in index order; written only by the constructor, so read without mu_.
  const std::vector<std::vector<size_t>> items_;
  std::vector<size_t> next_ ABSL_GUARDED_BY(mu_);  // per lane: next position in items_
  std::vector<int> workers_ ABSL_GUARDED_BY(mu_);  // per lane: grants not yet Done
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_LANE_SCHEDULER_H_
