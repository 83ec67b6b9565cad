#include "distorch/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "json_lite.h"

namespace distorch {
namespace {

// PyTorch's own limit; more dimensions than this is not a real tensor.
constexpr size_t kMaxDims = 64;
constexpr absl::string_view kMetadataKey = "__metadata__";

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors header: ", what));
}

absl::Status TensorError(absl::string_view name, absl::string_view what) {
  return Invalid(absl::StrCat("tensor '", json::Shorten(name), "': ", what));
}

absl::Status ParseMetadata(const json::Value& value,
                           std::vector<std::pair<std::string, std::string>>* out) {
  // The reference implementation reads __metadata__ as an optional map, so
  // an explicit null means "none".
  if (value.is_null()) return absl::OkStatus();
  if (!value.is_object()) {
    return Invalid(absl::StrCat("__metadata__ must be an object of strings, got ",
                                json::TypeName(value.type())));
  }
  for (const auto& [key, item] : value.object()) {
    if (!item.is_string()) {
      return Invalid(absl::StrCat("__metadata__ '", json::Shorten(key), "' must be a string, got ",
                                  json::TypeName(item.type())));
    }
    out->emplace_back(key, item.string_value());
  }
  return absl::OkStatus();
}

// Reads the entry's "shape" into info->shape and returns the element count,
// refusing negative dimensions and products that overflow.
absl::StatusOr<uint64_t> ParseShape(const std::string& name, const json::Value& shape,
                                    TensorInfo* info) {
  if (!shape.is_array()) {
    return TensorError(
        name, absl::StrCat("'shape' must be an array, got ", json::TypeName(shape.type())));
  }
  if (shape.array().size() > kMaxDims) {
    return TensorError(name, absl::StrCat("shape has ", shape.array().size(), " dimensions (limit ",
                                          kMaxDims, ")"));
  }
  uint64_t elements = 1;
  bool overflow = false;
  for (size_t i = 0; i < shape.array().size(); ++i) {
    const json::Value& dim = shape.array()[i];
    if (!dim.is_int()) {
      return TensorError(name, absl::StrCat("shape[", i, "] must be an integer, got ",
                                            json::TypeName(dim.type())));
    }
    if (dim.int_value() < 0) {
      return TensorError(
          name, absl::StrCat("shape[", i, "] is ", dim.int_value(), "; dimensions must be >= 0"));
    }
    info->shape.push_back(dim.int_value());
    overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(dim.int_value()), &elements);
  }
  // A zero dimension makes the tensor empty whatever the other dimensions
  // are (the wrapped product can be anything, even 0, so test the dims).
  bool has_zero = std::find(info->shape.begin(), info->shape.end(), 0) != info->shape.end();
  if (has_zero) return uint64_t{0};
  if (overflow) {
    return TensorError(name, absl::StrCat("shape [", absl::StrJoin(info->shape, ", "),
                                          "] has more elements than fit in 64 bits"));
  }
  return elements;
}

absl::Status ParseOffsets(const std::string& name, const json::Value& offsets, uint64_t* begin,
                          uint64_t* end) {
  if (!offsets.is_array() || offsets.array().size() != 2) {
    return TensorError(name, "'data_offsets' must be an array [begin, end]");
  }
  const json::Value& b = offsets.array()[0];
  const json::Value& e = offsets.array()[1];
  if (!b.is_int() || !e.is_int() || b.int_value() < 0 || e.int_value() < 0) {
    return TensorError(name, "'data_offsets' must hold two non-negative integers");
  }
  *begin = static_cast<uint64_t>(b.int_value());
  *end = static_cast<uint64_t>(e.int_value());
  if (*begin > *end) {
    return TensorError(
        name, absl::StrCat("data_offsets [", *begin, ", ", *end, "] end before they begin"));
  }
  return absl::OkStatus();
}

// Validates one tensor entry; file_offset is still relative to the data
// section (the caller adds data_offset once spans are checked).
absl::StatusOr<TensorInfo> ParseTensor(const std::string& name, const json::Value& entry,
                                       uint64_t data_bytes) {
  if (!entry.is_object()) {
    return TensorError(name,
                       absl::StrCat("entry must be an object, got ", json::TypeName(entry.type())));
  }
  // Unknown extra members are ignored, as the reference reader does.
  const json::Value* dtype = entry.Find("dtype");
  const json::Value* shape = entry.Find("shape");
  const json::Value* offsets = entry.Find("data_offsets");
  if (dtype == nullptr || shape == nullptr || offsets == nullptr) {
    return TensorError(name, absl::StrCat("missing '",
                                          dtype == nullptr   ? "dtype"
                                          : shape == nullptr ? "shape"
                                                             : "data_offsets",
                                          "' (need dtype, shape and data_offsets)"));
  }
  TensorInfo info;
  info.name = name;
  if (!dtype->is_string()) {
    return TensorError(
        name, absl::StrCat("'dtype' must be a string, got ", json::TypeName(dtype->type())));
  }
  absl::StatusOr<DType> parsed = ParseDTypeName(dtype->string_value());
  if (!parsed.ok()) return TensorError(name, parsed.status().message());
  info.dtype = *parsed;

  absl::StatusOr<uint64_t> elements = ParseShape(name, *shape, &info);
  if (!elements.ok()) return elements.status();
  uint64_t begin = 0, end = 0;
  if (absl::Status s = ParseOffsets(name, *offsets, &begin, &end); !s.ok()) {
    return s;
  }
  uint64_t want = 0;
  const uint64_t element_size = DTypeSize(info.dtype);
  if (__builtin_mul_overflow(*elements, element_size, &want)) {
    return TensorError(name,
                       absl::StrCat("shape [", absl::StrJoin(info.shape, ", "), "] x ",
                                    DTypeName(info.dtype), " is more bytes than fit in 64 bits"));
  }
  if (want != end - begin) {
    return TensorError(
        name, absl::StrCat("shape [", absl::StrJoin(info.shape, ", "), "] x ",
                           DTypeName(info.dtype), " (", element_size, " bytes) = ", want,
                           " bytes, but data_offsets [", begin, ", ", end, "] span ", end - begin));
  }
  if (end > data_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        "safetensors header: tensor '", json::Shorten(name), "': data_offsets [", begin, ", ", end,
        "] run past the end of the file (the data section has ", data_bytes, " bytes)"));
  }
  info.file_offset = begin;
  info.nbytes = end - begin;
  return info;
}

}  // namespace

absl::StatusOr<uint64_t> ParseSafetensorsPrefix(absl::string_view first8, uint64_t file_size) {
  if (first8.size() != 8 || file_size < 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a safetensors file: it needs an 8-byte header length, got ",
                     std::min<uint64_t>(first8.size(), file_size), " bytes"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) {
    n = (n << 8) | static_cast<unsigned char>(first8[i]);
  }
  if (n < 2) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors header length is ", n,
                                                   " bytes; even an empty header needs 2 ('{}')"));
  }
  if (n > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors header length is ", n, " bytes, over the limit of ",
        kMaxSafetensorsHeaderBytes, " (the file is corrupt or not a safetensors file)"));
  }
  if (n > file_size - 8) {
    return absl::OutOfRangeError(
        absl::StrCat("safetensors header length is ", n, " bytes, past the end of the file (",
                     file_size, " bytes): the file is truncated or not a safetensors file"));
  }
  return n;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view json_text,
                                                         uint64_t header_bytes,
                                                         uint64_t file_size) {
  if (json_text.size() != header_bytes) {
    return Invalid(absl::StrCat("got ", json_text.size(),
                                " bytes of JSON, but the header length says ", header_bytes));
  }
  if (header_bytes > kMaxSafetensorsHeaderBytes) {
    return Invalid(absl::StrCat("header length ", header_bytes, " is over the limit of ",
                                kMaxSafetensorsHeaderBytes));
  }
  if (file_size < 8 || header_bytes > file_size - 8) {
    return absl::OutOfRangeError(absl::StrCat("safetensors header of ", header_bytes,
                                              " bytes does not fit in a ", file_size,
                                              "-byte file"));
  }
  json::ParseOptions options;
  options.max_depth = 3;  // {name: {shape: [dim]}}
  absl::StatusOr<json::Value> root = json::Parse(json_text, options);
  if (!root.ok()) return Invalid(root.status().message());
  if (!root->is_object()) {
    return Invalid(absl::StrCat("must be a JSON object, got ", json::TypeName(root->type())));
  }

  SafetensorsHeader header;
  header.header_bytes = header_bytes;
  header.data_offset = 8 + header_bytes;
  const uint64_t data_bytes = file_size - header.data_offset;
  header.tensors.reserve(root->object().size());
  for (const auto& [name, entry] : root->object()) {
    if (name == kMetadataKey) {
      if (absl::Status s = ParseMetadata(entry, &header.metadata); !s.ok()) {
        return s;
      }
      continue;
    }
    absl::StatusOr<TensorInfo> info = ParseTensor(name, entry, data_bytes);
    if (!info.ok()) return info.status();
    header.tensors.push_back(*std::move(info));
  }

  // Model order is file order; names break ties between empty tensors so the
  // result does not depend on the header's key order.
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              if (a.file_offset != b.file_offset) {
                return a.file_offset < b.file_offset;
              }
              if (a.nbytes != b.nbytes) return a.nbytes < b.nbytes;
              return a.name < b.name;
            });
  // Empty tensors occupy no bytes and cannot overlap anything.
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& info : header.tensors) {
    if (info.nbytes == 0) continue;
    if (previous != nullptr && info.file_offset < previous->file_offset + previous->nbytes) {
      return Invalid(absl::StrCat(
          "tensors '", json::Shorten(previous->name), "' [", previous->file_offset, ", ",
          previous->file_offset + previous->nbytes, ") and '", json::Shorten(info.name), "' [",
          info.file_offset, ", ", info.file_offset + info.nbytes, ") overlap"));
    }
    previous = &info;
  }
  for (TensorInfo& info : header.tensors) info.file_offset += header.data_offset;
  return header;
}

}  // namespace distorch
