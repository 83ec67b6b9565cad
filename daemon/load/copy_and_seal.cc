#include "daemon/load/copy_and_seal.h"

#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "daemon/load/loader.h"

namespace distorch {

absl::Status CopyAndSeal(int fd, Resident& resident, const std::vector<TensorInfo>& file_tensors,
                         int threads, const LoadProgress& progress) {
  absl::Notification done;
  std::thread watcher;
  if (progress) {
    watcher = std::thread([&] {
      while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(100))) {
        progress(resident.bytes_loaded, resident.bytes_total);
      }
    });
  }
  LoadOptions options;
  options.threads = threads;
  options.file_tensors = &file_tensors;
  options.cancel = &resident.cancelled;
  absl::Status loaded = LoadIntoArenas(fd, resident, options);
  for (auto& arena : resident.arenas) {
    if (!loaded.ok()) break;
    loaded = arena->Seal();
  }
  done.Notify();
  if (watcher.joinable()) watcher.join();
  return loaded;
}

}  // namespace distorch
