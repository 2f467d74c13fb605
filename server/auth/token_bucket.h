// A token bucket: `rate` tokens per second refill a bucket of `burst`
// tokens; each request takes one. The state is two numbers, so it can live
// in memory (per API key) or in a contact's Redis hash (per contact, exact
// across replicas because the event write is a conditional commit).
//
// Thread safety: TokenBucket is an immutable value; callers guard the state.
#ifndef TAPPA_SERVER_AUTH_TOKEN_BUCKET_H_
#define TAPPA_SERVER_AUTH_TOKEN_BUCKET_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tappa::server {

struct BucketState {
  double tokens = 0;
  absl::Time updated = absl::InfinitePast();  // InfinitePast: a full bucket
};

class TokenBucket {
 public:
  // `rate` <= 0 means unlimited (every Take succeeds). `burst` < 1 is read
  // as 1.
  TokenBucket(double rate, double burst)
      : rate_(rate), burst_(burst < 1 ? 1 : burst) {}

  bool unlimited() const { return rate_ <= 0; }
  double rate() const { return rate_; }
  double burst() const { return burst_; }

  // Takes one token at `now`: true and `*state` updated, or false with
  // `*retry_after` set to when one token will be there (state unchanged).
  // A clock that goes backwards refills nothing.
  bool Take(absl::Time now, BucketState* state,
            absl::Duration* retry_after) const;

 private:
  double rate_;
  double burst_;
};

// "<milli-tokens>:<unix ms>", the form kept in a contact's hash; Decode of
// anything else (or "") gives a full bucket.
std::string EncodeBucketState(const BucketState& state);
BucketState DecodeBucketState(absl::string_view encoded);

// RESOURCE_EXHAUSTED with `message`, the retry delay appended to it, and a
// google.rpc.RetryInfo payload that ToGrpcStatus (status_util.h) puts in the
// gRPC status details.
absl::Status RateLimitedError(absl::string_view message,
                              absl::Duration retry_after);

// The type URL of the RetryInfo payload.
inline constexpr absl::string_view kRetryInfoTypeUrl =
    "type.googleapis.com/google.rpc.RetryInfo";

}  // namespace tappa::server

#endif  // TAPPA_SERVER_AUTH_TOKEN_BUCKET_H_
