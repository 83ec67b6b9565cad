#include "daemon/fdpass/fd_channel.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/fdpass/scm_rights.h"
#include "daemon/log.h"

namespace distorch {

absl::StatusOr<std::unique_ptr<FdChannelServer>> FdChannelServer::Start(const std::string& path,
                                                                        TicketBook* tickets) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("fd channel path too long: ", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.valid()) return absl::ErrnoToStatus(errno, "fd channel socket");
  unlink(path.c_str());  // the gRPC socket beside it was checked for a live daemon
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("bind fd channel ", path));
  }
  chmod(path.c_str(), 0660);
  if (listen(listener.get(), 64) != 0) return absl::ErrnoToStatus(errno, "listen fd channel");
  UniqueFd stop(eventfd(0, EFD_CLOEXEC));
  if (!stop.valid()) return absl::ErrnoToStatus(errno, "eventfd");
  return std::unique_ptr<FdChannelServer>(
      new FdChannelServer(path, std::move(listener), std::move(stop), tickets));
}

FdChannelServer::FdChannelServer(std::string path, UniqueFd listener, UniqueFd stop,
                                 TicketBook* tickets)
    : path_(std::move(path)),
      listener_(std::move(listener)),
      stop_(std::move(stop)),
      tickets_(tickets) {
  thread_ = std::thread([this] { Serve(); });
}

FdChannelServer::~FdChannelServer() {
  uint64_t one = 1;
  (void)!write(stop_.get(), &one, sizeof(one));
  thread_.join();
  unlink(path_.c_str());
}

void FdChannelServer::Serve() {
  pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("fd channel: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    UniqueFd conn(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) continue;
    // A stuck or malicious client may hold the channel for at most this long.
    timeval timeout{5, 0};
    setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    HandleConnection(conn.get());
  }
}

void FdChannelServer::HandleConnection(int conn) {
  absl::StatusOr<ReceivedLine> request = ReceiveLineWithFds(conn);
  if (!request.ok()) {
    spdlog::debug("fd channel: bad request: {}", std::string(request.status().message()));
    return;
  }
  auto reply_error = [conn](absl::string_view message) {
    (void)SendLineWithFds(conn, absl::StrCat("ERR ", message, "\n"), {});
  };
  absl::string_view line = request->line;
  if (line == "PUT") {
    if (request->fds.size() != 1) {
      reply_error(absl::StrCat("PUT carries exactly one fd, got ", request->fds.size()));
      return;
    }
    std::string ticket = tickets_->PutFile(std::move(request->fds[0]));
    (void)SendLineWithFds(conn, absl::StrCat("OK ", ticket, "\n"), {});
    return;
  }
  if (absl::ConsumePrefix(&line, "GET ")) {
    absl::StatusOr<FdOffer> offer = tickets_->TakeOffer(std::string(line));
    if (!offer.ok()) {
      reply_error(offer.status().message());
      return;
    }
    absl::Status sent =
        SendLineWithFds(conn, absl::StrCat("OK ", offer->fds.size(), "\n"), offer->fds);
    if (!sent.ok())
      spdlog::warn("fd channel: sending arena fds failed: {}", std::string(sent.message()));
    return;
  }
  reply_error("unknown request: use 'PUT' with one fd, or 'GET <ticket>'");
}

}  // namespace distorch
