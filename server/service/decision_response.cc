#include "server/service/decision_response.h"

#include "absl/strings/str_cat.h"

namespace tappa::server {
namespace {

using tappa::v1::CandidateVerdict;

CandidateVerdict ToProto(const ruleset::Candidate& c) {
  using ruleset::PolicyBlock;
  using ruleset::Verdict;
  switch (c.verdict) {
    case Verdict::kChosen:
      return tappa::v1::CANDIDATE_VERDICT_CHOSEN;
    case Verdict::kBelowLimit:
      return tappa::v1::CANDIDATE_VERDICT_BELOW_LIMIT;
    case Verdict::kConditionFalse:
      return tappa::v1::CANDIDATE_VERDICT_CONDITION_FALSE;
    case Verdict::kConditionError:
      return tappa::v1::CANDIDATE_VERDICT_CONDITION_ERROR;
    case Verdict::kHoldout:
      return tappa::v1::CANDIDATE_VERDICT_HOLDOUT;
    case Verdict::kOutsideArm:
      return tappa::v1::CANDIDATE_VERDICT_OUTSIDE_ARM;
    case Verdict::kBudgetExhausted:
      return tappa::v1::CANDIDATE_VERDICT_BUDGET_EXHAUSTED;
    case Verdict::kGroupAlreadyServed:
      return tappa::v1::CANDIDATE_VERDICT_GROUP_ALREADY_SERVED;
    case Verdict::kRankingError:
      return tappa::v1::CANDIDATE_VERDICT_RANKING_ERROR;
    case Verdict::kPolicy:
      break;
  }
  switch (c.policy) {
    case PolicyBlock::kConsentMissing:
      return tappa::v1::CANDIDATE_VERDICT_CONSENT_MISSING;
    case PolicyBlock::kQuietHours:
      return tappa::v1::CANDIDATE_VERDICT_QUIET_HOURS;
    case PolicyBlock::kChannelDismissCooldown:
      return tappa::v1::CANDIDATE_VERDICT_CHANNEL_DISMISS_COOLDOWN;
    case PolicyBlock::kGlobalCap:
      return tappa::v1::CANDIDATE_VERDICT_GLOBAL_CAP;
    case PolicyBlock::kChannelCap:
      return tappa::v1::CANDIDATE_VERDICT_CHANNEL_CAP;
    case PolicyBlock::kActionCap:
      return tappa::v1::CANDIDATE_VERDICT_ACTION_CAP;
    case PolicyBlock::kActionDismissCooldown:
      return tappa::v1::CANDIDATE_VERDICT_ACTION_DISMISS_COOLDOWN;
    case PolicyBlock::kNone:
      break;
  }
  return tappa::v1::CANDIDATE_VERDICT_UNSPECIFIED;
}

void SetFactors(const ruleset::ScoreFactors& f, tappa::v1::ScoreFactors* out) {
  out->set_propensity(f.propensity);
  out->set_context_weight(f.context_weight);
  out->set_value(f.value);
  out->set_lever(f.lever);
}

absl::string_view VariantId(const ruleset::Ruleset& rs, int experiment,
                            int variant) {
  if (experiment < 0 || variant < 0) return "";
  return rs.experiments[experiment].variants[variant].id;
}

}  // namespace

void AddRankedAction(const ServingRuleset& serving,
                     const ruleset::RankedAction& r, bool degraded_fallback,
                     const TokenContext& tokens,
                     tappa::v1::NextBestActionResponse* response) {
  const ruleset::Ruleset& rs = *serving.ruleset;
  const ruleset::Action& a = rs.actions[r.action];
  auto* out = response->add_actions();
  out->set_action_id(a.id);
  out->set_kind(
      static_cast<tappa::v1::ActionKind>(static_cast<int>(a.kind) + 1));
  *out->mutable_content() = serving.contents[r.action];
  out->set_score(r.score);
  out->set_priority(a.priority);
  if (degraded_fallback || r.fallback) {
    out->set_eligibility_rule(
        absl::StrCat("placements/", tokens.placement_id, "/fallback"));
  } else {
    out->set_eligibility_rule(a.when ? absl::StrCat("actions/", a.id, "/when")
                                     : absl::StrCat("actions/", a.id));
  }
  out->set_fallback(degraded_fallback);
  absl::string_view experiment =
      r.experiment >= 0 ? absl::string_view(rs.experiments[r.experiment].id)
                        : absl::string_view();
  absl::string_view variant = VariantId(rs, r.experiment, r.variant);
  out->set_experiment_id(std::string(experiment));
  out->set_variant_id(std::string(variant));
  out->set_holdout(r.holdout);
  if (!degraded_fallback && !r.fallback)
    SetFactors(r.factors, out->mutable_factors());
  if (tokens.signer != nullptr) {
    DecisionTokenClaims claims;
    claims.issued = tokens.now;
    claims.contact_id = std::string(tokens.contact_id);
    claims.action_id = a.id;
    claims.placement_id = std::string(tokens.placement_id);
    claims.channel_id = std::string(tokens.channel_id);
    claims.phase_id = std::string(tokens.phase_id);
    claims.experiment_id = std::string(experiment);
    claims.variant_id = std::string(variant);
    claims.holdout = r.holdout;
    out->set_decision_token(tokens.signer->Sign(std::move(claims)));
  }
}

void AddExplanation(const ruleset::Ruleset& rs,
                    const ruleset::DecisionResult& result,
                    tappa::v1::NextBestActionResponse* response) {
  for (const ruleset::Exposure& x : result.exposures) {
    auto* out = response->add_experiments();
    out->set_experiment_id(rs.experiments[x.experiment].id);
    out->set_variant_id(std::string(VariantId(rs, x.experiment, x.variant)));
    out->set_holdout(x.holdout);
  }
  for (const ruleset::Candidate& c : result.candidates) {
    auto* out = response->add_candidates();
    out->set_action_id(rs.actions[c.action].id);
    out->set_verdict(ToProto(c));
    out->set_detail(c.detail);
    out->set_rule(c.rule);
    out->set_false_condition(c.false_condition);
    out->set_priority(c.priority);
    bool ranked = c.verdict == ruleset::Verdict::kChosen ||
                  c.verdict == ruleset::Verdict::kBelowLimit ||
                  c.verdict == ruleset::Verdict::kGroupAlreadyServed;
    if (ranked) {
      out->set_score(c.score);
      SetFactors(c.factors, out->mutable_factors());
    }
    if (c.experiment >= 0) {
      out->set_experiment_id(rs.experiments[c.experiment].id);
      out->set_variant_id(std::string(VariantId(rs, c.experiment, c.variant)));
    }
  }
}

}  // namespace tappa::server
