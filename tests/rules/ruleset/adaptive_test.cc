// Adaptive propensities: Beta sampling, the posterior table, per-phase arm
// keys, and a simulated campaign in which Thompson sampling must find the
// offer with the best click-through rate.
#include "rules/ruleset/adaptive.h"

#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/bit_gen_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/decision.h"
#include "rules/ruleset/loader.h"

namespace tappa::ruleset {
namespace {

std::shared_ptr<const Ruleset> MustLoad(const char* text) {
  auto result = LoadRulesetFromString(text, "adaptive.yaml");
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : nullptr;
}

// ---- SampleBeta ------------------------------------------------------------

struct BetaCase {
  double alpha;
  double beta;
};

TEST(SampleBeta, MeanAndVarianceMatchTheory) {
  constexpr int kSamples = 200'000;
  std::mt19937_64 urbg(20260101);
  for (BetaCase c : std::vector<BetaCase>{
           {1, 1}, {2, 5}, {0.5, 0.5}, {0.2, 3}, {30, 970}, {400, 600}}) {
    SCOPED_TRACE(absl::StrCat("Beta(", c.alpha, ", ", c.beta, ")"));
    const double n = c.alpha + c.beta;
    const double mean = c.alpha / n;
    const double variance = c.alpha * c.beta / (n * n * (n + 1));
    double sum = 0;
    double sum_sq = 0;
    for (int i = 0; i < kSamples; ++i) {
      double x = SampleBeta(c.alpha, c.beta, absl::BitGenRef(urbg));
      ASSERT_GE(x, 0.0);
      ASSERT_LE(x, 1.0);
      sum += x;
      sum_sq += x * x;
    }
    const double sample_mean = sum / kSamples;
    const double sample_variance =
        (sum_sq - kSamples * sample_mean * sample_mean) / (kSamples - 1);
    // Five standard errors of the mean; 5% of the variance (several standard
    // errors of the sample variance even for the skewed cases).
    EXPECT_NEAR(sample_mean, mean, 5 * std::sqrt(variance / kSamples));
    EXPECT_NEAR(sample_variance, variance, 0.05 * variance);
  }
}

TEST(SampleBeta, InvalidParametersGiveZero) {
  std::mt19937_64 urbg(1);
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  for (BetaCase c : std::vector<BetaCase>{
           {0, 1}, {1, 0}, {-1, 1}, {kNaN, 1}, {1, kNaN}, {kInf, 1}}) {
    EXPECT_EQ(SampleBeta(c.alpha, c.beta, urbg), 0.0)
        << "Beta(" << c.alpha << ", " << c.beta << ")";
  }
}

// ---- PosteriorTable
// ----------------------------------------------------------

TEST(PosteriorTable, EmptyTableHasNoCounts) {
  PosteriorTable table;
  EXPECT_EQ(table.size(), 0u);
  PosteriorCounts c = table.Find(0, 0, -1);
  EXPECT_EQ(c.successes, 0);
  EXPECT_EQ(c.trials, 0);
}

TEST(PosteriorTable, AddAccumulatesPerKey) {
  PosteriorTable::Builder builder;
  ASSERT_TRUE(builder.Add(3, 7, -1, 2, 10).ok());
  ASSERT_TRUE(builder.Add(3, 7, -1, 1, 5).ok());  // another shard
  ASSERT_TRUE(builder.Add(3, 7, 0, 4, 4).ok());
  ASSERT_TRUE(builder.Add(9'999, 999, 63, 1, 2).ok());
  PosteriorTable table = std::move(builder).Build();
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.Find(3, 7, -1).successes, 3);
  EXPECT_EQ(table.Find(3, 7, -1).trials, 15);
  EXPECT_EQ(table.Find(3, 7, 0).successes, 4);  // phase 0 is not phase -1
  EXPECT_EQ(table.Find(9'999, 999, 63).trials, 2);
  EXPECT_EQ(table.Find(3, 8, -1).trials, 0);
  EXPECT_EQ(table.Find(7, 3, -1).trials, 0);
  EXPECT_EQ(table.Find(-1, 7, -1).trials, 0);
}

TEST(PosteriorTable, AddRejectsBadKeysAndCounts) {
  PosteriorTable::Builder builder;
  EXPECT_FALSE(builder.Add(-1, 0, 0, 0, 1).ok());
  EXPECT_FALSE(builder.Add(0, -1, 0, 0, 1).ok());
  EXPECT_FALSE(builder.Add(0, 1 << 16, 0, 0, 1).ok());
  EXPECT_FALSE(builder.Add(0, 0, -2, 0, 1).ok());
  EXPECT_FALSE(builder.Add(0, 0, 65'535, 0, 1).ok());
  EXPECT_FALSE(builder.Add(0, 0, 0, -1, 1).ok());
  EXPECT_FALSE(builder.Add(0, 0, 0, 1, -1).ok());
  ASSERT_TRUE(
      builder.Add(0, 0, 0, 0, std::numeric_limits<int64_t>::max()).ok());
  absl::Status overflow = builder.Add(0, 0, 0, 1, 1);
  EXPECT_EQ(overflow.code(), absl::StatusCode::kInvalidArgument) << overflow;
  PosteriorTable table = std::move(builder).Build();
  EXPECT_EQ(table.size(), 1u);  // failed adds changed nothing
  EXPECT_EQ(table.Find(0, 0, 0).successes, 0);
  EXPECT_EQ(table.Find(0, 0, 0).trials, std::numeric_limits<int64_t>::max());
}

// ---- ThompsonSampler: arm keys
// -----------------------------------------------

constexpr char kTwoPhases[] = R"yaml(
phases: [awareness, consideration]
channels: [web]
placements:
  - {id: web.hero, channel: web}
  - {id: web.side, channel: web}
actions:
  - id: per-phase
    kind: offer
    placements: [web.hero, web.side]
    adaptive: {prior_successes: 2, prior_failures: 8, per_phase: true}
  - {id: shared, kind: offer, placements: [web.hero], adaptive: true}
  - {id: fixed, kind: offer, placements: [web.hero], propensity: 0.25}
)yaml";

// The mean of `n` samples of the sampler for one arm.
double MeanPropensity(const ThompsonSampler& sampler, int action, int placement,
                      int phase, int n = 200) {
  double sum = 0;
  for (int i = 0; i < n; ++i)
    sum += sampler.Propensity(action, placement, phase);
  return sum / n;
}

TEST(ThompsonSampler, PerPhaseArmsAreSeparate) {
  auto rs = MustLoad(kTwoPhases);
  ASSERT_NE(rs, nullptr);
  const int per_phase = rs->FindAction("per-phase");
  const int hero = rs->FindPlacement("web.hero");
  const int side = rs->FindPlacement("web.side");
  PosteriorTable::Builder builder;
  ASSERT_TRUE(builder.Add(per_phase, hero, 0, 990, 1000).ok());
  ASSERT_TRUE(builder.Add(per_phase, hero, 1, 10, 1000).ok());
  // Ignored: a per-phase action never reads the every-phase arm.
  ASSERT_TRUE(builder.Add(per_phase, hero, -1, 500, 1000).ok());
  PosteriorTable table = std::move(builder).Build();
  std::mt19937_64 urbg(7);
  ThompsonSampler sampler(*rs, table, urbg);

  // Beta(992, 18): mean 0.982; Beta(12, 998): mean 0.012.
  EXPECT_NEAR(MeanPropensity(sampler, per_phase, hero, 0), 0.982, 0.01);
  EXPECT_NEAR(MeanPropensity(sampler, per_phase, hero, 1), 0.012, 0.01);
  // No counts for the other placement: the prior Beta(2, 8), mean 0.2.
  EXPECT_NEAR(MeanPropensity(sampler, per_phase, side, 0, 20'000), 0.2, 0.01);
}

TEST(ThompsonSampler, ActionNotPerPhaseIgnoresPhase) {
  auto rs = MustLoad(kTwoPhases);
  ASSERT_NE(rs, nullptr);
  const int shared = rs->FindAction("shared");
  const int hero = rs->FindPlacement("web.hero");
  EXPECT_EQ(PosteriorPhase(rs->actions[shared], 1), -1);
  EXPECT_EQ(PosteriorPhase(rs->actions[rs->FindAction("per-phase")], 1), 1);
  PosteriorTable::Builder builder;
  ASSERT_TRUE(builder.Add(shared, hero, -1, 900, 1000).ok());
  // Ignored: the action has one arm across phases.
  ASSERT_TRUE(builder.Add(shared, hero, 0, 0, 1000).ok());
  ASSERT_TRUE(builder.Add(shared, hero, 1, 0, 1000).ok());
  PosteriorTable table = std::move(builder).Build();
  std::mt19937_64 urbg(8);
  ThompsonSampler sampler(*rs, table, urbg);

  // Beta(901, 101) in both phases: mean 0.899.
  EXPECT_NEAR(MeanPropensity(sampler, shared, hero, 0), 0.899, 0.01);
  EXPECT_NEAR(MeanPropensity(sampler, shared, hero, 1), 0.899, 0.01);
}

TEST(ThompsonSampler, FixedAndUnknownActions) {
  auto rs = MustLoad(kTwoPhases);
  ASSERT_NE(rs, nullptr);
  PosteriorTable table;
  std::mt19937_64 urbg(9);
  ThompsonSampler sampler(*rs, table, urbg);
  EXPECT_EQ(sampler.Propensity(rs->FindAction("fixed"), 0, 0), 0.25);
  EXPECT_EQ(sampler.Propensity(-1, 0, 0), 0.0);
  EXPECT_EQ(sampler.Propensity(static_cast<int>(rs->actions.size()), 0, 0),
            0.0);
}

// ---- The simulation
// ------------------------------------------------------------
//
// One placement, three offers of equal value and lever, each adaptive with
// the default Beta(1, 1) prior; their true click-through rates are 5%, 2% and
// 8% (the best is not first in id order, so ties cannot favour it). Each
// decision serves one offer through Decider::Decide with a ThompsonSampler,
// counts a trial, and draws a click with the offer's true rate. As in the
// server, the sampler reads a snapshot of the counts that is rebuilt only
// every kRefreshEvery decisions (the server refreshes its table about once a
// second), so decisions between refreshes act on stale evidence.

constexpr char kCampaign[] = R"yaml(
phases: [awareness]
channels: [web]
placements:
  - {id: web.hero, channel: web}
actions:
  - {id: offer-1, kind: offer, placements: [web.hero], value: 10, lever: 1, adaptive: true}
  - {id: offer-2, kind: offer, placements: [web.hero], value: 10, lever: 1, adaptive: true}
  - {id: offer-3, kind: offer, placements: [web.hero], value: 10, lever: 1, adaptive: true}
)yaml";

constexpr int kDecisions = 20'000;
constexpr int kWindow = 2'000;
constexpr int kRefreshEvery = 100;
constexpr double kBestRate = 0.08;

struct CampaignResult {
  double regret = 0;                // sum of kBestRate - rate(chosen)
  std::vector<double> best_shares;  // per kWindow decisions, in [0, 1]
};

CampaignResult RunCampaign(const Ruleset& rs, const Decider& decider,
                           uint64_t seed) {
  const int placement = rs.FindPlacement("web.hero");
  const int best = rs.FindAction("offer-3");
  std::vector<double> rates(rs.actions.size());
  rates[rs.FindAction("offer-1")] = 0.05;
  rates[rs.FindAction("offer-2")] = 0.02;
  rates[best] = kBestRate;

  ContactSnapshot snapshot;
  snapshot.id = "simulated";
  snapshot.phase = 0;
  ContactBinding contact(rs, snapshot);
  // The binding borrows its entries: keep them alive.
  const std::vector<std::pair<std::string, cel::Value>> no_entries;
  ContextBinding context("web", "web.hero", no_entries);
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);

  // Separate streams for the sampler and for the simulated visitors, so the
  // clicks do not depend on how many numbers sampling consumed.
  std::mt19937_64 sampling(seed);
  std::mt19937_64 visitors(seed ^ 0x9E3779B97F4A7C15u);
  std::vector<PosteriorCounts> counts(rs.actions.size());
  PosteriorTable table;
  ThompsonSampler sampler(rs, table, sampling);
  DecisionOptions options;
  options.limit = 1;
  options.propensities = &sampler;

  CampaignResult result;
  int best_in_window = 0;
  for (int t = 0; t < kDecisions; ++t) {
    if (t % kRefreshEvery == 0) {
      PosteriorTable::Builder builder;
      for (int a = 0; a < static_cast<int>(counts.size()); ++a) {
        absl::Status s =
            builder.Add(a, placement, PosteriorPhase(rs.actions[a], 0),
                        counts[a].successes, counts[a].trials);
        EXPECT_TRUE(s.ok()) << s;
      }
      table = std::move(builder).Build();
    }
    DecisionResult decision = decider.Decide(0, placement, contact.value(),
                                             context.value(), now, options);
    if (decision.ranked.size() != 1) {
      ADD_FAILURE() << "decision " << t << " served " << decision.ranked.size()
                    << " actions";
      return result;
    }
    const int chosen = decision.ranked[0].action;
    ++counts[chosen].trials;
    // A uniform double in [0, 1) from the top 53 bits: the same on every
    // standard library, unlike std::uniform_real_distribution.
    const double u = static_cast<double>(visitors() >> 11) * 0x1.0p-53;
    if (u < rates[chosen]) ++counts[chosen].successes;
    result.regret += kBestRate - rates[chosen];
    if (chosen == best) ++best_in_window;
    if ((t + 1) % kWindow == 0) {
      result.best_shares.push_back(static_cast<double>(best_in_window) /
                                   kWindow);
      best_in_window = 0;
    }
  }
  return result;
}

TEST(ThompsonSamplingSimulation, FindsTheBestOffer) {
  auto rs = MustLoad(kCampaign);
  ASSERT_NE(rs, nullptr);
  auto decider = Decider::Create(rs);
  for (uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    CampaignResult r = RunCampaign(*rs, *decider, seed);
    ASSERT_EQ(r.best_shares.size(), static_cast<size_t>(kDecisions / kWindow));
    std::string shares;
    for (double s : r.best_shares) {
      absl::StrAppend(&shares, shares.empty() ? "" : " ",
                      absl::StrFormat("%.1f%%", 100 * s));
    }
    std::cout << absl::StrFormat(
        "seed %d: cumulative regret %.2f clicks over %d "
        "decisions; best-offer share per %d decisions: %s\n",
        seed, r.regret, kDecisions, kWindow, shares);
    EXPECT_GT(r.best_shares.back(), 0.8);
  }
}

}  // namespace
}  // namespace tappa::ruleset
