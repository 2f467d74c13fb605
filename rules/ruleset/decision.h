// Choosing the next best actions for one contact on one placement: pure
// computation over a ruleset, a contact snapshot and the contact's restraint
// record, no I/O.
//
// Candidates come from an index built once per ruleset, keyed by (phase,
// placement), so the work of a request grows with the actions that could
// apply to it, not with the size of the ruleset. Each candidate goes through,
// in order:
//   1. its `when` condition against `contact`, `context` and `now` (an
//      error or a non-bool makes it ineligible);
//   2. the experiments covering the placement or its group (experiment.h):
//      a contact in the holdout gets the control treatment (the placement's
//      fallback action for a placement experiment; no action of the group
//      for a group experiment), a contact in a variant only the variant's
//      actions, with the variant's lever;
//   3. contact policies (policy.h): consent, quiet hours, cooldowns, caps;
//   4. budgets: actions whose global budget the caller found exhausted;
// then the eligible actions are ranked by
//   1. priority (a tier: higher first),
//   2. score, descending: the placement's ranking formula when it declares
//      one, else propensity x context_weight x value x lever, where
//      context_weight is the product of the weights of every context-weight
//      entry that matches the request and the action, and propensity is the
//      action's fixed one or, for adaptive actions, the PropensitySource's,
//   3. action id, ascending (a stable tie-break),
// and cut to the limit, keeping at most one action per group when the
// placement says one_per_group.
//
// Thread safety: a Decider is immutable after Create(); Decide() may run on
// any number of threads at once.
#ifndef TAPPA_RULES_RULESET_DECISION_H_
#define TAPPA_RULES_RULESET_DECISION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rules/cel/value.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/policy.h"
#include "rules/ruleset/ruleset.h"

namespace tappa::ruleset {

// The four factors of the default score.
struct ScoreFactors {
  double propensity = 0;
  double context_weight = 0;
  double value = 0;
  double lever = 0;  // the action's lever times its experiment arm's
};

struct RankedAction {
  int action = -1;  // index into Ruleset::actions
  int priority = 0;
  double score = 0;
  ScoreFactors factors;
  int experiment = -1;  // index into Ruleset::experiments, -1 when none
  int variant = -1;     // index into the experiment's variants; -1 = holdout
  bool holdout = false;
  // The placement's fallback served as the control treatment of a holdout.
  bool fallback = false;
};

// What became of one candidate (explanations).
enum class Verdict : uint8_t {
  kChosen,
  kBelowLimit,          // eligible, ranked after the limit
  kConditionFalse,      // `when` was false
  kConditionError,      // `when` gave an error or a non-bool
  kHoldout,             // the contact is in an experiment's holdout
  kOutsideArm,          // the contact's variant does not serve the action
  kPolicy,              // a contact policy blocks it (Candidate::policy)
  kBudgetExhausted,     // its global budget is spent
  kGroupAlreadyServed,  // one_per_group and a better action of its group won
  kRankingError,        // the placement's ranking formula failed
};
absl::string_view VerdictName(Verdict verdict);  // "chosen", "cap", ...

struct Candidate {
  int action = -1;
  Verdict verdict = Verdict::kChosen;
  PolicyBlock policy = PolicyBlock::kNone;  // kPolicy only
  // Human-readable: "condition false", "cap 2 per 7d reached (2 served)".
  std::string detail;
  // The ruleset rule behind the verdict, as a path: "actions/x/when",
  // "policies/channels/email/caps/0", "experiments/hero-test".
  std::string rule;
  // kConditionFalse / kConditionError: the first top-level conjunct of the
  // condition that was not true (the whole condition when it is not a
  // conjunction).
  std::string false_condition;
  int priority = 0;
  double score = 0;  // eligible candidates only
  ScoreFactors factors;
  int experiment = -1;
  int variant = -1;
};

// An experiment the decision took part in.
struct Exposure {
  int experiment = -1;
  int variant = -1;  // -1 = holdout
  bool holdout = false;
};

struct DecisionResult {
  std::vector<RankedAction> ranked;  // best first, at most the limit
  std::vector<Exposure> exposures;
  // Every candidate with its verdict, in candidate order; filled only when
  // DecisionOptions::explain is true.
  std::vector<Candidate> candidates;
};

// Where adaptive actions get their propensity for one decision: a Thompson
// sample of their posterior (adaptive.h). Called once per eligible adaptive
// action per decision, from the deciding thread only.
class PropensitySource {
 public:
  virtual ~PropensitySource() = default;
  // The propensity in [0, 1] to rank adaptive `action` with on `placement`
  // for a contact in `phase`.
  virtual double Propensity(int action, int placement, int phase) const = 0;
};

struct DecisionOptions {
  // At most this many actions (after the placement's own max_results);
  // 0 = the placement's max_results, or 1 when it has none.
  int limit = 0;
  bool explain = false;
  // Propensities of adaptive actions; when null they rank with their prior
  // mean, prior_successes / (prior_successes + prior_failures).
  const PropensitySource* propensities = nullptr;
  // The contact's id: experiments assign by it (none apply when empty).
  absl::string_view contact_id;
  // Contact policies of the request's channel; none apply when null.
  const PolicyCheck* policies = nullptr;
  // Actions whose global budget is exhausted (any order).
  absl::Span<const int> exhausted_budgets;
};

class Decider {
 public:
  // Builds the (phase, placement) index. Never fails on a loaded ruleset.
  static std::shared_ptr<const Decider> Create(
      std::shared_ptr<const Ruleset> ruleset);

  const Ruleset& ruleset() const { return *ruleset_; }
  const std::shared_ptr<const Ruleset>& ruleset_ptr() const { return ruleset_; }

  // The candidates for a phase and placement: indexes of actions eligible
  // there before conditions, in (priority desc, id asc) order.
  absl::Span<const int> Candidates(int phase, int placement) const;

  // Ranks the eligible actions. `contact` and `context` are the bindings of
  // contact.h; `placement` an index into Ruleset::placements (checked: out of
  // range gives an empty result).
  DecisionResult Decide(int phase, int placement, const cel::Value& contact,
                        const cel::Value& context, absl::Time now,
                        const DecisionOptions& options) const;

  // The action Values bound to `action` in ranking formulas.
  const cel::Value& ActionValue(int action) const;

 private:
  explicit Decider(std::shared_ptr<const Ruleset> ruleset);

  // True when `contact` and `context` bind the phase, channel and
  // placement the index entry (phase, placement) was specialized for.
  bool BindingsMatch(int phase, int placement, const cel::Value& contact,
                     const cel::Value& context) const;

  std::shared_ptr<const Ruleset> ruleset_;
  int placement_count_ = 0;
  // candidates_[phase * placement_count_ + placement].
  std::vector<std::vector<int>> candidates_;
  // What is left of each candidate's `when` once its phase and placement
  // are known, parallel to candidates_: the programs to evaluate, all of
  // which must be true (none: always true). A top-level conjunct that reads
  // nothing but contact.phase, context.channel and context.placement is
  // decided here, once: in the 1,000-action example each condition opens
  // with `contact.phase == ...` and `context.channel in [...]`, which the
  // index already guarantees, and a decision touches half the memory
  // without them (conditions are evaluated from memory, not from the cache,
  // in a busy server: benchmarks/decision_benchmark.cc,
  // BM_DecideAcrossRuleset). A condition that is not a conjunction, or
  // whose conjuncts are all undecided, is evaluated whole.
  std::vector<std::vector<std::vector<const cel::Program*>>> conditions_;
  std::vector<std::unique_ptr<FieldMap>> action_objects_;
  std::vector<cel::Value> action_values_;
};

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_DECISION_H_
