#include "distorch/device_id.h"

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace distorch {
namespace {

struct TypeName {
  DeviceType type;
  const char* name;
  bool indexed;  // false: one device of this type, printed without ":N"
};

// Every torch device type ComfyUI-MultiGPU lists in its device menus, so a
// string written for it is read the same here, even where we cannot serve it.
constexpr TypeName kTypeNames[] = {
    {DeviceType::kCpu, "cpu", false},          {DeviceType::kCuda, "cuda", true},
    {DeviceType::kSim, "sim", true},           {DeviceType::kMps, "mps", false},
    {DeviceType::kXpu, "xpu", true},           {DeviceType::kNpu, "npu", true},
    {DeviceType::kMlu, "mlu", true},           {DeviceType::kHpu, "hpu", true},
    {DeviceType::kDirectml, "directml", true},
};

// Device indices are small; nine digits keep the value inside an int.
constexpr size_t kMaxIndexDigits = 9;

const TypeName* FindType(DeviceType type) {
  for (const TypeName& t : kTypeNames) {
    if (t.type == type) return &t;
  }
  return nullptr;
}

}  // namespace

std::string DeviceId::ToString() const {
  const TypeName* t = FindType(type);
  if (t == nullptr) return absl::StrCat("unknown:", index);
  if (!t->indexed) return t->name;
  return absl::StrCat(t->name, ":", index);
}

absl::StatusOr<DeviceId> ParseDeviceId(absl::string_view text) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  std::string quoted = absl::StrCat("'", absl::CHexEscape(trimmed), "'");
  if (trimmed.empty()) {
    return absl::InvalidArgumentError("empty device name (use cpu, cuda:N or sim:N)");
  }
  size_t colon = trimmed.find(':');
  std::string type_name =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(trimmed.substr(0, colon)));
  const TypeName* type = nullptr;
  for (const TypeName& t : kTypeNames) {
    if (type_name == t.name) type = &t;
  }
  if (type == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown device type '",
                                                   absl::CHexEscape(type_name), "' in ", quoted,
                                                   " (use cpu, cuda:N or sim:N)"));
  }
  DeviceId id{type->type, 0};
  if (colon == absl::string_view::npos) return id;  // "cuda" means cuda:0, as in torch

  absl::string_view digits = absl::StripAsciiWhitespace(trimmed.substr(colon + 1));
  bool valid = !digits.empty() && digits.size() <= kMaxIndexDigits;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) valid = false;
  }
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad device index in ", quoted, " (use ", type->name, ":N with N >= 0)"));
  }
  int index = 0;
  for (char c : digits) index = index * 10 + (c - '0');
  if (!type->indexed && index != 0) {
    // torch accepts "cpu:0" and "mps:0" but there is only ever one of each.
    return absl::InvalidArgumentError(absl::StrCat("bad device index in ", quoted,
                                                   " (there is one ", type->name, " device: write ",
                                                   type->name, ")"));
  }
  id.index = index;
  return id;
}

}  // namespace distorch
