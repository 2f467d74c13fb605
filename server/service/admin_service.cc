#include "server/service/admin_service.h"

#include "absl/strings/str_cat.h"
#include "server/service/status_util.h"

namespace tappa::server {
namespace {

void Describe(const ServingRuleset& serving, const std::string& source,
              tappa::v1::RulesetInfo* out) {
  const ruleset::Ruleset& rs = *serving.ruleset;
  out->set_version(rs.version);
  out->set_name(rs.name);
  out->set_source(source);
  *out->mutable_loaded_at() = TimeToProto(serving.loaded_at);
  out->set_phases(static_cast<int32_t>(rs.phases.size()));
  out->set_channels(static_cast<int32_t>(rs.channels.size()));
  out->set_placements(static_cast<int32_t>(rs.placements.size()));
  out->set_actions(static_cast<int32_t>(rs.actions.size()));
  out->set_experiments(static_cast<int32_t>(rs.experiments.size()));
  out->set_followups(static_cast<int32_t>(rs.follow_ups.size()));
}

}  // namespace

void AdminServiceImpl::Serve(rpc::CompletionQueues* queues) {
  using Async = tappa::v1::AdminService::AsyncService;
  rpc::ServeUnary(queues, &async_, &Async::RequestReloadRuleset, this,
                  &AdminServiceImpl::ReloadRuleset);
  rpc::ServeUnary(queues, &async_, &Async::RequestGetRuleset, this,
                  &AdminServiceImpl::GetRuleset);
}

void AdminServiceImpl::ReloadRuleset(
    grpc::ServerContext* context,
    const tappa::v1::ReloadRulesetRequest* request,
    tappa::v1::ReloadRulesetResponse* response, rpc::UnaryReactor* reactor) {
  absl::StatusOr<std::string> caller =
      AuthorizeCall(runtime_, *context, Scope::kAdmin);
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return;
  }
  absl::StatusOr<bool> changed = reloader_->Reload();
  std::string detail;
  if (changed.ok()) {
    response->set_changed(*changed);
    Describe(*runtime_.rulesets->Get(), reloader_->path(),
             response->mutable_ruleset());
    detail = absl::StrCat(*changed ? "reloaded" : "unchanged", ", version ",
                          response->ruleset().version().substr(0, 12));
  }
  Audit(runtime_, "ReloadRuleset", *caller, reloader_->path(), changed.status(),
        detail);
  reactor->Finish(ToGrpcStatus(changed.status()));
}

void AdminServiceImpl::GetRuleset(grpc::ServerContext* context,
                                  const tappa::v1::GetRulesetRequest* request,
                                  tappa::v1::GetRulesetResponse* response,
                                  rpc::UnaryReactor* reactor) {
  absl::StatusOr<std::string> caller =
      AuthorizeCall(runtime_, *context, Scope::kAdmin);
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return;
  }
  Audit(runtime_, "GetRuleset", *caller, reloader_->path(), absl::OkStatus());
  std::shared_ptr<const ServingRuleset> serving = runtime_.rulesets->Get();
  if (serving == nullptr) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "no ruleset is loaded"));
    return;
  }
  Describe(*serving, reloader_->path(), response->mutable_ruleset());
  reactor->Finish(grpc::Status::OK);
}

}  // namespace tappa::server
