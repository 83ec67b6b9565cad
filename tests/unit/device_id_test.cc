// Device names as users and ComfyUI-MultiGPU write them.
#include "distorch/device_id.h"

#include <catch2/catch.hpp>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace distorch {
namespace {

TEST_CASE("ParseDeviceId tolerates case and whitespace", "[device]") {
  auto [text, type, index, canonical] = GENERATE(table<std::string, DeviceType, int, std::string>({
      {"cpu", DeviceType::kCpu, 0, "cpu"},
      {" CPU ", DeviceType::kCpu, 0, "cpu"},
      {"cpu:0", DeviceType::kCpu, 0, "cpu"},
      {"cuda", DeviceType::kCuda, 0, "cuda:0"},
      {"cuda:0", DeviceType::kCuda, 0, "cuda:0"},
      {"CUDA:1", DeviceType::kCuda, 1, "cuda:1"},
      {" cuda : 2 ", DeviceType::kCuda, 2, "cuda:2"},
      {"cuda:010", DeviceType::kCuda, 10, "cuda:10"},
      {"sim:3", DeviceType::kSim, 3, "sim:3"},
      {"mps", DeviceType::kMps, 0, "mps"},
      {"MPS:0", DeviceType::kMps, 0, "mps"},
      {"xpu:0", DeviceType::kXpu, 0, "xpu:0"},
      {"npu:1", DeviceType::kNpu, 1, "npu:1"},
      {"mlu:0", DeviceType::kMlu, 0, "mlu:0"},
      {"hpu", DeviceType::kHpu, 0, "hpu:0"},
      {"directml:0", DeviceType::kDirectml, 0, "directml:0"},
  }));
  CAPTURE(text);
  absl::StatusOr<DeviceId> id = ParseDeviceId(text);
  INFO(id.status().ToString());
  REQUIRE(id.ok());
  CHECK(id->type == type);
  CHECK(id->index == index);
  CHECK(id->ToString() == canonical);
  absl::StatusOr<DeviceId> again = ParseDeviceId(canonical);
  REQUIRE(again.ok());
  CHECK(*again == *id);
}

TEST_CASE("ParseDeviceId names the text and the fix", "[device]") {
  auto [text, message] = GENERATE(table<std::string, std::string>({
      {"gpu:0",
       "unknown device type 'gpu' in 'gpu:0' (use cpu, cuda:N or "
       "sim:N)"},
      {"cuda:x", "bad device index in 'cuda:x' (use cuda:N with N >= 0)"},
      {"cuda:-1", "bad device index in 'cuda:-1' (use cuda:N with N >= 0)"},
      {"cuda:", "bad device index in 'cuda:' (use cuda:N with N >= 0)"},
      {"sim:1234567890",
       "bad device index in 'sim:1234567890' (use sim:N "
       "with N >= 0)"},
      {"", "empty device name (use cpu, cuda:N or sim:N)"},
      {"  ", "empty device name (use cpu, cuda:N or sim:N)"},
      {"cpu:1",
       "bad device index in 'cpu:1' (there is one cpu device: write "
       "cpu)"},
      {"mps:2",
       "bad device index in 'mps:2' (there is one mps device: write "
       "mps)"},
      {":0", "unknown device type '' in ':0' (use cpu, cuda:N or sim:N)"},
      {"cu da:0",
       "unknown device type 'cu da' in 'cu da:0' (use cpu, cuda:N "
       "or sim:N)"},
  }));
  CAPTURE(text);
  absl::StatusOr<DeviceId> id = ParseDeviceId(text);
  REQUIRE_FALSE(id.ok());
  CHECK(id.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(id.status().message()) == message);
}

TEST_CASE("DeviceId compares, orders and hashes by type then index", "[device]") {
  CHECK(DeviceId::Cuda(0) == DeviceId::Cuda(0));
  CHECK(DeviceId::Cuda(0) != DeviceId::Cuda(1));
  CHECK(DeviceId::Cuda(0) != DeviceId::Sim(0));
  CHECK(DeviceId::Cpu() < DeviceId::Cuda(0));
  CHECK(DeviceId::Cuda(0) < DeviceId::Cuda(1));
  absl::flat_hash_set<DeviceId> set = {DeviceId::Cpu(), DeviceId::Cuda(1), DeviceId::Cuda(1),
                                       DeviceId::Sim(0)};
  CHECK(set.size() == 3);
  CHECK(set.contains(DeviceId::Cuda(1)));
  CHECK(DeviceId::Sim(2).ToString() == "sim:2");
  CHECK(DeviceId::Cpu().is_cpu());
}

}  // namespace
}  // namespace distorch
