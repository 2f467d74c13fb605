// Experiment assignment: bucket values are a stable format (golden values),
// slices follow the documented boundaries exactly, and shares match weights.
#include "rules/ruleset/experiment.h"

#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tappa::ruleset {
namespace {

constexpr int kContacts = 100'000;

std::string ContactId(int i) { return absl::StrCat("contact-", i); }

Experiment MakeExperiment(const std::string& id, double holdout,
                          const std::vector<double>& weights) {
  Experiment e;
  e.id = id;
  e.placement = 0;
  e.holdout = holdout;
  for (size_t i = 0; i < weights.size(); ++i) {
    Experiment::Variant v;
    v.id = absl::StrCat("v", i);
    v.weight = weights[i];
    e.variants.push_back(v);
  }
  return e;
}

// How many of kContacts contacts land in each variant; the holdout is the
// last entry.
std::vector<int> Tally(const Experiment& e) {
  std::vector<int> counts(e.variants.size() + 1, 0);
  for (int i = 0; i < kContacts; ++i) {
    ExperimentAssignment a = AssignExperiment(e, ContactId(i));
    if (a.holdout) {
      EXPECT_EQ(a.variant, -1);
      ++counts.back();
    } else {
      EXPECT_GE(a.variant, 0);
      EXPECT_LT(a.variant, static_cast<int>(e.variants.size()));
      ++counts[a.variant];
    }
  }
  return counts;
}

double Percent(int count) { return 100.0 * count / kContacts; }

// Computed independently, with Python's hashlib:
//   int.from_bytes(sha256(f"{e}:{c}".encode()).digest()[:8], "big") % 10000
// A failure here means contacts of running experiments would change arms.
TEST(ExperimentBucket, GoldenValues) {
  EXPECT_EQ(ExperimentBucket("first-order-discount", "ada"), 9021);
  EXPECT_EQ(ExperimentBucket("first-order-discount", "grace"), 1515);
  EXPECT_EQ(ExperimentBucket("hero-test", "contact-00042"), 1075);
  EXPECT_EQ(ExperimentBucket("hero-test", ""), 3052);
  EXPECT_EQ(ExperimentBucket("", "ada"), 6738);
  EXPECT_EQ(ExperimentBucket("exp", "\xC3\xA9l\xC3\xA8ve"), 3290);  // élève
}

TEST(ExperimentBucket, InRangeAndDeterministic) {
  for (int i = 0; i < 10'000; ++i) {
    int b = ExperimentBucket("exp", ContactId(i));
    ASSERT_GE(b, 0);
    ASSERT_LT(b, kExperimentBuckets);
    ASSERT_EQ(b, ExperimentBucket("exp", ContactId(i)));
  }
}

TEST(ExperimentBucket, ExperimentsAreIndependent) {
  // Two 50/50 experiments: a contact's arm in one says nothing about its arm
  // in the other, so a quarter of contacts is in variant 0 of both.
  Experiment a = MakeExperiment("a", 0, {1, 1});
  Experiment b = MakeExperiment("b", 0, {1, 1});
  int both = 0;
  for (int i = 0; i < kContacts; ++i) {
    if (AssignExperiment(a, ContactId(i)).variant == 0 &&
        AssignExperiment(b, ContactId(i)).variant == 0) {
      ++both;
    }
  }
  EXPECT_NEAR(Percent(both), 25.0, 1.0);
}

TEST(AssignExperiment, FollowsTheDocumentedBoundaries) {
  // holdout 0.1 -> H = 1,000; R = 9,000 split 30/70: variant 0 gets
  // [1000, 1000 + 2700), variant 1 [3700, 10000).
  Experiment e = MakeExperiment("hero-test", 0.1, {30, 70});
  for (int i = 0; i < kContacts; ++i) {
    int b = ExperimentBucket(e.id, ContactId(i));
    ExperimentAssignment a = AssignExperiment(e, ContactId(i));
    int expected = b < 1000 ? -1 : b < 3700 ? 0 : 1;
    ASSERT_EQ(a.variant, expected) << "bucket " << b;
    ASSERT_EQ(a.holdout, expected == -1) << "bucket " << b;
  }
}

TEST(AssignExperiment, ThirdsRoundCumulativeBoundaries) {
  // Boundaries round(10000/3) = 3333, round(20000/3) = 6667, 10000: the
  // middle variant gets 3,334 buckets, the others 3,333.
  Experiment e = MakeExperiment("thirds", 0, {1, 1, 1});
  for (int i = 0; i < kContacts; ++i) {
    int b = ExperimentBucket(e.id, ContactId(i));
    int expected = b < 3333 ? 0 : b < 6667 ? 1 : 2;
    ASSERT_EQ(AssignExperiment(e, ContactId(i)).variant, expected)
        << "bucket " << b;
  }
}

TEST(AssignExperiment, HoldoutAndTwoVariantsMatchWeights) {
  std::vector<int> counts = Tally(MakeExperiment("split", 0.1, {30, 70}));
  EXPECT_NEAR(Percent(counts[2]), 10.0, 1.0);  // holdout
  EXPECT_NEAR(Percent(counts[0]), 27.0, 1.0);  // 30% of the other 90%
  EXPECT_NEAR(Percent(counts[1]), 63.0, 1.0);
}

TEST(AssignExperiment, ThreeWaySplitMatchesWeights) {
  std::vector<int> counts = Tally(MakeExperiment("three", 0.2, {1, 2, 5}));
  EXPECT_NEAR(Percent(counts[3]), 20.0, 1.0);
  EXPECT_NEAR(Percent(counts[0]), 10.0, 1.0);  // 80% x 1/8
  EXPECT_NEAR(Percent(counts[1]), 20.0, 1.0);  // 80% x 2/8
  EXPECT_NEAR(Percent(counts[2]), 50.0, 1.0);  // 80% x 5/8
}

TEST(AssignExperiment, ZeroWeightVariantGetsNothing) {
  for (const auto& weights :
       std::vector<std::vector<double>>{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}}) {
    std::vector<int> counts = Tally(MakeExperiment("zero", 0.05, weights));
    for (size_t v = 0; v < weights.size(); ++v) {
      if (weights[v] == 0) {
        EXPECT_EQ(counts[v], 0) << "variant " << v;
      } else {
        EXPECT_NEAR(Percent(counts[v]), 47.5, 1.0) << "variant " << v;
      }
    }
  }
}

TEST(AssignExperiment, NoHoldout) {
  std::vector<int> counts = Tally(MakeExperiment("none", 0, {1}));
  EXPECT_EQ(counts[1], 0);
  EXPECT_EQ(counts[0], kContacts);
}

TEST(AssignExperiment, EveryoneInHoldout) {
  std::vector<int> counts = Tally(MakeExperiment("all", 1, {1, 1}));
  EXPECT_EQ(counts[2], kContacts);
}

TEST(AssignExperiment, HugeWeightsStillSplit) {
  // Each weight is valid for the loader; their plain sum would overflow.
  constexpr double kMax = std::numeric_limits<double>::max();
  std::vector<int> counts = Tally(MakeExperiment("huge", 0, {kMax, kMax}));
  EXPECT_NEAR(Percent(counts[0]), 50.0, 1.0);
  EXPECT_NEAR(Percent(counts[1]), 50.0, 1.0);
}

TEST(AssignExperiment, MalformedExperimentsAreAllHoldout) {
  for (const auto& weights : std::vector<std::vector<double>>{
           {}, {0, 0}, {1, -1}, {1, std::numeric_limits<double>::infinity()}}) {
    ExperimentAssignment a =
        AssignExperiment(MakeExperiment("bad", 0, weights), "ada");
    EXPECT_TRUE(a.holdout);
    EXPECT_EQ(a.variant, -1);
  }
}

TEST(AssignExperiment, Deterministic) {
  Experiment e = MakeExperiment("det", 0.1, {1, 2, 3});
  for (int i = 0; i < 1'000; ++i) {
    ExperimentAssignment a = AssignExperiment(e, ContactId(i));
    ExperimentAssignment b = AssignExperiment(e, ContactId(i));
    ASSERT_EQ(a.variant, b.variant);
    ASSERT_EQ(a.holdout, b.holdout);
  }
}

}  // namespace
}  // namespace tappa::ruleset
