// Decoding of API requests that names the field carrying invalid UTF-8.
//
// proto3 `string` fields must hold UTF-8; protobuf refuses to parse a
// message that breaks this, and gRPC then answers INTERNAL with no useful
// message. Tappa promises INVALID_ARGUMENT naming the field
// ("contact_id: must be valid UTF-8"), so the request messages get their own
// grpc::SerializationTraits that, when parsing fails, find the offending
// field.
//
// This header is force-included (-include) into every translation unit that
// uses the generated API code (the tappa_proto target's PUBLIC compile
// options), so the specializations below are the only ones ever instantiated
// for these types.
#ifndef TAPPA_SERVER_API_REQUEST_SERIALIZATION_H_
#define TAPPA_SERVER_API_REQUEST_SERIALIZATION_H_

#include <string>

#include "google/protobuf/descriptor.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "tappa/v1/decision_service.pb.h"
#include "tappa/v1/journey_service.pb.h"

namespace tappa::api {

// Describes why `bytes` (the wire form of a message of type `descriptor`)
// does not parse: "<field path>: must be valid UTF-8" for the first string
// field holding invalid UTF-8 (paths like "requests[3].properties.key"), or
// a generic "request: malformed message" otherwise.
std::string DescribeParseFailure(const google::protobuf::Descriptor* descriptor,
                                 const std::string& bytes);

// Deserialize for request messages. gRPC 1.51 drops our status when
// deserialization fails (the callback API answers UNIMPLEMENTED, the async
// API cancels the call as INTERNAL "Unable to parse request"), so a
// message that does not parse is instead delivered to the handler empty,
// carrying DescribeParseFailure's text in an unknown field that handlers read
// with DecodeError(). A top-level string field named `request_id` that is
// itself valid UTF-8 is kept, so a streamed request's error response can
// still be matched to its request. A call that ended before its message
// arrived (no message at all) is not a malformed request: it fails, and
// gRPC ends it without running the handler.
grpc::Status DeserializeRequest(grpc::ByteBuffer* buffer,
                                google::protobuf::Message* msg);

// The field number (the largest protobuf allows) that carries a decoding
// error to the handler; never used by the API.
inline constexpr int kDecodeErrorField = 536870911;

// "" when `request` decoded normally, else why it did not (to be returned as
// INVALID_ARGUMENT). Cheap: one check that the unknown fields are empty.
std::string DecodeError(const google::protobuf::Message& request);

}  // namespace tappa::api

#define TAPPA_REQUEST_SERIALIZATION_TRAITS(Type)                              \
  template <>                                                                 \
  class grpc::SerializationTraits<Type, void> {                               \
   public:                                                                    \
    static grpc::Status Serialize(const grpc::protobuf::MessageLite& msg,     \
                                  grpc::ByteBuffer* bb, bool* own_buffer) {   \
      return grpc::GenericSerialize<grpc::ProtoBufferWriter, Type>(           \
          msg, bb, own_buffer);                                               \
    }                                                                         \
    static grpc::Status Deserialize(grpc::ByteBuffer* buffer,                 \
                                    grpc::protobuf::MessageLite* msg) {       \
      return tappa::api::DeserializeRequest(buffer, static_cast<Type*>(msg)); \
    }                                                                         \
  };

TAPPA_REQUEST_SERIALIZATION_TRAITS(tappa::v1::TrackEventRequest)
TAPPA_REQUEST_SERIALIZATION_TRAITS(tappa::v1::TrackEventsRequest)
TAPPA_REQUEST_SERIALIZATION_TRAITS(tappa::v1::GetContactRequest)
TAPPA_REQUEST_SERIALIZATION_TRAITS(tappa::v1::DeleteContactRequest)
TAPPA_REQUEST_SERIALIZATION_TRAITS(tappa::v1::NextBestActionRequest)
// Streamed: without this a message that does not parse would end the
// server's read side (OnReadDone(false)), indistinguishable from half-close.
TAPPA_REQUEST_SERIALIZATION_TRAITS(tappa::v1::DecideBatchRequest)

#undef TAPPA_REQUEST_SERIALIZATION_TRAITS

#endif  // TAPPA_SERVER_API_REQUEST_SERIALIZATION_H_
