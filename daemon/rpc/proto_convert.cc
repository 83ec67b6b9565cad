#include "daemon/rpc/proto_convert.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace distorch {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

void ToProto(const LoadOutcome& outcome, v1::LoadResult* out) {
  const Resident& r = *outcome.resident;
  out->set_model_id(outcome.model);
  out->set_lease_id(outcome.lease);
  out->set_shared(outcome.shared);
  out->set_arena_ticket(outcome.arena_ticket);
  out->set_residency_allocation(r.allocation);
  out->set_residency_compute_device(r.compute_device);
  out->set_requested_allocation(outcome.requested_allocation);
  out->set_requested_compute_device(outcome.requested_compute_device);
  for (const std::string& prefix : r.tensor_prefixes) out->add_tensor_prefixes(prefix);
  ToProto(r.placement, r.compute_device, r.allocation, out->mutable_placement());
  for (const std::string& note : outcome.notes) out->mutable_placement()->add_notes(note);
  for (size_t i = 0; i < r.arenas.size(); ++i) {
    ArenaExport e = r.arenas[i]->Export();
    v1::Arena* a = out->add_arenas();
    a->set_index(static_cast<uint32_t>(i));
    a->set_device(r.arenas[i]->device().ToString());
    a->set_bytes(r.arenas[i]->size());
    if (e.kind == ArenaExport::Kind::kHostMemfd) {
      a->set_kind(v1::Arena::HOST_MEMFD);
    } else {
      a->set_kind(v1::Arena::CUDA_IPC);
      a->set_cuda_ipc_handle(e.cuda_ipc_handle);
      a->set_cuda_device(e.cuda_device);
    }
  }
  // Block name per tensor, for clients that patch per module.
  std::vector<const std::string*> block_of(r.tensors.size(), nullptr);
  for (const Block& b : r.placement.blocks) {
    for (size_t t : b.tensor_indices) block_of[t] = &b.name;
  }
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    const TensorInfo& t = r.tensors[i];
    v1::TensorLocation* loc = out->add_tensors();
    loc->set_name(t.name);
    loc->set_dtype(i < r.tensor_type_names.size() && !r.tensor_type_names[i].empty()
                       ? r.tensor_type_names[i]
                       : std::string(DTypeName(t.dtype)));
    for (int64_t d : t.shape) loc->add_shape(d);
    loc->set_arena(static_cast<uint32_t>(r.layout.slots[i].arena));
    loc->set_offset(r.layout.slots[i].offset);
    loc->set_nbytes(t.nbytes);
    if (block_of[i] != nullptr) loc->set_block(*block_of[i]);
  }
}

void ToProto(const EndedResidency& ended, v1::ModelRef* out) {
  out->set_model_id(ended.id);
  out->set_name(ended.name);
  out->set_destroyed(true);
}

void ToProto(const FreeOutcome& freed, v1::FreeReply* out) {
  std::vector<ResidencyId> listed;
  for (const LeaseSnapshot& lease : freed.released) {
    if (std::find(listed.begin(), listed.end(), lease.residency) != listed.end()) continue;
    listed.push_back(lease.residency);
    v1::ModelRef* ref = out->add_released();
    ref->set_model_id(lease.residency);
    ref->set_name(lease.model_name);
    ref->set_destroyed(
        std::any_of(freed.ended.begin(), freed.ended.end(),
                    [&](const EndedResidency& e) { return e.id == lease.residency; }));
  }
}

void ToProto(const FreeOutcome& released, v1::ReleaseReply* out) {
  if (released.released.empty()) return;
  const LeaseSnapshot& lease = released.released.front();
  v1::ModelRef* ref = out->mutable_model();
  ref->set_model_id(lease.residency);
  ref->set_name(lease.model_name);
  ref->set_destroyed(!released.ended.empty());
}

void ToProto(const LeaseSnapshot& lease, v1::LeaseInfo* out) {
  out->set_lease_id(lease.lease);
  out->set_session_id(lease.session);
  out->set_model_id(lease.residency);
  out->set_model_name(lease.model_name);
  out->set_keep_loaded(lease.keep_loaded);
}

void ToProto(const ModelView& model, v1::ModelInfo* out) {
  const ResidencySnapshot& r = model.residency;
  out->set_model_id(r.id);
  out->set_name(r.name);
  out->set_state(r.state == ResidencyState::kReady     ? "ready"
                 : r.state == ResidencyState::kLoading ? "loading"
                                                       : "failed");
  out->set_identity(r.key.ToString());
  out->set_own_placement(!r.key.placement.empty());
  for (const std::string& prefix : r.key.part) out->add_tensor_prefixes(prefix);
  for (const auto& [device, bytes] : r.bytes_by_device) {
    v1::DeviceBytes* db = out->add_devices();
    db->set_device(device.ToString());
    db->set_bytes(bytes);
  }
  for (const LeaseSnapshot& l : r.leases) ToProto(l, out->add_leases());
  if (model.resident != nullptr) {
    out->set_bytes_total(model.resident->bytes_total);
    out->set_bytes_loaded(model.resident->bytes_loaded);
    out->set_weight_dtype(model.resident->weight_dtype);
    out->set_tensors(static_cast<uint32_t>(model.resident->tensors.size()));
    out->set_allocation(model.resident->allocation);
    out->set_compute_device(model.resident->compute_device);
  }
}

void ToProto(const SessionSnapshot& session, v1::SessionInfo* out) {
  out->set_session_id(session.id);
  out->set_client_name(session.client_name);
  out->set_pid(session.pid);
  out->set_connected(session.connected);
  if (!session.connected) {
    out->set_disconnected_ms(
        static_cast<uint64_t>(absl::ToInt64Milliseconds(absl::Now() - session.disconnected_at)));
  }
  for (const LeaseSnapshot& l : session.leases) ToProto(l, out->add_leases());
}

void ToProto(const DeviceView& device, v1::DeviceInfo* out) {
  out->set_name(device.name);
  out->set_kind(device.kind);
  out->set_description(device.description);
  out->set_total_bytes(device.stats.total);
  out->set_free_bytes(device.stats.free);
  out->set_reserve_bytes(device.settings.reserve);
  out->set_limit_bytes(device.settings.limit);
  out->set_broker_bytes(device.stats.broker_bytes);
  out->set_available_bytes(device.available);
  out->set_pci_bus_id(device.details.pci_bus_id);
  out->set_compute_capability(device.details.compute_capability);
  for (const std::string& p : device.details.peers) out->add_peers(p);
}

void ToProto(const BrokerStatus& status, v1::StatusReply* out) {
  out->set_version(DISTORCH_VERSION);
  out->set_uptime_ms(static_cast<uint64_t>(absl::ToInt64Milliseconds(status.uptime)));
  out->set_socket_path(status.socket_path);
  out->set_fd_channel_path(status.fd_channel_path);
  out->set_grace_period_ms(static_cast<uint64_t>(absl::ToInt64Milliseconds(status.grace_period)));
  out->set_cuda_available(status.cuda_available);
  out->set_cuda_note(status.cuda_note);
  out->set_sessions(status.sessions);
  out->set_models(status.models);
  for (const auto& [device, bytes] : status.broker_bytes) {
    v1::DeviceBytes* db = out->add_broker_bytes();
    db->set_device(device.ToString());
    db->set_bytes(bytes);
  }
}

}  // namespace distorch
