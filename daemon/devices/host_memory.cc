#include "daemon/devices/host_memory.h"

#include <fstream>
#include <string>

#include "distorch/units.h"

namespace distorch {

HostMemory ReadHostMemory() {
  HostMemory mem;
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  while (in >> key >> kib >> unit) {
    if (key == "MemTotal:") mem.total = kib * kKiB;
    if (key == "MemAvailable:") mem.available = kib * kKiB;
  }
  return mem;
}

}  // namespace distorch
