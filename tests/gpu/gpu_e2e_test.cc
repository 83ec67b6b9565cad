// End to end: a real distorchd with cuda:0 and a host device (cpu, or sim:1)
// loads a safetensors file; this test process, a client like ComfyUI, opens
// the CUDA arenas with cudaIpcOpenMemHandle and the host arenas through the fd
// channel, and reads every tensor back byte-exact. Then a client killed while
// it maps a CUDA arena, and the release that gives the memory back.
#include <cuda_runtime_api.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/ctl/broker_client.h"
#include "distorch/units.h"
#include "tests/gpu/gpu_test_util.h"

namespace distorch {
namespace {

using namespace std::chrono_literals;
using testing::Child;
using testing::Pattern;
using testing::Spawn;
using testing::TempFile;
using testing::WaitChild;

constexpr uint64_t kSeed = 31;

struct Tensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
  uint64_t begin = 0;  // inside the data section = index into Pattern(kSeed)
};

// 24 blocks of an F32 weight and an F16 bias (~25 MiB) plus a few odd ones.
std::vector<Tensor> ModelTensors() {
  std::vector<Tensor> out;
  auto add = [&out](std::string name, std::string dtype, std::vector<int64_t> shape, int size) {
    uint64_t n = static_cast<uint64_t>(size);
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    uint64_t begin = out.empty() ? 0 : out.back().begin + out.back().nbytes;
    out.push_back({std::move(name), std::move(dtype), std::move(shape), n, begin});
  };
  add("embed.weight", "BF16", {1000, 77}, 2);
  for (int i = 0; i < 24; ++i) {
    add(absl::StrCat("blocks.", i, ".linear.weight"), "F32", {512, 512 + i}, 4);
    add(absl::StrCat("blocks.", i, ".linear.bias"), "F16", {512 + i}, 2);
  }
  add("head.scale", "U8", {3}, 1);
  return out;
}

// Writes a safetensors file whose data section is Pattern(kSeed).
void WriteSafetensors(TempFile& file, const std::vector<Tensor>& tensors) {
  std::vector<std::string> entries;
  for (const Tensor& t : tensors) {
    entries.push_back(absl::StrCat("\"", t.name, "\":{\"dtype\":\"", t.dtype, "\",\"shape\":[",
                                   absl::StrJoin(t.shape, ","), "],\"data_offsets\":[", t.begin,
                                   ",", t.begin + t.nbytes, "]}"));
  }
  std::string header = absl::StrCat("{", absl::StrJoin(entries, ","), "}");
  header.resize((header.size() + 7) / 8 * 8, ' ');
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(header.size() >> (8 * i));
  REQUIRE(write(file.fd(), length, 8) == 8);
  REQUIRE(write(file.fd(), header.data(), header.size()) == static_cast<ssize_t>(header.size()));
  REQUIRE(file.AppendPattern(kSeed, tensors.back().begin + tensors.back().nbytes));
}

// A distorchd on a temporary socket; SIGTERM and a clean exit on destruction.
class Daemon {
 public:
  explicit Daemon(const std::string& devices) {
    char dir[] = "/tmp/distorch-gpu-e2e-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    dir_ = dir;
    socket_ = dir_ + "/d.sock";
    std::vector<std::string> args = {DISTORCHD, "--socket", socket_, "--log-level", "debug"};
    if (!devices.empty()) args.insert(args.end(), {"--devices", devices});
    child_ = Spawn(args, dir_ + "/distorchd.log");
    REQUIRE(child_.pid > 0);
  }
  ~Daemon() {
    kill(child_.pid, SIGTERM);
    int code = WaitChild(child_.pid, 30s);
    CHECK(code == 0);
    if (code != 0) UNSCOPED_INFO("distorchd log in " << dir_);
  }
  const std::string& socket() const { return socket_; }

 private:
  std::string dir_, socket_;
  Child child_;
};

uint64_t DeviceBrokerBytes(BrokerClient& client, const std::string& device) {
  grpc::ClientContext rpc;
  v1::ListDevicesReply reply;
  REQUIRE(client.stub().ListDevices(&rpc, {}, &reply).ok());
  for (const v1::DeviceInfo& d : reply.devices()) {
    if (d.name() == device) return d.broker_bytes();
  }
  FAIL("no device " << device);
  return 0;
}

TEST_CASE("A second process reads every tensor of a broker-loaded model byte-exact", "[e2e]") {
  auto [devices, allocation, host_device] = GENERATE(table<std::string, std::string, std::string>({
      {"", "cuda:0,12MiB;cpu,*", "cpu"},
      {"sim:1=1GiB", "cuda:0,12MiB;sim:1,*", "sim:1"},
  }));
  CAPTURE(devices, allocation);
  const std::vector<Tensor> tensors = ModelTensors();
  TempFile file;
  WriteSafetensors(file, tensors);
  std::map<std::string, const Tensor*> by_name;
  for (const Tensor& t : tensors) by_name[t.name] = &t;

  Daemon daemon(devices);
  absl::StatusOr<std::unique_ptr<BrokerClient>> client =
      BrokerClient::Connect(daemon.socket(), absl::Seconds(30));
  REQUIRE(client.ok());
  REQUIRE((*client)->OpenSession("gpu_e2e_test").ok());

  {  // The GPU is listed with its details.
    grpc::ClientContext rpc;
    v1::ListDevicesReply reply;
    REQUIRE((*client)->stub().ListDevices(&rpc, {}, &reply).ok());
    bool seen = false;
    for (const v1::DeviceInfo& d : reply.devices()) {
      if (d.name() != "cuda:0") continue;
      seen = true;
      CHECK(d.kind() == "cuda");
      CHECK(!d.pci_bus_id().empty());
      CHECK(!d.compute_capability().empty());
      CHECK(d.total_bytes() > 0);
    }
    CHECK(seen);
  }

  absl::StatusOr<std::string> ticket = (*client)->PutFile(file.fd());
  REQUIRE(ticket.ok());
  v1::LoadRequest request;
  request.set_file_ticket(*ticket);
  request.set_name("e2e.safetensors");
  request.set_allocation(allocation);
  request.set_compute_device("cuda:0");
  absl::StatusOr<v1::LoadResult> result = (*client)->Load(request, nullptr);
  REQUIRE(result.ok());
  REQUIRE(result->tensors_size() == static_cast<int>(tensors.size()));

  // Open each arena once: IPC for CUDA, mmap for host.
  absl::StatusOr<std::vector<UniqueFd>> fds = (*client)->GetArenaFds(result->arena_ticket());
  REQUIRE(fds.ok());
  std::vector<const uint8_t*> host(result->arenas_size(), nullptr);
  std::vector<void*> gpu(result->arenas_size(), nullptr);
  size_t next_fd = 0;
  int cuda_arenas = 0, host_arenas = 0;
  for (const v1::Arena& a : result->arenas()) {
    if (a.kind() == v1::Arena::CUDA_IPC) {
      ++cuda_arenas;
      CHECK(a.device() == "cuda:0");
      REQUIRE(a.cuda_ipc_handle().size() == sizeof(cudaIpcMemHandle_t));
      cudaIpcMemHandle_t h;
      std::memcpy(&h, a.cuda_ipc_handle().data(), sizeof(h));
      REQUIRE(cudaSetDevice(a.cuda_device()) == cudaSuccess);
      REQUIRE(cudaIpcOpenMemHandle(&gpu[a.index()], h, cudaIpcMemLazyEnablePeerAccess) ==
              cudaSuccess);
    } else {
      ++host_arenas;
      CHECK(a.device() == host_device);
      REQUIRE(next_fd < fds->size());
      void* m = mmap(nullptr, a.bytes(), PROT_READ, MAP_SHARED, (*fds)[next_fd++].get(), 0);
      REQUIRE(m != MAP_FAILED);
      host[a.index()] = static_cast<const uint8_t*>(m);
    }
  }
  CHECK(cuda_arenas == 1);
  CHECK(host_arenas == 1);

  for (const v1::TensorLocation& loc : result->tensors()) {
    CAPTURE(loc.name(), loc.arena(), loc.offset());
    const Tensor& t = *by_name.at(loc.name());
    REQUIRE(loc.nbytes() == t.nbytes);
    std::vector<uint8_t> got(t.nbytes);
    if (gpu[loc.arena()] != nullptr) {
      REQUIRE(cudaMemcpy(got.data(), static_cast<uint8_t*>(gpu[loc.arena()]) + loc.offset(),
                         t.nbytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    } else {
      std::memcpy(got.data(), host[loc.arena()] + loc.offset(), t.nbytes);
    }
    CHECK(got == Pattern(kSeed, t.nbytes, t.begin));
  }

  for (const v1::Arena& a : result->arenas()) {
    if (gpu[a.index()] != nullptr) CHECK(cudaIpcCloseMemHandle(gpu[a.index()]) == cudaSuccess);
    if (host[a.index()] != nullptr) munmap(const_cast<uint8_t*>(host[a.index()]), a.bytes());
  }

  // A client that dies holding a mapping does not pin the arena.
  for (const v1::Arena& a : result->arenas()) {
    if (a.kind() != v1::Arena::CUDA_IPC) continue;
    Child holder = Spawn({GPU_IPC_CHILD, "hold", std::to_string(a.cuda_device()),
                          testing::ToHex(a.cuda_ipc_handle())});
    REQUIRE(holder.pid > 0);
    REQUIRE(testing::ReadOutput(holder, "ready\n") == "ready\n");
    REQUIRE(kill(holder.pid, SIGKILL) == 0);
    CHECK(WaitChild(holder.pid, 30s) == -SIGKILL);
  }

  CHECK(DeviceBrokerBytes(**client, "cuda:0") > 0);
  {
    grpc::ClientContext rpc;
    v1::ReleaseRequest release;
    release.set_session_id((*client)->session_id());
    release.set_lease_id(result->lease_id());
    v1::ReleaseReply reply;
    REQUIRE((*client)->stub().Release(&rpc, release, &reply).ok());
    CHECK(reply.model().destroyed());
  }
  uint64_t left = 1;
  for (int i = 0; i < 100 && left != 0; ++i) {
    left = DeviceBrokerBytes(**client, "cuda:0");
    if (left != 0) std::this_thread::sleep_for(50ms);
  }
  CHECK(left == 0);
}

}  // namespace
}  // namespace distorch
