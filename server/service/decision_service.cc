#include "server/service/decision_service.h"

#include <algorithm>
#include <functional>
#include <memory>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "rules/ruleset/adaptive.h"
#include "rules/ruleset/contact.h"
#include "server/service/decision_flow.h"
#include "server/service/decision_response.h"
#include "server/service/status_util.h"
#include "server/service/validation.h"

namespace tappa::server {
namespace {

using tappa::v1::NextBestActionResponse;

// Records the call's metrics and finishes it.
DecisionDone FinishFor(rpc::UnaryReactor* reactor, Metrics* metrics,
                       Method method, absl::Time start) {
  return [reactor, metrics, method, start](const absl::Status& status) {
    metrics->RecordRequest(method, static_cast<int>(status.code()),
                           absl::Now() - start);
    reactor->Finish(ToGrpcStatus(status));
  };
}

// The request's decoding error (invalid UTF-8), then the decision fields.
template <typename Request>
absl::Status ValidateDecisionCall(const ruleset::Ruleset& rs,
                                  const Request& request,
                                  DecisionRequest* out) {
  if (std::string error = api::DecodeError(request); !error.empty()) {
    return absl::InvalidArgumentError(error);
  }
  return ValidateDecisionRequest(rs, request, out);
}

TokenRejection RejectionOf(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kPermissionDenied) {
    return absl::StrContains(s.message(), "another key")
               ? TokenRejection::kForeignKey
               : TokenRejection::kBadSignature;
  }
  if (absl::StrContains(s.message(), "expired") ||
      absl::StrContains(s.message(), "future")) {
    return TokenRejection::kExpired;
  }
  return TokenRejection::kMalformed;
}

}  // namespace

void DecisionServiceImpl::Serve(rpc::CompletionQueues* queues) {
  using Async = tappa::v1::DecisionService::AsyncService;
  rpc::ServeUnary(queues, &async_, &Async::RequestNextBestAction, this,
                  &DecisionServiceImpl::NextBestAction);
  rpc::ServeUnary(queues, &async_, &Async::RequestReportOutcome, this,
                  &DecisionServiceImpl::ReportOutcome);
  rpc::ServeUnary(queues, &async_, &Async::RequestSimulate, this,
                  &DecisionServiceImpl::Simulate);
  rpc::ServeBidi(
      queues, &async_, &Async::RequestDecideBatch,
      [this](grpc::ServerContext* context) { return DecideBatch(context); });
}

void DecisionServiceImpl::NextBestAction(
    grpc::ServerContext* context,
    const tappa::v1::NextBestActionRequest* request,
    tappa::v1::NextBestActionResponse* response, rpc::UnaryReactor* reactor) {
  absl::Time start = absl::Now();
  Metrics* metrics = runtime_.metrics;
  DecisionDone finish =
      FinishFor(reactor, metrics, Method::kNextBestAction, start);
  if (absl::StatusOr<std::string> caller =
          AuthorizeCall(runtime_, *context, Scope::kDecide);
      !caller.ok()) {
    finish(caller.status());
    return;
  }

  auto d = std::make_shared<Decision>();
  d->serving = runtime_.rulesets->Get();
  if (d->serving == nullptr) {
    finish(absl::UnavailableError("no ruleset is loaded"));
    return;
  }
  const ruleset::Ruleset& rs = *d->serving->ruleset;
  absl::Status status = ValidateDecisionCall(rs, *request, &d->request);
  if (status.ok()) status = ValidateId("contact_id", request->contact_id());
  if (!status.ok()) {
    finish(status);
    return;
  }
  d->contact_id = request->contact_id();
  d->explain = request->explain();
  d->now = runtime_.clock->Now();
  d->seed = NewDecisionSeed();
  absl::Time deadline = CallDeadline(context, runtime_.decision_budget);
  response->set_contact_id(request->contact_id());
  response->set_ruleset_version(rs.version);
  *response->mutable_decision_time() = TimeToProto(d->now);

  const Runtime& runtime = runtime_;
  std::shared_ptr<Admission::Slot> slot;
  if (absl::Status s = Admit(runtime_, deadline, &slot); !s.ok()) {
    if (s.code() == absl::StatusCode::kResourceExhausted) {
      // Shed without reading: the fallback, at once.
      AnswerDegraded(runtime, *d, DegradedReason::kOverloaded, response);
      s = absl::OkStatus();
    }
    finish(s);
    return;
  }
  finish = [finish, slot](const absl::Status& status) { finish(status); };
  DecideNextBestAction(runtime, d, ReadDeadline(start, deadline), deadline,
                       response, finish);
}

void DecisionServiceImpl::ReportOutcome(
    grpc::ServerContext* context,
    const tappa::v1::ReportOutcomeRequest* request,
    tappa::v1::ReportOutcomeResponse* response, rpc::UnaryReactor* reactor) {
  absl::Time start = absl::Now();
  Metrics* metrics = runtime_.metrics;
  DecisionDone finish =
      FinishFor(reactor, metrics, Method::kReportOutcome, start);
  if (absl::StatusOr<std::string> caller =
          AuthorizeCall(runtime_, *context, Scope::kDecide);
      !caller.ok()) {
    finish(caller.status());
    return;
  }
  std::shared_ptr<const ServingRuleset> serving = runtime_.rulesets->Get();
  if (serving == nullptr) {
    finish(absl::UnavailableError("no ruleset is loaded"));
    return;
  }
  if (std::string error = api::DecodeError(*request); !error.empty()) {
    finish(absl::InvalidArgumentError(error));
    return;
  }
  static constexpr OutcomeKind kKinds[] = {
      OutcomeKind::kImpression, OutcomeKind::kClick, OutcomeKind::kConversion,
      OutcomeKind::kDismiss};
  static constexpr char kLetters[] = {'i', 'c', 'v', 'd'};
  int outcome = static_cast<int>(request->outcome());
  if (outcome < 1 || outcome > 4) {
    finish(absl::InvalidArgumentError(
        "outcome: must be one of OUTCOME_IMPRESSION, OUTCOME_CLICK, "
        "OUTCOME_CONVERSION, OUTCOME_DISMISS"));
    return;
  }
  absl::Time now = runtime_.clock->Now();
  absl::StatusOr<DecisionTokenClaims> claims =
      runtime_.tokens->Verify(request->decision_token(), now);
  if (!claims.ok()) {
    metrics->RecordTokenRejected(RejectionOf(claims.status()));
    finish(claims.status());
    return;
  }
  OutcomeKind kind = kKinds[outcome - 1];
  OutcomeWrite write;
  write.decision_id = claims->decision_id;
  write.kind = kLetters[outcome - 1];
  write.channel = claims->channel_id;
  write.action = claims->action_id;
  write.record_ttl = runtime_.tokens->ttl();
  response->set_contact_id(claims->contact_id);
  response->set_action_id(claims->action_id);
  absl::Time deadline = CallDeadline(context, runtime_.write_budget);
  std::shared_ptr<Admission::Slot> slot;
  if (absl::Status s = Admit(runtime_, deadline, &slot); !s.ok()) {
    finish(s);
    return;
  }
  finish = [finish, slot](const absl::Status& status) { finish(status); };
  const Runtime& runtime = runtime_;
  // Copied before `claims` moves into the callback (argument evaluation
  // order is unspecified).
  const std::string contact_id = claims->contact_id;
  runtime_.store->RecordOutcome(
      contact_id, write, now, deadline,
      [&runtime, serving, claims = *std::move(claims), kind, response,
       finish](absl::StatusOr<OutcomeRecord> recorded) {
        if (!recorded.ok()) return finish(recorded.status());
        if (*recorded == OutcomeRecord::kDuplicate) {
          response->set_duplicate(true);
          return finish(absl::OkStatus());
        }
        const ruleset::Ruleset& rs = *serving->ruleset;
        int phase = rs.FindPhase(claims.phase_id);
        int experiment = claims.experiment_id.empty()
                             ? -1
                             : rs.FindExperiment(claims.experiment_id);
        int variant = -1;
        if (experiment >= 0 && !claims.holdout) {
          const auto& variants = rs.experiments[experiment].variants;
          for (size_t v = 0; v < variants.size(); ++v) {
            if (variants[v].id == claims.variant_id) variant = v;
          }
          if (variant < 0) experiment = -1;  // the variant is gone
        }
        runtime.metrics->RecordOutcome(kind, phase, experiment, variant);
        // The first click or conversion of a decision is a success of an
        // adaptive action's arm.
        bool success =
            (kind == OutcomeKind::kClick || kind == OutcomeKind::kConversion) &&
            *recorded == OutcomeRecord::kNew;
        int action = rs.FindAction(claims.action_id);
        int placement = rs.FindPlacement(claims.placement_id);
        if (success && action >= 0 && placement >= 0 && phase >= 0 &&
            rs.actions[action].adaptive.has_value()) {
          runtime.posteriors->RecordSuccess(rs, action, placement, phase);
        }
        finish(absl::OkStatus());
      });
}

void DecisionServiceImpl::Simulate(grpc::ServerContext* context,
                                   const tappa::v1::SimulateRequest* request,
                                   tappa::v1::SimulateResponse* response,
                                   rpc::UnaryReactor* reactor) {
  absl::Time start = absl::Now();
  Metrics* metrics = runtime_.metrics;
  DecisionDone finish = FinishFor(reactor, metrics, Method::kSimulate, start);
  if (absl::StatusOr<std::string> caller =
          AuthorizeCall(runtime_, *context, Scope::kDecide);
      !caller.ok()) {
    finish(caller.status());
    return;
  }
  auto d = std::make_shared<Decision>();
  d->serving = runtime_.rulesets->Get();
  if (d->serving == nullptr) {
    finish(absl::UnavailableError("no ruleset is loaded"));
    return;
  }
  const ruleset::Ruleset& rs = *d->serving->ruleset;
  absl::Status status = ValidateDecisionCall(rs, *request, &d->request);
  if (status.ok() && !request->contact_id().empty()) {
    status = ValidateId("contact_id", request->contact_id());
  }
  if (status.ok() && request->contact_id().empty() && !request->has_contact()) {
    status = absl::InvalidArgumentError(
        "contact_id: required unless `contact` gives a hypothetical contact");
  }
  d->now =
      request->has_at() ? ProtoToTime(request->at()) : runtime_.clock->Now();
  nlohmann::json contact_json;
  if (status.ok() && request->has_contact()) {
    std::string text;
    (void)google::protobuf::util::MessageToJsonString(request->contact(),
                                                      &text);
    contact_json = nlohmann::json::parse(text, nullptr, false);
    if (contact_json.is_discarded()) {
      status = absl::InvalidArgumentError("contact: not a JSON object");
    }
  }
  if (!status.ok()) {
    finish(status);
    return;
  }
  d->explain = true;
  d->seed = NewDecisionSeed();
  d->contact_id = request->contact_id();
  // Budgets are not leased: those this server found spent are reported.
  for (int a = 0; a < static_cast<int>(rs.actions.size()); ++a) {
    if (rs.actions[a].budget.has_value() &&
        runtime_.budgets->KnownExhausted(rs.actions[a], d->now)) {
      d->exhausted.push_back(a);
    }
  }
  NextBestActionResponse* out = response->mutable_decision();
  out->set_ruleset_version(rs.version);
  *out->mutable_decision_time() = TimeToProto(d->now);
  const Runtime& runtime = runtime_;
  auto answer = [&runtime, d, out, finish]() {
    const ruleset::Ruleset& rs = *d->serving->ruleset;
    out->set_contact_id(d->contact_id);
    out->set_phase(rs.phases[d->contact.phase].id);
    ruleset::DecisionResult result = Decide(*d, *runtime.posteriors->Table(rs));
    TokenContext no_tokens;
    no_tokens.placement_id = rs.placements[d->request.placement].id;
    for (const ruleset::RankedAction& r : result.ranked) {
      AddRankedAction(*d->serving, r, /*degraded_fallback=*/false, no_tokens,
                      out);
    }
    AddExplanation(rs, result, out);
    finish(absl::OkStatus());
  };

  if (request->contact_id().empty()) {
    absl::StatusOr<ruleset::ContactSnapshot> contact =
        ruleset::ContactFromJson(rs, contact_json, d->now);
    if (!contact.ok()) {
      finish(contact.status());
      return;
    }
    d->contact = *std::move(contact);
    d->contact_id = d->contact.id;
    answer();
    return;
  }
  absl::Time deadline = CallDeadline(context, runtime_.decision_budget);
  std::shared_ptr<Admission::Slot> slot;
  if (absl::Status s = Admit(runtime_, deadline, &slot); !s.ok()) {
    finish(s);
    return;
  }
  auto admitted_answer = [answer, slot]() { answer(); };
  ResolveContact(
      runtime_, "contact_id", request->contact_id(), deadline,
      [this, d, deadline, contact_json = std::move(contact_json),
       answer = admitted_answer,
       finish](absl::StatusOr<std::string> contact) mutable {
        if (!contact.ok()) return finish(contact.status());
        d->contact_id = *contact;
        runtime_.store->LoadContact(
            d->serving->ruleset, *contact, d->now, deadline,
            [d, contact_json = std::move(contact_json),
             answer = std::move(answer),
             finish](absl::StatusOr<DecodedContact> loaded) {
              if (!loaded.ok()) {
                return finish(absl::UnavailableError(absl::StrCat(
                    "cannot read the contact: ", loaded.status().message())));
              }
              d->contact = std::move(loaded->snapshot);
              d->restraint = std::move(loaded->restraint);
              if (!contact_json.is_null()) {
                absl::Status s = ruleset::ApplyContactOverrides(
                    *d->serving->ruleset, contact_json, d->now, &d->contact);
                if (!s.ok()) return finish(s);
              }
              answer();
            });
      });
}

}  // namespace tappa::server
