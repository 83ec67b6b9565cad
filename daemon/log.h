// spdlog, plus a formatter for absl::string_view: Debian's Abseil has its own
// string_view type (not std::string_view), which fmt cannot print by itself.
#ifndef DISTORCH_DAEMON_LOG_H_
#define DISTORCH_DAEMON_LOG_H_

#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename Context>
  auto format(absl::string_view s, Context& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

#endif  // DISTORCH_DAEMON_LOG_H_
