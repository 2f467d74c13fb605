#include "server/auth/token_bucket.h"

#include "absl/strings/cord.h"
#include "gtest/gtest.h"
#include "server/service/status_util.h"

namespace tappa::server {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

TEST(TokenBucketTest, BurstThenRate) {
  TokenBucket bucket(/*rate=*/2, /*burst=*/3);
  BucketState state;
  absl::Duration retry;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bucket.Take(kT0, &state, &retry));
  EXPECT_FALSE(bucket.Take(kT0, &state, &retry));
  EXPECT_EQ(retry, absl::Milliseconds(500));
  EXPECT_FALSE(bucket.Take(kT0 + absl::Milliseconds(499), &state, &retry));
  EXPECT_TRUE(bucket.Take(kT0 + absl::Milliseconds(500), &state, &retry));
  // Ten idle seconds refill only up to the burst.
  absl::Time later = kT0 + absl::Seconds(10);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bucket.Take(later, &state, &retry));
  EXPECT_FALSE(bucket.Take(later, &state, &retry));
}

TEST(TokenBucketTest, UnlimitedAndBackwardsClock) {
  TokenBucket unlimited(0, 0);
  BucketState state;
  absl::Duration retry;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(unlimited.Take(kT0, &state, &retry));
  }
  TokenBucket bucket(1, 1);
  EXPECT_TRUE(bucket.Take(kT0, &state, &retry));
  // A clock that steps back refills nothing.
  EXPECT_FALSE(bucket.Take(kT0 - absl::Hours(1), &state, &retry));
}

TEST(TokenBucketTest, StateRoundTripsThroughItsStoredForm) {
  TokenBucket bucket(10, 5);
  BucketState state;
  absl::Duration retry;
  ASSERT_TRUE(bucket.Take(kT0, &state, &retry));
  BucketState decoded = DecodeBucketState(EncodeBucketState(state));
  EXPECT_NEAR(decoded.tokens, 4.0, 1e-3);
  EXPECT_EQ(decoded.updated, kT0);
  EXPECT_EQ(EncodeBucketState(BucketState{}), "");
  for (const char* junk : {"", "x", "1:", ":2", "-5:7", "1:2:3"}) {
    EXPECT_EQ(DecodeBucketState(junk).updated, absl::InfinitePast()) << junk;
  }
}

TEST(TokenBucketTest, RateLimitedErrorCarriesRetryInfoIntoGrpcDetails) {
  absl::Status s = RateLimitedError("too fast", absl::Microseconds(1500));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "too fast; retry after 2 ms");
  absl::optional<absl::Cord> payload = s.GetPayload(kRetryInfoTypeUrl);
  ASSERT_TRUE(payload.has_value());
  grpc::Status g = ToGrpcStatus(s);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(g.error_message(), "too fast; retry after 2 ms");
  // google.rpc.Status: code 8, the message, one Any with the RetryInfo.
  const std::string& details = g.error_details();
  ASSERT_GE(details.size(), 4u);
  EXPECT_EQ(details[0], 0x08);
  EXPECT_EQ(details[1], 8);
  EXPECT_NE(details.find("type.googleapis.com/google.rpc.RetryInfo"),
            std::string::npos);
  EXPECT_NE(details.find(std::string(*payload)), std::string::npos);
  // A status without payloads has no details.
  EXPECT_TRUE(ToGrpcStatus(absl::NotFoundError("x")).error_details().empty());
}

}  // namespace
}  // namespace tappa::server
