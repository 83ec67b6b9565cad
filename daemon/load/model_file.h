// Reads a model file's header from an fd the client passed: which tensors it
// holds and where. The file is treated as hostile (see safetensors.h).
#ifndef DISTORCH_DAEMON_LOAD_MODEL_FILE_H_
#define DISTORCH_DAEMON_LOAD_MODEL_FILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "distorch/tensor_info.h"
#include "distorch/tensor_part.h"

namespace distorch {

struct ModelFile {
  std::string format;    // "safetensors" or "gguf"
  std::string identity;  // "dev:ino:size:mtime_ns" of the open file
  uint64_t file_size = 0;
  std::vector<TensorInfo> tensors;  // model order, absolute offsets
  // GGUF: the ggml type of each tensor ("Q4_0", "F16"), parallel to tensors;
  // quantised tensors are DType::kRaw with their exact byte size. Else empty.
  std::vector<std::string> tensor_type_names;
};

// Safetensors or GGUF (v2/v3), told apart by the first bytes.
// FailedPrecondition for a non-regular file, InvalidArgument (or OutOfRange for
// a span past the end) for a bad header.
absl::StatusOr<ModelFile> ReadModelFile(int fd);

// Keeps only the part of `file` whose tensor names start with one of
// `prefixes` (canonical, tensor_part.h; empty = all): tensors and their ggml
// type names stay parallel and in model order. InvalidArgument when no tensor
// matches.
absl::Status KeepTensorPart(ModelFile& file, const std::vector<std::string>& prefixes);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_MODEL_FILE_H_
