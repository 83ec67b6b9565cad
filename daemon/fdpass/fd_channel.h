// The fd channel: a unix socket beside the gRPC socket that moves file
// descriptors (SCM_RIGHTS), which gRPC cannot. One short exchange per
// connection, text lines:
//   client: "PUT\n" + 1 fd      daemon: "OK <ticket>\n"
//   client: "GET <ticket>\n"    daemon: "OK <n>\n" + n fds
//   on error                    daemon: "ERR <message>\n"
// docs/protocol.md describes it for client authors.
#ifndef DISTORCH_DAEMON_FDPASS_FD_CHANNEL_H_
#define DISTORCH_DAEMON_FDPASS_FD_CHANNEL_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "daemon/fdpass/ticket_book.h"
#include "daemon/fdpass/unique_fd.h"

namespace distorch {

// Serves the fd channel on its own thread until destroyed.
class FdChannelServer {
 public:
  // Binds `path` (mode 0660) and starts serving.
  static absl::StatusOr<std::unique_ptr<FdChannelServer>> Start(const std::string& path,
                                                                TicketBook* tickets);
  ~FdChannelServer();  // stops the thread and removes the socket file

 private:
  FdChannelServer(std::string path, UniqueFd listener, UniqueFd stop, TicketBook* tickets);
  void Serve();
  void HandleConnection(int conn);

  const std::string path_;
  UniqueFd listener_;
  UniqueFd stop_;  // eventfd: written to stop Serve()
  TicketBook* tickets_;
  std::thread thread_;
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_FDPASS_FD_CHANNEL_H_
