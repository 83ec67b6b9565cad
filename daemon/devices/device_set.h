// Every device this daemon serves, with its settings. Built once at start.
#ifndef DISTORCH_DAEMON_DEVICES_DEVICE_SET_H_
#define DISTORCH_DAEMON_DEVICES_DEVICE_SET_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/config.h"
#include "daemon/devices/device.h"
#include "distorch/planner.h"

namespace distorch {

// Immutable after Build; thread-safe (devices are).
class DeviceSet {
 public:
  struct Entry {
    std::unique_ptr<Device> device;
    DeviceSettings settings;
  };

  // cpu always; sim devices from the config; CUDA GPUs when config.cuda and the
  // runtime finds any. Fails on settings for a device that does not exist.
  static absl::StatusOr<std::unique_ptr<DeviceSet>> Build(const DaemonConfig& config);

  Device* Find(const DeviceId& id) const;
  const std::vector<Entry>& entries() const { return entries_; }
  // What the planner may use now, per device.
  std::vector<DeviceCapacity> Inventory() const;
  // The first GPU (cuda, else sim), else cpu.
  DeviceId DefaultCompute() const;
  bool cuda_available() const { return cuda_available_; }
  const std::string& cuda_note() const { return cuda_note_; }
  std::string Names() const;  // "cpu, sim:0, sim:1"

 private:
  std::vector<Entry> entries_;
  bool cuda_available_ = false;
  std::string cuda_note_;
};

// Logs the daemon's start: each device with its total, free and reserve, and
// a hint when the kernel gives host arenas 4 KiB pages.
void LogDeviceInventory(const DeviceSet& devices);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DEVICES_DEVICE_SET_H_
