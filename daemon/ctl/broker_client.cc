#include "daemon/ctl/broker_client.h"

#include <unistd.h>

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/fdpass/scm_rights.h"

namespace distorch {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<std::unique_ptr<BrokerClient>> BrokerClient::Connect(const std::string& socket_path,
                                                                    absl::Duration timeout) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  auto channel = grpc::CreateCustomChannel(absl::StrCat("unix:", socket_path),
                                           grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach distorchd at ", socket_path,
        ": is it running? (start it with `distorchd`, or set --socket / DISTORCH_SOCKET)"));
  }
  auto client = std::unique_ptr<BrokerClient>(new BrokerClient(socket_path, channel));
  client->fd_channel_path_ = socket_path + ".fd";
  return client;
}

BrokerClient::BrokerClient(std::string socket_path, std::shared_ptr<grpc::Channel> channel)
    : socket_path_(std::move(socket_path)),
      channel_(std::move(channel)),
      stub_(v1::Broker::NewStub(channel_)) {}

BrokerClient::~BrokerClient() {
  if (session_ != nullptr) {
    session_->WritesDone();
    session_ctx_->TryCancel();
    if (session_reader_.joinable()) session_reader_.join();
  }
}

absl::StatusOr<uint64_t> BrokerClient::OpenSession(const std::string& client_name) {
  session_ctx_ = std::make_unique<grpc::ClientContext>();
  session_ = stub_->Session(session_ctx_.get());
  v1::SessionRequest hello;
  hello.mutable_hello()->set_client_name(client_name);
  hello.mutable_hello()->set_pid(getpid());
  if (!session_->Write(hello)) return absl::UnavailableError("session stream closed at Hello");
  v1::SessionEvent event;
  if (!session_->Read(&event) || !event.has_started()) {
    return FromGrpcStatus(session_->Finish());
  }
  session_id_ = event.started().session_id();
  if (!event.started().fd_channel_path().empty()) {
    fd_channel_path_ = event.started().fd_channel_path();
  }
  // Drain later events so the stream stays healthy; the CLI does not act on them.
  session_reader_ = std::thread([this] {
    v1::SessionEvent e;
    while (session_->Read(&e)) {
    }
  });
  return session_id_;
}

absl::StatusOr<std::string> BrokerClient::PutFile(int fd) {
  absl::StatusOr<UniqueFd> conn = ConnectUnix(fd_channel_path_);
  if (!conn.ok()) return conn.status();
  if (absl::Status s = SendLineWithFds(conn->get(), "PUT\n", {fd}); !s.ok()) return s;
  absl::StatusOr<ReceivedLine> reply = ReceiveLineWithFds(conn->get());
  if (!reply.ok()) return reply.status();
  absl::string_view line = reply->line;
  if (!absl::ConsumePrefix(&line, "OK ")) {
    return absl::UnavailableError(absl::StrCat("fd channel PUT failed: ", reply->line));
  }
  return std::string(line);
}

absl::StatusOr<std::vector<UniqueFd>> BrokerClient::GetArenaFds(const std::string& ticket) {
  absl::StatusOr<UniqueFd> conn = ConnectUnix(fd_channel_path_);
  if (!conn.ok()) return conn.status();
  if (absl::Status s = SendLineWithFds(conn->get(), absl::StrCat("GET ", ticket, "\n"), {});
      !s.ok()) {
    return s;
  }
  absl::StatusOr<ReceivedLine> reply = ReceiveLineWithFds(conn->get());
  if (!reply.ok()) return reply.status();
  absl::string_view line = reply->line;
  size_t count = 0;
  if (!absl::ConsumePrefix(&line, "OK ") || !absl::SimpleAtoi(line, &count) ||
      count != reply->fds.size()) {
    return absl::UnavailableError(absl::StrCat("fd channel GET failed: ", reply->line));
  }
  return std::move(reply->fds);
}

absl::StatusOr<v1::LoadResult> BrokerClient::Load(
    v1::LoadRequest request, const std::function<void(const v1::LoadProgress&)>& progress) {
  request.set_session_id(session_id_);
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::LoadEvent>> reader = stub_->Load(&ctx, request);
  v1::LoadEvent event;
  std::optional<v1::LoadResult> result;
  while (reader->Read(&event)) {
    if (event.has_progress() && progress) progress(event.progress());
    if (event.has_result()) result = event.result();
  }
  if (absl::Status s = FromGrpcStatus(reader->Finish()); !s.ok()) return s;
  if (!result) return absl::InternalError("load stream ended without a result");
  return *std::move(result);
}

}  // namespace distorch
