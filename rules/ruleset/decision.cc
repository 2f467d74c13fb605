#include "rules/ruleset/decision.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "rules/ruleset/environment.h"
#include "rules/ruleset/experiment.h"

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

// What an index entry (phase, placement) fixes about every request it
// serves: the contact's phase, the context's channel and placement.
struct FixedPath {
  int variable;
  absl::string_view field;
};
constexpr FixedPath kFixedByEntry[] = {
    {kConditionSlots.contact, "phase"},
    {kConditionSlots.context, "channel"},
    {kConditionSlots.context, "placement"},
};
constexpr size_t kFixedCount = std::size(kFixedByEntry);

// The values of kFixedByEntry for the entry, in the same order.
std::array<absl::string_view, kFixedCount> FixedValues(const Ruleset& rs,
                                                       int phase,
                                                       int placement) {
  const Placement& where = rs.placements[placement];
  return {rs.phases[phase].id, rs.channels[where.channel].id, where.id};
}

// For each top-level conjunct of `when`: whether it reads nothing but paths
// of kFixedByEntry, so that an entry decides it.
std::vector<bool> DecidedByEntry(const Expression& when) {
  auto fixed = [](const cel::VariablePath& path) {
    return path.fields.size() == 1 &&
           std::any_of(std::begin(kFixedByEntry), std::end(kFixedByEntry),
                       [&path](const FixedPath& f) {
                         return f.variable == path.variable &&
                                f.field == path.fields[0];
                       });
  };
  std::vector<bool> decided;
  for (const Expression& part : when.conjuncts) {
    std::vector<cel::VariablePath> paths = part.program->VariablePaths();
    decided.push_back(std::all_of(paths.begin(), paths.end(), fixed));
  }
  return decided;
}

// The condition variables as an entry knows them: only the fixed paths.
class EntryBindings {
 public:
  EntryBindings(const Ruleset& rs, int phase, int placement) {
    auto values = FixedValues(rs, phase, placement);
    for (size_t i = 0; i < kFixedCount; ++i) {
      FieldMap& map = kFixedByEntry[i].variable == kConditionSlots.contact
                          ? contact_
                          : context_;
      map.Add(kFixedByEntry[i].field, Value::BorrowedString(values[i]));
    }
    vars_[kConditionSlots.contact] = Value::BorrowedMap(&contact_);
    vars_[kConditionSlots.context] = Value::BorrowedMap(&context_);
  }
  EntryBindings(const EntryBindings&) = delete;
  EntryBindings& operator=(const EntryBindings&) = delete;

  absl::Span<const Value> vars() const { return vars_; }

 private:
  FieldMap contact_, context_;
  Value vars_[kConditionVariableCount];
};

// The programs that decide `action`'s condition for the entry `known`
// describes (see Decider::conditions_); `decided` is DecidedByEntry of its
// condition.
std::vector<const cel::Program*> SpecializedCondition(
    const Action& action, const std::vector<bool>& decided,
    const EntryBindings& known) {
  if (!action.when.has_value()) return {};
  const Expression& when = *action.when;
  const std::vector<const cel::Program*> whole = {when.program.get()};
  std::vector<const cel::Program*> left;
  for (size_t i = 0; i < when.conjuncts.size(); ++i) {
    const cel::Program* part = when.conjuncts[i].program.get();
    if (!decided[i]) {
      left.push_back(part);
      continue;
    }
    // Reading nothing else, it gives here what it gives for every request
    // of the entry.
    Value v = part->Evaluate(known.vars());
    if (v.IsBool() && v.bool_value()) continue;  // true: drop it
    // False (or an error) for every such request: keep the whole condition,
    // which says so (this candidate never wins).
    return whole;
  }
  if (left.size() == when.conjuncts.size()) return whole;  // none decided
  return left;
}

// Whether every program in `conjuncts` gives true: `a && b && c` with the
// conjuncts known true dropped (dropping a true operand of && changes
// nothing, errors included).
bool AllTrue(const std::vector<const cel::Program*>& conjuncts,
             absl::Span<const Value> vars) {
  for (const cel::Program* part : conjuncts) {
    Value v = part->Evaluate(vars);
    if (!v.IsBool() || !v.bool_value()) return false;
  }
  return true;
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
  std::vector<std::vector<bool>> decided(rs.actions.size());
  for (size_t a = 0; a < rs.actions.size(); ++a) {
    if (rs.actions[a].when.has_value()) {
      decided[a] = DecidedByEntry(*rs.actions[a].when);
    }
  }
  conditions_.resize(candidates_.size());
  for (int phase = 0; phase < static_cast<int>(rs.phases.size()); ++phase) {
    for (int placement = 0; placement < placement_count_; ++placement) {
      const int entry = phase * placement_count_ + placement;
      const EntryBindings known(rs, phase, placement);
      for (int a : candidates_[entry]) {
        conditions_[entry].push_back(
            SpecializedCondition(rs.actions[a], decided[a], known));
      }
    }
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

bool Decider::BindingsMatch(int phase, int placement, const Value& contact,
                            const Value& context) const {
  auto values = FixedValues(*ruleset_, phase, placement);
  for (size_t i = 0; i < kFixedCount; ++i) {
    const Value& binding = kFixedByEntry[i].variable == kConditionSlots.contact
                               ? contact
                               : context;
    if (!binding.IsMap()) return false;
    Value scratch;
    const Value* found =
        binding.map_value().FindStringRef(kFixedByEntry[i].field, &scratch);
    if (found == nullptr || !found->IsString() ||
        found->string_value() != values[i]) {
      return false;
    }
  }
  return true;
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

absl::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kChosen:
      return "chosen";
    case Verdict::kBelowLimit:
      return "below_limit";
    case Verdict::kConditionFalse:
      return "condition_false";
    case Verdict::kConditionError:
      return "condition_error";
    case Verdict::kHoldout:
      return "holdout";
    case Verdict::kOutsideArm:
      return "outside_arm";
    case Verdict::kPolicy:
      return "policy";
    case Verdict::kBudgetExhausted:
      return "budget_exhausted";
    case Verdict::kGroupAlreadyServed:
      return "group_already_served";
    case Verdict::kRankingError:
      return "ranking_error";
  }
  return "unknown";
}

namespace {

// The first top-level conjunct of `when` that is not true, for explanations.
std::string FalseConjunct(const Expression& when,
                          absl::Span<const Value> vars) {
  for (const Expression& part : when.conjuncts) {
    Value v = part.program->Evaluate(vars);
    if (!v.IsBool() || !v.bool_value()) return part.source;
  }
  return when.source;
}

// The experiments of one decision, assigned lazily (a SHA-256 each).
class ExperimentArms {
 public:
  ExperimentArms(const Ruleset& rs, int placement, absl::string_view contact_id)
      : rs_(rs), contact_id_(contact_id) {
    if (contact_id.empty()) return;
    for (int e = 0; e < static_cast<int>(rs.experiments.size()); ++e) {
      const Experiment& x = rs.experiments[e];
      if (!x.enabled) continue;
      if (x.placement == placement) {
        placement_experiment_ = e;
      } else if (!x.group.empty()) {
        group_experiments_.push_back(e);
      }
    }
  }

  // The experiment covering `action` here, or -1.
  int ExperimentOf(const Action& action) const {
    if (placement_experiment_ >= 0) return placement_experiment_;
    if (action.group.empty()) return -1;
    for (int e : group_experiments_) {
      if (rs_.experiments[e].group == action.group) return e;
    }
    return -1;
  }

  const ExperimentAssignment& Assignment(int experiment) {
    for (auto& [e, a] : assigned_) {
      if (e == experiment) return a;
    }
    assigned_.emplace_back(
        experiment, AssignExperiment(rs_.experiments[experiment], contact_id_));
    return assigned_.back().second;
  }

  int placement_experiment() const { return placement_experiment_; }

 private:
  const Ruleset& rs_;
  absl::string_view contact_id_;
  int placement_experiment_ = -1;
  absl::InlinedVector<int, 4> group_experiments_;
  absl::InlinedVector<std::pair<int, ExperimentAssignment>, 4> assigned_;
};

void AddExposure(int experiment, const ExperimentAssignment& a,
                 std::vector<Exposure>* exposures) {
  for (const Exposure& x : *exposures) {
    if (x.experiment == experiment) return;
  }
  exposures->push_back({experiment, a.variant, a.holdout});
}

}  // namespace

DecisionResult Decider::Decide(int phase, int placement, const Value& contact,
                               const Value& context, absl::Time now,
                               const DecisionOptions& options) const {
  DecisionResult result;
  absl::Span<const int> candidates = Candidates(phase, placement);
  if (candidates.empty()) return result;
  const Ruleset& rs = *ruleset_;
  const Placement& where = rs.placements[placement];
  const bool explain = options.explain;

  Value vars[kRankingVariableCount];
  vars[kConditionSlots.contact] = contact;
  vars[kConditionSlots.context] = context;
  vars[kConditionSlots.now] = Value::FromTimestamp(ToCelTimestamp(now));
  auto condition_vars = absl::MakeConstSpan(vars, kConditionVariableCount);

  // Context weights depend on the request only: evaluate each once.
  absl::InlinedVector<bool, 16> weight_matches(rs.context_weights.size(),
                                               false);
  for (size_t i = 0; i < rs.context_weights.size(); ++i) {
    Value v = rs.context_weights[i].when.program->Evaluate(condition_vars);
    weight_matches[i] = v.IsBool() && v.bool_value();
  }
  ExperimentArms arms(rs, placement, options.contact_id);
  bool placement_holdout = false;

  // Outside explanations (which report the false conjunct of the condition
  // as written), conditions are evaluated as specialized for the index
  // entry, when the bindings are those it was specialized for.
  const std::vector<std::vector<const cel::Program*>>* specialized =
      !explain && BindingsMatch(phase, placement, contact, context)
          ? &conditions_[phase * placement_count_ + placement]
          : nullptr;
  for (size_t k = 0; k < candidates.size(); ++k) {
    const int a = candidates[k];
    const Action& action = rs.actions[a];
    if (specialized != nullptr && !AllTrue((*specialized)[k], condition_vars)) {
      continue;
    }
    Candidate c;
    c.action = a;
    c.priority = action.priority;
    // Records the candidate's verdict when explaining; returns nothing.
    auto reject = [&](Verdict verdict, std::string detail, std::string rule) {
      if (!explain) return;
      c.verdict = verdict;
      c.detail = std::move(detail);
      c.rule = std::move(rule);
      result.candidates.push_back(std::move(c));
    };

    if (specialized == nullptr && action.when.has_value()) {
      Value ok = action.when->program->Evaluate(condition_vars);
      if (!ok.IsBool() || !ok.bool_value()) {
        if (explain) {
          c.false_condition = FalseConjunct(*action.when, condition_vars);
          if (ok.IsBool()) {
            reject(Verdict::kConditionFalse, "condition false",
                   absl::StrCat("actions/", action.id, "/when"));
          } else {
            reject(Verdict::kConditionError,
                   ok.IsError()
                       ? absl::StrCat("condition error: ", ok.error_message())
                       : absl::StrCat("condition is not a bool: ",
                                      ok.DebugString()),
                   absl::StrCat("actions/", action.id, "/when"));
          }
        }
        continue;
      }
    }

    double lever = action.lever;
    int experiment = arms.ExperimentOf(action);
    if (experiment >= 0) {
      const Experiment& x = rs.experiments[experiment];
      const ExperimentAssignment& arm = arms.Assignment(experiment);
      AddExposure(experiment, arm, &result.exposures);
      c.experiment = experiment;
      c.variant = arm.variant;
      if (arm.holdout) {
        if (experiment == arms.placement_experiment()) placement_holdout = true;
        reject(Verdict::kHoldout,
               absl::StrCat("holdout of experiment '", x.id, "'"),
               absl::StrCat("experiments/", x.id));
        continue;
      }
      const Experiment::Variant& variant = x.variants[arm.variant];
      if (!variant.actions.empty() && !Contains(variant.actions, a)) {
        reject(Verdict::kOutsideArm,
               absl::StrCat("variant '", variant.id, "' of experiment '", x.id,
                            "' does not serve it"),
               absl::StrCat("experiments/", x.id, "/variants/", variant.id));
        continue;
      }
      lever *= variant.lever;
    }

    if (options.policies != nullptr) {
      PolicyVerdict verdict = options.policies->CheckAction(a);
      if (verdict.block != PolicyBlock::kNone) {
        c.policy = verdict.block;
        reject(Verdict::kPolicy, std::move(verdict.detail),
               std::move(verdict.rule));
        continue;
      }
    }
    if (action.budget.has_value() &&
        std::find(options.exhausted_budgets.begin(),
                  options.exhausted_budgets.end(),
                  a) != options.exhausted_budgets.end()) {
      reject(
          Verdict::kBudgetExhausted,
          absl::StrCat("budget ", DescribeLimit(*action.budget), " exhausted"),
          absl::StrCat("actions/", action.id, "/budget"));
      continue;
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
    ScoreFactors factors{propensity, weight, action.value, lever};
    double score = propensity * weight * action.value * lever;
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
        c.factors = factors;
        reject(Verdict::kRankingError,
               absl::StrCat("ranking formula gave ", s.DebugString()),
               absl::StrCat("placements/", where.id, "/ranking"));
        continue;
      }
      if (std::isnan(score)) score = -INFINITY;
    }
    RankedAction r;
    r.action = a;
    r.priority = action.priority;
    r.score = score;
    r.factors = factors;
    r.experiment = c.experiment;
    r.variant = c.variant;
    result.ranked.push_back(r);
  }

  std::sort(result.ranked.begin(), result.ranked.end(),
            [&rs](const RankedAction& x, const RankedAction& y) {
              return RanksBefore(rs, x, y);
            });

  size_t limit = options.limit > 0       ? options.limit
                 : where.max_results > 0 ? where.max_results
                                         : 1;
  if (where.max_results > 0) limit = std::min<size_t>(limit, where.max_results);

  // Cut to the limit (one per group when asked), explaining the rest.
  std::vector<RankedAction> kept;
  std::vector<absl::string_view> groups;
  for (const RankedAction& r : result.ranked) {
    Verdict verdict = Verdict::kChosen;
    if (kept.size() >= limit) {
      verdict = Verdict::kBelowLimit;
    } else if (where.one_per_group && !rs.actions[r.action].group.empty()) {
      const std::string& group = rs.actions[r.action].group;
      if (std::find(groups.begin(), groups.end(), group) != groups.end()) {
        verdict = Verdict::kGroupAlreadyServed;
      } else {
        groups.push_back(group);
      }
    }
    if (verdict == Verdict::kChosen) kept.push_back(r);
    if (explain) {
      Candidate c;
      c.action = r.action;
      c.verdict = verdict;
      c.priority = r.priority;
      c.score = r.score;
      c.factors = r.factors;
      c.experiment = r.experiment;
      c.variant = r.variant;
      const Action& action = rs.actions[r.action];
      c.rule = action.when.has_value()
                   ? absl::StrCat("actions/", action.id, "/when")
                   : absl::StrCat("actions/", action.id);
      if (verdict == Verdict::kBelowLimit) {
        c.detail = absl::StrCat("ranked after the limit of ", limit);
      } else if (verdict == Verdict::kGroupAlreadyServed) {
        c.detail = absl::StrCat("group '", action.group, "' already served");
      }
      result.candidates.push_back(std::move(c));
    }
  }
  result.ranked = std::move(kept);

  // A placement experiment's holdout gets the control treatment: the
  // placement's fallback action, when it declares one and the contact's
  // policies allow it (no email without consent, even as a control).
  if (placement_holdout && result.ranked.empty() &&
      where.fallback_action >= 0 &&
      (options.policies == nullptr ||
       options.policies->CheckAction(where.fallback_action).block ==
           PolicyBlock::kNone)) {
    RankedAction r;
    r.action = where.fallback_action;
    r.priority = rs.actions[where.fallback_action].priority;
    r.experiment = arms.placement_experiment();
    r.holdout = true;
    r.fallback = true;
    result.ranked.push_back(r);
  }
  for (RankedAction& r : result.ranked) {
    if (r.experiment >= 0 && r.variant < 0) r.holdout = true;
  }
  if (explain) {
    // Rejected candidates were explained in candidate order, eligible ones
    // in rank order: put them all back in candidate order (documented).
    absl::flat_hash_map<int, size_t> position;
    for (size_t i = 0; i < candidates.size(); ++i) {
      position.emplace(candidates[i], i);
    }
    std::stable_sort(result.candidates.begin(), result.candidates.end(),
                     [&position](const Candidate& x, const Candidate& y) {
                       return position[x.action] < position[y.action];
                     });
  }
  return result;
}

}  // namespace tappa::ruleset
