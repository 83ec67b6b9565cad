// Helpers shared by distorchctl's commands.
#ifndef DISTORCH_DAEMON_CTL_CTL_OUTPUT_H_
#define DISTORCH_DAEMON_CTL_CTL_OUTPUT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "daemon/ctl/broker_client.h"
#include "daemon/ctl/commands.h"
#include "google/protobuf/message.h"

namespace distorch {

// Prints a reply as one JSON object (proto3 JSON mapping: field names as in
// broker.proto, 64-bit integers as strings, defaults included).
absl::Status PrintJson(const google::protobuf::Message& message);

absl::StatusOr<std::unique_ptr<BrokerClient>> ConnectForCtl(const CtlContext& ctx);

// Human view of a placement: per-device bytes, runs of blocks, notes.
void PrintPlacement(const v1::Placement& placement);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_CTL_CTL_OUTPUT_H_
