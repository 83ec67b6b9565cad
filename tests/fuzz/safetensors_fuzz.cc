// Fuzzes the safetensors header reader and the JSON reader under it with
// arbitrary bytes. Nothing may crash, and every accepted header must keep
// the promises its callers rely on (aborts on a violation):
// tensors sorted by offset, inside the file, not overlapping, nbytes equal
// to shape x dtype size.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../../daemon/core/json_lite.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distorch/safetensors.h"

namespace {

using distorch::SafetensorsHeader;
using distorch::TensorInfo;

[[noreturn]] void Fail(const char* what, const std::string& name) {
  std::fprintf(stderr, "safetensors_fuzz: %s (tensor '%s')\n", what, name.c_str());
  std::abort();
}

void CheckError(const absl::Status& status) {
  if (status.message().empty()) Fail("error without a message", "");
  if (status.code() != absl::StatusCode::kInvalidArgument &&
      status.code() != absl::StatusCode::kOutOfRange) {
    Fail("error with an unexpected code", "");
  }
}

void CheckHeader(const SafetensorsHeader& header, uint64_t file_size) {
  uint64_t previous_end = header.data_offset;
  uint64_t previous_offset = 0;
  for (const TensorInfo& t : header.tensors) {
    if (t.file_offset < previous_offset) Fail("not sorted by offset", t.name);
    previous_offset = t.file_offset;
    if (t.file_offset < header.data_offset) Fail("before the data", t.name);
    if (t.file_offset > file_size || t.nbytes > file_size - t.file_offset) {
      Fail("past the end of the file", t.name);
    }
    uint64_t elements = 1;
    for (int64_t dim : t.shape) {
      if (dim < 0) Fail("negative dimension", t.name);
      elements *= static_cast<uint64_t>(dim);  // checked by the parser
    }
    if (elements * distorch::DTypeSize(t.dtype) != t.nbytes) {
      Fail("nbytes is not shape x dtype size", t.name);
    }
    if (t.nbytes == 0) continue;
    if (t.file_offset < previous_end) Fail("overlap", t.name);
    previous_end = t.file_offset + t.nbytes;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view file(reinterpret_cast<const char*>(data), size);

  // The loader's path: the 8-byte prefix, then the header it announces.
  absl::StatusOr<uint64_t> n =
      distorch::ParseSafetensorsPrefix(file.substr(0, 8), static_cast<uint64_t>(size));
  if (!n.ok()) {
    CheckError(n.status());
  } else {
    absl::StatusOr<SafetensorsHeader> header =
        distorch::ParseSafetensorsHeader(file.substr(8, *n), *n, size);
    if (header.ok()) {
      CheckHeader(*header, size);
    } else {
      CheckError(header.status());
    }
  }

  // The same bytes as a bare header in a roomy file reach the JSON and
  // validation code without needing a well-formed length prefix first.
  const uint64_t roomy = 8 + size + 4096;
  absl::StatusOr<SafetensorsHeader> bare = distorch::ParseSafetensorsHeader(file, size, roomy);
  if (bare.ok()) {
    CheckHeader(*bare, roomy);
  } else {
    CheckError(bare.status());
  }

  // The JSON reader alone, with its default (looser) limits.
  absl::StatusOr<distorch::json::Value> value = distorch::json::Parse(file);
  if (!value.ok() && value.status().message().empty()) {
    Fail("JSON error without a message", "");
  }
  return 0;
}
