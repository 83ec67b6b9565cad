// A host arena: one memfd, its pages allocated up front (fallocate, so a short
// machine fails here with ENOSPC instead of SIGBUS during the load), mapped
// writable while loading, then sealed against writes and resizing. Clients get
// the fd over the fd channel and map it themselves.
#ifndef DISTORCH_DAEMON_DEVICES_MEMFD_ARENA_H_
#define DISTORCH_DAEMON_DEVICES_MEMFD_ARENA_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/devices/device.h"
#include "daemon/fdpass/unique_fd.h"

namespace distorch {

class MemfdArena : public Arena {
 public:
  // `accounted` is incremented by the arena's size now and decremented when the
  // arena is destroyed (the owning device's broker_bytes).
  static absl::StatusOr<std::unique_ptr<MemfdArena>> Create(
      DeviceId device, uint64_t bytes, absl::string_view label,
      std::shared_ptr<std::atomic<uint64_t>> accounted);
  ~MemfdArena() override;

  DeviceId device() const override { return device_; }
  uint64_t size() const override { return size_; }
  uint8_t* host_data() override { return data_; }
  absl::Status Write(uint64_t offset, const void* src, size_t n) override;
  absl::Status Read(uint64_t offset, void* dst, size_t n) const override;
  absl::Status Seal() override;
  ArenaExport Export() const override;

 private:
  MemfdArena(DeviceId device, uint64_t size, UniqueFd fd, uint8_t* data,
             std::shared_ptr<std::atomic<uint64_t>> accounted);
  absl::Status CheckRange(uint64_t offset, size_t n) const;

  const DeviceId device_;
  const uint64_t size_;
  UniqueFd fd_;
  uint8_t* data_;  // writable mapping until Seal(), then null
  std::shared_ptr<std::atomic<uint64_t>> accounted_;
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DEVICES_MEMFD_ARENA_H_
