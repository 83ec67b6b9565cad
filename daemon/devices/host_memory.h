// The machine's RAM as /proc/meminfo reports it. Separate from HostDevice so
// that distorchctl (plan without a daemon) reads it without the device code.
#ifndef DISTORCH_DAEMON_DEVICES_HOST_MEMORY_H_
#define DISTORCH_DAEMON_DEVICES_HOST_MEMORY_H_

#include <cstdint>

namespace distorch {

// Reads MemTotal and MemAvailable from /proc/meminfo (bytes; 0 if unreadable).
struct HostMemory {
  uint64_t total = 0;
  uint64_t available = 0;
};
HostMemory ReadHostMemory();

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DEVICES_HOST_MEMORY_H_
