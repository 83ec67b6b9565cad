#include "daemon/load/allocate_arenas.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"

namespace distorch {

absl::StatusOr<std::vector<std::unique_ptr<Arena>>> AllocateArenas(const DeviceSet& devices,
                                                                   const ArenaLayout& layout,
                                                                   absl::string_view label,
                                                                   int threads) {
  const size_t n = layout.arenas.size();
  // Arenas a worker skipped after another failed keep this status.
  const absl::Status skipped = absl::AbortedError("skipped after an earlier failure");
  std::vector<absl::StatusOr<std::unique_ptr<Arena>>> results;
  results.reserve(n);
  for (size_t i = 0; i < n; ++i) results.emplace_back(skipped);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (size_t i = next.fetch_add(1); i < n && !failed.load(); i = next.fetch_add(1)) {
      const ArenaPlan& plan = layout.arenas[i];
      Device* device = devices.Find(plan.device);
      if (device == nullptr) {
        results[i] = absl::NotFoundError(
            absl::StrCat("device ", plan.device.ToString(), " vanished while planning"));
      } else {
        results[i] = device->Allocate(plan.bytes, label);
      }
      if (!results[i].ok()) failed = true;
    }
  };
  const int helpers = std::clamp<int>(threads, 1, static_cast<int>(std::max<size_t>(n, 1))) - 1;
  std::vector<std::thread> pool;
  for (int i = 0; i < helpers; ++i) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();

  if (failed.load()) {
    // Whatever was allocated frees itself with `results`.
    for (const auto& r : results) {
      if (!r.ok() && r.status() != skipped) return r.status();
    }
  }
  std::vector<std::unique_ptr<Arena>> arenas;
  for (auto& r : results) arenas.push_back(*std::move(r));
  return arenas;
}

}  // namespace distorch
