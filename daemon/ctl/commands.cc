// Inspection and steering commands (everything but plan and load).
#include "daemon/ctl/commands.h"

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/ctl/broker_client.h"
#include "daemon/ctl/ctl_output.h"
#include "daemon/ctl/table.h"
#include "distorch/units.h"

namespace distorch {

absl::StatusOr<std::unique_ptr<BrokerClient>> ConnectForCtl(const CtlContext& ctx) {
  return BrokerClient::Connect(ctx.socket_path, absl::Seconds(3));
}

absl::Status RunStatus(const CtlContext& ctx) {
  absl::StatusOr<std::unique_ptr<BrokerClient>> client = ConnectForCtl(ctx);
  if (!client.ok()) return client.status();
  grpc::ClientContext rpc;
  v1::StatusReply reply;
  if (absl::Status s = FromGrpcStatus((*client)->stub().Status(&rpc, {}, &reply)); !s.ok())
    return s;
  if (ctx.json) return PrintJson(reply);
  std::printf("distorchd %s, up %s, serving %s\n", reply.version().c_str(),
              absl::FormatDuration(absl::Milliseconds(reply.uptime_ms() / 1000 * 1000)).c_str(),
              reply.socket_path().c_str());
  std::printf("sessions: %u  models: %u  grace period: %s\n", reply.sessions(), reply.models(),
              absl::FormatDuration(absl::Milliseconds(reply.grace_period_ms())).c_str());
  std::printf("cuda: %s\n", reply.cuda_note().c_str());
  std::string held = absl::StrJoin(reply.broker_bytes(), ", ", [](std::string* out, const auto& d) {
    absl::StrAppend(out, d.device(), " ", FormatBytes(d.bytes()));
  });
  std::printf("held by models: %s\n", held.empty() ? "nothing" : held.c_str());
  return absl::OkStatus();
}

absl::Status RunDevices(const CtlContext& ctx) {
  absl::StatusOr<std::unique_ptr<BrokerClient>> client = ConnectForCtl(ctx);
  if (!client.ok()) return client.status();
  grpc::ClientContext rpc;
  v1::ListDevicesReply reply;
  if (absl::Status s = FromGrpcStatus((*client)->stub().ListDevices(&rpc, {}, &reply)); !s.ok()) {
    return s;
  }
  if (ctx.json) return PrintJson(reply);
  Table table({"DEVICE", "KIND", "TOTAL", "FREE", "RESERVE", "BROKER", "AVAILABLE", "DESCRIPTION"});
  for (const v1::DeviceInfo& d : reply.devices()) {
    std::string description = d.description();
    if (!d.pci_bus_id().empty()) absl::StrAppend(&description, " [", d.pci_bus_id(), "]");
    if (!d.compute_capability().empty())
      absl::StrAppend(&description, " sm_", d.compute_capability());
    if (d.peers_size()) absl::StrAppend(&description, " peers: ", absl::StrJoin(d.peers(), ","));
    table.Add({d.name(), d.kind(), FormatBytes(d.total_bytes()), FormatBytes(d.free_bytes()),
               FormatBytes(d.reserve_bytes()), FormatBytes(d.broker_bytes()),
               FormatBytes(d.available_bytes()), description});
  }
  table.Print();
  return absl::OkStatus();
}

absl::Status RunModels(const CtlContext& ctx) {
  absl::StatusOr<std::unique_ptr<BrokerClient>> client = ConnectForCtl(ctx);
  if (!client.ok()) return client.status();
  grpc::ClientContext rpc;
  v1::ListModelsReply reply;
  if (absl::Status s = FromGrpcStatus((*client)->stub().ListModels(&rpc, {}, &reply)); !s.ok()) {
    return s;
  }
  if (ctx.json) return PrintJson(reply);
  if (reply.models().empty()) {
    std::printf("no models resident\n");
    return absl::OkStatus();
  }
  Table table({"ID", "NAME", "PART", "STATE", "LOADED", "ALLOCATION", "DEVICES", "LEASES"});
  for (const v1::ModelInfo& m : reply.models()) {
    std::string loaded =
        absl::StrCat(FormatBytes(m.bytes_loaded()), " / ", FormatBytes(m.bytes_total()));
    std::string devices = absl::StrJoin(m.devices(), ", ", [](std::string* out, const auto& d) {
      absl::StrAppend(out, d.device(), " ", FormatBytes(d.bytes()));
    });
    std::string leases = absl::StrJoin(m.leases(), ", ", [](std::string* out, const auto& l) {
      absl::StrAppend(out, "session ", l.session_id(), l.keep_loaded() ? " (keep)" : "");
    });
    // What the residency was placed for; "(own)" marks a second residency an
    // own_placement load asked for.
    std::string allocation = m.allocation().empty()
                                 ? "-"
                                 : absl::StrCat(m.allocation(), " on ", m.compute_device(),
                                                m.own_placement() ? " (own)" : "");
    // A part of the file (tensor prefixes) is a residency of its own.
    std::string part = m.tensor_prefixes().empty() ? "-" : absl::StrJoin(m.tensor_prefixes(), ",");
    table.Add({absl::StrCat(m.model_id()), m.name(), part, m.state(), loaded, allocation, devices,
               leases});
  }
  table.Print();
  return absl::OkStatus();
}

absl::Status RunSessions(const CtlContext& ctx) {
  absl::StatusOr<std::unique_ptr<BrokerClient>> client = ConnectForCtl(ctx);
  if (!client.ok()) return client.status();
  grpc::ClientContext rpc;
  v1::ListSessionsReply reply;
  if (absl::Status s = FromGrpcStatus((*client)->stub().ListSessions(&rpc, {}, &reply)); !s.ok()) {
    return s;
  }
  if (ctx.json) return PrintJson(reply);
  Table table({"ID", "CLIENT", "PID", "STATE", "LEASES"});
  for (const v1::SessionInfo& s : reply.sessions()) {
    std::string state =
        s.connected() ? "connected" : absl::StrCat("gone ", s.disconnected_ms() / 1000, "s");
    std::string leases = absl::StrJoin(s.leases(), ", ", [](std::string* out, const auto& l) {
      absl::StrAppend(out, l.model_name(), " #", l.model_id(), l.keep_loaded() ? " (keep)" : "");
    });
    table.Add(
        {absl::StrCat(s.session_id()), s.client_name(), absl::StrCat(s.pid()), state, leases});
  }
  table.Print();
  return absl::OkStatus();
}

absl::Status RunFree(const CtlContext& ctx) {
  absl::StatusOr<std::unique_ptr<BrokerClient>> client = ConnectForCtl(ctx);
  if (!client.ok()) return client.status();
  v1::FreeRequest request;
  request.set_unload_models(true);
  if (auto session = ctx.args->Get("session")) {
    uint64_t id;
    if (!absl::SimpleAtoi(*session, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--session '", *session, "': give a session id"));
    }
    request.set_session_id(id);
  } else if (ctx.args->Has("all")) {
    request.set_all_sessions(true);
  } else {
    return absl::InvalidArgumentError(
        "say whose leases to free: --all (every session) or --session ID");
  }
  grpc::ClientContext rpc;
  v1::FreeReply reply;
  if (absl::Status s = FromGrpcStatus((*client)->stub().Free(&rpc, request, &reply)); !s.ok())
    return s;
  if (ctx.json) return PrintJson(reply);
  if (reply.released().empty()) std::printf("nothing to free (every lease is kept)\n");
  for (const v1::ModelRef& m : reply.released()) {
    // A model another session (or a kept lease, or a pin) holds stays loaded.
    std::printf(m.destroyed() ? "ejected model %llu '%s'\n"
                              : "released model %llu '%s' (still resident: other leases hold it)\n",
                static_cast<unsigned long long>(m.model_id()), m.name().c_str());
  }
  return absl::OkStatus();
}

absl::Status RunEvict(const CtlContext& ctx) {
  if (ctx.operands.size() != 1)
    return absl::InvalidArgumentError("usage: distorchctl evict ID|NAME");
  absl::StatusOr<std::unique_ptr<BrokerClient>> client = ConnectForCtl(ctx);
  if (!client.ok()) return client.status();
  v1::EvictRequest request;
  uint64_t id;
  if (absl::SimpleAtoi(ctx.operands[0], &id)) {
    request.set_model_id(id);
  } else {
    request.set_name(ctx.operands[0]);
  }
  grpc::ClientContext rpc;
  v1::EvictReply reply;
  if (absl::Status s = FromGrpcStatus((*client)->stub().Evict(&rpc, request, &reply)); !s.ok())
    return s;
  if (ctx.json) return PrintJson(reply);
  for (const v1::ModelRef& m : reply.evicted()) {
    std::printf("evicted model %llu '%s'\n", static_cast<unsigned long long>(m.model_id()),
                m.name().c_str());
  }
  return absl::OkStatus();
}

absl::Status RunEmptyCache(const CtlContext& ctx) {
  absl::StatusOr<std::unique_ptr<BrokerClient>> client = ConnectForCtl(ctx);
  if (!client.ok()) return client.status();
  grpc::ClientContext rpc;
  v1::SoftEmptyCacheReply reply;
  if (absl::Status s = FromGrpcStatus((*client)->stub().SoftEmptyCache(&rpc, {}, &reply));
      !s.ok()) {
    return s;
  }
  if (ctx.json) return PrintJson(reply);
  std::printf("trimmed %s\n", FormatBytes(reply.trimmed_bytes()).c_str());
  return absl::OkStatus();
}

}  // namespace distorch
