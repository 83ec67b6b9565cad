// Allocates a residency's arenas, several at once. Host arenas are memfds
// whose pages are allocated up front (posix_fallocate), which costs about as
// much as copying the weights in; a host device split into segments (see
// arena_layout.h) allocates them on as many threads as the load will use.
#ifndef DISTORCH_DAEMON_LOAD_ALLOCATE_ARENAS_H_
#define DISTORCH_DAEMON_LOAD_ALLOCATE_ARENAS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/devices/device.h"
#include "daemon/devices/device_set.h"
#include "distorch/arena_layout.h"

namespace distorch {

// One arena per layout arena, in layout order. On any failure the ones
// already allocated are freed and the first error (in layout order) returned.
absl::StatusOr<std::vector<std::unique_ptr<Arena>>> AllocateArenas(const DeviceSet& devices,
                                                                   const ArenaLayout& layout,
                                                                   absl::string_view label,
                                                                   int threads);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_ALLOCATE_ARENAS_H_
