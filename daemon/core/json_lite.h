// A small, strict JSON reader for hostile input (safetensors headers).
//
// Private to the core: it reads exactly what RFC 8259 allows and nothing
// more, because the bytes come from files the broker did not write:
//   - nesting depth and the total number of values are bounded, so a crafted
//     header cannot exhaust the stack or memory;
//   - trailing garbage after the top-level value is an error (whitespace is
//     fine: safetensors pads its header with spaces);
//   - a key repeated within one object is an error, never "last one wins";
//   - strings must be valid UTF-8; escapes include \uXXXX with surrogate
//     pairs, and lone surrogates are rejected;
//   - integral numbers (no fraction, no exponent) that fit in int64 are kept
//     exactly as int64; every other number is a finite double.
// Errors are InvalidArgument and name the byte offset:
//   "invalid JSON at byte 17: expected ':' after object key".
#ifndef DISTORCH_DAEMON_CORE_JSON_LITE_H_
#define DISTORCH_DAEMON_CORE_JSON_LITE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace distorch {
namespace json {

// One parsed JSON value. Immutable after parsing; copyable. Accessors for
// the wrong type are programming errors (std::get terminates).
class Value {
 public:
  enum class Type { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  using Array = std::vector<Value>;
  // Members in document order; keys are unique (the parser guarantees it).
  using Object = std::vector<std::pair<std::string, Value>>;

  Value() = default;
  explicit Value(bool b) : data_(b) {}
  explicit Value(int64_t i) : data_(i) {}
  explicit Value(double d) : data_(d) {}
  explicit Value(std::string s) : data_(std::move(s)) {}
  explicit Value(Array a) : data_(std::move(a)) {}
  explicit Value(Object o) : data_(std::move(o)) {}

  Type type() const { return static_cast<Type>(data_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_double() const { return type() == Type::kDouble; }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  bool bool_value() const { return std::get<bool>(data_); }
  int64_t int_value() const { return std::get<int64_t>(data_); }
  double double_value() const { return std::get<double>(data_); }
  const std::string& string_value() const { return std::get<std::string>(data_); }
  const Array& array() const { return std::get<Array>(data_); }
  const Object& object() const { return std::get<Object>(data_); }

  // The member named `key` of an object, or nullptr (also for non-objects).
  // Linear: objects in safetensors entries have three members.
  const Value* Find(absl::string_view key) const;

 private:
  // Order matches Type.
  std::variant<std::monostate, bool, int64_t, double, std::string, Array, Object> data_;
};

// "null", "bool", "integer", "number", "string", "array", "object".
absl::string_view TypeName(Value::Type type);

struct ParseOptions {
  // Arrays/objects nested deeper than this are rejected. Safetensors needs 3.
  int max_depth = 64;
  // Every value (scalars, arrays, objects, not keys) counts once. Bounds the
  // memory a document can cost: about 40 bytes per value plus string bytes.
  // A real safetensors header has ~8 values per tensor.
  size_t max_values = size_t{1} << 21;
};

// Parses `text` as exactly one JSON value surrounded by optional whitespace.
absl::StatusOr<Value> Parse(absl::string_view text, const ParseOptions& options = {});

// `text` made safe to quote in an error message: at most `max_bytes` bytes,
// non-printable bytes escaped, "..." appended when cut.
std::string Shorten(absl::string_view text, size_t max_bytes = 64);

}  // namespace json
}  // namespace distorch

#endif  // DISTORCH_DAEMON_CORE_JSON_LITE_H_
