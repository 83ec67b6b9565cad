// Weight-dtype conversion at load time (ComfyUI's `weight_dtype`): the target
// names a load may ask for, what a model's tensors look like once converted,
// and the element conversion itself. LibTorch does the arithmetic (rounding
// as torch's .to(): round to nearest, ties to even) when the build has it;
// this header has no torch types, so callers need no LibTorch includes.
//
// Only floating tensors (F64, F32, F16, BF16, F8_*) are converted; integer,
// bool and raw (quantised GGUF) tensors are stored as they are in the file.
// Thread-safe: every function may be called from several loader threads.
#ifndef DISTORCH_DAEMON_LOAD_DTYPE_CONVERT_H_
#define DISTORCH_DAEMON_LOAD_DTYPE_CONVERT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distorch/tensor_info.h"

namespace distorch {

// A load's weight dtype, as the broker keys residencies by it.
struct WeightDtype {
  std::string name = "keep";    // canonical: keep, fp16, bf16, fp32, fp8_e4m3fn, fp8_e5m2
  std::optional<DType> target;  // nullopt: keep the file's dtypes
};

// Reads a weight_dtype as ComfyUI users write it, case-insensitive:
//   "", keep, default                  -> keep
//   fp16, float16, f16, half           -> fp16
//   bf16, bfloat16                     -> bf16
//   fp32, float32, f32, float          -> fp32
//   fp8_e4m3fn, fp8_e4m3fn_fast, f8_e4m3 -> fp8_e4m3fn  (_fast is a compute
//                                          option; the stored bytes are the same)
//   fp8_e5m2, f8_e5m2                  -> fp8_e5m2
// InvalidArgument for other names (the message lists the known ones);
// Unimplemented when this build cannot convert to the target: built without
// LibTorch, or a LibTorch without float8 types.
absl::StatusOr<WeightDtype> ParseWeightDtype(absl::string_view text);

// F64, F32, F16, BF16, F8_E4M3, F8_E5M2.
bool IsFloatingDType(DType dtype);

// OkStatus when ConvertElements(from, to, ...) works in this build;
// Unimplemented naming the dtype and the LibTorch version otherwise.
absl::Status CheckConvertible(DType from, DType to);

// The tensors as they are stored after conversion, parallel to
// `file_tensors`: floating tensors take the target dtype and its byte size;
// the rest, and every tensor for "keep", are unchanged. file_offset stays the
// source bytes' offset. Errors: Unimplemented for a target on a GGUF file or
// for a source dtype this build cannot read; InvalidArgument for a shape that
// does not match the tensor's bytes.
absl::StatusOr<std::vector<TensorInfo>> StoredTensors(const std::vector<TensorInfo>& file_tensors,
                                                      absl::string_view format,
                                                      const WeightDtype& dtype);

// Converts `count` elements of dtype `from` at `src` to dtype `to` at `dst`
// (the ranges must not overlap). Both must be floating dtypes.
// Unimplemented as CheckConvertible; Internal when LibTorch fails.
absl::Status ConvertElements(DType from, DType to, const void* src, void* dst, uint64_t count);

// What converts: "LibTorch 1.13.0" or "none (built with DISTORCH_WITH_TORCH=OFF)".
std::string ConversionEngine();

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_DTYPE_CONVERT_H_
