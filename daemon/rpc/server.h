// The gRPC server around a BrokerService: the only place that builds one.
#ifndef DISTORCH_DAEMON_RPC_SERVER_H_
#define DISTORCH_DAEMON_RPC_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/rpc/service.h"
#include "grpcpp/server.h"

namespace distorch {

// Serves `service` on the unix socket `socket_path` (mode 0660). Unavailable
// when the socket cannot be bound.
absl::StatusOr<std::unique_ptr<grpc::Server>> ServeOnUnixSocket(const std::string& socket_path,
                                                                BrokerService* service);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_RPC_SERVER_H_
