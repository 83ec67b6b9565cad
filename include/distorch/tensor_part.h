// A part of a model file: the tensors whose names start with one of a set of
// prefixes (LoadRequest.tensor_prefixes). A checkpoint holds a UNet, a text
// encoder and a VAE; loaded as three parts, each is planned with its own
// allocation and compute device and kept as a residency of its own.
#ifndef DISTORCH_TENSOR_PART_H_
#define DISTORCH_TENSOR_PART_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "distorch/tensor_info.h"

namespace distorch {

// Bounds on a request's prefix set (a checkpoint needs a handful; a tensor
// name is rarely over a few hundred bytes).
inline constexpr size_t kMaxTensorPrefixes = 64;
inline constexpr size_t kMaxTensorPrefixBytes = 1024;

// The canonical form of a prefix set, which is part of the residency's key:
// sorted, without duplicates, and without a prefix that a shorter one in the
// set already covers ("a." covers "a.b."), so two requests that select the
// same tensors the same way share one residency. Empty = the whole file.
// InvalidArgument for more than kMaxTensorPrefixes, an empty prefix, one over
// kMaxTensorPrefixBytes, or one with control characters.
absl::StatusOr<std::vector<std::string>> CanonicalTensorPrefixes(
    const std::vector<std::string>& prefixes);

// Indices into `tensors`, in order, of the tensors whose names start with one
// of `prefixes` (empty = all of them). InvalidArgument when none does; the
// message names the prefixes and how the file's tensor names begin.
absl::StatusOr<std::vector<size_t>> SelectTensorPart(const std::vector<TensorInfo>& tensors,
                                                     const std::vector<std::string>& prefixes);

// "cond_stage_model.,first_stage_model." for people; "" for the whole file.
std::string TensorPartLabel(const std::vector<std::string>& prefixes);

}  // namespace distorch

#endif  // DISTORCH_TENSOR_PART_H_
