#include "distorch/tensor_info.h"

#include <array>
#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace distorch {
namespace {

struct DTypeEntry {
  DType dtype;
  absl::string_view name;
  size_t size;
};

// Safetensors spellings; kRaw last because it is not a safetensors dtype and
// ParseDTypeName must not accept it.
constexpr std::array<DTypeEntry, 13> kDTypes = {{
    {DType::kF64, "F64", 8},
    {DType::kF32, "F32", 4},
    {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},
    {DType::kF8E4M3, "F8_E4M3", 1},
    {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kI8, "I8", 1},
    {DType::kU8, "U8", 1},
    {DType::kI16, "I16", 2},
    {DType::kI32, "I32", 4},
    {DType::kI64, "I64", 8},
    {DType::kBool, "BOOL", 1},
    {DType::kRaw, "RAW", 0},
}};

const DTypeEntry* FindEntry(DType dtype) {
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.dtype == dtype) return &entry;
  }
  return nullptr;
}

}  // namespace

size_t DTypeSize(DType dtype) {
  const DTypeEntry* entry = FindEntry(dtype);
  return entry == nullptr ? 0 : entry->size;
}

absl::string_view DTypeName(DType dtype) {
  const DTypeEntry* entry = FindEntry(dtype);
  return entry == nullptr ? absl::string_view("?") : entry->name;
}

absl::StatusOr<DType> ParseDTypeName(absl::string_view name) {
  std::string known;
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.dtype == DType::kRaw) continue;
    if (entry.name == name) return entry.dtype;
    absl::StrAppend(&known, known.empty() ? "" : ", ", entry.name);
  }
  // The name comes from a hostile file: keep the message short and printable.
  constexpr size_t kMaxShown = 32;
  std::string shown = absl::CHexEscape(name.substr(0, kMaxShown));
  if (name.size() > kMaxShown) shown += "...";
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", shown, "' (known: ", known, ")"));
}

}  // namespace distorch
