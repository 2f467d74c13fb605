// grpc.health.v1.Health on the async API (gRPC's built-in service runs on
// the callback API, whose polling threads Tappa does without:
// server/rpc/completion_queues.h).
//
// Check answers the status set for a service ("" = the whole server) and
// NOT_FOUND for a service never set; Watch streams the status at once and
// again at every change (SERVICE_UNKNOWN for a service never set, as the
// protocol says) until the client leaves or Shutdown.
#ifndef TAPPA_SERVER_RPC_HEALTH_SERVICE_H_
#define TAPPA_SERVER_RPC_HEALTH_SERVICE_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/rpc/completion_queues.h"

namespace tappa::rpc {

class HealthService {
 public:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;

  HealthService() = default;
  HealthService(const HealthService&) = delete;
  HealthService& operator=(const HealthService&) = delete;

  // Register with the builder before BuildAndStart.
  grpc::Service* grpc_service() { return &async_; }
  // Arms Check and Watch on every queue.
  void Serve(CompletionQueues* queues);

  // Thread-safe; watchers of `service` are told when it changes.
  void SetServingStatus(const std::string& service, bool serving);

  // Sets every service NOT_SERVING, tells the watchers, and ends their
  // streams; later Watch calls end at once. Call before the server's
  // Shutdown, so watchers do not hold it for its whole grace period.
  void Shutdown();

 private:
  class Watcher;

  Status StatusOf(const std::string& service) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::health::v1::Health::AsyncService async_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Status> statuses_ ABSL_GUARDED_BY(mu_);
  std::vector<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tappa::rpc

#endif  // TAPPA_SERVER_RPC_HEALTH_SERVICE_H_
