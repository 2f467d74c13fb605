// Adaptive propensities: Thompson sampling over a Beta posterior per arm.
//
// An adaptive action (Action::adaptive) has one arm per placement it is
// shown on, and per phase too when `per_phase` is set. For each arm the
// server counts
//   trials    = the times a decision served the action there (the server
//               counts them as it answers), and
//   successes = the reported clicks (or conversions) of those serves.
// A decision draws, for each eligible adaptive action, one sample of
//   Beta(prior_successes + successes, prior_failures + max(0, trials −
//   successes))
// and ranks the action with it as its propensity. Arms that did well get high
// samples most of the time; arms with few trials get wide posteriors, so
// they are still tried now and then (exploration), less as evidence builds.
//
// The counts are read from a PosteriorTable, an immutable snapshot the server
// rebuilds from its counters periodically (about every second), so a
// decision never waits on counting. Keys are indexes into the Ruleset the
// table was built for: rebuild the table when the ruleset changes.
//
// Thread safety: a built PosteriorTable is immutable and may be read by any
// number of threads. A ThompsonSampler draws from a generator that is not
// thread-safe: use one per thread (or per decision).
#ifndef TAPPA_RULES_RULESET_ADAPTIVE_H_
#define TAPPA_RULES_RULESET_ADAPTIVE_H_

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "rules/ruleset/decision.h"
#include "rules/ruleset/ruleset.h"

namespace tappa::ruleset {

// The evidence of one arm.
struct PosteriorCounts {
  int64_t successes = 0;
  int64_t trials = 0;
};

// The phase component of the arm key of `action` for a contact in `phase`:
// `phase` when the action is adaptive per phase, else -1 (one arm across
// phases). The server counts trials and successes under this key so that
// they meet the sampler's lookups.
int PosteriorPhase(const Action& action, int phase);

// Counts per arm, keyed by (action index, placement index, phase index or -1;
// see PosteriorPhase). Lookups are one hash probe on a packed 64-bit key.
class PosteriorTable {
 public:
  class Builder {
   public:
    // Adds `successes` and `trials` to the arm's counts (a key may be added
    // several times, e.g. once per server shard). Errors: InvalidArgument
    // when action or placement is negative or placement is 65,536 or more,
    // when phase is below -1 or 65,535 or more, when a count is negative, or
    // when a total would overflow; the builder is then unchanged.
    absl::Status Add(int action, int placement, int phase, int64_t successes,
                     int64_t trials);

    // The table; the builder is left empty.
    PosteriorTable Build() &&;

   private:
    absl::flat_hash_map<uint64_t, PosteriorCounts> counts_;
  };

  // An empty table: every arm is at its prior.
  PosteriorTable() = default;

  // The arm's counts; zeros when the table has none (also for keys Add would
  // reject).
  PosteriorCounts Find(int action, int placement, int phase) const;

  // The number of arms with counts.
  size_t size() const { return counts_.size(); }

 private:
  explicit PosteriorTable(absl::flat_hash_map<uint64_t, PosteriorCounts> counts)
      : counts_(std::move(counts)) {}

  absl::flat_hash_map<uint64_t, PosteriorCounts> counts_;
};

// One draw from Beta(alpha, beta), in [0, 1] (the ends are possible through
// rounding when alpha and beta are very different). alpha and beta must be
// finite and > 0; otherwise the result is 0, never NaN, so that a bad input
// cannot break the ordering of a ranking.
double SampleBeta(double alpha, double beta, absl::BitGenRef gen);

// The PropensitySource of a decision: a fresh Thompson sample per adaptive
// action and call (see the top of this file). For an action that is not
// adaptive it returns the action's fixed propensity, and 0 for an index out
// of range. Borrows `ruleset`, `table` and the generator behind `gen`: all
// must outlive the sampler.
class ThompsonSampler final : public PropensitySource {
 public:
  ThompsonSampler(const Ruleset& ruleset, const PosteriorTable& table,
                  absl::BitGenRef gen)
      : ruleset_(&ruleset), table_(&table), gen_(gen) {}

  double Propensity(int action, int placement, int phase) const override;

 private:
  const Ruleset* ruleset_;
  const PosteriorTable* table_;
  // Drawing advances the generator; Propensity() is const to the decision.
  mutable absl::BitGenRef gen_;
};

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_ADAPTIVE_H_
