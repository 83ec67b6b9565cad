// What the broker knows about one tensor in a model file.
#ifndef DISTORCH_TENSOR_INFO_H_
#define DISTORCH_TENSOR_INFO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace distorch {

// Element types as safetensors spells them. kRaw is an opaque byte run (a
// quantised GGUF block): its size comes from the file, not from the shape.
enum class DType {
  kF64,
  kF32,
  kF16,
  kBF16,
  kF8E4M3,
  kF8E5M2,
  kI8,
  kU8,
  kI16,
  kI32,
  kI64,
  kBool,
  kRaw
};

// Bytes per element; 0 for kRaw.
size_t DTypeSize(DType dtype);
// "F32", "BF16", "F8_E4M3", ... ("RAW" for kRaw).
absl::string_view DTypeName(DType dtype);
// Inverse of DTypeName for the safetensors names (not RAW). NotFound-free:
// InvalidArgument "unknown dtype 'F4' (known: F64, F32, ...)".
absl::StatusOr<DType> ParseDTypeName(absl::string_view name);

struct TensorInfo {
  std::string name;  // "double_blocks.3.img_attn.qkv.weight"
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t file_offset = 0;  // absolute offset of the first byte in the file
  uint64_t nbytes = 0;
};

}  // namespace distorch

#endif  // DISTORCH_TENSOR_INFO_H_
