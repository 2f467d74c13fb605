#include "rules/ruleset/decision.h"

#include <algorithm>
#include <cmath>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "rules/ruleset/environment.h"

namespace tappa::ruleset {
namespace {

using cel::Value;

bool Contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Whether a context weight entry's filters select `action` for a contact in
// `phase`.
bool WeightApplies(const ContextWeight& w, const Action& action,
                   int action_index, int phase) {
  if (!w.phases.empty() && !Contains(w.phases, phase)) return false;
  if (!w.actions.empty() && !Contains(w.actions, action_index)) return false;
  if (!w.groups.empty() && std::find(w.groups.begin(), w.groups.end(),
                                     action.group) == w.groups.end()) {
    return false;
  }
  if (!w.kinds.empty() &&
      std::find(w.kinds.begin(), w.kinds.end(), action.kind) == w.kinds.end()) {
    return false;
  }
  return true;
}

// True when `a` ranks before `b`.
bool RanksBefore(const Ruleset& ruleset, const RankedAction& a,
                 const RankedAction& b) {
  if (a.priority != b.priority) return a.priority > b.priority;
  if (a.score != b.score) return a.score > b.score;
  return ruleset.actions[a.action].id < ruleset.actions[b.action].id;
}

}  // namespace

std::shared_ptr<const Decider> Decider::Create(
    std::shared_ptr<const Ruleset> ruleset) {
  return std::shared_ptr<const Decider>(new Decider(std::move(ruleset)));
}

Decider::Decider(std::shared_ptr<const Ruleset> ruleset)
    : ruleset_(std::move(ruleset)) {
  const Ruleset& rs = *ruleset_;
  placement_count_ = static_cast<int>(rs.placements.size());
  candidates_.resize(rs.phases.size() * rs.placements.size());
  for (int a = 0; a < static_cast<int>(rs.actions.size()); ++a) {
    const Action& action = rs.actions[a];
    for (int placement : action.placements) {
      for (int phase = 0; phase < static_cast<int>(rs.phases.size()); ++phase) {
        if (!action.all_phases && !Contains(action.phases, phase)) continue;
        candidates_[phase * placement_count_ + placement].push_back(a);
      }
    }
  }
  for (auto& list : candidates_) {
    std::sort(list.begin(), list.end(), [&rs](int x, int y) {
      if (rs.actions[x].priority != rs.actions[y].priority) {
        return rs.actions[x].priority > rs.actions[y].priority;
      }
      return rs.actions[x].id < rs.actions[y].id;
    });
    list.shrink_to_fit();
  }
  for (const Action& action : rs.actions) {
    auto object = std::make_unique<FieldMap>();
    object->Add("id", Value::BorrowedString(action.id));
    object->Add("kind", Value::BorrowedString(ActionKindName(action.kind)));
    object->Add("group", Value::BorrowedString(action.group));
    object->Add("priority", Value::Int(action.priority));
    object->Add("value", Value::Double(action.value));
    object->Add("lever", Value::Double(action.lever));
    action_values_.push_back(Value::BorrowedMap(object.get()));
    action_objects_.push_back(std::move(object));
  }
}

absl::Span<const int> Decider::Candidates(int phase, int placement) const {
  if (phase < 0 || placement < 0 || placement >= placement_count_ ||
      phase >= static_cast<int>(ruleset_->phases.size())) {
    return {};
  }
  return candidates_[phase * placement_count_ + placement];
}

const Value& Decider::ActionValue(int action) const {
  return action_values_[action];
}

DecisionResult Decider::Decide(int phase, int placement, const Value& contact,
                               const Value& context, absl::Time now,
                               const DecisionOptions& options) const {
  DecisionResult result;
  absl::Span<const int> candidates = Candidates(phase, placement);
  if (candidates.empty()) return result;
  const Ruleset& rs = *ruleset_;
  const Placement& where = rs.placements[placement];

  Value vars[kRankingVariableCount];
  vars[kConditionSlots.contact] = contact;
  vars[kConditionSlots.context] = context;
  vars[kConditionSlots.now] = Value::FromTimestamp(ToCelTimestamp(now));

  // Context weights depend on the request only: evaluate each once.
  absl::InlinedVector<bool, 16> weight_matches(rs.context_weights.size(),
                                               false);
  for (size_t i = 0; i < rs.context_weights.size(); ++i) {
    Value v = rs.context_weights[i].when.program->Evaluate(
        absl::MakeConstSpan(vars, kConditionVariableCount));
    weight_matches[i] = v.IsBool() && v.bool_value();
  }

  for (int a : candidates) {
    const Action& action = rs.actions[a];
    if (action.when.has_value()) {
      Value ok = action.when->program->Evaluate(
          absl::MakeConstSpan(vars, kConditionVariableCount));
      if (!ok.IsBool() || !ok.bool_value()) {
        if (options.explain) {
          result.rejected.push_back(
              {a, ok.IsError()
                      ? absl::StrCat("condition error: ", ok.error_message())
                  : ok.IsBool() ? "condition false"
                                : absl::StrCat("condition is not a bool: ",
                                               ok.DebugString())});
        }
        continue;
      }
    }
    double weight = 1.0;
    for (size_t i = 0; i < rs.context_weights.size(); ++i) {
      if (weight_matches[i] &&
          WeightApplies(rs.context_weights[i], action, a, phase)) {
        weight *= rs.context_weights[i].weight;
      }
    }
    double propensity = action.propensity;
    if (action.adaptive.has_value()) {
      propensity = options.propensities != nullptr
                       ? options.propensities->Propensity(a, placement, phase)
                       : action.adaptive->prior_successes /
                             (action.adaptive->prior_successes +
                              action.adaptive->prior_failures);
    }
    double score = propensity * weight * action.value * action.lever;
    if (where.ranking.has_value()) {
      // Ranking context = condition context + action, propensity, weight.
      vars[kRankingSlots.action] = action_values_[a];
      vars[kRankingSlots.propensity] = Value::Double(propensity);
      vars[kRankingSlots.context_weight] = Value::Double(weight);
      Value s = where.ranking->program->Evaluate(
          absl::MakeConstSpan(vars, kRankingVariableCount));
      if (s.IsDouble()) {
        score = s.double_value();
      } else if (s.IsInt()) {
        score = static_cast<double>(s.int_value());
      } else if (s.IsUint()) {
        score = static_cast<double>(s.uint_value());
      } else {
        if (options.explain) {
          result.rejected.push_back(
              {a, absl::StrCat("ranking formula gave ", s.DebugString())});
        }
        continue;
      }
      if (std::isnan(score)) score = -INFINITY;
    }
    result.ranked.push_back({a, action.priority, score});
  }

  std::sort(result.ranked.begin(), result.ranked.end(),
            [&rs](const RankedAction& x, const RankedAction& y) {
              return RanksBefore(rs, x, y);
            });

  size_t limit = options.limit > 0       ? options.limit
                 : where.max_results > 0 ? where.max_results
                                         : 1;
  if (where.max_results > 0) limit = std::min<size_t>(limit, where.max_results);

  if (where.one_per_group) {
    std::vector<RankedAction> kept;
    std::vector<absl::string_view> groups;
    for (const RankedAction& r : result.ranked) {
      if (kept.size() >= limit) break;
      const std::string& group = rs.actions[r.action].group;
      if (!group.empty()) {
        if (std::find(groups.begin(), groups.end(), group) != groups.end()) {
          if (options.explain)
            result.rejected.push_back({r.action, "group already served"});
          continue;
        }
        groups.push_back(group);
      }
      kept.push_back(r);
    }
    result.ranked = std::move(kept);
  } else if (result.ranked.size() > limit) {
    result.ranked.resize(limit);
  }
  return result;
}

}  // namespace tappa::ruleset
