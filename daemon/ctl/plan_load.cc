// distorchctl plan and load: the two commands that read a model file.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/ctl/ctl_output.h"
#include "daemon/ctl/table.h"
#include "daemon/devices/host_device.h"
#include "daemon/model_file.h"
#include "daemon/proto_convert.h"
#include "daemon/unique_fd.h"
#include "distorch/device_spec.h"
#include "distorch/planner.h"
#include "distorch/tensor_part.h"
#include "distorch/units.h"
#include "google/protobuf/util/json_util.h"

namespace distorch {
namespace {

absl::StatusOr<UniqueFd> OpenModel(const CtlContext& ctx) {
  std::optional<std::string> path = ctx.args->Get("model");
  if (!path) return absl::InvalidArgumentError("--model FILE is required");
  UniqueFd fd(open(path->c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open model '", *path, "'"));
  }
  return fd;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Offline planning: the inventory comes from --devices, cpu defaulting to this
// machine's available RAM.
absl::StatusOr<v1::Placement> PlanOffline(const CtlContext& ctx, std::vector<TensorInfo> tensors) {
  absl::StatusOr<std::vector<DeviceSpecEntry>> spec = ParseDeviceSpec(*ctx.args->Get("devices"));
  if (!spec.ok()) return spec.status();
  PlanRequest request;
  request.tensors = std::move(tensors);
  bool have_cpu = false;
  std::optional<DeviceId> first_gpu;
  for (const DeviceSpecEntry& e : *spec) {
    request.devices.push_back(DeviceCapacity{e.device, e.bytes, e.bytes, 0, 0});
    have_cpu |= e.device.is_cpu();
    if (!e.device.is_cpu() && !first_gpu) first_gpu = e.device;
  }
  if (!have_cpu) {
    HostMemory mem = ReadHostMemory();
    request.devices.push_back(DeviceCapacity{DeviceId::Cpu(), mem.total, mem.available, 0, 0});
  }
  absl::StatusOr<AllocSpec> alloc = ParseAllocation(ctx.args->Get("alloc").value_or(""));
  if (!alloc.ok()) return alloc.status();
  request.alloc = *alloc;
  // Without --compute: the device the string names ("EXPERT#cuda:1"), else
  // the first GPU, as the daemon does. A conflict is the planner's error.
  std::string compute = ctx.args->Get("compute").value_or("");
  if (compute.empty() && alloc->compute_device) compute = alloc->compute_device->ToString();
  if (compute.empty()) compute = first_gpu ? first_gpu->ToString() : "cpu";
  absl::StatusOr<DeviceId> compute_id = ParseDeviceId(compute);
  if (!compute_id.ok()) return compute_id.status();
  request.compute = *compute_id;
  request.pins = ctx.args->GetAll("pin-block");
  request.allow_spill = ctx.args->Has("allow-spill");
  absl::StatusOr<Placement> placement = PlanPlacement(request);
  if (!placement.ok()) return placement.status();
  v1::Placement out;
  ToProto(*placement, compute_id->ToString(), alloc->ToString(), &out);
  return out;
}

}  // namespace

absl::Status PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  // protobuf 3.21 has its own Status type, not absl's.
  auto s = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!s.ok()) return absl::InternalError(std::string(s.message()));
  std::printf("%s\n", json.c_str());
  return absl::OkStatus();
}

void PrintPlacement(const v1::Placement& placement) {
  std::printf("model: %s, compute device %s, allocation %s\n",
              FormatBytes(placement.total_bytes()).c_str(), placement.compute_device().c_str(),
              placement.allocation().c_str());
  Table devices({"DEVICE", "QUOTA", "PLACED", "BLOCKS"});
  for (const v1::DeviceBytes& d : placement.devices()) {
    devices.Add({d.device(), FormatBytes(d.quota()), FormatBytes(d.bytes()), absl::StrCat(d.blocks())});
  }
  devices.Print();
  // Runs of consecutive blocks on one device, which is how placement works.
  Table runs({"BLOCKS", "DEVICE", "BYTES", "FIRST", "LAST"});
  int start = 0;
  uint64_t bytes = 0;
  for (int i = 0; i < placement.blocks_size(); ++i) {
    const v1::BlockPlacement& b = placement.blocks(i);
    bytes += b.bytes();
    bool last = i + 1 == placement.blocks_size() ||
                placement.blocks(i + 1).device() != b.device() ||
                placement.blocks(i + 1).reason() != b.reason();
    if (!last) continue;
    std::string device = b.reason().empty() ? b.device() : absl::StrCat(b.device(), " (", b.reason(), ")");
    runs.Add({absl::StrCat(start, "-", i), device, FormatBytes(bytes), placement.blocks(start).block(),
              b.block()});
    start = i + 1;
    bytes = 0;
  }
  std::printf("\n");
  runs.Print();
  for (const std::string& note : placement.notes()) std::printf("note: %s\n", note.c_str());
}

absl::Status RunPlan(const CtlContext& ctx) {
  absl::StatusOr<UniqueFd> fd = OpenModel(ctx);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<ModelFile> model = ReadModelFile(fd->get());
  if (!model.ok()) return model.status();
  const std::vector<std::string> prefixes = ctx.args->GetAll("prefix");
  v1::Placement placement;
  if (ctx.args->Has("devices")) {
    // Offline: the part is chosen here, as the daemon would.
    absl::StatusOr<std::vector<std::string>> part = CanonicalTensorPrefixes(prefixes);
    if (!part.ok()) return part.status();
    if (absl::Status s = KeepTensorPart(*model, *part); !s.ok()) return s;
    absl::StatusOr<v1::Placement> p = PlanOffline(ctx, std::move(model->tensors));
    if (!p.ok()) return p.status();
    placement = *std::move(p);
  } else {
    absl::StatusOr<std::unique_ptr<BrokerClient>> client = ConnectForCtl(ctx);
    if (!client.ok()) return client.status();
    v1::PlanRequest request;
    for (const TensorInfo& t : model->tensors) ToProto(t, request.add_tensors());
    request.set_allocation(ctx.args->Get("alloc").value_or(""));
    request.set_compute_device(ctx.args->Get("compute").value_or(""));
    for (const std::string& pin : ctx.args->GetAll("pin-block")) request.add_pins(pin);
    request.set_allow_spill(ctx.args->Has("allow-spill"));
    for (const std::string& p : prefixes) request.add_tensor_prefixes(p);
    grpc::ClientContext rpc;
    v1::PlanReply reply;
    if (absl::Status s = FromGrpcStatus((*client)->stub().Plan(&rpc, request, &reply)); !s.ok()) {
      return s;
    }
    placement = reply.placement();
  }
  if (ctx.json) return PrintJson(placement);
  PrintPlacement(placement);
  return absl::OkStatus();
}

absl::Status RunLoad(const CtlContext& ctx) {
  absl::StatusOr<UniqueFd> fd = OpenModel(ctx);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<std::unique_ptr<BrokerClient>> client = ConnectForCtl(ctx);
  if (!client.ok()) return client.status();
  const bool pin = ctx.args->Has("pin");
  if (!pin) {
    absl::StatusOr<uint64_t> session = (*client)->OpenSession("distorchctl");
    if (!session.ok()) return session.status();
  }
  absl::StatusOr<std::string> ticket = (*client)->PutFile(fd->get());
  if (!ticket.ok()) return ticket.status();
  v1::LoadRequest request;
  request.set_file_ticket(*ticket);
  request.set_name(BaseName(*ctx.args->Get("model")));
  request.set_allocation(ctx.args->Get("alloc").value_or(""));
  request.set_compute_device(ctx.args->Get("compute").value_or(""));
  request.set_keep_loaded(ctx.args->Has("keep"));
  request.set_pin(pin);
  request.set_allow_spill(ctx.args->Has("allow-spill"));
  request.set_own_placement(ctx.args->Has("own-placement"));
  request.set_weight_dtype(ctx.args->Get("dtype").value_or(""));
  for (const std::string& p : ctx.args->GetAll("pin-block")) request.add_pins(p);
  for (const std::string& p : ctx.args->GetAll("prefix")) request.add_tensor_prefixes(p);
  const bool tty = isatty(STDERR_FILENO);
  absl::StatusOr<v1::LoadResult> result =
      (*client)->Load(request, [tty](const v1::LoadProgress& p) {
        if (!tty) return;
        std::fprintf(stderr, "\rloading: %s / %s", FormatBytes(p.bytes_loaded()).c_str(),
                     FormatBytes(p.bytes_total()).c_str());
      });
  if (tty) std::fprintf(stderr, "\n");
  if (!result.ok()) return result.status();
  // The CLI maps nothing: collect and close the arena fds so the offer does
  // not hold the model's memory until its ticket expires.
  (void)(*client)->GetArenaFds(result->arena_ticket());
  if (ctx.json) {
    if (absl::Status s = PrintJson(*result); !s.ok()) return s;
  } else {
    std::string part = result->tensor_prefixes().empty()
                           ? ""
                           : absl::StrCat(" part ", absl::StrJoin(result->tensor_prefixes(), ","));
    std::printf("model %llu '%s'%s %s (lease %llu%s)\n",
                static_cast<unsigned long long>(result->model_id()), request.name().c_str(),
                part.c_str(), result->shared() ? "attached (already resident)" : "loaded",
                static_cast<unsigned long long>(result->lease_id()),
                pin ? ", pinned" : (request.keep_loaded() ? ", keep_loaded" : ""));
    PrintPlacement(result->placement());
  }
  std::fflush(stdout);
  if (ctx.args->Has("wait") && !pin) {
    // Hold the session (and its lease) until told to stop, like a client would.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    int sig;
    sigwait(&set, &sig);
  }
  return absl::OkStatus();
}

}  // namespace distorch
