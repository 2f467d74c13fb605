#include "server/metrics/metrics.h"

#include "absl/strings/str_cat.h"

namespace tappa::server {
namespace {

constexpr absl::string_view kCodeNames[17] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

// Latency buckets from 100 µs to 5 s: the interesting range of a server
// that answers in about a millisecond.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};
}

}  // namespace

absl::string_view MethodName(Method m) {
  switch (m) {
    case Method::kTrackEvent:
      return "tappa.v1.JourneyService/TrackEvent";
    case Method::kTrackEvents:
      return "tappa.v1.JourneyService/TrackEvents";
    case Method::kGetContact:
      return "tappa.v1.JourneyService/GetContact";
    case Method::kDeleteContact:
      return "tappa.v1.JourneyService/DeleteContact";
    case Method::kLinkIdentities:
      return "tappa.v1.JourneyService/LinkIdentities";
    case Method::kExportContact:
      return "tappa.v1.JourneyService/ExportContact";
    case Method::kNextBestAction:
      return "tappa.v1.DecisionService/NextBestAction";
    case Method::kReportOutcome:
      return "tappa.v1.DecisionService/ReportOutcome";
    case Method::kSimulate:
      return "tappa.v1.DecisionService/Simulate";
    case Method::kDecideBatch:
      return "tappa.v1.DecisionService/DecideBatch";
    case Method::kHealthCheck:
      return "grpc.health.v1.Health/Check";
    case Method::kCount:
      break;
  }
  return "unknown";
}

struct Metrics::RulesetSeries {
  std::vector<prometheus::Counter*> events;       // by channel
  std::vector<prometheus::Counter*> transitions;  // from * phases + to
  size_t phases = 0;
  // decisions[placement][action] (null when the action is not on it).
  std::vector<std::vector<prometheus::Counter*>> decisions;
  std::vector<std::array<prometheus::Counter*, 3>> degraded;  // by placement
  prometheus::Gauge* info = nullptr;
  // exposures[experiment][variant + 1] (index 0 = holdout), and the same
  // with an outcome kind: experiment_outcomes[experiment][variant + 1][kind].
  std::vector<std::vector<prometheus::Counter*>> exposures;
  std::vector<std::vector<std::array<prometheus::Counter*, kOutcomeKinds>>>
      experiment_outcomes;
  // outcomes[phase][kind]; the last row is for phases no longer known.
  std::vector<std::array<prometheus::Counter*, kOutcomeKinds>> outcomes;
};

namespace {
constexpr absl::string_view kOutcomeNames[kOutcomeKinds] = {
    "impression", "click", "conversion", "dismiss"};
}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("tappa_grpc_requests_total")
                   .Help("gRPC requests handled, by method and status code.")
                   .Register(*registry_);
  latency_ =
      &prometheus::BuildHistogram()
           .Name("tappa_grpc_request_duration_seconds")
           .Help(
               "Time from receiving a gRPC request to finishing it, by method.")
           .Register(*registry_);
  events_ = &prometheus::BuildCounter()
                 .Name("tappa_events_total")
                 .Help("Events applied (not counting duplicates), by channel.")
                 .Register(*registry_);
  transitions_ = &prometheus::BuildCounter()
                      .Name("tappa_phase_transitions_total")
                      .Help("Journey phase changes, by previous and new phase.")
                      .Register(*registry_);
  decisions_ =
      &prometheus::BuildCounter()
           .Name("tappa_decisions_total")
           .Help(
               "Actions returned by NextBestAction and DecideBatch, by "
               "placement and action.")
           .Register(*registry_);
  degraded_ =
      &prometheus::BuildCounter()
           .Name("tappa_decisions_degraded_total")
           .Help(
               "NextBestAction and DecideBatch answers that fell back "
               "(the contact could not be read in time, or the server was "
               "overloaded), by placement and reason.")
           .Register(*registry_);
  rule_errors_family_ =
      &prometheus::BuildCounter()
           .Name("tappa_rule_errors_total")
           .Help(
               "Rule conditions that evaluated to an error (counted "
               "as false).")
           .Register(*registry_);
  rule_errors_ = &rule_errors_family_->Add({});
  redis_latency_ = &prometheus::BuildHistogram()
                        .Name("tappa_redis_command_duration_seconds")
                        .Help("Redis round trips, by first command.")
                        .Register(*registry_);
  redis_errors_ = &prometheus::BuildCounter()
                       .Name("tappa_redis_errors_total")
                       .Help(
                           "Redis commands that failed (transport, timeout or "
                           "error reply), by first command.")
                       .Register(*registry_);
  ruleset_info_ =
      &prometheus::BuildGauge()
           .Name("tappa_ruleset_info")
           .Help("The loaded ruleset: 1 for the version being served.")
           .Register(*registry_);
  contacts_ =
      &prometheus::BuildGauge()
           .Name("tappa_contacts")
           .Help(
               "Contacts per journey phase (summed over the shards, refreshed "
               "periodically).")
           .Register(*registry_);

  exposures_ = &prometheus::BuildCounter()
                    .Name("tappa_experiment_exposures_total")
                    .Help(
                        "Decisions that took part in an experiment, by "
                        "experiment and variant (\"holdout\" for the "
                        "holdout).")
                    .Register(*registry_);
  experiment_outcomes_ =
      &prometheus::BuildCounter()
           .Name("tappa_experiment_outcomes_total")
           .Help(
               "Reported outcomes of decisions made in an experiment, by "
               "experiment, variant and outcome.")
           .Register(*registry_);
  outcomes_ = &prometheus::BuildCounter()
                   .Name("tappa_outcomes_total")
                   .Help(
                       "Reported outcomes (not counting duplicates), by the "
                       "phase the decision was made in and outcome.")
                   .Register(*registry_);
  auto* rejected = &prometheus::BuildCounter()
                        .Name("tappa_decision_tokens_rejected_total")
                        .Help(
                            "Decision tokens refused by ReportOutcome, by "
                            "reason.")
                        .Register(*registry_);
  const char* reasons[] = {"malformed", "expired", "foreign_key",
                           "bad_signature"};
  for (size_t i = 0; i < tokens_rejected_.size(); ++i) {
    tokens_rejected_[i] = &rejected->Add({{"reason", reasons[i]}});
  }
  auto* leases = &prometheus::BuildCounter()
                      .Name("tappa_budget_leases_total")
                      .Help(
                          "Budget lease requests to Redis, by result "
                          "(granted, exhausted, error).")
                      .Register(*registry_);
  const char* results[] = {"granted", "exhausted", "error"};
  for (size_t i = 0; i < budget_leases_.size(); ++i) {
    budget_leases_[i] = &leases->Add({{"result", results[i]}});
  }

  decide_batch_pending_ =
      &prometheus::BuildGauge()
           .Name("tappa_decide_batch_pending")
           .Help(
               "DecideBatch decisions in progress or waiting to be written, "
               "over every stream (each stream holds at most 1000).")
           .Register(*registry_)
           .Add({});

  auto* reloads = &prometheus::BuildCounter()
                       .Name("tappa_ruleset_reloads_total")
                       .Help(
                           "Ruleset reloads (SIGHUP, AdminService), by "
                           "result: reloaded, unchanged, failed (the file was "
                           "invalid; the previous ruleset kept serving).")
                       .Register(*registry_);
  const char* reload_results[] = {"reloaded", "unchanged", "failed"};
  for (size_t i = 0; i < reloads_.size(); ++i) {
    reloads_[i] = &reloads->Add({{"result", reload_results[i]}});
  }
  auto* auth = &prometheus::BuildCounter()
                    .Name("tappa_auth_rejected_total")
                    .Help(
                        "Calls refused for their API key: missing_key, "
                        "unknown_key (UNAUTHENTICATED), scope "
                        "(PERMISSION_DENIED).")
                    .Register(*registry_);
  const char* auth_reasons[] = {"missing_key", "unknown_key", "scope"};
  for (size_t i = 0; i < auth_rejected_.size(); ++i) {
    auth_rejected_[i] = &auth->Add({{"reason", auth_reasons[i]}});
  }
  rate_limited_ = &prometheus::BuildCounter()
                       .Name("tappa_rate_limited_total")
                       .Help(
                           "Calls or events refused by a rate limit "
                           "(RESOURCE_EXHAUSTED with a retry delay): by limit "
                           "(key: the API key's request rate; contact: a "
                           "contact's event rate) and API key name.")
                       .Register(*registry_);
  auto* links = &prometheus::BuildCounter()
                     .Name("tappa_identity_links_total")
                     .Help(
                         "Identities (aliases) asked to be linked to a "
                         "contact, by result: linked, already_linked, "
                         "owned_by_other (names another contact), "
                         "over_contact_limit, over_namespace_limit.")
                     .Register(*registry_);
  const char* link_results[] = {"linked", "already_linked", "owned_by_other",
                                "over_contact_limit", "over_namespace_limit"};
  for (size_t i = 0; i < identity_links_.size(); ++i) {
    identity_links_[i] = &links->Add({{"result", link_results[i]}});
  }
  auto* tls = &prometheus::BuildCounter()
                   .Name("tappa_tls_reloads_total")
                   .Help(
                       "Reloads of the TLS certificate files on SIGHUP, by "
                       "result (ok; failed: the previous ones keep serving).")
                   .Register(*registry_);
  tls_reloads_[0] = &tls->Add({{"result", "ok"}});
  tls_reloads_[1] = &tls->Add({{"result", "failed"}});
  unknown_phase_ =
      &prometheus::BuildCounter()
           .Name("tappa_contacts_phase_unknown_total")
           .Help(
               "Contacts read in a phase the ruleset neither has nor renames "
               "(renamed_phases): they are treated as in the initial phase.")
           .Register(*registry_)
           .Add({});
  auto* sources =
      &prometheus::BuildCounter()
           .Name("tappa_event_contact_sources_total")
           .Help(
               "Event attempts by where they found their contact: "
               "remembered (this server's last commit for it: no read; "
               "--recent_contacts), read (from Redis), conflict (brought "
               "back by a commit that found the contact changed, e.g. by "
               "another replica).")
           .Register(*registry_);
  const char* source_names[] = {"remembered", "read", "conflict"};
  for (size_t i = 0; i < event_contact_sources_.size(); ++i) {
    event_contact_sources_[i] = &sources->Add({{"source", source_names[i]}});
  }
  auto* followups = &prometheus::BuildCounter()
                         .Name("tappa_followups_total")
                         .Help(
                             "Follow-ups by what happened to them: scheduled, "
                             "cancelled, postponed, dropped_<reason>, "
                             "delivered (to the stream), sent (to a gRPC "
                             "consumer), redelivered, acknowledged.")
                         .Register(*registry_);
  const char* outcomes[] = {"scheduled",
                            "cancelled",
                            "postponed",
                            "dropped_consent",
                            "dropped_cap",
                            "dropped_limit",
                            "dropped_no_action",
                            "dropped_rule_removed",
                            "dropped_merged",
                            "delivered",
                            "sent",
                            "redelivered",
                            "acknowledged"};
  for (size_t i = 0; i < followups_.size(); ++i) {
    followups_[i] = &followups->Add({{"outcome", outcomes[i]}});
  }
  firing_lag_ =
      &prometheus::BuildHistogram()
           .Name("tappa_followup_firing_lag_seconds")
           .Help("Fire time minus due time of delivered follow-ups.")
           .Register(*registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{
                        0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300});
  calls_in_flight_ = &prometheus::BuildGauge()
                          .Name("tappa_calls_in_flight")
                          .Help(
                              "Calls the server is working on (sampled "
                              "every 0.5 s), counted against "
                              "tappa_inflight_limit.")
                          .Register(*registry_)
                          .Add({});
  inflight_limit_ =
      &prometheus::BuildGauge()
           .Name("tappa_inflight_limit")
           .Help(
               "The bound of calls in flight in force: --max_inflight, "
               "lowered while calls wait (a standing queue); calls beyond "
               "it are shed.")
           .Register(*registry_)
           .Add({});
  pending_followups_ =
      &prometheus::BuildGauge()
           .Name("tappa_followups_pending")
           .Help(
               "Follow-ups scheduled and not yet due or fired (summed over "
               "the shards, refreshed periodically).")
           .Register(*registry_)
           .Add({});

  auto* erased = &prometheus::BuildCounter()
                      .Name("tappa_contacts_erased_total")
                      .Help(
                          "Contacts erased with every key they had, by "
                          "reason: retention (idle longer than the retention "
                          "period), request (DeleteContact).")
                      .Register(*registry_);
  const char* erasure_reasons[] = {"retention", "request"};
  for (size_t i = 0; i < erased_.size(); ++i) {
    erased_[i] = &erased->Add({{"reason", erasure_reasons[i]}});
  }

  for (size_t m = 0; m < static_cast<size_t>(Method::kCount); ++m) {
    std::string method(MethodName(static_cast<Method>(m)));
    latencies_[m] = &latency_->Add({{"method", method}}, LatencyBuckets());
    for (size_t c = 0; c < 17; ++c) {
      request_counters_[m][c] = &requests_->Add(
          {{"method", method}, {"code", std::string(kCodeNames[c])}});
    }
  }
  for (const char* command :
       {"HGETALL", "HGET", "EVALSHA", "EVAL", "GET", "PING", "AUTH", "other"}) {
    redis_.push_back(
        {command,
         &redis_latency_->Add({{"command", command}}, LatencyBuckets()),
         &redis_errors_->Add({{"command", command}})});
  }
  redis_other_ = &redis_.back();
}

void Metrics::InstallRuleset(const ruleset::Ruleset& rs) {
  absl::MutexLock lock(&mu_);
  auto series = std::make_shared<RulesetSeries>();
  for (const auto& channel : rs.channels) {
    series->events.push_back(&events_->Add({{"channel", channel.id}}));
  }
  series->phases = rs.phases.size();
  for (const auto& from : rs.phases) {
    for (const auto& to : rs.phases) {
      series->transitions.push_back(
          &transitions_->Add({{"from", from.id}, {"to", to.id}}));
    }
  }
  series->decisions.resize(rs.placements.size());
  for (auto& row : series->decisions) row.assign(rs.actions.size(), nullptr);
  for (size_t a = 0; a < rs.actions.size(); ++a) {
    for (int p : rs.actions[a].placements) {
      series->decisions[p][a] = &decisions_->Add(
          {{"placement", rs.placements[p].id}, {"action", rs.actions[a].id}});
    }
  }
  for (const auto& p : rs.placements) {
    series->degraded.push_back(
        {&degraded_->Add(
             {{"placement", p.id}, {"reason", "store_unavailable"}}),
         &degraded_->Add({{"placement", p.id}, {"reason", "store_timeout"}}),
         &degraded_->Add({{"placement", p.id}, {"reason", "overloaded"}})});
  }
  for (const auto& x : rs.experiments) {
    std::vector<std::string> arms = {"holdout"};
    for (const auto& v : x.variants) arms.push_back(v.id);
    auto& exposures = series->exposures.emplace_back();
    auto& outcomes = series->experiment_outcomes.emplace_back();
    for (const std::string& arm : arms) {
      exposures.push_back(
          &exposures_->Add({{"experiment", x.id}, {"variant", arm}}));
      auto& kinds = outcomes.emplace_back();
      for (int k = 0; k < kOutcomeKinds; ++k) {
        kinds[k] = &experiment_outcomes_->Add(
            {{"experiment", x.id},
             {"variant", arm},
             {"outcome", std::string(kOutcomeNames[k])}});
      }
    }
  }
  std::vector<std::string> phases;
  for (const auto& p : rs.phases) phases.push_back(p.id);
  phases.push_back("unknown");
  for (const std::string& phase : phases) {
    auto& kinds = series->outcomes.emplace_back();
    for (int k = 0; k < kOutcomeKinds; ++k) {
      kinds[k] = &outcomes_->Add(
          {{"phase", phase}, {"outcome", std::string(kOutcomeNames[k])}});
    }
  }
  std::shared_ptr<const RulesetSeries> old = std::atomic_load(&series_);
  if (old != nullptr) old->info->Set(0);
  series->info = &ruleset_info_->Add({{"version", rs.version}});
  series->info->Set(1);
  std::atomic_store(&series_,
                    std::shared_ptr<const RulesetSeries>(std::move(series)));
}

void Metrics::RecordRequest(Method method, int code, absl::Duration latency) {
  size_t m = static_cast<size_t>(method);
  if (m >= static_cast<size_t>(Method::kCount)) return;
  if (code < 0 || code > 16) code = 2;  // UNKNOWN
  request_counters_[m][code]->Increment();
  latencies_[m]->Observe(absl::ToDoubleSeconds(latency));
}

void Metrics::RecordEvent(int channel) {
  auto s = std::atomic_load(&series_);
  if (s && channel >= 0 && channel < static_cast<int>(s->events.size())) {
    s->events[channel]->Increment();
  }
}

void Metrics::RecordTransition(int from, int to) {
  auto s = std::atomic_load(&series_);
  size_t n = s ? s->phases : 0;
  if (from >= 0 && to >= 0 && static_cast<size_t>(from) < n &&
      static_cast<size_t>(to) < n) {
    s->transitions[from * n + to]->Increment();
  }
}

void Metrics::RecordDecision(int placement, int action) {
  auto s = std::atomic_load(&series_);
  if (s && placement >= 0 &&
      placement < static_cast<int>(s->decisions.size()) && action >= 0 &&
      action < static_cast<int>(s->decisions[placement].size()) &&
      s->decisions[placement][action] != nullptr) {
    s->decisions[placement][action]->Increment();
  }
}

void Metrics::RecordFallback(int placement, DegradedReason reason) {
  auto s = std::atomic_load(&series_);
  if (s && placement >= 0 && placement < static_cast<int>(s->degraded.size())) {
    s->degraded[placement][static_cast<size_t>(reason)]->Increment();
  }
}

void Metrics::RecordRuleError() { rule_errors_->Increment(); }

void Metrics::RecordExposure(int experiment, int variant) {
  auto s = std::atomic_load(&series_);
  if (s && experiment >= 0 &&
      experiment < static_cast<int>(s->exposures.size()) && variant >= -1 &&
      variant + 1 < static_cast<int>(s->exposures[experiment].size())) {
    s->exposures[experiment][variant + 1]->Increment();
  }
}

void Metrics::RecordOutcome(OutcomeKind kind, int phase, int experiment,
                            int variant) {
  auto s = std::atomic_load(&series_);
  if (!s) return;
  size_t k = static_cast<size_t>(kind);
  if (k >= static_cast<size_t>(kOutcomeKinds)) return;
  size_t row = phase >= 0 && phase + 1 < static_cast<int>(s->outcomes.size())
                   ? phase
                   : s->outcomes.size() - 1;
  s->outcomes[row][k]->Increment();
  if (experiment >= 0 &&
      experiment < static_cast<int>(s->experiment_outcomes.size()) &&
      variant >= -1 &&
      variant + 1 <
          static_cast<int>(s->experiment_outcomes[experiment].size())) {
    s->experiment_outcomes[experiment][variant + 1][k]->Increment();
  }
}

void Metrics::RecordTokenRejected(TokenRejection reason) {
  tokens_rejected_[static_cast<size_t>(reason)]->Increment();
}

void Metrics::RecordFollowUps(FollowUpOutcome outcome, int64_t n) {
  size_t i = static_cast<size_t>(outcome);
  if (i < followups_.size() && n > 0)
    followups_[i]->Increment(static_cast<double>(n));
}

void Metrics::RecordFiringLag(absl::Duration lag) {
  firing_lag_->Observe(absl::ToDoubleSeconds(lag));
}

void Metrics::SetPendingFollowUps(int64_t n) {
  pending_followups_->Set(static_cast<double>(n));
}

void Metrics::RecordContactsErased(ErasureReason reason, int64_t n) {
  size_t i = static_cast<size_t>(reason);
  if (i < erased_.size() && n > 0)
    erased_[i]->Increment(static_cast<double>(n));
}

void Metrics::RecordUnknownPhase() { unknown_phase_->Increment(); }

void Metrics::RecordEventContactSource(EventContactSource source) {
  event_contact_sources_[static_cast<size_t>(source)]->Increment();
}

void Metrics::RecordAuthRejected(AuthRejection reason) {
  auth_rejected_[static_cast<size_t>(reason)]->Increment();
}

void Metrics::RecordRateLimited(absl::string_view limit,
                                absl::string_view key) {
  // Family::Add finds the existing series (a lock and a hash); refusals
  // are the uncommon path.
  rate_limited_->Add({{"limit", std::string(limit)}, {"key", std::string(key)}})
      .Increment();
}

void Metrics::RecordIdentityLink(IdentityLinkResult result) {
  identity_links_[static_cast<size_t>(result)]->Increment();
}

void Metrics::RecordTlsReload(bool ok) {
  tls_reloads_[ok ? 0 : 1]->Increment();
}

void Metrics::RecordReload(ReloadResult result) {
  reloads_[static_cast<size_t>(result)]->Increment();
}

void Metrics::RecordBudgetLease(BudgetLease result) {
  budget_leases_[static_cast<size_t>(result)]->Increment();
}

void Metrics::SetCallsInFlight(int n) {
  calls_in_flight_->Set(static_cast<double>(n));
}

void Metrics::SetInflightLimit(int limit) {
  inflight_limit_->Set(static_cast<double>(limit));
}

void Metrics::AddDecideBatchPending(int delta) {
  decide_batch_pending_->Increment(delta);
}

void Metrics::RecordRedis(absl::string_view command, absl::Duration latency,
                          bool ok) {
  RedisSeries* s = redis_other_;
  for (RedisSeries& r : redis_) {
    if (r.command == command) {
      s = &r;
      break;
    }
  }
  s->latency->Observe(absl::ToDoubleSeconds(latency));
  if (!ok) s->errors->Increment();
}

void Metrics::SetContactsPerPhase(
    const std::vector<std::pair<std::string, int64_t>>& counts) {
  absl::MutexLock lock(&mu_);
  for (const auto& [phase, n] : counts) {
    contacts_->Add({{"phase", phase}}).Set(static_cast<double>(n));
  }
}

}  // namespace tappa::server
