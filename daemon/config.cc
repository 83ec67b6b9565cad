#include "daemon/config.h"

#include <sys/un.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "distorch/units.h"

namespace distorch {
namespace {

const char* const kTopLevelKeys[] = {"socket",  "log_level",    "grace_period_s",   "cuda",
                                     "devices", "load_threads", "host_segment_min", "idle_exit_s",
                                     "device"};
const char* const kLogLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};

absl::Status KeyError(const std::string& file, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", key, ": ", what));
}

// A size is a string with units ("4GiB") or an integer number of bytes.
absl::StatusOr<uint64_t> ReadSize(const std::string& file, const std::string& key,
                                  const toml::node& node) {
  if (auto v = node.value<int64_t>(); v && node.is_integer()) {
    if (*v < 0) return KeyError(file, key, "must not be negative");
    return static_cast<uint64_t>(*v);
  }
  if (auto s = node.value<std::string>(); s && node.is_string()) {
    absl::StatusOr<uint64_t> bytes = ParseByteSize(*s);
    if (!bytes.ok()) return KeyError(file, key, bytes.status().message());
    return *bytes;
  }
  return KeyError(file, key, "must be a size like \"4GiB\" or a number of bytes");
}

}  // namespace

absl::Status ApplyDeviceSpec(absl::string_view spec, DaemonConfig* config) {
  absl::StatusOr<std::vector<DeviceSpecEntry>> entries = ParseDeviceSpec(spec);
  if (!entries.ok()) return entries.status();
  for (const DeviceSpecEntry& e : *entries) {
    if (e.device.type == DeviceType::kSim) {
      config->sim_devices.push_back(e);
    } else {
      config->device_settings[e.device].limit = e.bytes;
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyConfigFile(const std::string& path, DaemonConfig* config) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const toml::source_position& at = e.source().begin;
    return absl::InvalidArgumentError(absl::StrCat(
        path, ":", at.line, ":", at.column, ": not valid TOML: ", std::string(e.description())));
  }
  for (const auto& [key, node] : table) {
    bool known = false;
    for (const char* k : kTopLevelKeys) known |= (std::string(key.str()) == k);
    if (!known) {
      return KeyError(
          path, std::string(key.str()),
          absl::StrCat("unknown key (known: ", absl::StrJoin(kTopLevelKeys, ", "), ")"));
    }
  }
  if (const toml::node* n = table.get("socket")) {
    if (!n->is_string()) return KeyError(path, "socket", "must be a string path");
    config->socket_path = *n->value<std::string>();
  }
  if (const toml::node* n = table.get("log_level")) {
    if (!n->is_string()) return KeyError(path, "log_level", "must be a string");
    config->log_level = *n->value<std::string>();
  }
  if (const toml::node* n = table.get("grace_period_s")) {
    std::optional<double> s = n->value<double>();
    if (!s || !(n->is_number()) || *s < 0) {
      return KeyError(path, "grace_period_s", "must be a number of seconds >= 0");
    }
    config->grace_period = absl::Seconds(*s);
  }
  if (const toml::node* n = table.get("idle_exit_s")) {
    std::optional<double> s = n->value<double>();
    if (!s || !(n->is_number()) || *s < 0) {
      return KeyError(path, "idle_exit_s", "must be a number of seconds >= 0 (0 = never exit)");
    }
    config->idle_exit = absl::Seconds(*s);
  }
  if (const toml::node* n = table.get("cuda")) {
    if (!n->is_boolean()) return KeyError(path, "cuda", "must be true or false");
    config->cuda = *n->value<bool>();
  }
  if (const toml::node* n = table.get("load_threads")) {
    std::optional<int64_t> v = n->value<int64_t>();
    if (!n->is_integer() || !v || *v < 1 || *v > 64) {
      return KeyError(path, "load_threads", "must be an integer from 1 to 64");
    }
    config->load_threads = static_cast<int>(*v);
  }
  if (const toml::node* n = table.get("host_segment_min")) {
    absl::StatusOr<uint64_t> bytes = ReadSize(path, "host_segment_min", *n);
    if (!bytes.ok()) return bytes.status();
    if (*bytes < 4096) return KeyError(path, "host_segment_min", "must be at least 4KiB");
    config->host_segment_min = *bytes;
  }
  if (const toml::node* n = table.get("devices")) {
    if (!n->is_string()) return KeyError(path, "devices", "must be a string like \"sim:0=24GiB\"");
    if (absl::Status s = ApplyDeviceSpec(*n->value<std::string>(), config); !s.ok()) {
      return KeyError(path, "devices", s.message());
    }
  }
  if (const toml::node* n = table.get("device")) {
    const toml::table* devices = n->as_table();
    if (devices == nullptr) return KeyError(path, "device", "must be a table of [device.\"NAME\"]");
    for (const auto& [name, settings_node] : *devices) {
      std::string key = absl::StrCat("device.\"", std::string(name.str()), "\"");
      absl::StatusOr<DeviceId> id = ParseDeviceId(std::string(name.str()));
      if (!id.ok()) return KeyError(path, key, id.status().message());
      const toml::table* settings = settings_node.as_table();
      if (settings == nullptr) return KeyError(path, key, "must be a table with reserve/limit");
      DeviceSettings& out = config->device_settings[*id];
      for (const auto& [field, value] : *settings) {
        std::string full = absl::StrCat(key, ".", std::string(field.str()));
        if (std::string(field.str()) != "reserve" && std::string(field.str()) != "limit") {
          return KeyError(path, full, "unknown key (known: reserve, limit)");
        }
        absl::StatusOr<uint64_t> bytes = ReadSize(path, full, value);
        if (!bytes.ok()) return bytes.status();
        (std::string(field.str()) == "reserve" ? out.reserve : out.limit) = *bytes;
      }
    }
  }
  return ValidateConfig(*config);
}

absl::Status ValidateConfig(const DaemonConfig& config) {
  bool level_ok = false;
  for (const char* l : kLogLevels) level_ok |= (config.log_level == l);
  if (!level_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log_level '", config.log_level, "': use one of ", absl::StrJoin(kLogLevels, ", ")));
  }
  // The fd channel path is the longer one; sockaddr_un limits both.
  if (config.fd_channel_path().size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket '", config.socket_path, "': path too long for a unix socket (",
                     sizeof(sockaddr_un{}.sun_path) - 4, " characters at most)"));
  }
  absl::flat_hash_set<int> sims;
  for (const DeviceSpecEntry& e : config.sim_devices) {
    if (!sims.insert(e.device.index).second) {
      return absl::InvalidArgumentError(absl::StrCat(e.device.ToString(), " is declared twice"));
    }
  }
  return absl::OkStatus();
}

std::string DescribeConfig(const DaemonConfig& config) {
  std::string out = absl::StrCat(
      "socket: ", config.socket_path, "\nfd channel: ", config.fd_channel_path(),
      "\nlog_level: ", config.log_level,
      "\ngrace_period: ", absl::FormatDuration(config.grace_period),
      "\ncuda discovery: ", config.cuda ? "on" : "off", "\nload_threads: ", config.load_threads,
      "\nhost_segment_min: ", FormatBytes(config.host_segment_min), "\nidle exit: ",
      config.idle_exit > absl::ZeroDuration()
          ? absl::StrCat("after ", absl::FormatDuration(config.idle_exit),
                         " with no sessions and no models")
          : "never",
      "\n");
  for (const DeviceSpecEntry& e : config.sim_devices) {
    absl::StrAppend(&out, "device ", e.device.ToString(), ": simulated, ", FormatBytes(e.bytes),
                    "\n");
  }
  for (const auto& [id, s] : config.device_settings) {
    absl::StrAppend(&out, "device ", id.ToString(), ": reserve ", FormatBytes(s.reserve),
                    ", limit ", s.limit ? FormatBytes(s.limit) : "none", "\n");
  }
  return out;
}

}  // namespace distorch
