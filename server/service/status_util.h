// Conversions between absl::Status and grpc::Status, and between absl::Time
// and protobuf timestamps.
#ifndef TAPPA_SERVER_SERVICE_STATUS_UTIL_H_
#define TAPPA_SERVER_SERVICE_STATUS_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/grpcpp.h"

namespace tappa::server {

// The gRPC status of `s`. Payloads of `s` (e.g. the RetryInfo of
// RateLimitedError, server/auth/token_bucket.h) become the status details: a
// google.rpc.Status with each payload as an Any, as gRPC's rich error model
// expects in the "grpc-status-details-bin" trailer.
grpc::Status ToGrpcStatus(const absl::Status& s);

inline google::protobuf::Timestamp TimeToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  timespec spec = absl::ToTimespec(t);
  ts.set_seconds(spec.tv_sec);
  ts.set_nanos(static_cast<int32_t>(spec.tv_nsec));
  return ts;
}

inline absl::Time ProtoToTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// The deadline of a call in real time: the client's when it set one, else
// the real time now plus `budget` (gRPC reports "no deadline" as a time in
// the far future). Deadlines are always real time, whatever the server's
// clock says (a test clock may run fast).
inline absl::Time CallDeadline(const grpc::ServerContextBase* context,
                               absl::Duration budget) {
  auto deadline = context->deadline();
  if (deadline >=
      std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::Now() + budget;
  }
  return absl::FromChrono(deadline);
}

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_STATUS_UTIL_H_
