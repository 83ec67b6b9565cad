// distorchd: flags and config, build the broker, serve, wait for SIGTERM, drain.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "daemon/broker.h"
#include "daemon/daemon_flags.h"
#include "daemon/daemon_runtime.h"
#include "daemon/devices/device_set.h"
#include "daemon/fdpass/fd_channel.h"
#include "daemon/log.h"
#include "daemon/rpc/server.h"
#include "daemon/rpc/service.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "distorchd: %s\n", std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace distorch;
  // Block the stop signals before any thread starts, so every thread inherits
  // the mask and only the wait below sees them.
  sigset_t stop_signals = BlockStopSignals();
  absl::StatusOr<DaemonInvocation> run = ParseDaemonFlags(argc, argv);
  if (!run.ok()) return Fail(run.status());
  if (!run->print_and_exit.empty()) {  // --help, --version, --check-config
    std::fputs(run->print_and_exit.c_str(), stdout);
    return 0;
  }
  const DaemonConfig& config = run->config;

  ConfigureLogging(config.log_level);
  if (absl::Status s = PrepareSocketPath(config.socket_path); !s.ok()) return Fail(s);
  absl::StatusOr<std::unique_ptr<DeviceSet>> devices = DeviceSet::Build(config);
  if (!devices.ok()) return Fail(devices.status());
  LogDeviceInventory(**devices);

  Broker broker(config, *std::move(devices));
  BrokerService service(&broker);
  absl::StatusOr<std::unique_ptr<FdChannelServer>> fd_channel =
      FdChannelServer::Start(config.fd_channel_path(), &broker.tickets());
  if (!fd_channel.ok()) return Fail(fd_channel.status());
  absl::StatusOr<std::unique_ptr<grpc::Server>> server =
      ServeOnUnixSocket(config.socket_path, &service);
  if (!server.ok()) return Fail(server.status());
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
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  fd_channel->reset();
  std::filesystem::remove(config.socket_path);
  spdlog::info("stopped");
  return 0;
}
