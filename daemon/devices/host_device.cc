#include "daemon/devices/host_device.h"

#include <algorithm>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/devices/memfd_arena.h"
#include "distorch/units.h"

namespace distorch {

std::string ShmemHugePagePolicy() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string word;
  while (in >> word) {
    if (word.size() > 2 && word.front() == '[' && word.back() == ']') {
      return word.substr(1, word.size() - 2);
    }
  }
  return "";
}

bool ShmemHugePagesOnWrite(const std::string& policy) {
  return policy == "within_size" || policy == "always" || policy == "force";
}

std::unique_ptr<HostDevice> HostDevice::Cpu(uint64_t limit) {
  return std::unique_ptr<HostDevice>(new HostDevice(DeviceId::Cpu(), limit));
}

std::unique_ptr<HostDevice> HostDevice::Sim(int index, uint64_t size) {
  return std::unique_ptr<HostDevice>(new HostDevice(DeviceId::Sim(index), size));
}

std::string HostDevice::description() const {
  if (id_.is_cpu())
    return size_ ? absl::StrCat("host RAM (limit ", FormatBytes(size_), ")") : "host RAM";
  return "simulated GPU (host-backed)";
}

DeviceStats HostDevice::Stats() const {
  DeviceStats s;
  s.broker_bytes = used_->load();
  if (id_.is_cpu()) {
    HostMemory mem = ReadHostMemory();
    s.total = size_ ? std::min(size_, mem.total) : mem.total;
    // Our arenas are already allocated (fallocate), so MemAvailable has
    // counted them; the limit is on what the broker itself holds.
    uint64_t under_limit = s.total > s.broker_bytes ? s.total - s.broker_bytes : 0;
    s.free = std::min(mem.available, under_limit);
  } else {
    s.total = size_;
    s.free = size_ > s.broker_bytes ? size_ - s.broker_bytes : 0;
  }
  return s;
}

absl::StatusOr<std::unique_ptr<Arena>> HostDevice::Allocate(uint64_t bytes,
                                                            absl::string_view label) {
  DeviceStats s = Stats();
  if (bytes > s.free) {
    return absl::ResourceExhaustedError(absl::StrCat(id_.ToString(), ": cannot allocate ",
                                                     FormatBytes(bytes), ", ", FormatBytes(s.free),
                                                     " free"));
  }
  absl::StatusOr<std::unique_ptr<MemfdArena>> arena = MemfdArena::Create(id_, bytes, label, used_);
  if (!arena.ok()) return arena.status();
  return std::unique_ptr<Arena>(std::move(*arena));
}

}  // namespace distorch
