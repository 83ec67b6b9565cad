// distorchctl's subcommands. Each prints a human table, or the reply as JSON
// (field names as in broker.proto, integers as numbers: proto_json.h) with
// --json.
#ifndef DISTORCH_DAEMON_CTL_COMMANDS_H_
#define DISTORCH_DAEMON_CTL_COMMANDS_H_

#include <string>

#include "absl/status/status.h"
#include "daemon/cli_args.h"

namespace distorch {

struct CtlContext {
  std::string socket_path;
  bool json = false;
  const CliArgs* args = nullptr;
  std::vector<std::string> operands;  // positionals after the subcommand
};

absl::Status RunStatus(const CtlContext& ctx);
absl::Status RunDevices(const CtlContext& ctx);
absl::Status RunModels(const CtlContext& ctx);
absl::Status RunSessions(const CtlContext& ctx);
absl::Status RunPlan(const CtlContext& ctx);
absl::Status RunLoad(const CtlContext& ctx);
absl::Status RunFree(const CtlContext& ctx);
absl::Status RunEvict(const CtlContext& ctx);
absl::Status RunEmptyCache(const CtlContext& ctx);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_CTL_COMMANDS_H_
