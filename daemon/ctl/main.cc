// distorchctl: inspect and steer a running distorchd.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/cli_args.h"
#include "daemon/ctl/commands.h"
#include "daemon/socket_path.h"

namespace {

constexpr char kUsage[] = R"(usage: distorchctl [--socket PATH] [--json] COMMAND [ARGS]

commands:
  status                       daemon version, uptime, sessions, models, memory held
  devices                      devices with total / free / reserve / broker / available
  models                       residencies, their state, allocation, devices and leases
  sessions                     connected (and recently disconnected) clients
  plan --model FILE --alloc STRING [--compute DEV] [--pin-block NAME]... [--allow-spill]
       [--prefix P]... [--devices SPEC] [--blocks]
                               placement without loading, per device; with --devices
                               (e.g. sim:0=24GiB,cpu=64GiB) no daemon is needed;
                               --blocks (plan and load) lists the runs of blocks
  load --model FILE [--alloc STRING] [--compute DEV] [--keep] [--pin] [--wait]
       [--pin-block NAME]... [--allow-spill] [--dtype DTYPE] [--own-placement]
       [--prefix P]... [--blocks]
                               --pin keeps it resident with no client; --wait holds
                               this client's lease until interrupted; --own-placement
                               loads a second copy unless one is placed as asked;
                               --prefix loads (plans) only the tensors whose names
                               start with P (repeatable): a part of the file,
                               resident on its own
  free [--all | --session ID]  release leases with keep_loaded=false (like /free)
  evict ID|NAME                remove a model whatever its leases
  empty-cache                  ask the daemon to trim its caches

--json prints the reply as JSON, byte counts and ids as numbers (before or
after the command). DISTORCH_SOCKET is used when --socket is absent.
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace distorch;
  absl::StatusOr<CliArgs> args = CliArgs::Parse(
      argc, argv,
      {{"socket", "model", "alloc", "compute", "devices", "pin-block", "session", "dtype",
        "prefix"},
       {"json", "help", "keep", "pin", "wait", "all", "allow-spill", "own-placement", "blocks"}});
  if (!args.ok()) {
    std::fprintf(stderr, "distorchctl: %s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  if (args->Has("help") || args->positionals().empty()) {
    std::fputs(kUsage, args->Has("help") ? stdout : stderr);
    return args->Has("help") ? 0 : 2;
  }
  CtlContext ctx;
  ctx.args = &*args;
  ctx.json = args->Get("json").value_or("false") == "true";
  ctx.socket_path = DefaultSocketPath();
  if (const char* env = std::getenv("DISTORCH_SOCKET"); env && *env) ctx.socket_path = env;
  if (auto socket = args->Get("socket")) ctx.socket_path = *socket;
  ctx.operands.assign(args->positionals().begin() + 1, args->positionals().end());

  static const std::map<std::string, std::function<absl::Status(const CtlContext&)>> kCommands = {
      {"status", RunStatus},     {"devices", RunDevices}, {"models", RunModels},
      {"sessions", RunSessions}, {"plan", RunPlan},       {"load", RunLoad},
      {"free", RunFree},         {"evict", RunEvict},     {"empty-cache", RunEmptyCache},
  };
  const std::string& command = args->positionals()[0];
  auto it = kCommands.find(command);
  if (it == kCommands.end()) {
    std::fprintf(stderr, "distorchctl: unknown command '%s'\n\n%s", command.c_str(), kUsage);
    return 2;
  }
  absl::Status status = it->second(ctx);
  if (!status.ok()) {
    std::fprintf(stderr, "distorchctl %s: %s\n", command.c_str(),
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
