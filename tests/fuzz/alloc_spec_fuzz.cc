// Fuzzes ParseAllocation with arbitrary bytes. It must never crash, and any
// string it accepts must have a canonical ToString() that parses back to the
// same meaning and prints the same text again (aborts on a violation).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distorch/alloc_spec.h"

namespace {

[[noreturn]] void Fail(const char* what, absl::string_view input, const std::string& canonical) {
  std::fprintf(stderr, "alloc_spec_fuzz: %s\n  input: '%.*s'\n  canonical: '%s'\n", what,
               static_cast<int>(input.size()), input.data(), canonical.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<distorch::AllocSpec> spec = distorch::ParseAllocation(input);
  if (!spec.ok()) {
    // Errors are for people: never empty, always InvalidArgument.
    if (spec.status().message().empty() ||
        spec.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("error without a message or with the wrong code", input, "");
    }
    return 0;
  }
  std::string canonical = spec->ToString();
  absl::StatusOr<distorch::AllocSpec> again = distorch::ParseAllocation(canonical);
  if (!again.ok()) Fail("canonical text does not parse", input, canonical);
  if (!distorch::SameMeaning(*spec, *again)) {
    Fail("canonical text parses to a different spec", input, canonical);
  }
  if (again->ToString() != canonical) {
    Fail("canonical text is not stable", input, canonical);
  }
  return 0;
}
