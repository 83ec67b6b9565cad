// distorchctl --json: a reply as one JSON object that scripts can use as is.
//
// The proto3 JSON mapping (google::protobuf::util::MessageToJsonString)
// quotes 64-bit integers ("bytes": "2147483648"), so every script had to
// convert byte counts and ids back. This printer walks the message by
// reflection and keeps the mapping otherwise: field names as in broker.proto,
// every scalar and repeated field printed (defaults included), a message or
// oneof member only when set, enums by name, bytes in base64. Integers of
// every width are JSON numbers.
#ifndef DISTORCH_DAEMON_CTL_PROTO_JSON_H_
#define DISTORCH_DAEMON_CTL_PROTO_JSON_H_

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace distorch {
namespace proto_json_internal {

inline void AppendJsonString(const std::string& text, std::string* out) {
  out->push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", c);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

inline void AppendJsonMessage(const google::protobuf::Message& message, std::string* out);

// One value of `field`: element `index` of a repeated field, or the singular
// value when index < 0.
inline void AppendJsonValue(const google::protobuf::Message& message,
                            const google::protobuf::FieldDescriptor* field, int index,
                            std::string* out) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = message.GetReflection();
  const bool rep = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(
          out, rep ? r->GetRepeatedInt32(message, field, index) : r->GetInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(
          out, rep ? r->GetRepeatedInt64(message, field, index) : r->GetInt64(message, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(
          out, rep ? r->GetRepeatedUInt32(message, field, index) : r->GetUInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(
          out, rep ? r->GetRepeatedUInt64(message, field, index) : r->GetUInt64(message, field));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      absl::StrAppendFormat(
          out, "%.17g",
          rep ? r->GetRepeatedDouble(message, field, index) : r->GetDouble(message, field));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      absl::StrAppendFormat(
          out, "%.9g",
          rep ? r->GetRepeatedFloat(message, field, index) : r->GetFloat(message, field));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field))
                      ? "true"
                      : "false");
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      AppendJsonString(
          (rep ? r->GetRepeatedEnum(message, field, index) : r->GetEnum(message, field))->name(),
          out);
      break;
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string value =
          rep ? r->GetRepeatedString(message, field, index) : r->GetString(message, field);
      if (field->type() == FieldDescriptor::TYPE_BYTES) value = absl::Base64Escape(value);
      AppendJsonString(value, out);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendJsonMessage(
          rep ? r->GetRepeatedMessage(message, field, index) : r->GetMessage(message, field), out);
      break;
  }
}

inline void AppendJsonMessage(const google::protobuf::Message& message, std::string* out) {
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const google::protobuf::Reflection* r = message.GetReflection();
  out->push_back('{');
  bool first = true;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    // Fields with presence (messages, oneof members) only when set, as the
    // proto3 mapping prints them.
    if (!field->is_repeated() && field->has_presence() && !r->HasField(message, field)) continue;
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(field->name(), out);
    out->push_back(':');
    if (!field->is_repeated()) {
      AppendJsonValue(message, field, -1, out);
      continue;
    }
    out->push_back('[');
    for (int j = 0; j < r->FieldSize(message, field); ++j) {
      if (j) out->push_back(',');
      AppendJsonValue(message, field, j, out);
    }
    out->push_back(']');
  }
  out->push_back('}');
}

}  // namespace proto_json_internal

// `message` as one line of JSON (see the file comment). broker.proto has no
// map fields; one would print as a list of {"key", "value"} objects.
inline std::string ProtoToJson(const google::protobuf::Message& message) {
  std::string out;
  proto_json_internal::AppendJsonMessage(message, &out);
  return out;
}

}  // namespace distorch

#endif  // DISTORCH_DAEMON_CTL_PROTO_JSON_H_
