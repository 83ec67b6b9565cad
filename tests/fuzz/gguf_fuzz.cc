// Fuzzes the GGUF header reader with arbitrary bytes. Nothing may crash,
// accepted headers must keep their promises (sorted, aligned, inside the
// file, no overlaps), and reading through growing prefixes must reach
// exactly the answer that reading the whole file gives (aborts otherwise).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distorch/gguf.h"

namespace {

using distorch::GgufHeader;
using distorch::GgufTensor;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "gguf_fuzz: %s (%s)\n", what, detail.c_str());
  std::abort();
}

void CheckHeader(const GgufHeader& header, uint64_t file_size) {
  if (header.alignment == 0 || (header.alignment & (header.alignment - 1)) != 0) {
    Fail("alignment not a power of two", "");
  }
  if (header.data_offset < header.header_bytes) Fail("data before header", "");
  uint64_t previous_end = header.data_offset;
  uint64_t previous_offset = 0;
  for (const GgufTensor& t : header.tensors) {
    const uint64_t offset = t.info.file_offset;
    if (offset < previous_offset) Fail("not sorted by offset", t.info.name);
    previous_offset = offset;
    if (offset != header.data_offset + t.relative_offset) {
      Fail("file offset is not data offset + relative", t.info.name);
    }
    if (t.relative_offset % header.alignment != 0) {
      Fail("misaligned", t.info.name);
    }
    if (offset > file_size || t.info.nbytes > file_size - offset) {
      Fail("past the end of the file", t.info.name);
    }
    if (t.info.shape.size() != t.ggml_dims.size() || t.ggml_dims.size() > 4) {
      Fail("bad shape", t.info.name);
    }
    if (distorch::FindGgmlType(t.ggml_type) == nullptr) {
      Fail("unknown type accepted", t.info.name);
    }
    if (t.info.nbytes == 0) continue;
    if (offset < previous_end) Fail("overlap", t.info.name);
    previous_end = offset + t.info.nbytes;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view file(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<GgufHeader> whole = distorch::ParseGgufHeader(file, size);
  if (whole.ok()) {
    CheckHeader(*whole, size);
  } else if (whole.status().message().empty() ||
             distorch::GgufPrefixBytesNeeded(whole.status()) != 0) {
    Fail("bad error for a whole file", whole.status().ToString());
  }

  // Start from a tiny prefix and grow it as asked: the answer must match.
  uint64_t length = size < 8 ? size : 8;
  absl::StatusOr<GgufHeader> grown;
  while (true) {
    grown = distorch::ParseGgufHeader(file.substr(0, length), size);
    const uint64_t needed = distorch::GgufPrefixBytesNeeded(grown.status());
    if (needed == 0) break;
    if (needed <= length || needed > size) {
      Fail("need-more-bytes asked for a bad length", grown.status().ToString());
    }
    length = needed;
  }
  if (grown.ok() != whole.ok() || (!grown.ok() && grown.status() != whole.status())) {
    Fail("prefix and whole-file answers differ",
         grown.status().ToString() + " vs " + whole.status().ToString());
  }
  if (grown.ok() && (grown->tensors.size() != whole->tensors.size() ||
                     grown->data_offset != whole->data_offset)) {
    Fail("prefix and whole-file headers differ", "");
  }
  return 0;
}
