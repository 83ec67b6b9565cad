#include "json_lite.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace distorch {
namespace json {
namespace {

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

void AppendUtf8(uint32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// Recursive-descent parser over one document. Not reusable; not thread-safe.
class Parser {
 public:
  Parser(absl::string_view text, const ParseOptions& options) : text_(text), options_(options) {}

  absl::StatusOr<Value> ParseDocument() {
    Value value;
    SkipWhitespace();
    absl::Status status = ParseValue(/*depth=*/0, &value);
    if (!status.ok()) return status;
    SkipWhitespace();
    if (pos_ != text_.size()) {
      return Error(pos_, "unexpected data after the JSON value");
    }
    return value;
  }

 private:
  absl::Status Error(size_t pos, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON at byte ", pos, ": ", what));
  }

  bool AtEnd() const { return pos_ >= text_.size(); }
  unsigned char Peek() const { return static_cast<unsigned char>(text_[pos_]); }

  void SkipWhitespace() {
    while (!AtEnd()) {
      char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
      ++pos_;
    }
  }

  absl::Status ParseValue(int depth, Value* out) {
    if (++values_ > options_.max_values) {
      return Error(pos_, absl::StrCat("more than ", options_.max_values, " values (limit)"));
    }
    if (AtEnd()) return Error(pos_, "unexpected end of input, expected a value");
    switch (Peek()) {
      case '{':
        return ParseObject(depth + 1, out);
      case '[':
        return ParseArray(depth + 1, out);
      case '"': {
        std::string s;
        absl::Status status = ParseString(&s);
        if (status.ok()) *out = Value(std::move(s));
        return status;
      }
      case 't':
        return ParseLiteral("true", out);
      case 'f':
        return ParseLiteral("false", out);
      case 'n':
        return ParseLiteral("null", out);
      default:
        if (Peek() == '-' || (Peek() >= '0' && Peek() <= '9')) {
          return ParseNumber(out);
        }
        return Error(pos_, absl::StrCat("unexpected character '", Shorten(text_.substr(pos_, 1)),
                                        "', expected a value"));
    }
  }

  absl::Status ParseLiteral(absl::string_view word, Value* out) {
    if (text_.substr(pos_, word.size()) != word) {
      return Error(pos_, absl::StrCat("invalid literal, expected '", word, "'"));
    }
    pos_ += word.size();
    if (word != "null") *out = Value(word == "true");
    return absl::OkStatus();
  }

  absl::Status CheckDepth(int depth) const {
    if (depth > options_.max_depth) {
      return Error(pos_, absl::StrCat("nesting deeper than ", options_.max_depth, " levels"));
    }
    return absl::OkStatus();
  }

  absl::Status ParseArray(int depth, Value* out) {
    if (absl::Status s = CheckDepth(depth); !s.ok()) return s;
    ++pos_;  // '['
    Value::Array items;
    SkipWhitespace();
    if (!AtEnd() && Peek() == ']') {
      ++pos_;
      *out = Value(std::move(items));
      return absl::OkStatus();
    }
    while (true) {
      SkipWhitespace();
      items.emplace_back();
      if (absl::Status s = ParseValue(depth, &items.back()); !s.ok()) return s;
      SkipWhitespace();
      if (AtEnd()) return Error(pos_, "unexpected end of input in array");
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == ']') {
        ++pos_;
        *out = Value(std::move(items));
        return absl::OkStatus();
      }
      return Error(pos_, "expected ',' or ']' after array element");
    }
  }

  absl::Status ParseObject(int depth, Value* out) {
    if (absl::Status s = CheckDepth(depth); !s.ok()) return s;
    ++pos_;  // '{'
    Value::Object members;
    std::vector<size_t> key_offsets;  // for duplicate-key errors
    SkipWhitespace();
    if (!AtEnd() && Peek() == '}') {
      ++pos_;
      *out = Value(std::move(members));
      return absl::OkStatus();
    }
    while (true) {
      SkipWhitespace();
      if (AtEnd() || Peek() != '"') {
        return Error(pos_, "expected a string key in object");
      }
      key_offsets.push_back(pos_);
      std::string key;
      if (absl::Status s = ParseString(&key); !s.ok()) return s;
      SkipWhitespace();
      if (AtEnd() || Peek() != ':') {
        return Error(pos_, "expected ':' after object key");
      }
      ++pos_;
      SkipWhitespace();
      members.emplace_back();
      members.back().first = std::move(key);
      if (absl::Status s = ParseValue(depth, &members.back().second); !s.ok()) {
        return s;
      }
      SkipWhitespace();
      if (AtEnd()) return Error(pos_, "unexpected end of input in object");
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') {
        ++pos_;
        break;
      }
      return Error(pos_, "expected ',' or '}' after object member");
    }
    if (absl::Status s = CheckDuplicateKeys(members, key_offsets); !s.ok()) {
      return s;
    }
    *out = Value(std::move(members));
    return absl::OkStatus();
  }

  // Sorting indices keeps this O(n log n) for the big top-level object of a
  // safetensors header; reports the first repeat in document order.
  absl::Status CheckDuplicateKeys(const Value::Object& members,
                                  const std::vector<size_t>& key_offsets) {
    if (members.size() < 2) return absl::OkStatus();
    std::vector<size_t> order(members.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return members[a].first < members[b].first; });
    size_t first_repeat = members.size();
    for (size_t i = 1; i < order.size(); ++i) {
      if (members[order[i]].first == members[order[i - 1]].first) {
        first_repeat = std::min(first_repeat, order[i]);
      }
    }
    if (first_repeat == members.size()) return absl::OkStatus();
    return Error(key_offsets[first_repeat],
                 absl::StrCat("duplicate key '", Shorten(members[first_repeat].first), "'"));
  }

  // Reads 4 hex digits at pos_.
  absl::Status ParseHex4(uint32_t* out) {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      if (AtEnd()) return Error(pos_, "unexpected end of input in \\u escape");
      char c = text_[pos_];
      uint32_t digit = 0;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return Error(pos_, "invalid hex digit in \\u escape");
      }
      value = value * 16 + digit;
    }
    *out = value;
    return absl::OkStatus();
  }

  // At a '\\'; appends the decoded character.
  absl::Status ParseEscape(std::string* out) {
    size_t start = pos_;
    ++pos_;
    if (AtEnd()) return Error(start, "unexpected end of input in escape");
    char c = text_[pos_++];
    static constexpr absl::string_view kEscaped = "\"\\/bfnrt";
    static constexpr absl::string_view kDecoded = "\"\\/\b\f\n\r\t";
    if (size_t i = kEscaped.find(c); i != absl::string_view::npos) {
      out->push_back(kDecoded[i]);
      return absl::OkStatus();
    }
    if (c != 'u') {
      return Error(start,
                   absl::StrCat("invalid escape '\\", Shorten(absl::string_view(&c, 1)), "'"));
    }
    uint32_t unit = 0;
    if (absl::Status s = ParseHex4(&unit); !s.ok()) return s;
    if (unit >= 0xDC00 && unit <= 0xDFFF) {
      return Error(start, "lone low surrogate in \\u escape");
    }
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u") {
        return Error(start, "high surrogate not followed by a low surrogate");
      }
      pos_ += 2;
      uint32_t low = 0;
      if (absl::Status s = ParseHex4(&low); !s.ok()) return s;
      if (low < 0xDC00 || low > 0xDFFF) {
        return Error(start, "high surrogate not followed by a low surrogate");
      }
      unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(unit, out);
    return absl::OkStatus();
  }

  // Validates one multi-byte UTF-8 sequence at pos_ (RFC 3629: no overlong
  // forms, no surrogates, nothing above U+10FFFF) and appends it.
  absl::Status ParseUtf8(std::string* out) {
    unsigned char lead = Peek();
    size_t length;
    unsigned char low = 0x80, high = 0xBF;  // bounds of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    } else {
      return Error(pos_, "invalid UTF-8 in string");
    }
    if (text_.size() - pos_ < length) {
      return Error(pos_, "invalid UTF-8 in string");
    }
    unsigned char second = static_cast<unsigned char>(text_[pos_ + 1]);
    if (second < low || second > high) {
      return Error(pos_, "invalid UTF-8 in string");
    }
    for (size_t i = 2; i < length; ++i) {
      if (!IsContinuation(static_cast<unsigned char>(text_[pos_ + i]))) {
        return Error(pos_, "invalid UTF-8 in string");
      }
    }
    out->append(text_.data() + pos_, length);
    pos_ += length;
    return absl::OkStatus();
  }

  // At the opening quote.
  absl::Status ParseString(std::string* out) {
    size_t start = pos_;
    ++pos_;
    while (true) {
      // Copy runs of plain characters at once; most names are plain ASCII.
      size_t run = pos_;
      while (run < text_.size()) {
        unsigned char c = static_cast<unsigned char>(text_[run]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++run;
      }
      out->append(text_.data() + pos_, run - pos_);
      pos_ = run;
      if (AtEnd()) return Error(start, "unterminated string");
      unsigned char c = Peek();
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      absl::Status status;
      if (c == '\\') {
        status = ParseEscape(out);
      } else if (c < 0x20) {
        status = Error(pos_, "unescaped control character in string");
      } else {
        status = ParseUtf8(out);
      }
      if (!status.ok()) return status;
    }
  }

  bool ConsumeDigits() {
    size_t start = pos_;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') ++pos_;
    return pos_ > start;
  }

  absl::Status ParseNumber(Value* out) {
    size_t start = pos_;
    bool negative = Peek() == '-';
    if (negative) ++pos_;
    if (AtEnd() || Peek() < '0' || Peek() > '9') {
      return Error(start, "invalid number: expected a digit");
    }
    if (Peek() == '0') {
      ++pos_;
      if (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
        return Error(start, "invalid number: leading zero");
      }
    } else {
      ConsumeDigits();
    }
    size_t integer_end = pos_;
    bool integral = true;
    if (!AtEnd() && Peek() == '.') {
      integral = false;
      ++pos_;
      if (!ConsumeDigits()) {
        return Error(start, "invalid number: expected a digit after '.'");
      }
    }
    if (!AtEnd() && (Peek() == 'e' || Peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!AtEnd() && (Peek() == '+' || Peek() == '-')) ++pos_;
      if (!ConsumeDigits()) {
        return Error(start, "invalid number: expected a digit in exponent");
      }
    }
    absl::string_view literal = text_.substr(start, pos_ - start);
    if (integral) {
      // Accumulate the magnitude; anything past int64 becomes a double.
      uint64_t magnitude = 0;
      bool fits = true;
      const uint64_t limit =
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + (negative ? 1 : 0);
      for (size_t i = start + (negative ? 1 : 0); i < integer_end; ++i) {
        uint64_t digit = static_cast<uint64_t>(text_[i] - '0');
        if (magnitude > (limit - digit) / 10) {
          fits = false;
          break;
        }
        magnitude = magnitude * 10 + digit;
      }
      if (fits) {
        int64_t value =
            negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
        *out = Value(value);
        return absl::OkStatus();
      }
    }
    double value;
    if (!absl::SimpleAtod(literal, &value) || !std::isfinite(value)) {
      return Error(start, absl::StrCat("number '", Shorten(literal), "' is out of range"));
    }
    *out = Value(value);
    return absl::OkStatus();
  }

  absl::string_view text_;
  const ParseOptions& options_;
  size_t pos_ = 0;
  size_t values_ = 0;
};

}  // namespace

const Value* Value::Find(absl::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [name, value] : object()) {
    if (name == key) return &value;
  }
  return nullptr;
}

absl::string_view TypeName(Value::Type type) {
  switch (type) {
    case Value::Type::kNull:
      return "null";
    case Value::Type::kBool:
      return "bool";
    case Value::Type::kInt:
      return "integer";
    case Value::Type::kDouble:
      return "number";
    case Value::Type::kString:
      return "string";
    case Value::Type::kArray:
      return "array";
    case Value::Type::kObject:
      return "object";
  }
  return "?";
}

absl::StatusOr<Value> Parse(absl::string_view text, const ParseOptions& options) {
  return Parser(text, options).ParseDocument();
}

std::string Shorten(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return absl::CHexEscape(text);
  return absl::StrCat(absl::CHexEscape(text.substr(0, max_bytes)), "...");
}

}  // namespace json
}  // namespace distorch
