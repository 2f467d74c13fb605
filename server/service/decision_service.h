// tappa.v1.DecisionService over the callback API. A NextBestAction awaits
// exactly one Redis round trip (HGETALL of the contact); when Redis is down
// or slower than the call's deadline (or --decision_budget when the client
// set none) allows, it answers with the placement's fallback action flagged
// `degraded`, within that deadline.
#ifndef TAPPA_SERVER_SERVICE_DECISION_SERVICE_H_
#define TAPPA_SERVER_SERVICE_DECISION_SERVICE_H_

#include "server/service/runtime.h"
#include "tappa/v1/decision_service.grpc.pb.h"

namespace tappa::server {

class DecisionServiceImpl final
    : public tappa::v1::DecisionService::CallbackService {
 public:
  explicit DecisionServiceImpl(const Runtime& runtime) : runtime_(runtime) {}

  grpc::ServerUnaryReactor* NextBestAction(
      grpc::CallbackServerContext* context,
      const tappa::v1::NextBestActionRequest* request,
      tappa::v1::NextBestActionResponse* response) override;

 private:
  Runtime runtime_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_DECISION_SERVICE_H_
