// Conversions between distorch.v1 messages and the core library's types
// (tensors, placements). Shared by distorchd and distorchctl, so it depends on
// the core and the generated messages only: no broker, no gRPC runtime.
#ifndef DISTORCH_DAEMON_RPC_CORE_CONVERT_H_
#define DISTORCH_DAEMON_RPC_CORE_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "distorch/planner.h"
#include "distorch/tensor_info.h"
#include "distorch/v1/broker.pb.h"

namespace distorch {

absl::StatusOr<TensorInfo> FromProto(const v1::TensorMeta& meta);
void ToProto(const TensorInfo& tensor, v1::TensorMeta* out);
void ToProto(const Placement& placement, const std::string& compute, const std::string& allocation,
             v1::Placement* out);
const char* ReasonName(PlacementReason reason);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_RPC_CORE_CONVERT_H_
