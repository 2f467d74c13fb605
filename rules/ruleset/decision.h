// Choosing the next best actions for one contact on one placement: pure
// computation over a ruleset and a contact snapshot, no I/O.
//
// Candidates come from an index built once per ruleset, keyed by (phase,
// placement), so the work of a request grows with the actions that could
// apply to it, not with the size of the ruleset. Each candidate's `when`
// condition is evaluated against `contact`, `context` and `now`; a condition
// that evaluates to an error or to a non-bool makes the action ineligible
// (and is reported in the explanation). Eligible actions are ranked by
//   1. priority (a tier: higher first),
//   2. score, descending: the placement's ranking formula when it declares
//      one, else propensity x context_weight x value x lever, where
//      context_weight is the product of the weights of every context-weight
//      entry that matches the request and the action,
//   3. action id, ascending (a stable tie-break).
// then cut to the limit, keeping at most one action per group when the
// placement says one_per_group.
//
// Contact policies, caps, experiments and adaptive propensities are applied
// by the decisioning layer on top of this (issue: decisioning).
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
#include "rules/ruleset/ruleset.h"

namespace tappa::ruleset {

struct RankedAction {
  int action = -1;  // index into Ruleset::actions
  int priority = 0;
  double score = 0;
};

// Why an action was not chosen, for explanations and tests.
struct Rejection {
  int action = -1;
  std::string reason;  // "condition false", "condition error: no such key: x"
};

struct DecisionResult {
  std::vector<RankedAction> ranked;  // best first, at most the limit
  // Filled only when DecisionOptions::explain is true.
  std::vector<Rejection> rejected;
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

  std::shared_ptr<const Ruleset> ruleset_;
  int placement_count_ = 0;
  // candidates_[phase * placement_count_ + placement].
  std::vector<std::vector<int>> candidates_;
  std::vector<std::unique_ptr<FieldMap>> action_objects_;
  std::vector<cel::Value> action_values_;
};

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_DECISION_H_
