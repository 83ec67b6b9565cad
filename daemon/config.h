// distorchd's settings: built-in defaults, then the TOML file, then flags.
// config/distorchd.toml documents every key.
#ifndef DISTORCH_DAEMON_CONFIG_H_
#define DISTORCH_DAEMON_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/socket_path.h"
#include "distorch/device_id.h"
#include "distorch/device_spec.h"

namespace distorch {

struct DeviceSettings {
  uint64_t reserve = 0;  // bytes the planner leaves free on the device
  uint64_t limit = 0;    // most bytes the broker may hold there; 0 = no limit
};

struct DaemonConfig {
  std::string socket_path;  // gRPC socket; the fd channel is socket_path + ".fd"
  std::string log_level = "info";
  absl::Duration grace_period = absl::Seconds(10);
  bool cuda = true;  // discover CUDA GPUs at start
  std::vector<DeviceSpecEntry> sim_devices;
  std::map<DeviceId, DeviceSettings> device_settings;
  int load_threads = 4;  // reader threads per load
  // A residency's cpu bytes are split into up to load_threads memfd arenas no
  // smaller than this, so a load writes them in parallel (arena_layout.h).
  uint64_t host_segment_min = 64ULL << 20;
  // Exit (status 0) after this long with no session but the pin session and
  // no residency; zero = never. For a per-user daemon a client started on
  // demand: it goes when nobody uses it.
  absl::Duration idle_exit = absl::ZeroDuration();

  std::string fd_channel_path() const { return socket_path + ".fd"; }
};

// Reads a TOML file on top of `config`. Every error names the file, the key and
// what would be valid: "/etc/distorch/distorchd.toml: grace_period_s: must be a
// number of seconds >= 0, got "soon"".
absl::Status ApplyConfigFile(const std::string& path, DaemonConfig* config);

// Applies "sim:0=24GiB,cpu=64GiB": sim devices are declared, cpu/cuda sizes set
// their limit.
absl::Status ApplyDeviceSpec(absl::string_view spec, DaemonConfig* config);

// Checks cross-key rules (log level names, socket path length).
absl::Status ValidateConfig(const DaemonConfig& config);

// Human summary for --check-config and the start-up log.
std::string DescribeConfig(const DaemonConfig& config);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_CONFIG_H_
