// Where distorchd serves and distorchctl connects when no --socket is given.
#ifndef DISTORCH_DAEMON_SOCKET_PATH_H_
#define DISTORCH_DAEMON_SOCKET_PATH_H_

#include <string>

namespace distorch {

// /run/distorch/distorchd.sock for root, else $XDG_RUNTIME_DIR/distorch/...
// (or /tmp/distorch-$UID/... without XDG_RUNTIME_DIR).
std::string DefaultSocketPath();

}  // namespace distorch

#endif  // DISTORCH_DAEMON_SOCKET_PATH_H_
