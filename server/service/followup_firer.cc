#include "server/service/followup_firer.h"

#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "rules/ruleset/policy.h"
#include "server/service/decision_flow.h"
#include "server/store/contact_codec.h"

namespace tappa::server {
namespace {

using Resolution = FollowUpStore::Resolution;

// The fate of one follow-up, decided from the contact's state now.
struct Verdict {
  FollowUpStore::Fire fire;
  FollowUpOutcome outcome = FollowUpOutcome::kDroppedRule;
  int action = -1;
  int placement = -1;
};

Verdict Judge(const ServingRuleset& serving, const ruleset::FollowUp& fu,
              const DueFollowUp& due, const DecodedContact& contact,
              absl::Time now) {
  const ruleset::Ruleset& rs = *serving.ruleset;
  Verdict v;
  auto drop = [&v](FollowUpOutcome why) {
    v.fire.resolution = Resolution::kDrop;
    v.outcome = why;
    return v;
  };
  ruleset::PolicyCheck policies(rs, fu.channel, contact.snapshot,
                                contact.restraint, now);
  switch (policies.channel_verdict().block) {
    case ruleset::PolicyBlock::kNone:
      break;
    case ruleset::PolicyBlock::kConsentMissing:
      return drop(FollowUpOutcome::kDroppedConsent);
    case ruleset::PolicyBlock::kQuietHours: {
      const ruleset::ChannelPolicy& p = rs.policies.channels[fu.channel];
      v.fire.resolution = Resolution::kPostpone;
      v.fire.new_due =
          ruleset::QuietHoursEnd(rs, *p.quiet_hours, contact.snapshot, now);
      v.outcome = FollowUpOutcome::kPostponed;
      return v;
    }
    default:
      return drop(FollowUpOutcome::kDroppedCap);
  }
  if (fu.limit.has_value()) {
    auto it = contact.restraint.followups_fired.find(fu.id);
    int64_t fired = 0;
    if (it != contact.restraint.followups_fired.end()) {
      for (absl::Time t : it->second) {
        if (!fu.limit->per.has_value() || t > now - *fu.limit->per) ++fired;
      }
    }
    if (fired >= fu.limit->max) return drop(FollowUpOutcome::kDroppedLimit);
  }
  if (fu.action >= 0) {
    if (policies.CheckAction(fu.action).block != ruleset::PolicyBlock::kNone) {
      return drop(FollowUpOutcome::kDroppedCap);
    }
    v.action = fu.action;
    // The token names a placement: the action's first one on the channel.
    for (int p : rs.actions[fu.action].placements) {
      if (rs.placements[p].channel == fu.channel) {
        v.placement = p;
        break;
      }
    }
    if (v.placement < 0) v.placement = rs.actions[fu.action].placements[0];
  } else {
    Decision d;
    d.serving = std::shared_ptr<const ServingRuleset>(
        std::shared_ptr<const ServingRuleset>(), &serving);
    d.request.channel = fu.channel;
    d.request.placement = fu.placement;
    d.request.limit = 1;
    d.contact_id = due.payload.contact_id;
    d.contact = contact.snapshot;
    d.restraint = contact.restraint;
    d.now = now;
    d.seed = NewDecisionSeed();
    ruleset::PosteriorTable none;
    ruleset::DecisionResult result = Decide(d, none);
    if (result.ranked.empty()) return drop(FollowUpOutcome::kDroppedNoAction);
    v.action = result.ranked[0].action;
    v.placement = fu.placement;
  }
  v.fire.resolution = Resolution::kDeliver;
  v.fire.channel = rs.channels[fu.channel].id;
  v.fire.action = rs.actions[v.action].id;
  v.outcome = FollowUpOutcome::kDelivered;
  return v;
}

}  // namespace

void FollowUpFirer::RunOnce(
    int per_shard, absl::Duration budget,
    absl::AnyInvocable<void(absl::StatusOr<int>)> done) {
  absl::Time deadline = absl::Now() + budget;
  absl::Time now = runtime_.clock->Now();
  store_->FindDue(
      now, per_shard, deadline,
      [this, now, deadline, done = std::move(done)](
          absl::StatusOr<std::vector<DueFollowUp>> due) mutable {
        if (!due.ok()) return done(due.status());
        if (due->empty()) return done(0);
        std::shared_ptr<const ServingRuleset> serving =
            runtime_.rulesets->Get();
        if (serving == nullptr) return done(0);
        struct Pass {
          std::atomic<int> remaining{0};
          std::atomic<int> delivered{0};
          absl::AnyInvocable<void(absl::StatusOr<int>)> done;
        };
        auto pass = std::make_shared<Pass>();
        pass->remaining = static_cast<int>(due->size());
        pass->done = std::move(done);
        auto finish_one = [pass](bool delivered) {
          if (delivered) ++pass->delivered;
          if (pass->remaining.fetch_sub(1) == 1) {
            pass->done(pass->delivered.load());
          }
        };
        for (DueFollowUp& f : *due) {
          auto item = std::make_shared<DueFollowUp>(std::move(f));
          const ruleset::Ruleset& rs = *serving->ruleset;
          int rule = rs.FindFollowUp(item->payload.rule_id);
          if (rule < 0) {
            FollowUpStore::Fire fire;
            store_->Resolve(*item, fire, now, deadline,
                            [this, finish_one](absl::StatusOr<bool> acted) {
                              if (acted.ok() && *acted) {
                                runtime_.metrics->RecordFollowUps(
                                    FollowUpOutcome::kDroppedRule);
                              }
                              finish_one(false);
                            });
            continue;
          }
          runtime_.store->LoadContact(
              serving->ruleset, item->payload.contact_id, now, deadline,
              [this, serving, item, rule, now, deadline,
               finish_one](absl::StatusOr<DecodedContact> contact) {
                if (!contact.ok()) return finish_one(false);
                if (!contact->merged_into.empty()) {
                  // Merging: the merge moved a copy of this follow-up to
                  // the surviving contact and removes this one.
                  FollowUpStore::Fire drop;
                  store_->Resolve(
                      *item, drop, now, deadline,
                      [this, finish_one](absl::StatusOr<bool> acted) {
                        if (acted.ok() && *acted) {
                          runtime_.metrics->RecordFollowUps(
                              FollowUpOutcome::kDroppedMerged);
                        }
                        finish_one(false);
                      });
                  return;
                }
                const ruleset::Ruleset& rs = *serving->ruleset;
                const ruleset::FollowUp& fu = rs.follow_ups[rule];
                Verdict v = Judge(*serving, fu, *item, *contact, now);
                if (v.fire.resolution == Resolution::kDeliver) {
                  DecisionTokenClaims claims;
                  claims.issued = now;
                  claims.contact_id = item->payload.contact_id;
                  claims.action_id = rs.actions[v.action].id;
                  claims.placement_id = rs.placements[v.placement].id;
                  claims.channel_id = rs.channels[fu.channel].id;
                  claims.phase_id = rs.phases[contact->snapshot.phase].id;
                  v.fire.entry = {
                      {"followup_id", item->id},
                      {"rule", fu.id},
                      {"contact", item->payload.contact_id},
                      {"channel", rs.channels[fu.channel].id},
                      {"action", rs.actions[v.action].id},
                      {"placement", rs.placements[v.placement].id},
                      {"due", absl::StrCat(MillisOf(item->due))},
                      {"fire", absl::StrCat(MillisOf(now))},
                      {"dedupe", item->payload.dedupe_key},
                      {"token", runtime_.tokens->Sign(std::move(claims))}};
                }
                FollowUpOutcome outcome = v.outcome;
                bool deliver = v.fire.resolution == Resolution::kDeliver;
                absl::Duration lag = now - item->due;
                store_->Resolve(*item, v.fire, now, deadline,
                                [this, outcome, deliver, lag,
                                 finish_one](absl::StatusOr<bool> acted) {
                                  bool ok = acted.ok() && *acted;
                                  if (ok) {
                                    runtime_.metrics->RecordFollowUps(outcome);
                                    if (deliver)
                                      runtime_.metrics->RecordFiringLag(lag);
                                  }
                                  finish_one(ok && deliver);
                                });
              });
        }
      });
}

}  // namespace tappa::server
