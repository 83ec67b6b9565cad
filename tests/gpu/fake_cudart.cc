// A fake of the few CUDA runtime calls distorch makes, so the GPU tests can
// check the CUDA backend's *logic* (offsets, bounds, threading, error paths,
// freeing on the right device) on machines without a GPU. It says nothing
// about real CUDA behaviour or speed; tests on a real GPU do that.
//
// It is deliberately strict where real CUDA is forgiving or racy:
//  - Device memory is a memfd per allocation; a copy that touches bytes
//    outside an allocation fails with cudaErrorInvalidValue.
//  - Async copies run late: cudaMemcpyAsync only queues (reading its source
//    when it runs), and a stream's queue runs on cudaStreamSynchronize, on
//    cudaEventSynchronize (up to that event), cudaFree or cudaStreamDestroy.
//    Reusing a staging buffer too early, or returning before the stream is
//    drained, shows up as wrong bytes.
//  - A host-to-device cudaMemcpy returns with its write still queued on the
//    legacy stream (as a pageable copy may on real GPUs); device-to-host
//    copies, cudaStreamSynchronize(cudaStreamLegacy) and cudaFree run it.
//  - cudaMalloc/cudaFree/cudaMemGetInfo act on the calling thread's current
//    device; cudaFree with another device current fails.
// IPC handles name (pid, fd) of the memfd; another process opens
// /proc/PID/fd/FD. FAKE_CUDA_DEVICES (default 2) and FAKE_CUDA_MEMORY_MIB
// (default 4096) shape the machine.
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {

struct Allocation {
  int device;
  uint64_t size;
  int fd;         // owned unless imported
  bool imported;  // opened from another process's handle
};

struct FakeStream {
  int device;
  std::deque<std::function<void()>> queue;
  uint64_t queued = 0, ran = 0;  // sequence numbers
};

struct FakeEvent {
  FakeStream* stream = nullptr;
  uint64_t seq = 0;
};

constexpr char kMagic[8] = {'F', 'A', 'K', 'E', 'C', 'U', 'D', 'A'};
struct Handle {
  char magic[8];
  int32_t pid, fd;
  uint64_t size;
};
static_assert(sizeof(Handle) <= sizeof(cudaIpcMemHandle_t), "handle fits");

std::recursive_mutex mu;
std::map<uintptr_t, Allocation> allocations;  // by base address
std::map<int, uint64_t> used;                 // bytes per device
std::vector<FakeStream*> streams;
FakeStream* legacy[64] = {};
thread_local int current_device = 0;
thread_local cudaError_t last_error = cudaSuccess;

int DeviceCount() {
  const char* env = std::getenv("FAKE_CUDA_DEVICES");
  return env ? std::atoi(env) : 2;
}

uint64_t DeviceMemory() {
  const char* env = std::getenv("FAKE_CUDA_MEMORY_MIB");
  return (env ? std::strtoull(env, nullptr, 10) : 4096) << 20;
}

cudaError_t Fail(cudaError_t err) {
  last_error = err;
  return err;
}

// The allocation holding [p, p + n), or null.
Allocation* Find(const void* p, size_t n) {
  auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = allocations.upper_bound(addr);
  if (it == allocations.begin()) return nullptr;
  --it;
  if (addr - it->first > it->second.size || n > it->second.size - (addr - it->first)) {
    return nullptr;
  }
  return &it->second;
}

FakeStream* Legacy(int device) {
  if (legacy[device] == nullptr) legacy[device] = new FakeStream{device, {}, 0, 0};
  return legacy[device];
}

FakeStream* Resolve(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy) return Legacy(current_device);
  return reinterpret_cast<FakeStream*>(s);
}

void RunUpTo(FakeStream* s, uint64_t seq) {
  while (s->ran < seq && !s->queue.empty()) {
    std::function<void()> op = std::move(s->queue.front());
    s->queue.pop_front();
    op();
    ++s->ran;
  }
}

void RunAll() {
  for (FakeStream* s : streams) RunUpTo(s, s->queued);
  for (FakeStream* s : legacy) {
    if (s != nullptr) RunUpTo(s, s->queued);
  }
}

void Enqueue(FakeStream* s, std::function<void()> op) {
  s->queue.push_back(std::move(op));
  ++s->queued;
}

}  // namespace

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  *count = DeviceCount();
  return *count > 0 ? cudaSuccess : Fail(cudaErrorNoDevice);
}

cudaError_t cudaGetDevice(int* device) {
  *device = current_device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= DeviceCount()) return Fail(cudaErrorInvalidDevice);
  current_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) { return std::exchange(last_error, cudaSuccess); }

const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    default:
      return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t err) {
  return err == cudaSuccess ? "no error" : "fake CUDA runtime error";
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device < 0 || device >= DeviceCount()) return Fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "Fake GPU %d", device);
  prop->totalGlobalMem = DeviceMemory();
  prop->major = 9;
  prop->minor = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetPCIBusId(char* bus_id, int len, int device) {
  if (device < 0 || device >= DeviceCount()) return Fail(cudaErrorInvalidDevice);
  std::snprintf(bus_id, static_cast<size_t>(len), "0000:%02x:00.0", device + 1);
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device < 0 || device >= DeviceCount()) return Fail(cudaErrorInvalidDevice);
  *value = attr == cudaDevAttrComputeMode ? cudaComputeModeDefault : 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceCanAccessPeer(int* can, int device, int peer) {
  *can = device != peer;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  *total = DeviceMemory();
  *free = *total - used[current_device];
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t size) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  const uint64_t rounded = (size + (2 << 20) - 1) / (2 << 20) * (2 << 20);
  if (used[current_device] + rounded > DeviceMemory()) return Fail(cudaErrorMemoryAllocation);
  int fd = memfd_create("fake-cuda", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0)
    return Fail(cudaErrorMemoryAllocation);
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    return Fail(cudaErrorMemoryAllocation);
  }
  allocations[reinterpret_cast<uintptr_t>(p)] = {current_device, size, fd, false};
  used[current_device] += rounded;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lock(mu);
  auto it = allocations.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == allocations.end() || it->second.imported) return Fail(cudaErrorInvalidValue);
  if (it->second.device != current_device) return Fail(cudaErrorInvalidDevice);
  RunAll();  // cudaFree synchronises
  munmap(ptr, it->second.size);
  close(it->second.fd);
  used[it->second.device] -= (it->second.size + (2 << 20) - 1) / (2 << 20) * (2 << 20);
  allocations.erase(it);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** ptr, size_t size, unsigned int) {
  *ptr = std::malloc(size);
  return *ptr ? cudaSuccess : Fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  if (kind == cudaMemcpyHostToDevice) {
    if (Find(dst, n) == nullptr) return Fail(cudaErrorInvalidValue);
    // The source is staged now; the device write lands later.
    auto staged = std::make_shared<std::vector<uint8_t>>(static_cast<const uint8_t*>(src),
                                                         static_cast<const uint8_t*>(src) + n);
    Enqueue(Legacy(current_device),
            [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
    return cudaSuccess;
  }
  if (kind == cudaMemcpyDeviceToHost) {
    if (Find(src, n) == nullptr) return Fail(cudaErrorInvalidValue);
    FakeStream* s = Legacy(current_device);
    RunUpTo(s, s->queued);
    std::memcpy(dst, src, n);
    return cudaSuccess;
  }
  return Fail(cudaErrorInvalidValue);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  if (kind != cudaMemcpyHostToDevice || Find(dst, n) == nullptr) return Fail(cudaErrorInvalidValue);
  Enqueue(Resolve(stream), [dst, src, n] { std::memcpy(dst, src, n); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  auto* s = new FakeStream{current_device, {}, 0, 0};
  streams.push_back(s);
  *stream = reinterpret_cast<cudaStream_t>(s);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  FakeStream* s = reinterpret_cast<FakeStream*>(stream);
  RunUpTo(s, s->queued);
  for (auto it = streams.begin(); it != streams.end(); ++it) {
    if (*it == s) {
      streams.erase(it);
      delete s;
      return cudaSuccess;
    }
  }
  return Fail(cudaErrorInvalidValue);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  FakeStream* s = Resolve(stream);
  RunUpTo(s, s->queued);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  *event = reinterpret_cast<cudaEvent_t>(new FakeEvent);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete reinterpret_cast<FakeEvent*>(event);
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  auto* e = reinterpret_cast<FakeEvent*>(event);
  e->stream = Resolve(stream);
  e->seq = e->stream->queued;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  auto* e = reinterpret_cast<FakeEvent*>(event);
  if (e->stream != nullptr) RunUpTo(e->stream, e->seq);
  return cudaSuccess;
}

cudaError_t cudaIpcGetMemHandle(cudaIpcMemHandle_t* handle, void* ptr) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  auto it = allocations.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == allocations.end() || it->second.imported) return Fail(cudaErrorInvalidValue);
  Handle h;
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.pid = getpid();
  h.fd = it->second.fd;
  h.size = it->second.size;
  std::memset(handle, 0, sizeof(*handle));
  std::memcpy(handle, &h, sizeof(h));
  return cudaSuccess;
}

cudaError_t cudaIpcOpenMemHandle(void** ptr, cudaIpcMemHandle_t handle, unsigned int) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  Handle h;
  std::memcpy(&h, &handle, sizeof(h));
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0 || h.pid == getpid()) {
    return Fail(cudaErrorInvalidValue);
  }
  std::string path = "/proc/" + std::to_string(h.pid) + "/fd/" + std::to_string(h.fd);
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Fail(cudaErrorInvalidValue);
  void* p = mmap(nullptr, h.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    return Fail(cudaErrorInvalidValue);
  }
  allocations[reinterpret_cast<uintptr_t>(p)] = {current_device, h.size, fd, true};
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaIpcCloseMemHandle(void* ptr) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  auto it = allocations.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == allocations.end() || !it->second.imported) return Fail(cudaErrorInvalidValue);
  munmap(ptr, it->second.size);
  close(it->second.fd);
  allocations.erase(it);
  return cudaSuccess;
}

}  // extern "C"
