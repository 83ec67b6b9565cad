#include "daemon/load/dtype_convert.h"

#include <array>
#include <cstring>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

#if DISTORCH_HAVE_TORCH
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>
// Float8_e4m3fn and Float8_e5m2 arrived in PyTorch 2.1.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define DISTORCH_TORCH_HAS_FLOAT8 1
#else
#define DISTORCH_TORCH_HAS_FLOAT8 0
#endif
#endif

namespace distorch {
namespace {

struct DtypeName {
  absl::string_view spelling;
  absl::string_view canonical;
};

constexpr std::array<DtypeName, 17> kSpellings = {{
    {"", "keep"},
    {"keep", "keep"},
    {"default", "keep"},
    {"fp16", "fp16"},
    {"float16", "fp16"},
    {"f16", "fp16"},
    {"half", "fp16"},
    {"bf16", "bf16"},
    {"bfloat16", "bf16"},
    {"fp32", "fp32"},
    {"float32", "fp32"},
    {"f32", "fp32"},
    {"float", "fp32"},
    {"fp8_e4m3fn", "fp8_e4m3fn"},
    {"fp8_e4m3fn_fast", "fp8_e4m3fn"},
    {"f8_e4m3", "fp8_e4m3fn"},
    {"fp8_e5m2", "fp8_e5m2"},
}};

std::optional<DType> TargetOf(absl::string_view canonical) {
  if (canonical == "fp16") return DType::kF16;
  if (canonical == "bf16") return DType::kBF16;
  if (canonical == "fp32") return DType::kF32;
  if (canonical == "fp8_e4m3fn") return DType::kF8E4M3;
  if (canonical == "fp8_e5m2") return DType::kF8E5M2;
  return std::nullopt;
}

bool IsFloat8(DType dtype) { return dtype == DType::kF8E4M3 || dtype == DType::kF8E5M2; }

#if DISTORCH_HAVE_TORCH
c10::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kF64:
      return c10::ScalarType::Double;
    case DType::kF32:
      return c10::ScalarType::Float;
    case DType::kF16:
      return c10::ScalarType::Half;
    case DType::kBF16:
      return c10::ScalarType::BFloat16;
#if DISTORCH_TORCH_HAS_FLOAT8
    case DType::kF8E4M3:
      return c10::ScalarType::Float8_e4m3fn;
    case DType::kF8E5M2:
      return c10::ScalarType::Float8_e5m2;
#endif
    default:
      return c10::ScalarType::Undefined;
  }
}
#endif

// Why this build cannot convert `dtype` (shown as `shown`) in `direction`
// ("to", "from"); OkStatus when it can.
absl::Status Unsupported(DType dtype, absl::string_view direction, absl::string_view shown) {
#if !DISTORCH_HAVE_TORCH
  (void)dtype;
  return absl::UnimplementedError(
      absl::StrCat("this build cannot convert ", direction, " ", shown,
                   ": distorchd was built without LibTorch (DISTORCH_WITH_TORCH=OFF); ",
                   "use weight_dtype \"keep\" or rebuild with LibTorch"));
#else
  if (IsFloat8(dtype) && !DISTORCH_TORCH_HAS_FLOAT8) {
    return absl::UnimplementedError(
        absl::StrCat("this build cannot convert ", direction, " ", shown, " (LibTorch ",
                     TORCH_VERSION, " has no float8 types; build against LibTorch 2.1 or newer)"));
  }
  return absl::OkStatus();
#endif
}

}  // namespace

bool IsFloatingDType(DType dtype) {
  switch (dtype) {
    case DType::kF64:
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kF8E4M3:
    case DType::kF8E5M2:
      return true;
    default:
      return false;
  }
}

std::string ConversionEngine() {
#if DISTORCH_HAVE_TORCH
  return absl::StrCat("LibTorch ", TORCH_VERSION,
                      DISTORCH_TORCH_HAS_FLOAT8 ? "" : " (no float8 types)");
#else
  return "none (built with DISTORCH_WITH_TORCH=OFF)";
#endif
}

absl::StatusOr<WeightDtype> ParseWeightDtype(absl::string_view text) {
  const std::string lowered = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  for (const DtypeName& n : kSpellings) {
    if (n.spelling != lowered) continue;
    WeightDtype out;
    out.name = std::string(n.canonical);
    out.target = TargetOf(n.canonical);
    if (out.target.has_value()) {
      if (absl::Status s = Unsupported(*out.target, "to", out.name); !s.ok()) {
        return absl::UnimplementedError(
            absl::StrCat("weight_dtype '", std::string(text), "': ", s.message()));
      }
    }
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat("weight_dtype '", std::string(text),
                                                 "' is not known; use one of keep (or default), ",
                                                 "fp16, bf16, fp32, fp8_e4m3fn, fp8_e5m2"));
}

absl::Status CheckConvertible(DType from, DType to) {
  if (!IsFloatingDType(from) || !IsFloatingDType(to)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot convert ", DTypeName(from), " to ",
                                                   DTypeName(to),
                                                   ": only floating dtypes are converted"));
  }
  if (from == to) return absl::OkStatus();
  if (absl::Status s = Unsupported(from, "from", DTypeName(from)); !s.ok()) return s;
  return Unsupported(to, "to", DTypeName(to));
}

absl::StatusOr<std::vector<TensorInfo>> StoredTensors(const std::vector<TensorInfo>& file_tensors,
                                                      absl::string_view format,
                                                      const WeightDtype& dtype) {
  if (!dtype.target.has_value()) return file_tensors;
  if (format == "gguf") {
    return absl::UnimplementedError(absl::StrCat(
        "weight_dtype '", dtype.name, "' does not apply to GGUF files: their quantised ",
        "blocks are stored as they are; use weight_dtype \"keep\""));
  }
  std::vector<TensorInfo> stored = file_tensors;
  for (TensorInfo& t : stored) {
    if (!IsFloatingDType(t.dtype) || t.dtype == *dtype.target) continue;
    if (absl::Status s = CheckConvertible(t.dtype, *dtype.target); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("tensor '", t.name, "': ", s.message()));
    }
    // The header parsers checked shape x dtype == bytes; this guards callers
    // that build TensorInfos themselves.
    if (t.nbytes % DTypeSize(t.dtype) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "': ", t.nbytes,
                                                     " bytes are not a whole number of ",
                                                     DTypeName(t.dtype), " elements"));
    }
    const uint64_t elements = t.nbytes / DTypeSize(t.dtype);
    t.dtype = *dtype.target;
    t.nbytes = elements * DTypeSize(t.dtype);
  }
  return stored;
}

absl::Status ConvertElements(DType from, DType to, const void* src, void* dst, uint64_t count) {
  if (absl::Status s = CheckConvertible(from, to); !s.ok()) return s;
  if (count == 0) return absl::OkStatus();
  if (from == to) {
    std::memcpy(dst, src, count * DTypeSize(from));
    return absl::OkStatus();
  }
#if DISTORCH_HAVE_TORCH
  // The loader already runs one conversion per reader thread; intra-op
  // threads on top of that would only oversubscribe the cores.
  static std::once_flag single_threaded;
  std::call_once(single_threaded, [] { at::set_num_threads(1); });
  try {
    c10::InferenceMode no_autograd;
    const int64_t n = static_cast<int64_t>(count);
    at::Tensor in =
        at::from_blob(const_cast<void*>(src), {n}, at::TensorOptions().dtype(ToScalarType(from)));
    at::Tensor out = at::from_blob(dst, {n}, at::TensorOptions().dtype(ToScalarType(to)));
    // copy_ converts straight into the destination: the same rounding as
    // .to(dtype), without allocating a temporary tensor.
    out.copy_(in);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("LibTorch failed converting ", count, " ",
                                            DTypeName(from), " elements to ", DTypeName(to), ": ",
                                            e.what_without_backtrace()));
  }
  return absl::OkStatus();
#else
  (void)src;
  (void)dst;
  return absl::InternalError("unreachable: CheckConvertible refuses every conversion");
#endif
}

}  // namespace distorch
