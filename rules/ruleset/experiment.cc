#include "rules/ruleset/experiment.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace tappa::ruleset {

int ExperimentBucket(absl::string_view experiment_id,
                     absl::string_view contact_id) {
  const std::string input = absl::StrCat(experiment_id, ":", contact_id);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(),
         digest);
  uint64_t prefix = 0;
  for (int i = 0; i < 8; ++i) prefix = (prefix << 8) | digest[i];
  return static_cast<int>(prefix % kExperimentBuckets);
}

ExperimentAssignment AssignExperiment(const Experiment& experiment,
                                      absl::string_view contact_id) {
  constexpr ExperimentAssignment kHoldout{-1, true};
  const int bucket = ExperimentBucket(experiment.id, contact_id);

  // `!(x >= 0)` also catches NaN.
  const double holdout =
      !(experiment.holdout >= 0) ? 0.0 : std::min(experiment.holdout, 1.0);
  const int holdout_buckets =
      static_cast<int>(std::lround(holdout * kExperimentBuckets));
  if (bucket < holdout_buckets) return kHoldout;

  double max_weight = 0;
  for (const Experiment::Variant& v : experiment.variants) {
    if (!std::isfinite(v.weight) || v.weight < 0) return kHoldout;
    max_weight = std::max(max_weight, v.weight);
  }
  if (max_weight <= 0) return kHoldout;
  double total = 0;
  for (const Experiment::Variant& v : experiment.variants) {
    total += v.weight / max_weight;
  }

  // Boundaries come from the cumulative weight, not from rounding each
  // variant's share on its own, so rounding errors do not accumulate and the
  // last boundary is exactly kExperimentBuckets: the final `cumulative` is
  // computed by the same additions as `total`, so their ratio is exactly 1.
  const int remaining = kExperimentBuckets - holdout_buckets;
  double cumulative = 0;
  for (size_t i = 0; i < experiment.variants.size(); ++i) {
    cumulative += experiment.variants[i].weight / max_weight;
    const int end =
        holdout_buckets +
        static_cast<int>(std::lround(remaining * (cumulative / total)));
    if (bucket < end) return {static_cast<int>(i), false};
  }
  return kHoldout;  // unreachable, see above
}

}  // namespace tappa::ruleset
