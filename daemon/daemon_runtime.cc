#include "daemon/daemon_runtime.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "daemon/fdpass/scm_rights.h"
#include "daemon/log.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace distorch {
namespace {

void NotifySystemd(const char* state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || *path == '\0') return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t len = std::strlen(path);
  if (len >= sizeof(addr.sun_path)) return;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return;
  sendto(fd.get(), state, std::strlen(state), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
}

}  // namespace

sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

int WaitForStopSignal(const sigset_t& signals) {
  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  return sig;
}

int WaitForStopSignalOr(const sigset_t& signals, absl::Duration poll,
                        const std::function<bool()>& stop_now) {
  const timespec timeout = absl::ToTimespec(poll);
  while (true) {
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig > 0) return sig;
    if (stop_now()) return 0;  // EAGAIN (timeout) or EINTR: ask again
  }
}

void ConfigureLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("distorchd");
  // journald adds its own timestamps and reads "<N>" priority prefixes poorly
  // from spdlog, so under systemd print just the level and the message.
  if (std::getenv("JOURNAL_STREAM") != nullptr) {
    logger->set_pattern("%l: %v");
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %l: %v");
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::flush_on(spdlog::level::info);
}

absl::Status PrepareSocketPath(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!dir.empty() && !std::filesystem::exists(dir)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create socket directory ", dir.string(), ": ", ec.message()));
    }
    chmod(dir.c_str(), 0750);
  }
  if (!std::filesystem::exists(path)) return absl::OkStatus();
  if (ConnectUnix(path).ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("another distorchd is serving ", path, ": stop it or give another --socket"));
  }
  std::filesystem::remove(path, ec);  // stale: its daemon is gone
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot remove stale socket ", path, ": ", ec.message()));
  }
  return absl::OkStatus();
}

void NotifySystemdReady() { NotifySystemd("READY=1"); }
void NotifySystemdStopping() { NotifySystemd("STOPPING=1"); }

}  // namespace distorch
