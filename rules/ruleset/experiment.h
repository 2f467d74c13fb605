// Deterministic assignment of contacts to experiment variants.
//
// A contact's arm is a pure function of the experiment id and the contact id:
// every server agrees on it, it survives restarts and releases, and nothing
// needs to be stored. The contact is hashed into one of kExperimentBuckets
// buckets; the experiment's holdout and variant weights carve the bucket
// range into consecutive slices (see AssignExperiment).
//
// Changing the hash, the bucket count or the slicing moves contacts between
// arms of running experiments, which corrupts their results: treat all three
// as a stable format (tests pin golden values).
//
// Thread safety: the functions are pure and thread-safe.
#ifndef TAPPA_RULES_RULESET_EXPERIMENT_H_
#define TAPPA_RULES_RULESET_EXPERIMENT_H_

#include "absl/strings/string_view.h"
#include "rules/ruleset/ruleset.h"

namespace tappa::ruleset {

inline constexpr int kExperimentBuckets = 10'000;

// The contact's bucket in [0, kExperimentBuckets): the first 8 bytes of
// SHA-256(experiment_id + ":" + contact_id), read as a big-endian unsigned
// 64-bit integer, modulo kExperimentBuckets. The ids are hashed as the bytes
// given (UTF-8 in practice), with no normalization.
//
// A cryptographic hash rather than absl::Hash or std::hash because those are
// allowed to change between builds and processes; hashing the experiment id
// in makes assignments of different experiments independent of each other.
int ExperimentBucket(absl::string_view experiment_id,
                     absl::string_view contact_id);

struct ExperimentAssignment {
  // Index into Experiment::variants; -1 when the contact is in the holdout.
  int variant = -1;
  bool holdout = false;
};

// The contact's arm of `experiment`, from its bucket b = ExperimentBucket(
// experiment.id, contact_id):
//
//   * H = round(holdout × kExperimentBuckets) (holdout clamped to [0, 1],
//     halves rounded away from zero). Buckets [0, H) are the holdout.
//   * The other R = kExperimentBuckets − H buckets go to the variants in
//     order. With W the sum of the weights and C_i the sum of the weights of
//     variants 0..i, variant i gets the buckets
//       [H + round(R × C_(i−1) / W), H + round(R × C_i / W)),
//     C_(−1) being 0. The last boundary is therefore exactly
//     kExperimentBuckets, each variant's share differs from R × w_i / W by
//     less than one bucket, and a variant of weight 0 gets no bucket (nor
//     does one whose share rounds to none).
//
// Nothing depends on `enabled`: callers skip disabled experiments. Weights
// may be as large as the loader allows (any finite double): they are scaled
// by the largest before summing, which keeps W finite and does not change the
// shares. A malformed experiment the loader would reject (no variants, a
// negative or non-finite weight, all weights 0) puts every contact in the
// holdout, the control treatment being the safe answer.
ExperimentAssignment AssignExperiment(const Experiment& experiment,
                                      absl::string_view contact_id);

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_EXPERIMENT_H_
