#include "rules/ruleset/adaptive.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/random/beta_distribution.h"
#include "absl/strings/str_cat.h"

namespace tappa::ruleset {
namespace {

// Key layout: action in the high 32 bits, placement in the next 16, phase + 1
// in the low 16 (so that -1, "every phase", packs as 0). The ruleset limits
// (kMaxActions, kMaxPlacements, kMaxPhases) are far inside these widths.
constexpr int kMaxKeyPlacement = 1 << 16;
constexpr int kMaxKeyPhase = (1 << 16) - 1;

std::optional<uint64_t> PackKey(int action, int placement, int phase) {
  if (action < 0 || placement < 0 || placement >= kMaxKeyPlacement ||
      phase < -1 || phase >= kMaxKeyPhase) {
    return std::nullopt;
  }
  return (static_cast<uint64_t>(action) << 32) |
         (static_cast<uint64_t>(placement) << 16) |
         static_cast<uint64_t>(phase + 1);
}

}  // namespace

int PosteriorPhase(const Action& action, int phase) {
  return action.adaptive.has_value() && action.adaptive->per_phase ? phase : -1;
}

absl::Status PosteriorTable::Builder::Add(int action, int placement, int phase,
                                          int64_t successes, int64_t trials) {
  std::optional<uint64_t> key = PackKey(action, placement, phase);
  if (!key.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("posterior key out of range: action ", action,
                     ", placement ", placement, ", phase ", phase));
  }
  if (successes < 0 || trials < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("negative posterior counts: successes ", successes,
                     ", trials ", trials));
  }
  auto it = counts_.find(*key);
  PosteriorCounts sum = it == counts_.end() ? PosteriorCounts{} : it->second;
  if (__builtin_add_overflow(sum.successes, successes, &sum.successes) ||
      __builtin_add_overflow(sum.trials, trials, &sum.trials)) {
    return absl::InvalidArgumentError(
        absl::StrCat("posterior counts overflow: action ", action,
                     ", placement ", placement, ", phase ", phase));
  }
  counts_.insert_or_assign(*key, sum);
  return absl::OkStatus();
}

PosteriorTable PosteriorTable::Builder::Build() && {
  PosteriorTable table(std::move(counts_));
  counts_.clear();  // a moved-from map is valid but unspecified
  return table;
}

PosteriorCounts PosteriorTable::Find(int action, int placement,
                                     int phase) const {
  std::optional<uint64_t> key = PackKey(action, placement, phase);
  if (!key.has_value()) return {};
  auto it = counts_.find(*key);
  return it == counts_.end() ? PosteriorCounts{} : it->second;
}

double SampleBeta(double alpha, double beta, absl::BitGenRef gen) {
  // `!(x > 0)` also rejects NaN.
  if (!(alpha > 0) || !(beta > 0) || std::isinf(alpha) || std::isinf(beta)) {
    return 0;
  }
  return absl::beta_distribution<double>(alpha, beta)(gen);
}

double ThompsonSampler::Propensity(int action, int placement, int phase) const {
  if (action < 0 || action >= static_cast<int>(ruleset_->actions.size())) {
    return 0;
  }
  const Action& a = ruleset_->actions[action];
  if (!a.adaptive.has_value()) return a.propensity;
  PosteriorCounts counts =
      table_->Find(action, placement, PosteriorPhase(a, phase));
  // Successes beyond trials (a click reported before its serve was counted)
  // are kept as successes but must not make failures negative.
  const double failures = static_cast<double>(
      std::max<int64_t>(0, counts.trials - counts.successes));
  return SampleBeta(a.adaptive->prior_successes + counts.successes,
                    a.adaptive->prior_failures + failures, gen_);
}

}  // namespace tappa::ruleset
