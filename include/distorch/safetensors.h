// Strict reader for safetensors headers: the file is hostile until proven not.
// Layout: 8-byte little-endian header length N, N bytes of JSON, then data.
#ifndef DISTORCH_SAFETENSORS_H_
#define DISTORCH_SAFETENSORS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distorch/tensor_info.h"

namespace distorch {

// No real model needs more; a bigger length is a corrupt or hostile file.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ULL * 1024 * 1024;

struct SafetensorsHeader {
  uint64_t header_bytes = 0;  // N
  uint64_t data_offset = 0;   // 8 + N
  // Sorted by file_offset (model order); file_offset is absolute.
  std::vector<TensorInfo> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;  // __metadata__
};

// Reads the 8-byte prefix and checks N against kMaxSafetensorsHeaderBytes and
// the file size. Returns N.
absl::StatusOr<uint64_t> ParseSafetensorsPrefix(absl::string_view first8, uint64_t file_size);

// Parses and validates the JSON header (exactly N bytes, may end in spaces).
// Checks: valid JSON object; every entry {dtype, shape, data_offsets}; known
// dtype; non-negative shape; shape x dtype size == end - begin; begin <= end;
// spans inside the data section (data_offset + end <= file_size); no overlaps;
// no duplicate names; __metadata__ a string->string object. Errors are
// InvalidArgument/OutOfRange naming the tensor and what is wrong.
// Like the reference reader: gaps between spans are allowed, unknown members
// of an entry are ignored, and "__metadata__": null means none. OutOfRange is
// used only for a span or header that runs past the end of the file.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view json,
                                                         uint64_t header_bytes, uint64_t file_size);

}  // namespace distorch

#endif  // DISTORCH_SAFETENSORS_H_
