// tappa.v1.FollowUpService: follow-ups delivered to marketing automation
// over gRPC, backed by the shard streams' consumer groups
// (followup_store.h), so any replica can serve any consumer and a consumer
// that reconnects resumes where it left.
//
// Each SubscribeFollowUps stream has a thread of its own that polls the
// streams (its own pending deliveries first, then entries idle past the
// visibility timeout claimed from any consumer, then new entries) every
// 100 ms when there is nothing to send, and writes one delivery at a time.
// Subscribers are automation workers, a handful per deployment, so a thread
// each is cheap and keeps the flow plain.
#ifndef TAPPA_SERVER_SERVICE_FOLLOWUP_SERVICE_H_
#define TAPPA_SERVER_SERVICE_FOLLOWUP_SERVICE_H_

#include "server/rpc/stream_call.h"
#include "server/rpc/unary_call.h"
#include "server/service/runtime.h"
#include "server/store/followup_store.h"
#include "tappa/v1/followup_service.grpc.pb.h"

namespace tappa::server {

class FollowUpServiceImpl final {
 public:
  // `store` must outlive the service.
  FollowUpServiceImpl(const Runtime& runtime, FollowUpStore* store)
      : runtime_(runtime), store_(store) {}

  // Register with the builder before BuildAndStart.
  grpc::Service* grpc_service() { return &async_; }
  // Arms every method on every queue (after BuildAndStart).
  void Serve(rpc::CompletionQueues* queues);

  rpc::WriteReactor<tappa::v1::SubscribeFollowUpsResponse>* SubscribeFollowUps(
      grpc::ServerContext* context,
      const tappa::v1::SubscribeFollowUpsRequest* request);

  void AckFollowUp(grpc::ServerContext* context,
                   const tappa::v1::AckFollowUpRequest* request,
                   tappa::v1::AckFollowUpResponse* response,
                   rpc::UnaryReactor* reactor);

 private:
  tappa::v1::FollowUpService::AsyncService async_;
  Runtime runtime_;
  FollowUpStore* store_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_FOLLOWUP_SERVICE_H_
