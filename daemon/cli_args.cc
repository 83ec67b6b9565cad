#include "daemon/cli_args.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace distorch {

absl::StatusOr<CliArgs> CliArgs::Parse(int argc, char** argv, const CliSpec& spec) {
  CliArgs args;
  bool only_positionals = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (only_positionals || !absl::StartsWith(arg, "--")) {
      args.positionals_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positionals = true;
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (spec.bool_flags.count(name)) {
      if (value && *value != "true" && *value != "false") {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value (or =true/=false)"));
      }
      args.values_[name].push_back(value.value_or("true"));
    } else if (spec.value_flags.count(name)) {
      if (!value) {
        if (i + 1 >= argc) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        }
        value = argv[++i];
      }
      args.values_[name].push_back(*value);
    } else {
      std::set<std::string> all = spec.value_flags;
      all.insert(spec.bool_flags.begin(), spec.bool_flags.end());
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (known: --", absl::StrJoin(all, ", --"), ")"));
    }
  }
  return args;
}

std::optional<std::string> CliArgs::Get(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> CliArgs::GetAll(const std::string& flag) const {
  auto it = values_.find(flag);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

}  // namespace distorch
