// distorchd: flags and config, build the broker, serve, wait for SIGTERM, drain.
#include <signal.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/broker.h"
#include "daemon/cli_args.h"
#include "daemon/config.h"
#include "daemon/daemon_runtime.h"
#include "daemon/device_set.h"
#include "daemon/devices/host_device.h"
#include "daemon/fd_channel.h"
#include "daemon/service.h"
#include "distorch/units.h"
#include "grpcpp/server_builder.h"
#include "daemon/log.h"

namespace {

constexpr char kUsage[] =
    "usage: distorchd [--config FILE] [--socket PATH] [--devices SPEC] [--log-level LEVEL]\n"
    "                 [--idle-exit-s SECONDS] [--check-config]\n"
    "  --devices sim:0=24GiB,sim:1=12GiB,cpu=64GiB  declares simulated GPUs and limits\n"
    "  --idle-exit-s N  exit after N s with no sessions and no pinned models (0 = never)\n"
    "  DISTORCH_SOCKET is used when --socket is absent.\n";

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "distorchd: %s\n", std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace distorch;
  // Block the stop signals before any thread starts, so every thread inherits
  // the mask and only the sigwait below sees them.
  sigset_t stop_signals = BlockStopSignals();

  absl::StatusOr<CliArgs> args = CliArgs::Parse(
      argc, argv, {{"config", "socket", "devices", "log-level", "idle-exit-s"}, {"check-config", "help", "version"}});
  if (!args.ok()) return Fail(args.status());
  if (args->Has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args->Has("version")) {
    std::printf("distorchd %s\n", DISTORCH_VERSION);
    return 0;
  }
  if (!args->positionals().empty()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", args->positionals()[0], "'\n", kUsage)));
  }

  DaemonConfig config;
  config.socket_path = DefaultSocketPath();
  if (const char* env = std::getenv("DISTORCH_SOCKET"); env && *env) config.socket_path = env;
  if (auto file = args->Get("config")) {
    if (absl::Status s = ApplyConfigFile(*file, &config); !s.ok()) return Fail(s);
  }
  if (auto socket = args->Get("socket")) config.socket_path = *socket;
  if (auto devices = args->Get("devices")) {
    if (absl::Status s = ApplyDeviceSpec(*devices, &config); !s.ok()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat("--devices: ", s.message())));
    }
  }
  if (auto level = args->Get("log-level")) config.log_level = *level;
  if (auto idle = args->Get("idle-exit-s")) {
    double seconds = 0;
    if (!absl::SimpleAtod(*idle, &seconds) || !(seconds >= 0) || std::isinf(seconds)) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "--idle-exit-s: must be a number of seconds >= 0 (0 = never exit), got '", *idle, "'")));
    }
    config.idle_exit = absl::Seconds(seconds);
  }
  if (absl::Status s = ValidateConfig(config); !s.ok()) return Fail(s);
  if (args->Has("check-config")) {
    std::printf("configuration OK\n%s", DescribeConfig(config).c_str());
    return 0;
  }

  ConfigureLogging(config.log_level);
  if (absl::Status s = PrepareSocketPath(config.socket_path); !s.ok()) return Fail(s);
  absl::StatusOr<std::unique_ptr<DeviceSet>> devices = DeviceSet::Build(config);
  if (!devices.ok()) return Fail(devices.status());
  spdlog::info("distorchd {} starting; {}", DISTORCH_VERSION, (*devices)->cuda_note());
  for (const DeviceSet::Entry& e : (*devices)->entries()) {
    DeviceStats stats = e.device->Stats();
    spdlog::info("device {}: {}, {} total, {} free, reserve {}", e.device->id().ToString(),
                 e.device->description(), FormatBytes(stats.total), FormatBytes(stats.free),
                 FormatBytes(e.settings.reserve));
  }
  if (std::string policy = ShmemHugePagePolicy();
      !policy.empty() && !ShmemHugePagesOnWrite(policy)) {
    spdlog::info("host arenas get 4 KiB pages (transparent_hugepage/shmem_enabled is '{}'); "
                 "'within_size' there makes host loads ~1.5x faster (docs/operations.md)",
                 policy);
  }

  Broker broker(config, *std::move(devices));
  BrokerService service(&broker);
  absl::StatusOr<std::unique_ptr<FdChannelServer>> fd_channel =
      FdChannelServer::Start(config.fd_channel_path(), &broker.tickets());
  if (!fd_channel.ok()) return Fail(fd_channel.status());

  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix:", config.socket_path),
                           grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  builder.SetMaxSendMessageSize(256 << 20);  // load replies list every tensor
  builder.SetMaxReceiveMessageSize(256 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    return Fail(absl::UnavailableError(absl::StrCat("cannot serve on ", config.socket_path)));
  }
  chmod(config.socket_path.c_str(), 0660);
  spdlog::info("serving on {} (fd channel {}), grace period {}{}", config.socket_path,
               config.fd_channel_path(), absl::FormatDuration(config.grace_period),
               config.idle_exit > absl::ZeroDuration()
                   ? absl::StrCat(", exits when idle for ", absl::FormatDuration(config.idle_exit))
                   : "");
  NotifySystemdReady();

  int signal = WaitForStopSignalOr(stop_signals, absl::Milliseconds(250), [&] {
    return config.idle_exit > absl::ZeroDuration() &&
           broker.IdleFor(absl::Now()) >= config.idle_exit;
  });
  if (signal == 0) {
    spdlog::info("idle for {} with no sessions and no pinned models: exiting",
                 absl::FormatDuration(config.idle_exit));
  } else {
    spdlog::info("received {}, shutting down", strsignal(signal));
  }
  NotifySystemdStopping();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  fd_channel->reset();
  std::filesystem::remove(config.socket_path);
  spdlog::info("stopped");
  return 0;
}
