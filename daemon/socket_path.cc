#include "daemon/socket_path.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace distorch {

std::string DefaultSocketPath() {
  if (geteuid() == 0) return "/run/distorch/distorchd.sock";
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg != '\0') {
    return absl::StrCat(xdg, "/distorch/distorchd.sock");
  }
  return absl::StrCat("/tmp/distorch-", geteuid(), "/distorchd.sock");
}

}  // namespace distorch
