// Helpers for the GPU tests: temporary files, child processes, free memory.
#ifndef DISTORCH_TESTS_GPU_GPU_TEST_UTIL_H_
#define DISTORCH_TESTS_GPU_GPU_TEST_UTIL_H_

#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "daemon/fdpass/unique_fd.h"
#include "tests/gpu/pattern.h"

extern char** environ;

namespace distorch::testing {

// The exit code CTest's SKIP_RETURN_CODE turns into "skipped".
inline constexpr int kSkipExitCode = 77;

inline int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

// Bytes cudaMemGetInfo reports free on `device`.
inline uint64_t GpuFreeBytes(int device) {
  size_t free = 0, total = 0;
  if (cudaSetDevice(device) != cudaSuccess || cudaMemGetInfo(&free, &total) != cudaSuccess)
    return 0;
  return free;
}

// A file under $TMPDIR (or /tmp), removed on destruction.
class TempFile {
 public:
  TempFile() {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir && *dir ? dir : "/tmp") + "/distorch-gpu-XXXXXX";
    fd_.Reset(mkstemp(path_.data()));
  }
  ~TempFile() { unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  // Appends Pattern(seed) bytes [begin, begin + n). False on a short write.
  bool AppendPattern(uint64_t seed, uint64_t n, uint64_t begin = 0) {
    const uint64_t kStep = 8ULL << 20;
    for (uint64_t done = 0; done < n; done += kStep) {
      std::vector<uint8_t> bytes = Pattern(seed, std::min(kStep, n - done), begin + done);
      if (write(fd_.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
        return false;
      }
    }
    return true;
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

// A child process with its stdout on a pipe (or in a log file).
struct Child {
  pid_t pid = -1;
  UniqueFd out;  // read end of its stdout; empty with a log file
};

// Starts argv[0] (a path) with `args`. With `log_path`, stdout and stderr go
// there instead of to the pipe.
inline Child Spawn(const std::vector<std::string>& args, const std::string& log_path = "") {
  Child child;
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return child;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (log_path.empty()) {
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) == 0) child.pid = pid;
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (log_path.empty()) {
    child.out.Reset(pipe_fds[0]);
  } else {
    close(pipe_fds[0]);
  }
  return child;
}

// Reads the child's stdout until it closes (or `until` appears).
inline std::string ReadOutput(const Child& child, const std::string& until = "") {
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t got = read(child.out.get(), buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    text.append(buf, static_cast<size_t>(got));
    if (!until.empty() && text.find(until) != std::string::npos) break;
  }
  return text;
}

// The child's exit code; -signal if a signal ended it; -1000 if it outlived
// `timeout` (it is killed then).
inline int WaitChild(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t got = waitpid(pid, &status, WNOHANG);
    if (got == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    if (got < 0) return -2000;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1000;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace distorch::testing

#endif  // DISTORCH_TESTS_GPU_GPU_TEST_UTIL_H_
