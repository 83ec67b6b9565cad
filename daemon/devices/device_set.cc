#include "daemon/devices/device_set.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/devices/cuda/cuda_device.h"
#include "daemon/devices/host_device.h"
#include "daemon/log.h"
#include "distorch/units.h"

namespace distorch {

absl::StatusOr<std::unique_ptr<DeviceSet>> DeviceSet::Build(const DaemonConfig& config) {
  auto set = std::make_unique<DeviceSet>();
  auto settings_for = [&config](const DeviceId& id) {
    auto it = config.device_settings.find(id);
    return it == config.device_settings.end() ? DeviceSettings{} : it->second;
  };
  set->entries_.push_back(
      {HostDevice::Cpu(settings_for(DeviceId::Cpu()).limit), settings_for(DeviceId::Cpu())});
  if (config.cuda) {
    CudaDiscovery cuda = DiscoverCudaDevices(config.device_settings);
    set->cuda_available_ = cuda.available;
    set->cuda_note_ = cuda.note;
    for (auto& device : cuda.devices) {
      DeviceId id = device->id();
      set->entries_.push_back({std::move(device), settings_for(id)});
    }
  } else {
    set->cuda_note_ = "CUDA discovery is off (cuda = false)";
  }
  std::vector<DeviceSpecEntry> sims = config.sim_devices;
  std::sort(sims.begin(), sims.end(),
            [](const auto& a, const auto& b) { return a.device.index < b.device.index; });
  for (const DeviceSpecEntry& sim : sims) {
    uint64_t size = sim.bytes;
    if (uint64_t limit = settings_for(sim.device).limit; limit) size = std::min(size, limit);
    set->entries_.push_back({HostDevice::Sim(sim.device.index, size), settings_for(sim.device)});
  }
  for (const auto& [id, settings] : config.device_settings) {
    if (set->Find(id) != nullptr) continue;
    std::string why = absl::StrCat("settings given for ", id.ToString(),
                                   ", which this host does not have (devices: ", set->Names(), ")");
    // A GPU can be missing for a while (driver update, card pulled) and one
    // config file may serve several machines: warn. A sim device is declared
    // in the same config, so a missing one is a typo.
    if (id.type != DeviceType::kCuda) return absl::InvalidArgumentError(why);
    spdlog::warn("{}; ignoring them", why);
  }
  return set;
}

Device* DeviceSet::Find(const DeviceId& id) const {
  for (const Entry& e : entries_) {
    if (e.device->id() == id) return e.device.get();
  }
  return nullptr;
}

std::vector<DeviceCapacity> DeviceSet::Inventory() const {
  std::vector<DeviceCapacity> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) {
    DeviceStats stats = e.device->Stats();
    DeviceCapacity c;
    c.id = e.device->id();
    c.total = stats.total;
    c.free = stats.free;
    c.reserve = e.settings.reserve;  // the broker's arenas are already out of `free`
    out.push_back(c);
  }
  return out;
}

DeviceId DeviceSet::DefaultCompute() const {
  for (DeviceType type : {DeviceType::kCuda, DeviceType::kSim}) {
    for (const Entry& e : entries_) {
      if (e.device->id().type == type) return e.device->id();
    }
  }
  return DeviceId::Cpu();
}

std::string DeviceSet::Names() const {
  return absl::StrJoin(entries_, ", ", [](std::string* out, const Entry& e) {
    absl::StrAppend(out, e.device->id().ToString());
  });
}

void LogDeviceInventory(const DeviceSet& devices) {
  spdlog::info("distorchd {} starting; {}", DISTORCH_VERSION, devices.cuda_note());
  for (const DeviceSet::Entry& e : devices.entries()) {
    DeviceStats stats = e.device->Stats();
    spdlog::info("device {}: {}, {} total, {} free, reserve {}", e.device->id().ToString(),
                 e.device->description(), FormatBytes(stats.total), FormatBytes(stats.free),
                 FormatBytes(e.settings.reserve));
  }
  if (std::string policy = ShmemHugePagePolicy();
      !policy.empty() && !ShmemHugePagesOnWrite(policy)) {
    spdlog::info(
        "host arenas get 4 KiB pages (transparent_hugepage/shmem_enabled is '{}'); "
        "'within_size' there makes host loads ~1.5x faster (docs/operations.md)",
        policy);
  }
}

}  // namespace distorch
