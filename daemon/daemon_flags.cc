#include "daemon/daemon_flags.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/cli_args.h"

namespace distorch {
namespace {

constexpr char kUsage[] =
    "usage: distorchd [--config FILE] [--socket PATH] [--devices SPEC] [--log-level LEVEL]\n"
    "                 [--idle-exit-s SECONDS] [--check-config]\n"
    "  --devices sim:0=24GiB,sim:1=12GiB,cpu=64GiB  declares simulated GPUs and limits\n"
    "  --idle-exit-s N  exit after N s with no sessions and no pinned models (0 = never)\n"
    "  DISTORCH_SOCKET is used when --socket is absent.\n";

absl::Status ApplyFlags(const CliArgs& args, DaemonConfig* config) {
  if (auto socket = args.Get("socket")) config->socket_path = *socket;
  if (auto devices = args.Get("devices")) {
    if (absl::Status s = ApplyDeviceSpec(*devices, config); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--devices: ", s.message()));
    }
  }
  if (auto level = args.Get("log-level")) config->log_level = *level;
  if (auto idle = args.Get("idle-exit-s")) {
    double seconds = 0;
    if (!absl::SimpleAtod(*idle, &seconds) || !(seconds >= 0) || std::isinf(seconds)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--idle-exit-s: must be a number of seconds >= 0 (0 = never exit), got '", *idle, "'"));
    }
    config->idle_exit = absl::Seconds(seconds);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DaemonInvocation> ParseDaemonFlags(int argc, char** argv) {
  absl::StatusOr<CliArgs> args =
      CliArgs::Parse(argc, argv,
                     {{"config", "socket", "devices", "log-level", "idle-exit-s"},
                      {"check-config", "help", "version"}});
  if (!args.ok()) return args.status();
  DaemonInvocation run;
  if (args->Has("help")) {
    run.print_and_exit = kUsage;
    return run;
  }
  if (args->Has("version")) {
    run.print_and_exit = absl::StrCat("distorchd ", DISTORCH_VERSION, "\n");
    return run;
  }
  if (!args->positionals().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", args->positionals()[0], "'\n", kUsage));
  }
  DaemonConfig& config = run.config;
  config.socket_path = DefaultSocketPath();
  if (const char* env = std::getenv("DISTORCH_SOCKET"); env && *env) config.socket_path = env;
  if (auto file = args->Get("config")) {
    if (absl::Status s = ApplyConfigFile(*file, &config); !s.ok()) return s;
  }
  if (absl::Status s = ApplyFlags(*args, &config); !s.ok()) return s;
  if (absl::Status s = ValidateConfig(config); !s.ok()) return s;
  if (args->Has("check-config")) {
    run.print_and_exit = absl::StrCat("configuration OK\n", DescribeConfig(config));
  }
  return run;
}

}  // namespace distorch
