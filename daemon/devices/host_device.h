// Host-memory devices. `cpu` is the machine's RAM (optionally capped by a
// limit); `sim:N` is a host-backed stand-in for a GPU of a declared size, so
// multi-GPU placement, budgets and ejection run end to end without GPUs.
// Both hand out MemfdArenas.
#ifndef DISTORCH_DAEMON_DEVICES_HOST_DEVICE_H_
#define DISTORCH_DAEMON_DEVICES_HOST_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "daemon/devices/device.h"
#include "daemon/devices/host_memory.h"

namespace distorch {

// The kernel's huge-page policy for memfds, the bracketed word of
// /sys/kernel/mm/transparent_hugepage/shmem_enabled ("never", "within_size",
// ...; empty if unreadable). With "within_size" or "always" a host arena is
// allocated in 2 MiB pages, which makes host loads ~1.5x faster end to end
// (docs/performance.md); with the others the writes get 4 KiB pages.
std::string ShmemHugePagePolicy();
bool ShmemHugePagesOnWrite(const std::string& policy);

// Thread-safe (the byte counter is atomic; the rest is immutable).
class HostDevice : public Device {
 public:
  // cpu: `limit` caps what the broker may place (0 = the machine's RAM).
  static std::unique_ptr<HostDevice> Cpu(uint64_t limit);
  // sim:N with a fixed simulated size.
  static std::unique_ptr<HostDevice> Sim(int index, uint64_t size);

  DeviceId id() const override { return id_; }
  absl::string_view kind() const override { return id_.is_cpu() ? "host" : "sim"; }
  std::string description() const override;
  DeviceStats Stats() const override;
  absl::StatusOr<std::unique_ptr<Arena>> Allocate(uint64_t bytes, absl::string_view label) override;

 private:
  HostDevice(DeviceId id, uint64_t size) : id_(id), size_(size) {}

  const DeviceId id_;
  const uint64_t size_;  // cpu: limit (0 = none); sim: simulated total
  std::shared_ptr<std::atomic<uint64_t>> used_ = std::make_shared<std::atomic<uint64_t>>(0);
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DEVICES_HOST_DEVICE_H_
