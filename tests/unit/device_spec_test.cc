#include "distorch/device_spec.h"

#include <catch2/catch.hpp>

#include "distorch/units.h"

namespace distorch {
namespace {

TEST_CASE("ParseDeviceSpec reads simulated devices and limits", "[device_spec]") {
  absl::StatusOr<std::vector<DeviceSpecEntry>> spec =
      ParseDeviceSpec(" sim:0=24GiB, SIM:1 = 12g ,cpu=64GiB");
  REQUIRE(spec.ok());
  REQUIRE(spec->size() == 3);
  CHECK((*spec)[0].device == DeviceId::Sim(0));
  CHECK((*spec)[0].bytes == 24 * kGiB);
  CHECK((*spec)[1].device == DeviceId::Sim(1));
  CHECK((*spec)[1].bytes == 12 * kGiB);
  CHECK((*spec)[2].device == DeviceId::Cpu());
  CHECK(ParseDeviceSpec("").ok());
  CHECK(ParseDeviceSpec("  ")->empty());
}

TEST_CASE("ParseDeviceSpec explains malformed entries", "[device_spec]") {
  auto [text, want] = GENERATE(table<std::string, std::string>({
      {"sim:0", "device spec entry 'sim:0': write DEVICE=SIZE"},
      {"sim:0=", "write DEVICE=SIZE"},
      {"sim:0=24GiB,sim:0=1g", "sim:0 is declared twice"},
      {"mps=8g", "this broker serves cpu, cuda:N and sim:N only"},
      {"sim:0=0", "the size must be above zero"},
      {"sim:0=12q", "device spec entry 'sim:0=12q'"},
  }));
  CAPTURE(text);
  absl::StatusOr<std::vector<DeviceSpecEntry>> spec = ParseDeviceSpec(text);
  REQUIRE_FALSE(spec.ok());
  CHECK_THAT(std::string(spec.status().message()), Catch::Contains(want));
}

}  // namespace
}  // namespace distorch
