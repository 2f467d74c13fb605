#include "server/service/decision_flow.h"

#include "absl/random/random.h"
#include "server/service/decision_response.h"

namespace tappa::server {

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

namespace {

// SplitMix64, seeded per decision: a decision that is run again (after a
// budget lease) draws the same Thompson samples, so the lease goes to the
// action it was taken for.
class DecisionRandom {
 public:
  using result_type = uint64_t;
  explicit DecisionRandom(uint64_t seed) : state_(seed) {}
  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return ~uint64_t{0}; }
  uint64_t operator()() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace

uint64_t NewDecisionSeed() {
  thread_local absl::InsecureBitGen gen;
  return gen();
}

ruleset::DecisionResult Decide(const Decision& d,
                               const ruleset::PosteriorTable& posteriors) {
  const ServingRuleset& serving = *d.serving;
  const ruleset::Ruleset& rs = *serving.ruleset;
  ruleset::ContactBinding contact(rs, d.contact);
  ruleset::ContextBinding context(rs.channels[d.request.channel].id,
                                  rs.placements[d.request.placement].id,
                                  d.request.context);
  ruleset::PolicyCheck policies(rs, d.request.channel, d.contact, d.restraint,
                                d.now);
  DecisionRandom random(d.seed);
  ruleset::ThompsonSampler sampler(rs, posteriors, random);
  ruleset::DecisionOptions options;
  options.limit = d.request.limit;
  options.explain = d.explain;
  options.propensities = &sampler;
  options.contact_id = d.contact_id;
  options.policies = &policies;
  options.exhausted_budgets = d.exhausted;
  return serving.decider->Decide(d.contact.phase, d.request.placement,
                                 contact.value(), context.value(), d.now,
                                 options);
}

// Decides, leasing budget units for the chosen actions that need one (each
// lease re-runs the decision, without the action when its budget is spent),
// then answers and records the served touches.
namespace {

void DecideAndAnswer(const Runtime& runtime, std::shared_ptr<Decision> d,
                     absl::Time deadline, NextBestActionResponse* response,
                     DecisionDone finish) {
  const ServingRuleset& serving = *d->serving;
  const ruleset::Ruleset& rs = *serving.ruleset;
  std::shared_ptr<const ruleset::PosteriorTable> posteriors =
      runtime.posteriors->Table(rs);
  ruleset::DecisionResult result = Decide(*d, *posteriors);

  for (const ruleset::RankedAction& r : result.ranked) {
    const ruleset::Action& action = rs.actions[r.action];
    if (!action.budget.has_value() || r.fallback) continue;
    if (std::find(d->reserved.begin(), d->reserved.end(), r.action) !=
        d->reserved.end()) {
      continue;
    }
    if (runtime.budgets->TryTake(action, d->now)) {
      d->reserved.push_back(r.action);
      continue;
    }
    int a = r.action;
    runtime.budgets->Reserve(
        action, d->now, deadline,
        [&runtime, d, a, deadline, response,
         finish](absl::StatusOr<bool> taken) {
          runtime.metrics->RecordBudgetLease(!taken.ok() ? BudgetLease::kError
                                             : *taken
                                                 ? BudgetLease::kGranted
                                                 : BudgetLease::kExhausted);
          bool ok = taken.ok() && *taken;
          (ok ? d->reserved : d->exhausted).push_back(a);
          DecideAndAnswer(runtime, d, deadline, response, finish);
        });
    return;
  }

  const int channel = d->request.channel;
  const int placement = d->request.placement;
  TokenContext tokens;
  tokens.signer = runtime.tokens;
  tokens.contact_id = d->contact_id;
  tokens.channel_id = rs.channels[channel].id;
  tokens.placement_id = rs.placements[placement].id;
  tokens.phase_id = rs.phases[d->contact.phase].id;
  tokens.now = d->now;
  std::vector<TouchWrite> touches;
  for (const ruleset::RankedAction& r : result.ranked) {
    AddRankedAction(serving, r, /*degraded_fallback=*/false, tokens, response);
    runtime.metrics->RecordDecision(placement, r.action);
    if (serving.RecordsServed(r.action, channel)) {
      touches.push_back({rs.channels[channel].id, rs.actions[r.action].id});
    }
    if (rs.actions[r.action].adaptive.has_value()) {
      runtime.posteriors->RecordTrial(rs, r.action, placement,
                                      d->contact.phase);
    }
  }
  for (const ruleset::Exposure& x : result.exposures) {
    runtime.metrics->RecordExposure(x.experiment, x.variant);
  }
  AddExplanation(rs, result, response);
  if (!touches.empty()) {
    // Not awaited (caps are best-effort under races; see policy.h).
    runtime.store->RecordServed(d->contact_id, touches, d->now,
                                absl::Now() + runtime.write_budget,
                                [](absl::StatusOr<bool>) {});
  }
  finish(absl::OkStatus());
}

}  // namespace

void AnswerDegraded(const Runtime& runtime, const Decision& d,
                    DegradedReason reason, NextBestActionResponse* response) {
  const ruleset::Ruleset& rs = *d.serving->ruleset;
  const int placement = d.request.placement;
  const ruleset::Placement& where = rs.placements[placement];
  response->set_degraded(true);
  response->set_degraded_reason(
      reason == DegradedReason::kStoreTimeout
          ? tappa::v1::DEGRADED_REASON_STORE_TIMEOUT
      : reason == DegradedReason::kOverloaded
          ? tappa::v1::DEGRADED_REASON_OVERLOADED
          : tappa::v1::DEGRADED_REASON_STORE_UNAVAILABLE);
  runtime.metrics->RecordFallback(placement, reason);
  if (where.fallback_action < 0) return;
  TokenContext tokens;
  tokens.signer = runtime.tokens;
  tokens.contact_id = d.contact_id;
  tokens.channel_id = rs.channels[d.request.channel].id;
  tokens.placement_id = where.id;
  tokens.now = d.now;
  ruleset::RankedAction r;
  r.action = where.fallback_action;
  AddRankedAction(*d.serving, r, /*degraded_fallback=*/true, tokens, response);
  runtime.metrics->RecordDecision(placement, where.fallback_action);
}

namespace {
void LoadAndDecide(const Runtime& runtime, std::shared_ptr<Decision> d,
                   absl::Time read_deadline, absl::Time deadline,
                   NextBestActionResponse* response, DecisionDone finish);
}  // namespace

void DecideNextBestAction(const Runtime& runtime, std::shared_ptr<Decision> d,
                          absl::Time read_deadline, absl::Time deadline,
                          NextBestActionResponse* response,
                          DecisionDone finish) {
  // Named by an alias: read where the cache says it leads, else the
  // alias's own hash (which redirects to its contact when linked).
  absl::StatusOr<std::string> first =
      ContactToRead(runtime, "contact_id", d->contact_id,
                    d->serving->ruleset.get(), &d->named_as);
  if (!first.ok()) return finish(first.status());
  d->contact_id = *std::move(first);
  response->set_contact_id(d->contact_id);
  LoadAndDecide(runtime, std::move(d), read_deadline, deadline, response,
                std::move(finish));
}

namespace {
void LoadAndDecide(const Runtime& runtime, std::shared_ptr<Decision> d,
                   absl::Time read_deadline, absl::Time deadline,
                   NextBestActionResponse* response, DecisionDone finish) {
  const std::string contact_id = d->contact_id;
  runtime.store->LoadContact(
      d->serving->ruleset, contact_id, d->now, read_deadline,
      [&runtime, d, response, finish, read_deadline,
       deadline](absl::StatusOr<DecodedContact> loaded) mutable {
        const ruleset::Ruleset& rs = *d->serving->ruleset;
        if (!loaded.ok()) {
          AnswerDegraded(
              runtime, *d,
              loaded.status().code() == absl::StatusCode::kDeadlineExceeded
                  ? DegradedReason::kStoreTimeout
                  : DegradedReason::kStoreUnavailable,
              response);
          return finish(absl::OkStatus());
        }
        if (const std::string* next =
                FollowRedirect(runtime, *loaded, d->named_as, &d->redirects)) {
          // A linked alias, or a contact merged into another: decide for
          // the contact it leads to.
          d->contact_id = *next;
          response->set_contact_id(d->contact_id);
          return LoadAndDecide(runtime, std::move(d), read_deadline, deadline,
                               response, std::move(finish));
        }
        if (loaded->phase_unknown) runtime.metrics->RecordUnknownPhase();
        d->contact = std::move(loaded->snapshot);
        d->restraint = std::move(loaded->restraint);
        response->set_phase(rs.phases[d->contact.phase].id);
        // Budget leases and the decision itself may take the rest of the
        // call's time; the reserve kept for the fallback is not needed.
        DecideAndAnswer(runtime, d, deadline, response, finish);
      });
}

}  // namespace

}  // namespace tappa::server
