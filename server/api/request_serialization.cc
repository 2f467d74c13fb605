#include "server/api/request_serialization.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/wire_format_lite.h"

namespace tappa::api {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;

bool IsValidUtf8(const std::string& s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = s[i];
    int len = c < 0x80         ? 1
              : (c >> 5) == 6  ? 2
              : (c >> 4) == 14 ? 3
              : (c >> 3) == 30 ? 4
                               : 0;
    if (len == 0 || i + len > n) return false;
    uint32_t cp = len == 1   ? c
                  : len == 2 ? c & 0x1f
                  : len == 3 ? c & 0x0f
                             : c & 0x07;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = s[i + k];
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

// Walks the wire form of a `descriptor` message; returns the path of the
// first string field with invalid UTF-8, or "" when there is none. Depth is
// bounded by the API's nesting (Value inside Value is not walked).
std::string FindInvalidUtf8(const Descriptor* descriptor,
                            const std::string& bytes, const std::string& path,
                            int depth) {
  if (depth > 8) return "";
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  std::vector<int> repeat_index(descriptor->field_count(), 0);
  std::string map_key;
  while (true) {
    uint32_t tag = in.ReadTag();
    if (tag == 0) return "";
    int number = WireFormatLite::GetTagFieldNumber(tag);
    const FieldDescriptor* field = descriptor->FindFieldByNumber(number);
    if (WireFormatLite::GetTagWireType(tag) !=
            WireFormatLite::WIRETYPE_LENGTH_DELIMITED ||
        field == nullptr) {
      if (!WireFormatLite::SkipField(&in, tag)) return "";
      continue;
    }
    std::string value;
    if (!WireFormatLite::ReadBytes(&in, &value)) return "";
    std::string where =
        path.empty() ? field->name() : absl::StrCat(path, ".", field->name());
    if (field->is_repeated() && !field->is_map()) {
      absl::StrAppend(&where, "[", repeat_index[field->index()]++, "]");
    }
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      if (!IsValidUtf8(value)) return where;
    } else if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (field->is_map()) {
        // A map entry: report "properties" for a bad key, and
        // "properties.<key>" for a bad value.
        const Descriptor* entry = field->message_type();
        std::string bad = FindInvalidUtf8(entry, value, "", depth + 1);
        if (!bad.empty()) {
          return absl::StartsWith(bad, "key") ? absl::StrCat(where, " (a key)")
                                              : where;
        }
      } else {
        std::string bad =
            FindInvalidUtf8(field->message_type(), value, where, depth + 1);
        if (!bad.empty()) return bad;
      }
    }
  }
}

// The last value of the top-level string field `field` in the wire form
// `bytes` when it is valid UTF-8 (what a successful parse would have kept),
// else "".
std::string FindValidString(const FieldDescriptor* field,
                            const std::string& bytes) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  std::string found;
  while (true) {
    uint32_t tag = in.ReadTag();
    if (tag == 0) return found;
    if (WireFormatLite::GetTagFieldNumber(tag) != field->number() ||
        WireFormatLite::GetTagWireType(tag) !=
            WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::SkipField(&in, tag)) return found;
      continue;
    }
    std::string value;
    if (!WireFormatLite::ReadBytes(&in, &value)) return found;
    found = IsValidUtf8(value) ? std::move(value) : "";
  }
}

}  // namespace

std::string DescribeParseFailure(const Descriptor* descriptor,
                                 const std::string& bytes) {
  std::string field = FindInvalidUtf8(descriptor, bytes, "", 0);
  if (field.empty()) return "request: malformed message";
  return absl::StrCat(field, ": must be valid UTF-8");
}

grpc::Status DeserializeRequest(grpc::ByteBuffer* buffer,
                                google::protobuf::Message* msg) {
  // No message at all: the call ended before its request arrived (its
  // client cancelled it, or its deadline passed while it waited, which is
  // common under overload). Not a malformed request: gRPC ends the call
  // without running the handler, and nobody waits for the answer.
  if (buffer == nullptr || !buffer->Valid()) {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "the call ended before its request arrived");
  }
  // The copy shares the slices (reference counted): the common path costs
  // no extra copy of the bytes.
  grpc::ByteBuffer copy(*buffer);
  grpc::Status status =
      grpc::GenericDeserialize<grpc::ProtoBufferReader,
                               google::protobuf::Message>(buffer, msg);
  if (status.ok()) return status;
  std::string bytes;
  std::vector<grpc::Slice> slices;
  if (copy.Dump(&slices).ok()) {
    for (const grpc::Slice& part : slices) {
      bytes.append(reinterpret_cast<const char*>(part.begin()), part.size());
    }
  }
  msg->Clear();
  msg->GetReflection()->MutableUnknownFields(msg)->AddLengthDelimited(
      kDecodeErrorField, DescribeParseFailure(msg->GetDescriptor(), bytes));
  // Streamed responses are matched to requests by request_id only.
  const FieldDescriptor* request_id =
      msg->GetDescriptor()->FindFieldByName("request_id");
  if (request_id != nullptr &&
      request_id->type() == FieldDescriptor::TYPE_STRING &&
      !request_id->is_repeated()) {
    std::string id = FindValidString(request_id, bytes);
    if (!id.empty()) msg->GetReflection()->SetString(msg, request_id, id);
  }
  return grpc::Status::OK;
}

std::string DecodeError(const google::protobuf::Message& request) {
  const google::protobuf::UnknownFieldSet& unknown =
      request.GetReflection()->GetUnknownFields(request);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const google::protobuf::UnknownField& field = unknown.field(i);
    if (field.number() == kDecodeErrorField &&
        field.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      return field.length_delimited();
    }
  }
  return "";
}

}  // namespace tappa::api
