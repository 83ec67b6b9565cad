#include "distorch/gguf.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gguf_cursor.h"
#include "json_lite.h"

namespace distorch {
namespace {

using gguf_internal::Cursor;

// Sizes from ggml's src/ggml-common.h block structs (each has a static_assert
// on its size there) and docs/gguf.md's type list. Quantised types stay
// opaque bytes (kRaw).
constexpr std::array<GgmlType, 32> kGgmlTypes = {{
    {0, "F32", 1, 4, DType::kF32},
    {1, "F16", 1, 2, DType::kF16},
    {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},
    {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},
    {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},
    {12, "Q4_K", 256, 144},
    {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},
    {15, "Q8_K", 256, 292},
    {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98},
    {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},
    {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136},
    {24, "I8", 1, 1, DType::kI8},
    {25, "I16", 1, 2, DType::kI16},
    {26, "I32", 1, 4, DType::kI32},
    {27, "I64", 1, 8, DType::kI64},
    {28, "F64", 1, 8, DType::kF64},
    {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2, DType::kBF16},
    {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},
    {39, "MXFP4", 32, 17},
}};

constexpr char kNeedBytesPayload[] = "type.distorch/gguf.need_bytes";
constexpr uint64_t kFirstPrefixBytes = 1ULL << 20;
// Nested arrays are legal but no known writer makes them; bound the recursion.
constexpr int kMaxArrayDepth = 3;
// Smallest possible encodings, used to refuse counts the file cannot hold.
constexpr uint64_t kMinKeyValueBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 4 + 8;

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("GGUF: ", what));
}

// Bytes of one scalar value; 0 for string and array.
uint64_t ScalarSize(GgufValueType type) {
  static constexpr std::array<uint8_t, 13> kSizes = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  auto index = static_cast<uint32_t>(type);
  return index < kSizes.size() ? kSizes[index] : 0;
}

absl::Status ReadValueType(Cursor& in, absl::string_view key, GgufValueType* out) {
  uint32_t raw = 0;
  if (absl::Status s = in.Read(&raw); !s.ok()) return s;
  if (raw > static_cast<uint32_t>(GgufValueType::kFloat64)) {
    return Invalid(absl::StrCat("key '", json::Shorten(key), "' has unknown value type ", raw));
  }
  *out = static_cast<GgufValueType>(raw);
  return absl::OkStatus();
}

absl::Status ReadString(Cursor& in, uint64_t max_bytes, absl::string_view what,
                        absl::string_view* out) {
  uint64_t length = 0;
  if (absl::Status s = in.Read(&length); !s.ok()) return s;
  if (length > max_bytes) {
    return Invalid(absl::StrCat(what, " is ", length, " bytes long (limit ", max_bytes, ")"));
  }
  return in.ReadBytes(length, out);
}

// Reads one scalar into kv (or validates and drops an array element).
absl::Status ReadScalar(Cursor& in, GgufValueType type, absl::string_view key, GgufKeyValue* kv) {
  const uint64_t size = ScalarSize(type);
  uint64_t bits = 0;
  if (absl::Status s = in.ReadUint(size, &bits); !s.ok()) return s;
  switch (type) {
    case GgufValueType::kBool:
      if (bits > 1) {
        return Invalid(absl::StrCat("key '", json::Shorten(key), "' has a bool of ", bits,
                                    " (must be 0 or 1)"));
      }
      [[fallthrough]];
    case GgufValueType::kUint8:
    case GgufValueType::kUint16:
    case GgufValueType::kUint32:
    case GgufValueType::kUint64:
      kv->uint_value = bits;
      break;
    case GgufValueType::kInt8:
    case GgufValueType::kInt16:
    case GgufValueType::kInt32:
    case GgufValueType::kInt64: {
      // Sign-extend from `size` bytes.
      const int shift = static_cast<int>(64 - 8 * size);
      kv->int_value = static_cast<int64_t>(bits << shift) >> shift;
      break;
    }
    case GgufValueType::kFloat32: {
      uint32_t narrow = static_cast<uint32_t>(bits);
      float f;
      std::memcpy(&f, &narrow, sizeof(f));
      kv->float_value = f;
      break;
    }
    default:
      std::memcpy(&kv->float_value, &bits, sizeof(bits));
  }
  return absl::OkStatus();
}

// Reads one value of `type`. Array elements are validated and skipped.
absl::Status ReadValue(Cursor& in, GgufValueType type, absl::string_view key, int depth,
                       GgufKeyValue* kv) {
  if (type == GgufValueType::kString) {
    absl::string_view text;
    if (auto s = ReadString(in, kMaxGgufHeaderBytes, "a string value", &text); !s.ok()) {
      return s;
    }
    kv->string_value = std::string(text);
    return absl::OkStatus();
  }
  if (type != GgufValueType::kArray) return ReadScalar(in, type, key, kv);

  if (depth >= kMaxArrayDepth) {
    return Invalid(absl::StrCat("key '", json::Shorten(key), "' nests arrays deeper than ",
                                kMaxArrayDepth, " levels"));
  }
  GgufValueType element = GgufValueType::kUint8;
  uint64_t count = 0;
  if (auto s = ReadValueType(in, key, &element); !s.ok()) return s;
  if (auto s = in.Read(&count); !s.ok()) return s;
  if (depth == 0) {
    kv->array_type = element;
    kv->array_length = count;
  }
  uint64_t min_element = ScalarSize(element);
  if (min_element == 0) min_element = element == GgufValueType::kString ? 8 : 12;
  if (count > kMaxGgufHeaderBytes / min_element) {
    return Invalid(absl::StrCat("key '", json::Shorten(key), "' has an array of ", count, " ",
                                GgufValueTypeName(element),
                                " elements, more than a header can hold"));
  }
  if (element != GgufValueType::kString && element != GgufValueType::kArray &&
      element != GgufValueType::kBool) {
    return in.Skip(count * min_element);  // fixed size: no need to look
  }
  GgufKeyValue scratch;
  for (uint64_t i = 0; i < count; ++i) {
    if (auto s = ReadValue(in, element, key, depth + 1, &scratch); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckUniqueKeys(const std::vector<GgufKeyValue>& metadata) {
  std::vector<absl::string_view> keys;
  keys.reserve(metadata.size());
  for (const GgufKeyValue& kv : metadata) keys.push_back(kv.key);
  std::sort(keys.begin(), keys.end());
  auto repeat = std::adjacent_find(keys.begin(), keys.end());
  if (repeat == keys.end()) return absl::OkStatus();
  return Invalid(absl::StrCat("duplicate metadata key '", json::Shorten(*repeat), "'"));
}

absl::Status ReadMetadata(Cursor& in, uint64_t count, GgufHeader* header) {
  header->metadata.reserve(std::min<uint64_t>(count, 4096));
  for (uint64_t i = 0; i < count; ++i) {
    absl::string_view key;
    if (auto s = ReadString(in, kMaxGgufKeyBytes, absl::StrCat("key ", i), &key); !s.ok()) {
      return s;
    }
    if (key.empty()) return Invalid(absl::StrCat("metadata key ", i, " is empty"));
    GgufKeyValue kv;
    kv.key = std::string(key);
    if (auto s = ReadValueType(in, key, &kv.type); !s.ok()) return s;
    if (auto s = ReadValue(in, kv.type, key, 0, &kv); !s.ok()) return s;
    header->metadata.push_back(std::move(kv));
  }
  if (auto s = CheckUniqueKeys(header->metadata); !s.ok()) return s;

  for (const GgufKeyValue& kv : header->metadata) {
    if (kv.key == "general.alignment") {
      // ggml itself insists on uint32 here; follow it so files agree.
      if (kv.type != GgufValueType::kUint32) {
        return Invalid(
            absl::StrCat("general.alignment must be a uint32, got ", GgufValueTypeName(kv.type)));
      }
      if (kv.uint_value == 0 || (kv.uint_value & (kv.uint_value - 1)) != 0) {
        return Invalid(
            absl::StrCat("general.alignment is ", kv.uint_value, "; it must be a power of two"));
      }
      header->alignment = kv.uint_value;
    } else if (kv.key == "general.architecture") {
      if (kv.type != GgufValueType::kString) {
        return Invalid(absl::StrCat("general.architecture must be a string, got ",
                                    GgufValueTypeName(kv.type)));
      }
      header->architecture = kv.string_value;
    }
  }
  return absl::OkStatus();
}

absl::Status TensorError(const GgufTensor& t, absl::string_view what) {
  return Invalid(absl::StrCat("tensor '", json::Shorten(t.info.name), "': ", what));
}

// Reads one tensor info; sizes are checked here, placement by the caller.
absl::Status ReadTensorInfo(Cursor& in, uint64_t index, GgufTensor* t) {
  absl::string_view name;
  if (auto s = ReadString(in, kMaxGgufTensorNameBytes, absl::StrCat("the name of tensor ", index),
                          &name);
      !s.ok()) {
    return s;
  }
  t->info.name = std::string(name);
  uint32_t n_dims = 0;
  if (auto s = in.Read(&n_dims); !s.ok()) return s;
  if (n_dims > kMaxGgufDims) {
    return TensorError(*t, absl::StrCat("has ", n_dims, " dimensions (limit ", kMaxGgufDims, ")"));
  }
  uint64_t elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t dim = 0;
    if (auto s = in.Read(&dim); !s.ok()) return s;
    t->ggml_dims.push_back(dim);
  }
  if (auto s = in.Read(&t->ggml_type); !s.ok()) return s;
  if (auto s = in.Read(&t->relative_offset); !s.ok()) return s;

  // ggml counts elements in int64: anything bigger is negative there.
  bool overflow = false;
  for (uint64_t dim : t->ggml_dims) {
    if (dim > static_cast<uint64_t>(INT64_MAX)) {
      return TensorError(*t,
                         absl::StrCat("dimension ", dim, " is out of range (ggml dims are int64)"));
    }
    overflow |= __builtin_mul_overflow(elements, dim, &elements);
  }
  overflow |= elements > static_cast<uint64_t>(INT64_MAX);
  bool empty = std::find(t->ggml_dims.begin(), t->ggml_dims.end(), 0) != t->ggml_dims.end();
  if (overflow && !empty) {
    return TensorError(*t, absl::StrCat("dims [", absl::StrJoin(t->ggml_dims, ", "),
                                        "] have more elements than fit in 63 bits"));
  }
  if (empty) elements = 0;
  const GgmlType* type = FindGgmlType(t->ggml_type);
  if (type == nullptr) {
    return TensorError(*t, absl::StrCat("unknown or unsupported GGML type ", t->ggml_type));
  }
  t->ggml_type_name = std::string(type->name);
  const uint64_t row = t->ggml_dims.empty() ? 1 : t->ggml_dims[0];
  if (row % type->block_size != 0) {
    return TensorError(*t, absl::StrCat("rows of ", row, " elements are not a whole number of ",
                                        type->name, " blocks (", type->block_size, ")"));
  }
  if (__builtin_mul_overflow(elements / type->block_size, type->type_size, &t->info.nbytes)) {
    return TensorError(*t, "byte size does not fit in 64 bits");
  }
  t->info.dtype = type->dtype;
  for (auto dim = t->ggml_dims.rbegin(); dim != t->ggml_dims.rend(); ++dim) {
    t->info.shape.push_back(static_cast<int64_t>(*dim));
  }
  return absl::OkStatus();
}

absl::Status CheckUniqueNames(const std::vector<GgufTensor>& tensors) {
  std::vector<absl::string_view> names;
  names.reserve(tensors.size());
  for (const GgufTensor& t : tensors) names.push_back(t.info.name);
  std::sort(names.begin(), names.end());
  auto repeat = std::adjacent_find(names.begin(), names.end());
  if (repeat == names.end()) return absl::OkStatus();
  return Invalid(absl::StrCat("duplicate tensor name '", json::Shorten(*repeat), "'"));
}

absl::Status PlaceTensors(uint64_t file_size, GgufHeader* header) {
  const uint64_t data_bytes = file_size - header->data_offset;
  for (GgufTensor& t : header->tensors) {
    if (t.relative_offset % header->alignment != 0) {
      return TensorError(
          t, absl::StrCat("offset ", t.relative_offset, " is not a multiple of the alignment ",
                          header->alignment));
    }
    if (t.relative_offset > data_bytes || t.info.nbytes > data_bytes - t.relative_offset) {
      return absl::OutOfRangeError(absl::StrCat(
          "GGUF: tensor '", json::Shorten(t.info.name), "': ", t.info.nbytes,
          " bytes at data offset ", t.relative_offset,
          " run past the end of the file (the data section has ", data_bytes, " bytes)"));
    }
    t.info.file_offset = header->data_offset + t.relative_offset;
  }
  std::sort(header->tensors.begin(), header->tensors.end(),
            [](const GgufTensor& a, const GgufTensor& b) {
              return std::make_tuple(a.info.file_offset, a.info.nbytes, a.info.name) <
                     std::make_tuple(b.info.file_offset, b.info.nbytes, b.info.name);
            });
  const GgufTensor* previous = nullptr;
  for (const GgufTensor& t : header->tensors) {
    if (t.info.nbytes == 0) continue;
    if (previous != nullptr &&
        t.info.file_offset < previous->info.file_offset + previous->info.nbytes) {
      return Invalid(absl::StrCat("tensors '", json::Shorten(previous->info.name), "' and '",
                                  json::Shorten(t.info.name), "' overlap (data offsets ",
                                  previous->relative_offset, "+", previous->info.nbytes, " and ",
                                  t.relative_offset, ")"));
    }
    previous = &t;
  }
  return absl::OkStatus();
}

}  // namespace

const GgmlType* FindGgmlType(uint32_t id) {
  for (const GgmlType& type : kGgmlTypes) {
    if (type.id == id) return &type;
  }
  return nullptr;
}

absl::string_view GgufValueTypeName(GgufValueType type) {
  static constexpr std::array<absl::string_view, 13> kNames = {
      "uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
      "bool",  "string", "array",  "uint64", "int64",  "float64"};
  auto index = static_cast<uint32_t>(type);
  return index < kNames.size() ? kNames[index] : "unknown";
}

namespace {

// Everything up to and including the tensor infos; no placement checks.
absl::Status ReadHeader(Cursor& in, uint64_t file_size, GgufHeader* header) {
  absl::string_view magic;
  if (auto s = in.ReadBytes(4, &magic); !s.ok()) return s;
  if (magic != "GGUF") {
    return absl::InvalidArgumentError(
        absl::StrCat("not a GGUF file: it starts with '", json::Shorten(magic), "', not 'GGUF'"));
  }
  if (auto s = in.Read(&header->version); !s.ok()) return s;
  const uint32_t version = header->version;
  if (version == 1) {
    return Invalid(
        "version 1 files are not supported; convert the model again with a current tool");
  }
  if ((version & 0xFFFF) == 0 && version != 0) {
    return Invalid(absl::StrCat("version field reads ", version,
                                ": a big-endian file, which is not supported"));
  }
  if (version != 2 && version != 3) {
    return Invalid(absl::StrCat("unsupported version ", version, " (this reader knows 2 and 3)"));
  }
  uint64_t tensor_count = 0, kv_count = 0;
  if (auto s = in.Read(&tensor_count); !s.ok()) return s;
  if (auto s = in.Read(&kv_count); !s.ok()) return s;
  const uint64_t rest = file_size - in.pos();
  if (tensor_count > kMaxGgufTensors || tensor_count > rest / kMinTensorInfoBytes) {
    return Invalid(absl::StrCat("tensor count ", tensor_count, " is impossible for a ", file_size,
                                "-byte file (limit ", kMaxGgufTensors, ")"));
  }
  if (kv_count > kMaxGgufMetadataEntries || kv_count > rest / kMinKeyValueBytes) {
    return Invalid(absl::StrCat("metadata count ", kv_count, " is impossible for a ", file_size,
                                "-byte file (limit ", kMaxGgufMetadataEntries, ")"));
  }
  if (auto s = ReadMetadata(in, kv_count, header); !s.ok()) return s;
  // Grow with what is actually read, not with what the count claims.
  header->tensors.reserve(std::min<uint64_t>(tensor_count, 4096));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    header->tensors.emplace_back();
    if (auto s = ReadTensorInfo(in, i, &header->tensors.back()); !s.ok()) {
      return s;
    }
  }
  return CheckUniqueNames(header->tensors);
}

// Turns a short read into "truncated" (the file ends) or "need more bytes"
// (only the prefix ends).
absl::Status ShortReadStatus(uint64_t needed, uint64_t prefix_size, uint64_t file_size) {
  if (needed > file_size) {
    return Invalid(absl::StrCat("file is truncated: the header needs at least ", needed,
                                " bytes, the file has ", file_size));
  }
  if (needed > kMaxGgufHeaderBytes) {
    return Invalid(
        absl::StrCat("header is larger than the limit of ", kMaxGgufHeaderBytes, " bytes"));
  }
  // Grow geometrically so a header made of many small entries costs few
  // rereads.
  uint64_t retry = std::max(needed, std::min(2 * prefix_size, kMaxGgufHeaderBytes));
  retry = std::min(retry, file_size);
  absl::Status status =
      absl::OutOfRangeError(absl::StrCat("need more bytes: the GGUF header continues past the ",
                                         prefix_size, " bytes read; retry with ", retry));
  status.SetPayload(kNeedBytesPayload, absl::Cord(absl::StrCat(retry)));
  return status;
}

}  // namespace

absl::StatusOr<GgufHeader> ParseGgufHeader(absl::string_view prefix, uint64_t file_size) {
  if (prefix.size() > file_size) prefix = prefix.substr(0, file_size);
  Cursor in(prefix);
  GgufHeader header;
  absl::Status status = ReadHeader(in, file_size, &header);
  if (!status.ok() && in.short_read()) {
    return ShortReadStatus(in.needed(), prefix.size(), file_size);
  }
  if (!status.ok()) return status;

  header.header_bytes = in.pos();
  if (header.header_bytes > kMaxGgufHeaderBytes) {  // same rule as prefixes
    return Invalid(
        absl::StrCat("header is larger than the limit of ", kMaxGgufHeaderBytes, " bytes"));
  }
  header.data_offset = header.header_bytes;
  if (!header.tensors.empty()) {
    const uint64_t a = header.alignment;
    header.data_offset = (header.header_bytes + a - 1) / a * a;
    if (header.data_offset > file_size) {
      return Invalid(absl::StrCat("file is truncated: tensor data would start at byte ",
                                  header.data_offset, ", the file has ", file_size));
    }
    if (auto s = PlaceTensors(file_size, &header); !s.ok()) return s;
  }
  return header;
}

uint64_t GgufPrefixBytesNeeded(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kNeedBytesPayload);
  uint64_t bytes = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &bytes)) return 0;
  return bytes;
}

absl::StatusOr<GgufHeader> ReadGgufHeader(uint64_t file_size, const GgufReadPrefix& read_prefix) {
  uint64_t length = std::min(file_size, kFirstPrefixBytes);
  std::string prefix;
  while (true) {
    prefix.clear();
    if (auto s = read_prefix(length, &prefix); !s.ok()) return s;
    if (prefix.size() != length) {
      return absl::DataLossError(absl::StrCat("GGUF: asked for the first ", length,
                                              " bytes of the file, got ", prefix.size()));
    }
    absl::StatusOr<GgufHeader> header = ParseGgufHeader(prefix, file_size);
    uint64_t needed = GgufPrefixBytesNeeded(header.status());
    if (needed <= length) return header;  // parsed, or failed for good
    length = needed;
  }
}

}  // namespace distorch
