// A streaming call refused before it starts (bad credentials, invalid
// arguments): the reactor finishes with the status at once and deletes
// itself when gRPC is done with it.
#ifndef TAPPA_SERVER_SERVICE_REFUSED_STREAM_H_
#define TAPPA_SERVER_SERVICE_REFUSED_STREAM_H_

#include "absl/status/status.h"
#include "server/service/status_util.h"

namespace tappa::server {

// `Reactor` is a rpc::WriteReactor<...> or rpc::BidiReactor<...>.
template <typename Reactor>
class RefusedStream final : public Reactor {
 public:
  explicit RefusedStream(const absl::Status& status) {
    this->Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_REFUSED_STREAM_H_
