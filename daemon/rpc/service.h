// The gRPC face of the broker (distorch.v1.Broker, callback API). Handlers
// convert messages, call the Broker, convert back; loads run on their own
// thread, never on a gRPC callback thread.
#ifndef DISTORCH_DAEMON_RPC_SERVICE_H_
#define DISTORCH_DAEMON_RPC_SERVICE_H_

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "daemon/broker.h"
#include "distorch/v1/broker.grpc.pb.h"

namespace distorch {

class SessionReactor;

// Thread-safe.
class BrokerService final : public v1::Broker::CallbackService {
 public:
  explicit BrokerService(Broker* broker);
  ~BrokerService() override;

  grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionEvent>* Session(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerWriteReactor<v1::LoadEvent>* Load(grpc::CallbackServerContext* ctx,
                                                const v1::LoadRequest* req) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* ctx, const v1::ReleaseRequest* req,
                                    v1::ReleaseReply* reply) override;
  grpc::ServerUnaryReactor* Free(grpc::CallbackServerContext* ctx, const v1::FreeRequest* req,
                                 v1::FreeReply* reply) override;
  grpc::ServerUnaryReactor* SoftEmptyCache(grpc::CallbackServerContext* ctx,
                                           const v1::SoftEmptyCacheRequest* req,
                                           v1::SoftEmptyCacheReply* reply) override;
  grpc::ServerUnaryReactor* SetKeepLoaded(grpc::CallbackServerContext* ctx,
                                          const v1::SetKeepLoadedRequest* req,
                                          v1::SetKeepLoadedReply* reply) override;
  grpc::ServerUnaryReactor* Evict(grpc::CallbackServerContext* ctx, const v1::EvictRequest* req,
                                  v1::EvictReply* reply) override;
  grpc::ServerUnaryReactor* Plan(grpc::CallbackServerContext* ctx, const v1::PlanRequest* req,
                                 v1::PlanReply* reply) override;
  grpc::ServerUnaryReactor* ListDevices(grpc::CallbackServerContext* ctx,
                                        const v1::ListDevicesRequest* req,
                                        v1::ListDevicesReply* reply) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const v1::ListModelsRequest* req,
                                       v1::ListModelsReply* reply) override;
  grpc::ServerUnaryReactor* ListSessions(grpc::CallbackServerContext* ctx,
                                         const v1::ListSessionsRequest* req,
                                         v1::ListSessionsReply* reply) override;
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const v1::StatusRequest* req,
                                   v1::StatusReply* reply) override;

  // SessionReactor bookkeeping, so evictions reach the sessions they touch.
  void Register(SessionId id, SessionReactor* reactor);
  void Unregister(SessionId id);
  Broker* broker() { return broker_; }

 private:
  void NotifyEvicted(SessionId session, ResidencyId model, const std::string& name);

  Broker* broker_;
  absl::Mutex mu_;
  absl::flat_hash_map<SessionId, SessionReactor*> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_RPC_SERVICE_H_
