// distorchctl plan and load: the two commands that read a model file.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "daemon/ctl/ctl_output.h"
#include "daemon/ctl/proto_json.h"
#include "daemon/ctl/table.h"
#include "daemon/devices/host_memory.h"
#include "daemon/fdpass/unique_fd.h"
#include "daemon/load/model_file.h"
#include "daemon/rpc/core_convert.h"
#include "distorch/device_spec.h"
#include "distorch/planner.h"
#include "distorch/tensor_part.h"
#include "distorch/units.h"

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
    request.devices.push_back(DeviceCapacity{e.device, e.bytes, e.bytes, 0});
    have_cpu |= e.device.is_cpu();
    if (!e.device.is_cpu() && !first_gpu) first_gpu = e.device;
  }
  if (!have_cpu) {
    HostMemory mem = ReadHostMemory();
    request.devices.push_back(DeviceCapacity{DeviceId::Cpu(), mem.total, mem.available, 0});
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
  std::printf("%s\n", ProtoToJson(message).c_str());
  return absl::OkStatus();
}

namespace {

// A run of consecutive blocks on one device (for one reason), which is how
// the planner places them. Tiny blocks stay on the compute device wherever
// they sit in the model; they do not break a run, and are counted apart when
// they are on another device than the run's.
struct BlockRun {
  int first = 0, last = 0;
  std::string device, reason;                                      // of the run's non-tiny blocks
  uint64_t bytes = 0;                                              // on `device`
  std::map<std::string, std::pair<int, uint64_t>> tiny_elsewhere;  // device -> count, bytes
};

std::vector<BlockRun> FoldBlockRuns(const v1::Placement& placement) {
  std::vector<BlockRun> runs;
  bool keyed = false;  // has the open run met a block that is not tiny?
  for (int i = 0; i < placement.blocks_size(); ++i) {
    const v1::BlockPlacement& b = placement.blocks(i);
    const bool tiny = b.reason() == "tiny";
    if (!tiny && keyed && (b.device() != runs.back().device || b.reason() != runs.back().reason)) {
      keyed = false;
      runs.emplace_back();
      runs.back().first = i;
    }
    if (runs.empty()) runs.emplace_back();
    BlockRun& run = runs.back();
    if (!tiny && !keyed) {
      // The first block that is not tiny names the run; tiny blocks before it
      // on another device are counted apart.
      keyed = true;
      run.device = b.device();
      run.reason = b.reason();
      auto own = run.tiny_elsewhere.find(run.device);
      if (own != run.tiny_elsewhere.end()) {
        run.bytes += own->second.second;
        run.tiny_elsewhere.erase(own);
      }
    }
    run.last = i;
    if (keyed && b.device() == run.device) {
      run.bytes += b.bytes();
    } else {
      auto& [count, bytes] = run.tiny_elsewhere[b.device()];
      ++count;
      bytes += b.bytes();
    }
  }
  // A run of nothing but tiny blocks (a model of tiny tensors).
  if (!runs.empty() && !keyed && runs.back().tiny_elsewhere.size() == 1) {
    BlockRun& run = runs.back();
    run.device = run.tiny_elsewhere.begin()->first;
    run.reason = "tiny";
    run.bytes = run.tiny_elsewhere.begin()->second.second;
    run.tiny_elsewhere.clear();
  }
  return runs;
}

std::string Share(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  return absl::StrFormat("%.1f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

}  // namespace

void PrintPlacement(const v1::Placement& placement, bool list_blocks) {
  std::printf("model: %s in %d blocks, compute device %s, allocation %s\n",
              FormatBytes(placement.total_bytes()).c_str(), placement.blocks_size(),
              placement.compute_device().c_str(), placement.allocation().c_str());
  Table devices({"DEVICE", "QUOTA", "PLACED", "SHARE", "BLOCKS"});
  for (const v1::DeviceBytes& d : placement.devices()) {
    devices.Add({d.device(), FormatBytes(d.quota()), FormatBytes(d.bytes()),
                 Share(d.bytes(), placement.total_bytes()), absl::StrCat(d.blocks())});
  }
  devices.Print();
  for (const std::string& note : placement.notes()) std::printf("note: %s\n", note.c_str());
  std::vector<BlockRun> runs = FoldBlockRuns(placement);
  if (!list_blocks) {
    if (!runs.empty()) {
      std::printf("%zu run%s of blocks; --blocks lists them\n", runs.size(),
                  runs.size() == 1 ? "" : "s");
    }
    return;
  }
  if (runs.empty()) return;
  std::printf("\n");
  std::vector<std::vector<std::string>> rows;
  for (const BlockRun& run : runs) {
    std::string tiny =
        absl::StrJoin(run.tiny_elsewhere, ", ", [](std::string* out, const auto& entry) {
          absl::StrAppend(out, "+ ", entry.second.first, " tiny on ", entry.first, " (",
                          FormatBytes(entry.second.second), ")");
        });
    const int count = run.last - run.first + 1;
    const std::string& first = placement.blocks(run.first).block();
    rows.push_back(
        {count == 1 ? absl::StrCat("block ", run.first)
                    : absl::StrCat("blocks ", run.first, "-", run.last),
         absl::StrCat("(", count, count == 1 ? " block)" : " blocks)"),
         absl::StrCat("on ", run.device, run.reason.empty() ? "" : " (" + run.reason + ")"),
         FormatBytes(run.bytes),
         count == 1 ? first : absl::StrCat(first, " .. ", placement.blocks(run.last).block()),
         tiny});
  }
  Table table(std::move(rows[0]));
  for (size_t i = 1; i < rows.size(); ++i) table.Add(std::move(rows[i]));
  table.Print();
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
  PrintPlacement(placement, ctx.args->Has("blocks"));
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
    PrintPlacement(result->placement(), ctx.args->Has("blocks"));
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
