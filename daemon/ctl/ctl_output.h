// Helpers shared by distorchctl's commands.
#ifndef DISTORCH_DAEMON_CTL_CTL_OUTPUT_H_
#define DISTORCH_DAEMON_CTL_CTL_OUTPUT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "daemon/ctl/broker_client.h"
#include "daemon/ctl/commands.h"
#include "google/protobuf/message.h"

namespace distorch {

// Prints a reply as one line of JSON: field names as in broker.proto,
// defaults included, integers (byte counts, ids) as JSON numbers
// (proto_json.h).
absl::Status PrintJson(const google::protobuf::Message& message);

absl::StatusOr<std::unique_ptr<BrokerClient>> ConnectForCtl(const CtlContext& ctx);

// Human view of a placement: per device its quota, bytes, share of the model
// and blocks, then the planner's notes. With `list_blocks` also the runs of
// consecutive blocks on one device, tiny blocks folded into their
// neighbours' runs ("blocks 1-307 (307 blocks) on sim:0 ...").
void PrintPlacement(const v1::Placement& placement, bool list_blocks);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_CTL_CTL_OUTPUT_H_
