// Sending and receiving file descriptors over a unix socket (SCM_RIGHTS), used
// by the fd channel on both sides (distorchd, distorchctl).
#ifndef DISTORCH_DAEMON_FDPASS_SCM_RIGHTS_H_
#define DISTORCH_DAEMON_FDPASS_SCM_RIGHTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/fdpass/unique_fd.h"

namespace distorch {

// Most fds one message may carry (the kernel's SCM_MAX_FD is 253).
inline constexpr int kMaxFdsPerMessage = 64;
// Requests and replies are one short text line.
inline constexpr size_t kMaxFdChannelLine = 512;

// Sends `line` (should end in '\n') with `fds` attached. The fds stay open.
absl::Status SendLineWithFds(int sock, absl::string_view line, const std::vector<int>& fds);

struct ReceivedLine {
  std::string line;           // without the trailing '\n'
  std::vector<UniqueFd> fds;  // attached fds, now owned by the receiver
};
// Receives one line (up to kMaxFdChannelLine bytes) and any fds sent with it.
absl::StatusOr<ReceivedLine> ReceiveLineWithFds(int sock);

// Connects a blocking unix stream socket to `path`.
absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_FDPASS_SCM_RIGHTS_H_
