// Conversions between distorch.v1 messages and the broker's C++ types (the
// core types' conversions, shared with distorchctl, are in core_convert.h). No
// policy here: the service calls these and the broker, nothing else.
#ifndef DISTORCH_DAEMON_RPC_PROTO_CONVERT_H_
#define DISTORCH_DAEMON_RPC_PROTO_CONVERT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/broker.h"
#include "daemon/rpc/core_convert.h"
#include "distorch/v1/broker.pb.h"
#include "grpcpp/support/status.h"

namespace distorch {

grpc::Status ToGrpcStatus(const absl::Status& status);  // absl codes == gRPC codes

void ToProto(const LoadOutcome& outcome, v1::LoadResult* out);
void ToProto(const EndedResidency& ended, v1::ModelRef* out);
// One ModelRef per model whose lease was released; destroyed when it ended.
void ToProto(const FreeOutcome& freed, v1::FreeReply* out);
// The released lease's model, destroyed or not.
void ToProto(const FreeOutcome& released, v1::ReleaseReply* out);
void ToProto(const LeaseSnapshot& lease, v1::LeaseInfo* out);
void ToProto(const ModelView& model, v1::ModelInfo* out);
void ToProto(const SessionSnapshot& session, v1::SessionInfo* out);
void ToProto(const DeviceView& device, v1::DeviceInfo* out);
void ToProto(const BrokerStatus& status, v1::StatusReply* out);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_RPC_PROTO_CONVERT_H_
