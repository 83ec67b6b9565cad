// Strict reader for GGUF (v2/v3) headers: the file is hostile until proven
// not. Layout (little-endian, ggml docs/gguf.md):
//   "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   | kv_count x (string key, u32 value_type, value)
//   | tensor_count x (string name, u32 n_dims, u64 dims[n_dims],
//                     u32 ggml_type, u64 offset)
//   | zero padding to `general.alignment` (default 32) | tensor data
// where a string is u64 length + bytes, and a tensor's offset is relative to
// the start of the tensor data and a multiple of the alignment.
//
// How much to read: the header's size is not known up front, so
// ParseGgufHeader takes a prefix of the file. When the prefix ends before the
// header does, it answers OutOfRange "need more bytes: ..." and
// GgufPrefixBytesNeeded() says how long a prefix to retry with (it grows
// geometrically, capped at the file size and kMaxGgufHeaderBytes).
// ReadGgufHeader runs that loop over a read callback.
#ifndef DISTORCH_GGUF_H_
#define DISTORCH_GGUF_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distorch/tensor_info.h"

namespace distorch {

// Bounds that no real model reaches; past them the file is corrupt or hostile.
// Headers of LLM text encoders carry their tokenizer (a few MiB).
inline constexpr uint64_t kMaxGgufHeaderBytes = 256ULL * 1024 * 1024;
inline constexpr uint64_t kMaxGgufTensors = 1ULL << 20;
inline constexpr uint64_t kMaxGgufMetadataEntries = 1ULL << 20;
inline constexpr uint64_t kMaxGgufTensorNameBytes = 4096;
inline constexpr uint64_t kMaxGgufKeyBytes = 65535;  // the spec's limit
inline constexpr uint32_t kMaxGgufDims = 4;
inline constexpr uint32_t kGgufDefaultAlignment = 32;

// Size of one GGML element type: `block_size` elements take `type_size`
// bytes (1 and the element size for plain types).
struct GgmlType {
  uint32_t id = 0;
  absl::string_view name;  // "F16", "Q4_0", "IQ2_XXS", ...
  uint32_t block_size = 0;
  uint32_t type_size = 0;
  DType dtype = DType::kRaw;  // the matching DType for plain types
};

// The GGML type with this id, or nullptr when it is unknown or removed
// (4, 5, 31-33, 36-38 and everything past MXFP4 = 39).
const GgmlType* FindGgmlType(uint32_t id);

// Metadata value types, numbered as in the file.
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// "uint8", "string", "array", ...
absl::string_view GgufValueTypeName(GgufValueType type);

// One metadata entry. Scalars and strings keep their value; arrays keep only
// their element type and length (token lists run to hundreds of thousands of
// entries the broker never reads).
struct GgufKeyValue {
  std::string key;
  GgufValueType type = GgufValueType::kUint8;
  uint64_t uint_value = 0;                           // kUint*, kBool (0 or 1)
  int64_t int_value = 0;                             // kInt*
  double float_value = 0;                            // kFloat32, kFloat64
  std::string string_value;                          // kString
  GgufValueType array_type = GgufValueType::kUint8;  // kArray
  uint64_t array_length = 0;                         // kArray
};

struct GgufTensor {
  // name; dtype (kRaw for quantised types); shape in PyTorch order, i.e. the
  // file's dims reversed, as ComfyUI-GGUF reads it; absolute file_offset;
  // nbytes from the GGML type's block size and bytes per block.
  TensorInfo info;
  std::vector<uint64_t> ggml_dims;  // as stored: ggml ne[0] (fastest) first
  uint32_t ggml_type = 0;
  std::string ggml_type_name;    // "Q8_0"
  uint64_t relative_offset = 0;  // as stored: from the data section start
};

struct GgufHeader {
  uint32_t version = 0;
  uint64_t alignment = kGgufDefaultAlignment;  // general.alignment
  uint64_t header_bytes = 0;                   // end of the tensor infos, before padding
  uint64_t data_offset = 0;                    // start of the tensor data: aligned header_bytes
  std::string architecture;                    // general.architecture; "" when absent
  std::vector<GgufKeyValue> metadata;          // file order; keys unique
  std::vector<GgufTensor> tensors;             // sorted by file offset (model order)
};

// Parses the header from `prefix`, the first prefix.size() bytes of a file of
// `file_size` bytes. Checks: magic, version 2 or 3 (v1 and big-endian files
// are refused by name), bounded counts and lengths, known value types, bools
// 0/1, unique keys, general.alignment a uint32 power of two, tensor names
// unique, 1-4 dims, known GGML type, rows a whole number of blocks,
// offsets aligned, spans inside the file, no overlaps.
// Errors: InvalidArgument (or OutOfRange for spans past the end of the file)
// naming the tensor or key and what is wrong. When `prefix` is shorter than
// the file and ends inside the header: OutOfRange "need more bytes: ..." (see
// GgufPrefixBytesNeeded).
absl::StatusOr<GgufHeader> ParseGgufHeader(absl::string_view prefix, uint64_t file_size);

// For a "need more bytes" status from ParseGgufHeader: the prefix length to
// retry with (always more than the prefix given, at most the file size).
// 0 for any other status.
uint64_t GgufPrefixBytesNeeded(const absl::Status& status);

// Reads `length` bytes from the start of the file into `out`.
using GgufReadPrefix = std::function<absl::Status(uint64_t length, std::string* out)>;

// The retry loop: reads a first prefix (1 MiB or the whole file, whichever is
// smaller) and grows it until ParseGgufHeader has what it needs.
absl::StatusOr<GgufHeader> ReadGgufHeader(uint64_t file_size, const GgufReadPrefix& read_prefix);

}  // namespace distorch

#endif  // DISTORCH_GGUF_H_
