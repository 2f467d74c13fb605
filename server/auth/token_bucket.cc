#include "server/auth/token_bucket.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/duration.pb.h"

namespace tappa::server {

bool TokenBucket::Take(absl::Time now, BucketState* state,
                       absl::Duration* retry_after) const {
  if (unlimited()) return true;
  double tokens = burst_;
  if (state->updated != absl::InfinitePast()) {
    double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - state->updated));
    tokens = std::min(burst_, state->tokens + elapsed * rate_);
  }
  if (tokens < 1.0) {
    *retry_after = absl::Seconds((1.0 - tokens) / rate_);
    return false;
  }
  state->tokens = tokens - 1.0;
  state->updated = std::max(now, state->updated);
  return true;
}

std::string EncodeBucketState(const BucketState& state) {
  if (state.updated == absl::InfinitePast()) return "";
  return absl::StrCat(static_cast<int64_t>(std::floor(state.tokens * 1000)),
                      ":", absl::ToUnixMillis(state.updated));
}

BucketState DecodeBucketState(absl::string_view encoded) {
  std::vector<absl::string_view> parts = absl::StrSplit(encoded, ':');
  int64_t milli = 0, ms = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &milli) ||
      !absl::SimpleAtoi(parts[1], &ms) || milli < 0) {
    return BucketState{};
  }
  return BucketState{milli / 1000.0, absl::FromUnixMillis(ms)};
}

absl::Status RateLimitedError(absl::string_view message,
                              absl::Duration retry_after) {
  // Round up to whole milliseconds so a client that waits exactly the hint
  // finds a token.
  int64_t ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(
                                        retry_after, absl::Milliseconds(1))));
  absl::Status status = absl::ResourceExhaustedError(
      absl::StrCat(message, "; retry after ", ms, " ms"));
  // google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; }
  google::protobuf::Duration delay;
  delay.set_seconds(ms / 1000);
  delay.set_nanos(static_cast<int32_t>((ms % 1000) * 1'000'000));
  std::string body = delay.SerializeAsString();
  std::string retry_info;
  retry_info.push_back(0x0A);  // field 1, length-delimited
  retry_info.push_back(static_cast<char>(body.size()));  // always < 128
  retry_info += body;
  status.SetPayload(kRetryInfoTypeUrl, absl::Cord(retry_info));
  return status;
}

}  // namespace tappa::server
