#include "distorch/device_spec.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "distorch/units.h"

namespace distorch {

absl::StatusOr<std::vector<DeviceSpecEntry>> ParseDeviceSpec(absl::string_view text) {
  std::vector<DeviceSpecEntry> out;
  absl::flat_hash_set<DeviceId> seen;
  if (absl::StripAsciiWhitespace(text).empty()) return out;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    absl::string_view trimmed = absl::StripAsciiWhitespace(item);
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(trimmed, '=');
    if (trimmed.find('=') == absl::string_view::npos || kv.first.empty() || kv.second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("device spec entry '", trimmed, "': write DEVICE=SIZE, e.g. sim:0=24GiB"));
    }
    absl::StatusOr<DeviceId> device = ParseDeviceId(kv.first);
    if (!device.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("device spec entry '", trimmed, "': ", device.status().message()));
    }
    if (device->type != DeviceType::kCpu && device->type != DeviceType::kCuda &&
        device->type != DeviceType::kSim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device spec entry '", trimmed, "': this broker serves cpu, cuda:N and sim:N only"));
    }
    absl::StatusOr<uint64_t> bytes = ParseByteSize(kv.second);
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("device spec entry '", trimmed, "': ", bytes.status().message()));
    }
    if (*bytes == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("device spec entry '", trimmed, "': the size must be above zero"));
    }
    if (!seen.insert(*device).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device spec: ", device->ToString(), " is declared twice; declare each device once"));
    }
    out.push_back({*device, *bytes});
  }
  return out;
}

}  // namespace distorch
