// tappa.v1.AdminService: reload and describe the served ruleset.
#ifndef TAPPA_SERVER_SERVICE_ADMIN_SERVICE_H_
#define TAPPA_SERVER_SERVICE_ADMIN_SERVICE_H_

#include "server/service/ruleset_reloader.h"
#include "server/service/runtime.h"
#include "tappa/v1/admin_service.grpc.pb.h"

namespace tappa::server {

class AdminServiceImpl final : public tappa::v1::AdminService::CallbackService {
 public:
  // `reloader` must outlive the service.
  AdminServiceImpl(const Runtime& runtime, RulesetReloader* reloader)
      : runtime_(runtime), reloader_(reloader) {}

  // Reloads on the calling gRPC thread (parsing takes milliseconds; admin
  // calls are rare).
  grpc::ServerUnaryReactor* ReloadRuleset(
      grpc::CallbackServerContext* context,
      const tappa::v1::ReloadRulesetRequest* request,
      tappa::v1::ReloadRulesetResponse* response) override;

  grpc::ServerUnaryReactor* GetRuleset(
      grpc::CallbackServerContext* context,
      const tappa::v1::GetRulesetRequest* request,
      tappa::v1::GetRulesetResponse* response) override;

 private:
  Runtime runtime_;
  RulesetReloader* reloader_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_ADMIN_SERVICE_H_
