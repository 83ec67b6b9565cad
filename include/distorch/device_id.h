// Device names: "cpu", "cuda:1", "sim:0", and the other torch device types a
// ComfyUI-MultiGPU allocation string may name.
#ifndef DISTORCH_DEVICE_ID_H_
#define DISTORCH_DEVICE_ID_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace distorch {

// kSim is a host-backed stand-in for a GPU, used by tests and dry runs.
// kMps/kXpu/kNpu/kMlu/kHpu/kDirectml parse (so MultiGPU strings are read
// correctly) but this broker serves only cpu, cuda and sim.
enum class DeviceType { kCpu, kCuda, kSim, kMps, kXpu, kNpu, kMlu, kHpu, kDirectml };

struct DeviceId {
  DeviceType type = DeviceType::kCpu;
  int index = 0;  // always 0 for cpu and mps

  static DeviceId Cpu() { return {DeviceType::kCpu, 0}; }
  static DeviceId Cuda(int i) { return {DeviceType::kCuda, i}; }
  static DeviceId Sim(int i) { return {DeviceType::kSim, i}; }

  // "cpu", "mps", "cuda:0", "sim:3".
  std::string ToString() const;
  bool is_cpu() const { return type == DeviceType::kCpu; }

  friend bool operator==(const DeviceId& a, const DeviceId& b) {
    return a.type == b.type && a.index == b.index;
  }
  friend bool operator!=(const DeviceId& a, const DeviceId& b) { return !(a == b); }
  friend bool operator<(const DeviceId& a, const DeviceId& b) {
    return a.type != b.type ? a.type < b.type : a.index < b.index;
  }
  template <typename H>
  friend H AbslHashValue(H h, const DeviceId& d) {
    return H::combine(std::move(h), d.type, d.index);
  }
};

// Parses a device name, tolerating surrounding whitespace and any case:
// "cpu", " CUDA:1 ", "cuda" (= cuda:0), "sim:2", "mps", "xpu:0".
// Errors name the text and the fix, e.g.
//   "unknown device type 'gpu' in 'gpu:0' (use cpu, cuda:N or sim:N)",
//   "bad device index in 'cuda:x' (use cuda:N with N >= 0)".
absl::StatusOr<DeviceId> ParseDeviceId(absl::string_view text);

}  // namespace distorch

#endif  // DISTORCH_DEVICE_ID_H_
