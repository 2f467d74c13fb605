#include "server/service/decision_service.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "rules/ruleset/contact.h"
#include "server/service/status_util.h"
#include "server/service/validation.h"

namespace tappa::server {
namespace {

using tappa::v1::NextBestActionResponse;

// What the Redis read may use of the call's time: the rest is kept to build
// the fallback answer and send it before the deadline. 2 ms was measured too
// little on a loaded 2-core box (the client saw DEADLINE_EXCEEDED in 2 of 5
// runs of a 50 ms call against a stalled Redis).
absl::Time ReadDeadline(absl::Time start, absl::Time deadline) {
  absl::Duration total = deadline - start;
  absl::Duration reserve = std::min(absl::Milliseconds(10), total / 4);
  return deadline - reserve;
}

void AddAction(const ServingRuleset& serving, int action, double score,
               bool fallback, absl::string_view rule,
               NextBestActionResponse* response) {
  const ruleset::Action& a = serving.ruleset->actions[action];
  auto* out = response->add_actions();
  out->set_action_id(a.id);
  out->set_kind(
      static_cast<tappa::v1::ActionKind>(static_cast<int>(a.kind) + 1));
  *out->mutable_content() = serving.contents[action];
  out->set_score(score);
  out->set_priority(a.priority);
  out->set_eligibility_rule(std::string(rule));
  out->set_fallback(fallback);
}

}  // namespace

grpc::ServerUnaryReactor* DecisionServiceImpl::NextBestAction(
    grpc::CallbackServerContext* context,
    const tappa::v1::NextBestActionRequest* request,
    tappa::v1::NextBestActionResponse* response) {
  absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Metrics* metrics = runtime_.metrics;
  auto finish = [reactor, metrics, start](const absl::Status& status) {
    metrics->RecordRequest(Method::kNextBestAction,
                           static_cast<int>(status.code()),
                           absl::Now() - start);
    reactor->Finish(ToGrpcStatus(status));
  };

  std::shared_ptr<const ServingRuleset> serving = runtime_.rulesets->Get();
  if (serving == nullptr) {
    finish(absl::UnavailableError("no ruleset is loaded"));
    return reactor;
  }
  const ruleset::Ruleset& rs = *serving->ruleset;
  int channel = -1, placement = -1;
  auto context_entries =
      std::make_shared<std::vector<std::pair<std::string, cel::Value>>>();
  absl::Status status = absl::OkStatus();
  if (std::string error = api::DecodeError(*request); !error.empty()) {
    status = absl::InvalidArgumentError(error);
  }
  if (status.ok()) status = ValidateId("contact_id", request->contact_id());
  if (status.ok())
    status = ValidateChannel(rs, "channel", request->channel(), &channel);
  if (status.ok()) {
    status = ValidatePlacement(rs, "placement", request->placement(), channel,
                               /*optional=*/false, &placement);
  }
  if (status.ok()) {
    status = ConvertValueMap("context", request->context(), kMaxContextEntries,
                             /*allow_null=*/false, context_entries.get());
  }
  if (status.ok() && request->limit() < 0) {
    status = absl::InvalidArgumentError("limit: must not be negative");
  }
  if (!status.ok()) {
    finish(status);
    return reactor;
  }
  int limit = std::clamp(request->limit(), 1, kMaxLimit);

  absl::Time now = runtime_.clock->Now();
  absl::Time deadline = CallDeadline(context, now, runtime_.decision_budget);
  response->set_contact_id(request->contact_id());
  response->set_ruleset_version(rs.version);
  *response->mutable_decision_time() = TimeToProto(now);

  runtime_.store->LoadContact(
      serving->ruleset, request->contact_id(), now,
      ReadDeadline(start, deadline),
      [serving, response, finish, context_entries, channel, placement, limit,
       now, metrics](absl::StatusOr<DecodedContact> loaded) {
        const ruleset::Ruleset& rs = *serving->ruleset;
        const ruleset::Placement& where = rs.placements[placement];
        if (!loaded.ok()) {
          bool timeout =
              loaded.status().code() == absl::StatusCode::kDeadlineExceeded;
          response->set_degraded(true);
          response->set_degraded_reason(
              timeout ? tappa::v1::DEGRADED_REASON_STORE_TIMEOUT
                      : tappa::v1::DEGRADED_REASON_STORE_UNAVAILABLE);
          metrics->RecordFallback(placement,
                                  timeout ? DegradedReason::kStoreTimeout
                                          : DegradedReason::kStoreUnavailable);
          if (where.fallback_action >= 0) {
            AddAction(*serving, where.fallback_action, 0, /*fallback=*/true,
                      absl::StrCat("placements/", where.id, "/fallback"),
                      response);
            metrics->RecordDecision(placement, where.fallback_action);
          }
          return finish(absl::OkStatus());
        }
        const ruleset::ContactSnapshot& snapshot = loaded->snapshot;
        response->set_phase(rs.phases[snapshot.phase].id);
        ruleset::ContactBinding contact(rs, snapshot);
        ruleset::ContextBinding context(rs.channels[channel].id, where.id,
                                        *context_entries);
        ruleset::DecisionOptions options;
        options.limit = limit;
        ruleset::DecisionResult result =
            serving->decider->Decide(snapshot.phase, placement, contact.value(),
                                     context.value(), now, options);
        for (const ruleset::RankedAction& r : result.ranked) {
          const ruleset::Action& a = rs.actions[r.action];
          AddAction(*serving, r.action, r.score, /*fallback=*/false,
                    a.when ? absl::StrCat("actions/", a.id, "/when")
                           : absl::StrCat("actions/", a.id),
                    response);
          metrics->RecordDecision(placement, r.action);
        }
        finish(absl::OkStatus());
      });
  return reactor;
}

}  // namespace tappa::server
