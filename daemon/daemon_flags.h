// distorchd's command line: flags, DISTORCH_SOCKET and the config file merged
// into one validated DaemonConfig, or the text --help, --version or
// --check-config print.
#ifndef DISTORCH_DAEMON_DAEMON_FLAGS_H_
#define DISTORCH_DAEMON_DAEMON_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "daemon/config.h"

namespace distorch {

struct DaemonInvocation {
  DaemonConfig config;
  // Non-empty: print this to stdout and exit 0 instead of serving.
  std::string print_and_exit;
};

// Later sources win: defaults, DISTORCH_SOCKET, --config FILE, then flags.
// Errors are what distorchd prints after "distorchd: ".
absl::StatusOr<DaemonInvocation> ParseDaemonFlags(int argc, char** argv);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_DAEMON_FLAGS_H_
