#include "daemon/fdpass/scm_rights.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace distorch {
namespace {

absl::Status Errno(absl::string_view what) {
  int err = errno;
  return absl::ErrnoToStatus(err, what);  // it appends strerror(err)
}

}  // namespace

absl::Status SendLineWithFds(int sock, absl::string_view line, const std::vector<int>& fds) {
  if (fds.size() > kMaxFdsPerMessage) {
    return absl::InvalidArgumentError(absl::StrCat("too many fds in one message: ", fds.size()));
  }
  iovec iov{const_cast<char*>(line.data()), line.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t sent;
  do {
    sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return Errno("fd channel send");
  if (static_cast<size_t>(sent) != line.size()) {
    return absl::UnavailableError("fd channel send: short write");
  }
  return absl::OkStatus();
}

absl::StatusOr<ReceivedLine> ReceiveLineWithFds(int sock) {
  ReceivedLine out;
  char buf[kMaxFdChannelLine];
  // Lines are tiny and sent in one sendmsg, but a stream socket may still
  // split them: keep reading until '\n'. Fds arrive with the first byte.
  while (true) {
    iovec iov{buf, sizeof(buf) - out.line.size()};
    if (iov.iov_len == 0) return absl::InvalidArgumentError("fd channel line too long");
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t got;
    do {
      got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return Errno("fd channel receive");
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < n; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        out.fds.emplace_back(fd);
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      return absl::InvalidArgumentError("fd channel: too many fds attached");
    }
    if (got == 0) return absl::UnavailableError("fd channel closed before a full line");
    out.line.append(buf, static_cast<size_t>(got));
    if (size_t nl = out.line.find('\n'); nl != std::string::npos) {
      out.line.resize(nl);
      return out;
    }
  }
}

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Errno("socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Errno(absl::StrCat("connect ", path));
  }
  return fd;
}

}  // namespace distorch
