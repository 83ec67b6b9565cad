// gpu_ipc_child: the "other process" of the IPC tests and the benchmark. It
// opens arenas the way a client does (cudaIpcOpenMemHandle) and:
//   verify DEVICE HANDLE_HEX SIZE SEED   reads [0, SIZE) back and compares it
//                                        with Pattern(SEED); exit 0 if equal
//   hold DEVICE HANDLE_HEX               maps it, prints "ready", waits to be killed
//   time DEVICE HANDLE_HEX...            prints one line per handle: the ms
//                                        cudaIpcOpenMemHandle took (context
//                                        creation excluded)
// Exit codes: 0 ok, 1 bytes differ, 2 CUDA error, 3 usage.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/gpu/pattern.h"

namespace {

using distorch::testing::FromHex;
using distorch::testing::PatternByte;

bool Check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return true;
  std::fprintf(stderr, "gpu_ipc_child: %s: %s: %s\n", what, cudaGetErrorName(err),
               cudaGetErrorString(err));
  return false;
}

bool ParseHandle(const char* hex, cudaIpcMemHandle_t* handle) {
  std::string bytes = FromHex(hex);
  if (bytes.size() != sizeof(*handle)) {
    std::fprintf(stderr, "gpu_ipc_child: handle must be %zu hex bytes\n", sizeof(*handle));
    return false;
  }
  std::memcpy(handle, bytes.data(), sizeof(*handle));
  return true;
}

int Verify(const cudaIpcMemHandle_t& handle, uint64_t size, uint64_t seed) {
  void* ptr = nullptr;
  if (!Check(cudaIpcOpenMemHandle(&ptr, handle, cudaIpcMemLazyEnablePeerAccess),
             "cudaIpcOpenMemHandle")) {
    return 2;
  }
  std::vector<uint8_t> host(size);
  bool copied = Check(cudaMemcpy(host.data(), ptr, size, cudaMemcpyDeviceToHost), "cudaMemcpy");
  bool closed = Check(cudaIpcCloseMemHandle(ptr), "cudaIpcCloseMemHandle");
  if (!copied || !closed) return 2;
  for (uint64_t i = 0; i < size; ++i) {
    if (host[i] != PatternByte(seed, i)) {
      std::fprintf(stderr, "gpu_ipc_child: byte %llu differs\n",
                   static_cast<unsigned long long>(i));
      return 1;
    }
  }
  std::printf("verified %llu bytes\n", static_cast<unsigned long long>(size));
  return 0;
}

int Hold(const cudaIpcMemHandle_t& handle) {
  void* ptr = nullptr;
  if (!Check(cudaIpcOpenMemHandle(&ptr, handle, cudaIpcMemLazyEnablePeerAccess),
             "cudaIpcOpenMemHandle")) {
    return 2;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) pause();  // the test kills us while the mapping is open
}

int Time(const std::vector<cudaIpcMemHandle_t>& handles) {
  std::vector<void*> opened;
  for (const cudaIpcMemHandle_t& h : handles) {
    void* ptr = nullptr;
    auto begin = std::chrono::steady_clock::now();
    if (!Check(cudaIpcOpenMemHandle(&ptr, h, cudaIpcMemLazyEnablePeerAccess),
               "cudaIpcOpenMemHandle")) {
      return 2;
    }
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();
    std::printf("%.4f\n", ms);
    opened.push_back(ptr);
  }
  std::fflush(stdout);
  for (void* ptr : opened) {
    if (!Check(cudaIpcCloseMemHandle(ptr), "cudaIpcCloseMemHandle")) return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: gpu_ipc_child verify|hold|time DEVICE HANDLE_HEX...\n");
    return 3;
  }
  const std::string mode = argv[1];
  // Create the context first, so "time" measures the open alone.
  if (!Check(cudaSetDevice(std::atoi(argv[2])), "cudaSetDevice") ||
      !Check(cudaFree(nullptr), "creating the CUDA context")) {
    return 2;
  }
  std::vector<cudaIpcMemHandle_t> handles;
  const int handle_args = mode == "verify" ? 1 : argc - 3;
  for (int i = 0; i < handle_args; ++i) {
    cudaIpcMemHandle_t h;
    if (!ParseHandle(argv[3 + i], &h)) return 3;
    handles.push_back(h);
  }
  if (mode == "verify" && argc == 6) {
    return Verify(handles[0], std::strtoull(argv[4], nullptr, 10),
                  std::strtoull(argv[5], nullptr, 10));
  }
  if (mode == "hold" && argc == 4) return Hold(handles[0]);
  if (mode == "time") return Time(handles);
  std::fprintf(stderr, "gpu_ipc_child: bad arguments for '%s'\n", mode.c_str());
  return 3;
}
