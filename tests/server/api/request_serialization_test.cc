// Request decoding: a message that does not parse reaches the handler with
// its decode error (INVALID_ARGUMENT there); a call whose message never
// arrived is not a malformed request.
#include "server/api/request_serialization.h"

#include <string>

#include "gtest/gtest.h"
#include "tappa/v1/decision_service.pb.h"

namespace tappa::api {
namespace {

grpc::ByteBuffer BufferOf(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

TEST(RequestSerializationTest, AWholeMessageDecodes) {
  tappa::v1::NextBestActionRequest sent;
  sent.set_contact_id("ada");
  sent.set_channel("web");
  grpc::ByteBuffer buffer = BufferOf(sent.SerializeAsString());
  tappa::v1::NextBestActionRequest got;
  ASSERT_TRUE(DeserializeRequest(&buffer, &got).ok());
  EXPECT_EQ(DecodeError(got), "");
  EXPECT_EQ(got.contact_id(), "ada");
}

TEST(RequestSerializationTest, ABrokenMessageReachesTheHandlerWithItsError) {
  // Field 1 (contact_id) announces 10 bytes and carries 2.
  grpc::ByteBuffer buffer =
      BufferOf(std::string("\x0a\x0a"
                           "ab",
                           4));
  tappa::v1::NextBestActionRequest got;
  ASSERT_TRUE(DeserializeRequest(&buffer, &got).ok());
  EXPECT_EQ(DecodeError(got), "request: malformed message");
}

// Under overload, calls whose clients gave up reached handlers without a
// message and were counted as malformed (INVALID_ARGUMENT); they fail here
// instead, and gRPC ends them without running the handler.
TEST(RequestSerializationTest, NoMessageAtAllIsNotAMalformedRequest) {
  grpc::ByteBuffer empty;  // what gRPC hands over when no message arrived
  ASSERT_FALSE(empty.Valid());
  tappa::v1::NextBestActionRequest got;
  grpc::Status status = DeserializeRequest(&empty, &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(DecodeError(got), "");
  EXPECT_EQ(DeserializeRequest(nullptr, &got).error_code(),
            grpc::StatusCode::CANCELLED);
}

}  // namespace
}  // namespace tappa::api
