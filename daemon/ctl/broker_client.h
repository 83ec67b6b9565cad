// A C++ client of distorchd: the gRPC stub, a session stream, and the fd
// channel. Used by distorchctl (and usable by C++ tests).
#ifndef DISTORCH_DAEMON_CTL_BROKER_CLIENT_H_
#define DISTORCH_DAEMON_CTL_BROKER_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/fdpass/unique_fd.h"
#include "distorch/v1/broker.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace distorch {

absl::Status FromGrpcStatus(const grpc::Status& status);

class BrokerClient {
 public:
  // Connects (lazily, as gRPC does) and waits up to `timeout` for the socket.
  static absl::StatusOr<std::unique_ptr<BrokerClient>> Connect(const std::string& socket_path,
                                                               absl::Duration timeout);
  ~BrokerClient();  // closes the session stream, if open

  // Opens the session stream (Hello) and returns the session id.
  absl::StatusOr<uint64_t> OpenSession(const std::string& client_name);
  uint64_t session_id() const { return session_id_; }

  // PUTs an open file on the fd channel; returns the ticket for Load.
  absl::StatusOr<std::string> PutFile(int fd);
  // GETs the memfds of a load result's HOST_MEMFD arenas, in arena order.
  absl::StatusOr<std::vector<UniqueFd>> GetArenaFds(const std::string& ticket);

  absl::StatusOr<v1::LoadResult> Load(v1::LoadRequest request,
                                      const std::function<void(const v1::LoadProgress&)>& progress);

  v1::Broker::Stub& stub() { return *stub_; }
  const std::string& fd_channel_path() const { return fd_channel_path_; }

 private:
  BrokerClient(std::string socket_path, std::shared_ptr<grpc::Channel> channel);

  const std::string socket_path_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Broker::Stub> stub_;
  std::string fd_channel_path_;
  uint64_t session_id_ = 0;
  std::unique_ptr<grpc::ClientContext> session_ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionEvent>> session_;
  std::thread session_reader_;
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_CTL_BROKER_CLIENT_H_
