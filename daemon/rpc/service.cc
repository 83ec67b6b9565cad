#include "daemon/rpc/service.h"

#include "absl/strings/str_cat.h"
#include "daemon/rpc/proto_convert.h"
#include "daemon/rpc/service_reactors.h"

namespace distorch {
namespace {

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

BrokerService::BrokerService(Broker* broker) : broker_(broker) {
  broker_->SetEvictionListener(
      [this](SessionId s, ResidencyId m, const std::string& name) { NotifyEvicted(s, m, name); });
}

BrokerService::~BrokerService() { broker_->SetEvictionListener(nullptr); }

void BrokerService::Register(SessionId id, SessionReactor* reactor) {
  absl::MutexLock lock(&mu_);
  sessions_[id] = reactor;
}

void BrokerService::Unregister(SessionId id) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(id);
}

void BrokerService::NotifyEvicted(SessionId session, ResidencyId model, const std::string& name) {
  v1::SessionEvent event;
  event.mutable_evicted()->set_model_id(model);
  event.mutable_evicted()->set_name(name);
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session);
  if (it != sessions_.end()) it->second->Push(std::move(event));
}

grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionEvent>* BrokerService::Session(
    grpc::CallbackServerContext*) {
  return new SessionReactor(this);
}

grpc::ServerWriteReactor<v1::LoadEvent>* BrokerService::Load(grpc::CallbackServerContext*,
                                                             const v1::LoadRequest* req) {
  LoadArgs args;
  args.session = req->session_id();
  args.file_ticket = req->file_ticket();
  args.name = req->name();
  args.allocation = req->allocation();
  args.compute_device = req->compute_device();
  args.keep_loaded = req->keep_loaded();
  args.pins.assign(req->pins().begin(), req->pins().end());
  args.allow_spill = req->allow_spill();
  args.weight_dtype = req->weight_dtype();
  args.operator_pin = req->pin();
  args.own_placement = req->own_placement();
  args.tensor_prefixes.assign(req->tensor_prefixes().begin(), req->tensor_prefixes().end());
  return new LoadReactor(broker_, std::move(args));
}

grpc::ServerUnaryReactor* BrokerService::Release(grpc::CallbackServerContext* ctx,
                                                 const v1::ReleaseRequest* req,
                                                 v1::ReleaseReply* reply) {
  absl::StatusOr<FreeOutcome> released = broker_->Release(req->session_id(), req->lease_id());
  if (released.ok()) ToProto(*released, reply);
  return Done(ctx, released.status());
}

grpc::ServerUnaryReactor* BrokerService::Free(grpc::CallbackServerContext* ctx,
                                              const v1::FreeRequest* req, v1::FreeReply* reply) {
  reply->set_reset_caches(req->free_memory());
  absl::StatusOr<FreeOutcome> freed =
      broker_->Free(req->session_id(), req->all_sessions(), req->unload_models());
  if (freed.ok()) ToProto(*freed, reply);
  return Done(ctx, freed.status());
}

grpc::ServerUnaryReactor* BrokerService::SoftEmptyCache(grpc::CallbackServerContext* ctx,
                                                        const v1::SoftEmptyCacheRequest* req,
                                                        v1::SoftEmptyCacheReply* reply) {
  absl::StatusOr<uint64_t> trimmed = broker_->SoftEmptyCache(req->session_id());
  if (trimmed.ok()) reply->set_trimmed_bytes(*trimmed);
  return Done(ctx, trimmed.status());
}

grpc::ServerUnaryReactor* BrokerService::SetKeepLoaded(grpc::CallbackServerContext* ctx,
                                                       const v1::SetKeepLoadedRequest* req,
                                                       v1::SetKeepLoadedReply* reply) {
  absl::StatusOr<int> changed =
      broker_->SetKeepLoaded(req->session_id(), req->model_id(), req->keep_loaded());
  if (changed.ok()) reply->set_leases_changed(static_cast<uint32_t>(*changed));
  return Done(ctx, changed.status());
}

grpc::ServerUnaryReactor* BrokerService::Evict(grpc::CallbackServerContext* ctx,
                                               const v1::EvictRequest* req, v1::EvictReply* reply) {
  absl::StatusOr<std::vector<EndedResidency>> ended = broker_->Evict(req->model_id(), req->name());
  if (ended.ok()) {
    for (const EndedResidency& e : *ended) ToProto(e, reply->add_evicted());
  }
  return Done(ctx, ended.status());
}

grpc::ServerUnaryReactor* BrokerService::Plan(grpc::CallbackServerContext* ctx,
                                              const v1::PlanRequest* req, v1::PlanReply* reply) {
  PlanArgs args;
  for (const v1::TensorMeta& meta : req->tensors()) {
    absl::StatusOr<TensorInfo> t = FromProto(meta);
    if (!t.ok()) return Done(ctx, t.status());
    args.tensors.push_back(*std::move(t));
  }
  args.allocation = req->allocation();
  args.compute_device = req->compute_device();
  args.pins.assign(req->pins().begin(), req->pins().end());
  args.allow_spill = req->allow_spill();
  args.tensor_prefixes.assign(req->tensor_prefixes().begin(), req->tensor_prefixes().end());
  absl::StatusOr<PlanOutcome> plan = broker_->Plan(args);
  if (plan.ok()) {
    ToProto(plan->placement, plan->compute_device, plan->allocation, reply->mutable_placement());
  }
  return Done(ctx, plan.status());
}

grpc::ServerUnaryReactor* BrokerService::ListDevices(grpc::CallbackServerContext* ctx,
                                                     const v1::ListDevicesRequest*,
                                                     v1::ListDevicesReply* reply) {
  for (const DeviceView& d : broker_->Devices()) ToProto(d, reply->add_devices());
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* BrokerService::ListModels(grpc::CallbackServerContext* ctx,
                                                    const v1::ListModelsRequest*,
                                                    v1::ListModelsReply* reply) {
  for (const ModelView& m : broker_->Models()) ToProto(m, reply->add_models());
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* BrokerService::ListSessions(grpc::CallbackServerContext* ctx,
                                                      const v1::ListSessionsRequest*,
                                                      v1::ListSessionsReply* reply) {
  for (const SessionSnapshot& s : broker_->Sessions()) ToProto(s, reply->add_sessions());
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* BrokerService::Status(grpc::CallbackServerContext* ctx,
                                                const v1::StatusRequest*, v1::StatusReply* reply) {
  ToProto(broker_->Status(), reply);
  return Done(ctx, absl::OkStatus());
}

}  // namespace distorch
