#ifndef DISTORCH_TESTS_DAEMON_SIM_BROKER_H_
#define DISTORCH_TESTS_DAEMON_SIM_BROKER_H_

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "daemon/broker.h"
#include "daemon/config.h"
#include "daemon/devices/device_set.h"

namespace distorch::testing {

// A Broker over simulated devices (no CUDA discovery) for the broker tests;
// `devices` is a --devices spec such as "sim:0=64MiB,sim:1=64MiB".
inline std::unique_ptr<Broker> MakeSimBroker(const std::string& devices = "sim:0=64MiB") {
  DaemonConfig config;
  config.cuda = false;
  REQUIRE(ApplyDeviceSpec(devices, &config).ok());
  absl::StatusOr<std::unique_ptr<DeviceSet>> device_set = DeviceSet::Build(config);
  REQUIRE(device_set.ok());
  return std::make_unique<Broker>(config, *std::move(device_set));
}

}  // namespace distorch::testing

#endif  // DISTORCH_TESTS_DAEMON_SIM_BROKER_H_
