// Conversions between distorch.v1 messages and the broker's C++ types. No
// policy here: the service calls these and the broker, nothing else.
#ifndef DISTORCH_DAEMON_PROTO_CONVERT_H_
#define DISTORCH_DAEMON_PROTO_CONVERT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/broker.h"
#include "distorch/v1/broker.pb.h"
#include "grpcpp/support/status.h"

namespace distorch {

grpc::Status ToGrpcStatus(const absl::Status& status);  // absl codes == gRPC codes

absl::StatusOr<TensorInfo> FromProto(const v1::TensorMeta& meta);
void ToProto(const TensorInfo& tensor, v1::TensorMeta* out);
void ToProto(const Placement& placement, const std::string& compute,
             const std::string& allocation, v1::Placement* out);
void ToProto(const LoadOutcome& outcome, v1::LoadResult* out);
void ToProto(const EndedResidency& ended, v1::ModelRef* out);
// One ModelRef per model whose lease was released; destroyed when it ended.
void ToProto(const FreeOutcome& freed, v1::FreeReply* out);
void ToProto(const LeaseSnapshot& lease, v1::LeaseInfo* out);
void ToProto(const ModelView& model, v1::ModelInfo* out);
void ToProto(const SessionSnapshot& session, v1::SessionInfo* out);
void ToProto(const DeviceView& device, v1::DeviceInfo* out);
const char* ReasonName(PlacementReason reason);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_PROTO_CONVERT_H_
