// tappa.v1.AdminService: reload and describe the served ruleset.
#ifndef TAPPA_SERVER_SERVICE_ADMIN_SERVICE_H_
#define TAPPA_SERVER_SERVICE_ADMIN_SERVICE_H_

#include "server/rpc/unary_call.h"
#include "server/service/ruleset_reloader.h"
#include "server/service/runtime.h"
#include "tappa/v1/admin_service.grpc.pb.h"

namespace tappa::server {

class AdminServiceImpl final {
 public:
  // `reloader` must outlive the service.
  AdminServiceImpl(const Runtime& runtime, RulesetReloader* reloader)
      : runtime_(runtime), reloader_(reloader) {}

  // Register with the builder before BuildAndStart.
  grpc::Service* grpc_service() { return &async_; }
  // Arms every method on every queue (after BuildAndStart).
  void Serve(rpc::CompletionQueues* queues);

  // Reloads on the calling gRPC thread (parsing takes milliseconds; admin
  // calls are rare).
  void ReloadRuleset(grpc::ServerContext* context,
                     const tappa::v1::ReloadRulesetRequest* request,
                     tappa::v1::ReloadRulesetResponse* response,
                     rpc::UnaryReactor* reactor);

  void GetRuleset(grpc::ServerContext* context,
                  const tappa::v1::GetRulesetRequest* request,
                  tappa::v1::GetRulesetResponse* response,
                  rpc::UnaryReactor* reactor);

 private:
  tappa::v1::AdminService::AsyncService async_;
  Runtime runtime_;
  RulesetReloader* reloader_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_ADMIN_SERVICE_H_
