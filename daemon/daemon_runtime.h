// Process plumbing for distorchd's main: signals, logging set-up, the socket
// directory, and systemd's readiness protocol (sd_notify without libsystemd).
#ifndef DISTORCH_DAEMON_DAEMON_RUNTIME_H_
#define DISTORCH_DAEMON_DAEMON_RUNTIME_H_

#include <signal.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace distorch {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call before
// starting threads) and returns that set.
sigset_t BlockStopSignals();
// Waits for one of them; returns its number.
int WaitForStopSignal(const sigset_t& signals);
// The same, but also asks `stop_now` every `poll`; returns 0 once it says yes.
int WaitForStopSignalOr(const sigset_t& signals, absl::Duration poll,
                        const std::function<bool()>& stop_now);

// spdlog at `level`; without timestamps when journald captures stderr.
void ConfigureLogging(const std::string& level);

// Creates the socket's directory (0750 when we create it) and removes a stale
// socket file. FailedPrecondition when another distorchd answers on it.
absl::Status PrepareSocketPath(const std::string& path);

// sd_notify READY=1 / STOPPING=1 when NOTIFY_SOCKET is set; no-ops otherwise.
void NotifySystemdReady();
void NotifySystemdStopping();

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DAEMON_RUNTIME_H_
