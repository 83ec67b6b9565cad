// distorchd's TOML config: every key read into DaemonConfig, and each kind of
// mistake refused with a message that names the file, the key and the fix.
#include "daemon/config.h"

#include <catch2/catch.hpp>
#include <string>

#include "absl/strings/match.h"
#include "tests/daemon/model_files.h"

namespace distorch {
namespace {

using testing::TempDir;

// Applies `toml` (written to a file) on top of the defaults.
absl::Status Apply(const std::string& toml, DaemonConfig* config, std::string* path_out = nullptr) {
  static TempDir dir;
  static int n = 0;
  const std::string path = dir.File("c" + std::to_string(++n) + ".toml");
  testing::WriteFile(path, toml);
  if (path_out != nullptr) *path_out = path;
  return ApplyConfigFile(path, config);
}

TEST_CASE("every config key is read", "[config]") {
  DaemonConfig c;
  REQUIRE(Apply(R"(
socket = "/tmp/x.sock"
log_level = "debug"
grace_period_s = 2.5
cuda = false
load_threads = 8
host_segment_min = "128MiB"
idle_exit_s = 1.5
devices = "sim:0=2GiB,cpu=8GiB"
[device."sim:0"]
reserve = "512MiB"
[device."cpu"]
limit = 1073741824
)",
                &c)
              .ok());
  CHECK(c.socket_path == "/tmp/x.sock");
  CHECK(c.log_level == "debug");
  CHECK(c.grace_period == absl::Milliseconds(2500));
  CHECK_FALSE(c.cuda);
  CHECK(c.load_threads == 8);
  CHECK(c.host_segment_min == (128ULL << 20));
  REQUIRE(c.sim_devices.size() == 1);
  CHECK(c.sim_devices[0].bytes == (2ULL << 30));
  CHECK(c.device_settings[DeviceId::Sim(0)].reserve == (512ULL << 20));
  CHECK(c.device_settings[DeviceId::Cpu()].limit == (1ULL << 30));  // the table wins over devices
  CHECK(absl::StrContains(DescribeConfig(c), "host_segment_min: 128.00 MiB"));
  CHECK(c.idle_exit == absl::Milliseconds(1500));
  CHECK(
      absl::StrContains(DescribeConfig(c), "idle exit: after 1.5s with no sessions and no models"));
}

TEST_CASE("defaults stay when the file sets nothing", "[config]") {
  DaemonConfig c;
  REQUIRE(Apply("# nothing\n", &c).ok());
  CHECK(c.load_threads == 4);
  CHECK(c.host_segment_min == (64ULL << 20));
  CHECK(c.grace_period == absl::Seconds(10));
  CHECK(c.idle_exit == absl::ZeroDuration());  // a system daemon never exits idle
  CHECK(absl::StrContains(DescribeConfig(c), "idle exit: never"));
  CHECK(c.cuda);
}

TEST_CASE("config mistakes name the file, the key and what is valid", "[config]") {
  struct Case {
    std::string toml, message;
  };
  const Case cases[] = {
      {"sockets = \"/x\"\n",
       "sockets: unknown key (known: socket, log_level, grace_period_s, cuda, devices, "
       "load_threads, host_segment_min, idle_exit_s, device)"},
      {"load_threads = 0\n", "load_threads: must be an integer from 1 to 64"},
      {"load_threads = \"4\"\n", "load_threads: must be an integer from 1 to 64"},
      {"host_segment_min = \"lots\"\n", "host_segment_min: "},
      {"host_segment_min = 100\n", "host_segment_min: must be at least 4KiB"},
      {"host_segment_min = -1\n", "host_segment_min: must not be negative"},
      {"host_segment_min = true\n",
       "host_segment_min: must be a size like \"4GiB\" or a number of bytes"},
      {"grace_period_s = -1\n", "grace_period_s: must be a number of seconds >= 0"},
      {"cuda = \"yes\"\n", "cuda: must be true or false"},
      {"idle_exit_s = -1\n", "idle_exit_s: must be a number of seconds >= 0 (0 = never exit)"},
      {"idle_exit_s = \"1m\"\n", "idle_exit_s: must be a number of seconds >= 0 (0 = never exit)"},
      {"log_level = \"loud\"\n",
       "log_level 'loud': use one of trace, debug, info, warn, error, "
       "critical, off"},
      {"[device.\"sim:0\"]\nreserved = 1\n",
       "device.\"sim:0\".reserved: unknown key (known: reserve, limit)"},
      {"[device.\"gpu:0\"]\nreserve = 1\n", "device.\"gpu:0\": "},
      {"socket = \n", ": not valid TOML: "},
  };
  for (const Case& c : cases) {
    CAPTURE(c.toml);
    DaemonConfig config;
    std::string path;
    absl::Status s = Apply(c.toml, &config, &path);
    REQUIRE(absl::IsInvalidArgument(s));
    CHECK(absl::StrContains(s.message(), c.message));
    if (!absl::StartsWith(c.message, "log_level '")) {  // cross-key checks name no file
      CHECK(absl::StartsWith(s.message(), path));
    }
  }
}

}  // namespace
}  // namespace distorch
