// Command-line parsing for distorchd and distorchctl. Abseil flags cannot spell
// the fixed interface (`--check-config`, flags after a subcommand), so this is
// a small GNU-style parser: `--name value`, `--name=value`, boolean `--name`,
// repeated flags, positionals anywhere.
#ifndef DISTORCH_DAEMON_CLI_ARGS_H_
#define DISTORCH_DAEMON_CLI_ARGS_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace distorch {

struct CliSpec {
  std::set<std::string> value_flags;  // take a value: "socket", "config"
  std::set<std::string> bool_flags;   // no value: "json", "check-config"
};

class CliArgs {
 public:
  // argv[0] is skipped. Errors name the flag and list the known ones.
  static absl::StatusOr<CliArgs> Parse(int argc, char** argv, const CliSpec& spec);

  bool Has(const std::string& flag) const { return values_.count(flag) > 0; }
  // Last value given for `flag`.
  std::optional<std::string> Get(const std::string& flag) const;
  std::vector<std::string> GetAll(const std::string& flag) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_CLI_ARGS_H_
