#include "server/service/decision_service.h"

namespace tappa::server {

// Placeholder while DecideBatch is written (the helper replaces this file):
// answers UNIMPLEMENTED.
grpc::ServerBidiReactor<tappa::v1::DecideBatchRequest,
                        tappa::v1::DecideBatchResponse>*
DecisionServiceImpl::DecideBatch(grpc::CallbackServerContext* context) {
  class Refuse final
      : public grpc::ServerBidiReactor<tappa::v1::DecideBatchRequest,
                                       tappa::v1::DecideBatchResponse> {
   public:
    Refuse() {
      Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "DecideBatch"));
    }
    void OnDone() override { delete this; }
  };
  return new Refuse;
}

}  // namespace tappa::server
