// Decider::Decide with explanations: one test per verdict (chosen,
// below_limit, condition_false, condition_error, holdout, outside_arm,
// policy, budget_exhausted, group_already_served, ranking_error), the score
// and its factors, experiment levers and exposures.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "rules/cel/value.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/decision.h"
#include "rules/ruleset/loader.h"
#include "rules/ruleset/policy.h"

namespace tappa::ruleset {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

std::shared_ptr<const Ruleset> MustLoad(const char* text) {
  auto result = LoadRulesetFromString(text, "explain.yaml");
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : nullptr;
}

constexpr char kRules[] = R"yaml(
phases: [awareness, consideration]
channels: [web, email]
counters:
  - {id: views, on: 'event.type == "view"'}
placements:
  - {id: web.rank, channel: web}
  - {id: web.cond, channel: web, max_results: 10}
  - {id: web.holdout, channel: web, fallback: house-ad}
  - {id: web.arm, channel: web, max_results: 10}
  - {id: web.groups, channel: web, max_results: 10, one_per_group: true}
  - {id: web.gx, channel: web, max_results: 10}
  - {id: web.gx-only, channel: web, fallback: house-ad}
  - id: web.formula
    channel: web
    max_results: 10
    ranking: 'action.value * double(100 / context.divisor)'
  - {id: web.budget, channel: web, max_results: 10}
  - {id: web.score, channel: web, max_results: 10}
  - {id: email.main, channel: email, max_results: 10}
  - {id: email.holdout, channel: email, fallback: mail-fallback}
actions:
  # web.rank
  - {id: r-high, kind: content, placements: [web.rank], value: 3}
  - {id: r-mid, kind: content, placements: [web.rank], value: 2}
  - {id: r-low, kind: content, placements: [web.rank], value: 1}
  # web.cond
  - id: c-false
    kind: content
    placements: [web.cond]
    when: 'contact.counts.views >= 3 && context.page == "cart"'
  - id: c-single
    kind: content
    placements: [web.cond]
    when: 'contact.counts.views >= 10'
  - id: c-error
    kind: content
    placements: [web.cond]
    when: 'contact.counts.views >= 3 && contact.attrs.tier == "gold"'
  - id: c-dyn
    kind: content
    placements: [web.cond]
    when: 'contact.attrs.vip'
  - id: c-true
    kind: content
    placements: [web.cond]
    when: 'contact.counts.views >= 3'
  # web.holdout
  - {id: h-a, kind: content, placements: [web.holdout], value: 5}
  - {id: h-b, kind: content, placements: [web.holdout], value: 4}
  - {id: house-ad, kind: content, placements: [web.holdout, web.gx-only]}
  # web.arm
  - {id: arm-x, kind: content, placements: [web.arm], value: 2, lever: 1.5}
  - {id: arm-y, kind: content, placements: [web.arm], value: 10}
  # web.groups
  - {id: g1, kind: content, placements: [web.groups], group: promo, value: 3}
  - {id: g2, kind: content, placements: [web.groups], group: promo, value: 2}
  - {id: solo, kind: content, placements: [web.groups], value: 1}
  # web.gx, web.gx-only
  - {id: ga1, kind: content, placements: [web.gx], group: ga, value: 2}
  - {id: ga2, kind: content, placements: [web.gx], group: ga, value: 1}
  - {id: gb1, kind: content, placements: [web.gx, web.gx-only], group: gb}
  - {id: plain, kind: content, placements: [web.gx], value: 0.5}
  # web.formula
  - {id: f-a, kind: content, placements: [web.formula], value: 1}
  - {id: f-b, kind: content, placements: [web.formula], value: 3}
  # web.budget
  - id: b-limited
    kind: offer
    placements: [web.budget]
    value: 2
    budget: {max: 10, per: 1d}
  - {id: b-free, kind: content, placements: [web.budget]}
  # web.score
  - id: s-fixed
    kind: offer
    placements: [web.score]
    propensity: 0.5
    value: 4
    lever: 1.5
  - id: s-adaptive
    kind: recommendation
    placements: [web.score]
    value: 2
    adaptive: {prior_successes: 2, prior_failures: 6}
  # email.main, email.holdout
  - {id: e-news, kind: email, placements: [email.main], value: 2}
  - id: e-offer
    kind: email
    placements: [email.main]
    caps: [{max: 1, per: 7d}]
  - {id: mail-a, kind: email, placements: [email.holdout]}
  - {id: mail-fallback, kind: email, placements: [email.holdout]}
context_weights:
  - {when: 'context.page == "home"', weight: 3, actions: [s-fixed]}
  - {when: 'context.page == "home"', weight: 1.5, kinds: [offer]}
  - {when: 'context.page == "cart"', weight: 100, actions: [s-fixed]}
  - {when: 'true', weight: 7, phases: [consideration], actions: [s-fixed]}
policies:
  channels:
    email: {consent_required: true}
experiments:
  - id: hero-holdout
    placement: web.holdout
    holdout: 1.0
    variants: [{id: only}]
  - id: arm-test
    placement: web.arm
    holdout: 0
    variants: [{id: only-x, actions: [arm-x], lever: 2}]
  - id: exp-ga
    group: ga
    variants: [{id: v, lever: 3}]
  - id: exp-gb
    group: gb
    holdout: 1.0
    variants: [{id: w}]
  - id: mail-holdout
    placement: email.holdout
    holdout: 1.0
    variants: [{id: only}]
)yaml";

const absl::Time kNow = absl::FromCivil(absl::CivilSecond(2026, 3, 2, 10, 0, 0),
                                        absl::UTCTimeZone());

class DecisionExplain : public ::testing::Test {
 protected:
  void SetUp() override {
    rs_ = MustLoad(kRules);
    ASSERT_NE(rs_, nullptr);
    decider_ = Decider::Create(rs_);
  }

  ContactSnapshot Contact(
      const nlohmann::json& json = nlohmann::json::object()) const {
    absl::StatusOr<ContactSnapshot> c = ContactFromJson(*rs_, json, kNow);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : ContactSnapshot();
  }

  // Decides for `snapshot` on `placement` with the request context `entries`.
  DecisionResult Decide(const ContactSnapshot& snapshot,
                        const std::string& placement, DecisionOptions options,
                        const std::vector<std::pair<std::string, cel::Value>>&
                            entries = {}) const {
    const int p = rs_->FindPlacement(placement);
    EXPECT_GE(p, 0) << placement;
    ContactBinding contact(*rs_, snapshot);
    ContextBinding context(rs_->channels[rs_->placements[p].channel].id,
                           placement, entries);
    return decider_->Decide(snapshot.phase, p, contact.value(), context.value(),
                            kNow, options);
  }

  static DecisionOptions Explain(absl::string_view contact_id = "") {
    DecisionOptions o;
    o.explain = true;
    o.contact_id = contact_id;
    return o;
  }

  int A(const char* id) const {
    int a = rs_->FindAction(id);
    EXPECT_GE(a, 0) << id;
    return a;
  }
  int E(const char* id) const {
    int e = rs_->FindExperiment(id);
    EXPECT_GE(e, 0) << id;
    return e;
  }

  // The candidate for action `id`; fails the test when there is not exactly
  // one.
  const Candidate& Find(const DecisionResult& r, const char* id) const {
    static const Candidate kNone;
    const Candidate* found = nullptr;
    int n = 0;
    for (const Candidate& c : r.candidates) {
      if (c.action == rs_->FindAction(id)) {
        found = &c;
        ++n;
      }
    }
    EXPECT_EQ(n, 1) << "candidates for " << id;
    return found != nullptr ? *found : kNone;
  }

  std::vector<std::string> RankedIds(const DecisionResult& r) const {
    std::vector<std::string> ids;
    for (const RankedAction& a : r.ranked)
      ids.push_back(rs_->actions[a.action].id);
    return ids;
  }

  std::vector<std::string> CandidateIds(const DecisionResult& r) const {
    std::vector<std::string> ids;
    for (const Candidate& c : r.candidates) {
      ids.push_back(rs_->actions[c.action].id);
    }
    return ids;
  }

  std::shared_ptr<const Ruleset> rs_;
  std::shared_ptr<const Decider> decider_;
};

// ---- chosen, below_limit ----------------------------------------------------

TEST_F(DecisionExplain, ChosenAndBelowLimit) {
  DecisionOptions options = Explain();
  options.limit = 1;
  DecisionResult r = Decide(Contact(), "web.rank", options);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("r-high"));
  ASSERT_EQ(r.candidates.size(), 3u);

  const Candidate& high = Find(r, "r-high");
  EXPECT_EQ(high.verdict, Verdict::kChosen);
  EXPECT_EQ(high.detail, "");
  EXPECT_EQ(high.rule, "actions/r-high");
  EXPECT_EQ(high.score, 3.0);
  EXPECT_EQ(high.false_condition, "");
  EXPECT_EQ(high.policy, PolicyBlock::kNone);
  EXPECT_EQ(high.experiment, -1);
  EXPECT_EQ(high.variant, -1);

  for (const char* id : {"r-mid", "r-low"}) {
    const Candidate& c = Find(r, id);
    EXPECT_EQ(c.verdict, Verdict::kBelowLimit) << id;
    EXPECT_EQ(c.detail, "ranked after the limit of 1") << id;
    EXPECT_EQ(c.rule, absl::StrCat("actions/", id)) << id;
  }
  EXPECT_EQ(Find(r, "r-mid").score, 2.0);
  EXPECT_EQ(Find(r, "r-low").score, 1.0);
  EXPECT_THAT(r.exposures, IsEmpty());
}

TEST_F(DecisionExplain, LimitTwoChoosesTwo) {
  DecisionOptions options = Explain();
  options.limit = 2;
  DecisionResult r = Decide(Contact(), "web.rank", options);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("r-high", "r-mid"));
  EXPECT_EQ(Find(r, "r-mid").verdict, Verdict::kChosen);
  EXPECT_EQ(Find(r, "r-low").verdict, Verdict::kBelowLimit);
  EXPECT_EQ(Find(r, "r-low").detail, "ranked after the limit of 2");
}

TEST_F(DecisionExplain, NoExplanationsUnlessAsked) {
  DecisionOptions options;
  options.limit = 1;
  DecisionResult r = Decide(Contact(), "web.rank", options);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("r-high"));
  EXPECT_THAT(r.candidates, IsEmpty());
}

TEST_F(DecisionExplain, CandidatesAreInCandidateOrder) {
  // DecisionResult::candidates (and the API's `candidates`) are documented
  // to be in candidate order, i.e. the order of Decider::Candidates: here
  // (priority desc, id asc), whatever the verdicts and the ranking.
  ContactSnapshot contact = Contact({{"counts", {{"views", 5}}}});
  DecisionResult r = Decide(contact, "web.cond", Explain(),
                            {{"page", cel::Value::String("home")}});
  const int placement = rs_->FindPlacement("web.cond");
  std::vector<std::string> expected;
  for (int a : decider_->Candidates(contact.phase, placement)) {
    expected.push_back(rs_->actions[a].id);
  }
  EXPECT_THAT(CandidateIds(r), ::testing::ElementsAreArray(expected));

  DecisionOptions limited = Explain();
  limited.limit = 1;
  r = Decide(Contact(), "web.rank", limited);
  // Ranked r-high, r-mid, r-low; candidate order is by id.
  EXPECT_THAT(CandidateIds(r),
              ::testing::ElementsAre("r-high", "r-low", "r-mid"));
}

// ---- condition_false --------------------------------------------------------

TEST_F(DecisionExplain, ConditionFalseNamesTheFirstFalseConjunct) {
  ContactSnapshot contact = Contact({{"counts", {{"views", 5}}}});
  DecisionResult r = Decide(contact, "web.cond", Explain(),
                            {{"page", cel::Value::String("home")}});
  const Candidate& c = Find(r, "c-false");
  EXPECT_EQ(c.verdict, Verdict::kConditionFalse);
  EXPECT_EQ(c.detail, "condition false");
  EXPECT_EQ(c.rule, "actions/c-false/when");
  EXPECT_EQ(c.false_condition, "context.page == \"cart\"");
  EXPECT_EQ(c.score, 0.0);

  // c-true holds and is the only one chosen.
  EXPECT_EQ(Find(r, "c-true").verdict, Verdict::kChosen);
  EXPECT_EQ(Find(r, "c-true").rule, "actions/c-true/when");
  EXPECT_EQ(Find(r, "c-true").false_condition, "");
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("c-true"));
}

TEST_F(DecisionExplain, ConditionFalseFirstConjunct) {
  ContactSnapshot contact = Contact({{"counts", {{"views", 1}}}});
  DecisionResult r = Decide(contact, "web.cond", Explain(),
                            {{"page", cel::Value::String("cart")}});
  const Candidate& c = Find(r, "c-false");
  EXPECT_EQ(c.verdict, Verdict::kConditionFalse);
  EXPECT_EQ(c.false_condition, "contact.counts.views >= 3");

  // Both conjuncts false: the first one.
  r = Decide(contact, "web.cond", Explain(),
             {{"page", cel::Value::String("home")}});
  EXPECT_EQ(Find(r, "c-false").false_condition, "contact.counts.views >= 3");
}

TEST_F(DecisionExplain, ConditionFalseWithoutConjunctsIsTheWholeCondition) {
  ContactSnapshot contact = Contact({{"counts", {{"views", 5}}}});
  DecisionResult r = Decide(contact, "web.cond", Explain());
  const Candidate& c = Find(r, "c-single");
  EXPECT_EQ(c.verdict, Verdict::kConditionFalse);
  EXPECT_EQ(c.false_condition, "contact.counts.views >= 10");
  EXPECT_EQ(c.rule, "actions/c-single/when");
}

TEST_F(DecisionExplain, ConditionHoldsWhenAllConjunctsDo) {
  ContactSnapshot contact = Contact({{"counts", {{"views", 5}}}});
  DecisionResult r = Decide(contact, "web.cond", Explain(),
                            {{"page", cel::Value::String("cart")}});
  EXPECT_EQ(Find(r, "c-false").verdict, Verdict::kChosen);
  EXPECT_EQ(Find(r, "c-false").false_condition, "");
}

// ---- condition_error --------------------------------------------------------

TEST_F(DecisionExplain, ConditionError) {
  // No tier attribute: `contact.attrs.tier` is an error, and so is the
  // conjunction (true && error).
  ContactSnapshot contact = Contact({{"counts", {{"views", 5}}}});
  DecisionResult r = Decide(contact, "web.cond", Explain());
  const Candidate& c = Find(r, "c-error");
  EXPECT_EQ(c.verdict, Verdict::kConditionError);
  EXPECT_THAT(c.detail, StartsWith("condition error: "));
  EXPECT_THAT(c.detail, HasSubstr("tier"));
  EXPECT_EQ(c.rule, "actions/c-error/when");
  EXPECT_EQ(c.false_condition, "contact.attrs.tier == \"gold\"");

  // The dyn condition without the attribute: an error too.
  const Candidate& d = Find(r, "c-dyn");
  EXPECT_EQ(d.verdict, Verdict::kConditionError);
  EXPECT_THAT(d.detail, StartsWith("condition error: "));
  EXPECT_EQ(d.false_condition, "contact.attrs.vip");
}

TEST_F(DecisionExplain, ConditionNotABool) {
  ContactSnapshot contact = Contact({{"attrs", {{"vip", "yes"}}}});
  DecisionResult r = Decide(contact, "web.cond", Explain());
  const Candidate& c = Find(r, "c-dyn");
  EXPECT_EQ(c.verdict, Verdict::kConditionError);
  EXPECT_THAT(c.detail, StartsWith("condition is not a bool: "));
  EXPECT_THAT(c.detail, HasSubstr("yes"));
  EXPECT_EQ(c.rule, "actions/c-dyn/when");
  EXPECT_EQ(c.false_condition, "contact.attrs.vip");

  contact = Contact({{"attrs", {{"vip", true}}}});
  r = Decide(contact, "web.cond", Explain());
  EXPECT_EQ(Find(r, "c-dyn").verdict, Verdict::kChosen);
}

TEST_F(DecisionExplain, ConditionErrorAbsorbedByAFalseConjunct) {
  // false && error is false (CEL's commutative &&): condition_false, and the
  // first conjunct that is not true is the false one.
  ContactSnapshot contact = Contact({{"counts", {{"views", 1}}}});
  DecisionResult r = Decide(contact, "web.cond", Explain());
  const Candidate& c = Find(r, "c-error");
  EXPECT_EQ(c.verdict, Verdict::kConditionFalse);
  EXPECT_EQ(c.false_condition, "contact.counts.views >= 3");
}

// ---- holdout ----------------------------------------------------------------

TEST_F(DecisionExplain, PlacementHoldoutServesTheFallback) {
  DecisionResult r =
      Decide(Contact({{"id", "ada"}}), "web.holdout", Explain("ada"));
  const int experiment = E("hero-holdout");
  ASSERT_EQ(r.candidates.size(), 3u);
  for (const Candidate& c : r.candidates) {
    SCOPED_TRACE(rs_->actions[c.action].id);
    EXPECT_EQ(c.verdict, Verdict::kHoldout);
    EXPECT_EQ(c.detail, "holdout of experiment 'hero-holdout'");
    EXPECT_EQ(c.rule, "experiments/hero-holdout");
    EXPECT_EQ(c.experiment, experiment);
    EXPECT_EQ(c.variant, -1);
  }
  ASSERT_EQ(r.ranked.size(), 1u);
  EXPECT_EQ(r.ranked[0].action, A("house-ad"));
  EXPECT_TRUE(r.ranked[0].holdout);
  EXPECT_TRUE(r.ranked[0].fallback);
  EXPECT_EQ(r.ranked[0].experiment, experiment);
  EXPECT_EQ(r.ranked[0].variant, -1);

  ASSERT_EQ(r.exposures.size(), 1u);
  EXPECT_EQ(r.exposures[0].experiment, experiment);
  EXPECT_EQ(r.exposures[0].variant, -1);
  EXPECT_TRUE(r.exposures[0].holdout);
}

TEST_F(DecisionExplain, PlacementHoldoutWithoutExplain) {
  DecisionOptions options;
  options.contact_id = "grace";
  DecisionResult r = Decide(Contact({{"id", "grace"}}), "web.holdout", options);
  EXPECT_THAT(r.candidates, IsEmpty());
  ASSERT_EQ(r.ranked.size(), 1u);
  EXPECT_EQ(r.ranked[0].action, A("house-ad"));
  EXPECT_TRUE(r.ranked[0].fallback);
  ASSERT_EQ(r.exposures.size(), 1u);
  EXPECT_TRUE(r.exposures[0].holdout);
}

TEST_F(DecisionExplain, NoExperimentWithoutAContactId) {
  DecisionResult r = Decide(Contact(), "web.holdout", Explain(""));
  EXPECT_THAT(r.exposures, IsEmpty());
  ASSERT_EQ(r.ranked.size(), 1u);
  EXPECT_EQ(r.ranked[0].action, A("h-a"));
  EXPECT_FALSE(r.ranked[0].holdout);
  EXPECT_FALSE(r.ranked[0].fallback);
  EXPECT_EQ(r.ranked[0].experiment, -1);
  EXPECT_EQ(Find(r, "h-a").verdict, Verdict::kChosen);
  EXPECT_EQ(Find(r, "h-a").experiment, -1);
  EXPECT_EQ(Find(r, "h-b").verdict, Verdict::kBelowLimit);
}

TEST_F(DecisionExplain, HoldoutFallbackRespectsContactPolicies) {
  // The control treatment is still a message on the channel: a holdout
  // contact without email consent gets no email, fallback or not.
  ContactSnapshot no_consent = Contact({{"id", "ada"}});
  ContactRestraint restraint;
  PolicyCheck policies(*rs_, rs_->FindChannel("email"), no_consent, restraint,
                       kNow);
  DecisionOptions options = Explain("ada");
  options.policies = &policies;
  DecisionResult r = Decide(no_consent, "email.holdout", options);
  EXPECT_THAT(RankedIds(r), IsEmpty());
  ASSERT_EQ(r.exposures.size(), 1u);
  EXPECT_TRUE(r.exposures[0].holdout);

  // With consent, the fallback is served.
  ContactSnapshot consent =
      Contact({{"id", "ada"}, {"consents", {{"email", true}}}});
  PolicyCheck allowed(*rs_, rs_->FindChannel("email"), consent, restraint,
                      kNow);
  options.policies = &allowed;
  r = Decide(consent, "email.holdout", options);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("mail-fallback"));
  ASSERT_EQ(r.ranked.size(), 1u);
  EXPECT_TRUE(r.ranked[0].fallback);
}

TEST_F(DecisionExplain, GroupHoldoutGetsNoActionOfTheGroupAndNoFallback) {
  DecisionResult r =
      Decide(Contact({{"id", "ada"}}), "web.gx-only", Explain("ada"));
  const Candidate& c = Find(r, "gb1");
  EXPECT_EQ(c.verdict, Verdict::kHoldout);
  EXPECT_EQ(c.detail, "holdout of experiment 'exp-gb'");
  EXPECT_EQ(c.rule, "experiments/exp-gb");
  EXPECT_EQ(c.experiment, E("exp-gb"));
  // house-ad is not in a group: it competes normally, not as a fallback.
  EXPECT_EQ(Find(r, "house-ad").verdict, Verdict::kChosen);
  ASSERT_EQ(r.ranked.size(), 1u);
  EXPECT_EQ(r.ranked[0].action, A("house-ad"));
  EXPECT_FALSE(r.ranked[0].fallback);
  EXPECT_FALSE(r.ranked[0].holdout);
  EXPECT_EQ(r.ranked[0].experiment, -1);
  ASSERT_EQ(r.exposures.size(), 1u);
  EXPECT_EQ(r.exposures[0].experiment, E("exp-gb"));
  EXPECT_TRUE(r.exposures[0].holdout);
}

// ---- outside_arm, variant levers ------------------------------------------

TEST_F(DecisionExplain, OutsideArm) {
  DecisionResult r =
      Decide(Contact({{"id", "ada"}}), "web.arm", Explain("ada"));
  const int experiment = E("arm-test");
  const Candidate& y = Find(r, "arm-y");
  EXPECT_EQ(y.verdict, Verdict::kOutsideArm);
  EXPECT_EQ(y.detail,
            "variant 'only-x' of experiment 'arm-test' does not serve it");
  EXPECT_EQ(y.rule, "experiments/arm-test/variants/only-x");
  EXPECT_EQ(y.experiment, experiment);
  EXPECT_EQ(y.variant, 0);

  const Candidate& x = Find(r, "arm-x");
  EXPECT_EQ(x.verdict, Verdict::kChosen);
  EXPECT_EQ(x.experiment, experiment);
  EXPECT_EQ(x.variant, 0);
  // The variant's lever multiplies the action's.
  EXPECT_DOUBLE_EQ(x.factors.lever, 1.5 * 2);
  EXPECT_DOUBLE_EQ(x.score, 1 * 1 * 2 * 3.0);

  ASSERT_EQ(r.ranked.size(), 1u);
  EXPECT_EQ(r.ranked[0].action, A("arm-x"));
  EXPECT_EQ(r.ranked[0].experiment, experiment);
  EXPECT_EQ(r.ranked[0].variant, 0);
  EXPECT_FALSE(r.ranked[0].holdout);
  EXPECT_DOUBLE_EQ(r.ranked[0].factors.lever, 3.0);
  EXPECT_DOUBLE_EQ(r.ranked[0].score, 6.0);

  // Two candidates in the experiment, one exposure.
  ASSERT_EQ(r.exposures.size(), 1u);
  EXPECT_EQ(r.exposures[0].experiment, experiment);
  EXPECT_EQ(r.exposures[0].variant, 0);
  EXPECT_FALSE(r.exposures[0].holdout);
}

TEST_F(DecisionExplain, ArmsNeedAContactId) {
  DecisionResult r = Decide(Contact(), "web.arm", Explain(""));
  EXPECT_THAT(r.exposures, IsEmpty());
  EXPECT_EQ(Find(r, "arm-y").verdict, Verdict::kChosen);
  EXPECT_EQ(Find(r, "arm-y").experiment, -1);
  EXPECT_EQ(Find(r, "arm-x").verdict, Verdict::kChosen);
  EXPECT_DOUBLE_EQ(Find(r, "arm-x").factors.lever, 1.5);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("arm-y", "arm-x"));
}

TEST_F(DecisionExplain, GroupExperimentsLeversAndOneExposureEach) {
  DecisionResult r = Decide(Contact({{"id", "ada"}}), "web.gx", Explain("ada"));
  const int ga = E("exp-ga");
  const int gb = E("exp-gb");
  for (const char* id : {"ga1", "ga2"}) {
    const Candidate& c = Find(r, id);
    EXPECT_EQ(c.verdict, Verdict::kChosen) << id;
    EXPECT_EQ(c.experiment, ga) << id;
    EXPECT_EQ(c.variant, 0) << id;
    EXPECT_DOUBLE_EQ(c.factors.lever, 3.0) << id;
  }
  EXPECT_DOUBLE_EQ(Find(r, "ga1").score, 6.0);
  EXPECT_DOUBLE_EQ(Find(r, "ga2").score, 3.0);
  EXPECT_EQ(Find(r, "gb1").verdict, Verdict::kHoldout);
  EXPECT_EQ(Find(r, "plain").experiment, -1);
  EXPECT_DOUBLE_EQ(Find(r, "plain").factors.lever, 1.0);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("ga1", "ga2", "plain"));

  ASSERT_EQ(r.exposures.size(), 2u);
  int seen_ga = 0;
  int seen_gb = 0;
  for (const Exposure& x : r.exposures) {
    if (x.experiment == ga) {
      ++seen_ga;
      EXPECT_EQ(x.variant, 0);
      EXPECT_FALSE(x.holdout);
    } else if (x.experiment == gb) {
      ++seen_gb;
      EXPECT_EQ(x.variant, -1);
      EXPECT_TRUE(x.holdout);
    }
  }
  EXPECT_EQ(seen_ga, 1);
  EXPECT_EQ(seen_gb, 1);
}

TEST_F(DecisionExplain, NoExposureWithoutACandidateInScope) {
  // Every condition false on web.cond, and no experiment there.
  DecisionResult r =
      Decide(Contact({{"id", "ada"}}), "web.cond", Explain("ada"));
  EXPECT_THAT(r.exposures, IsEmpty());
}

// ---- policy -----------------------------------------------------------------

TEST_F(DecisionExplain, PolicyBlocksEveryActionOnTheChannel) {
  ContactSnapshot contact = Contact({{"id", "ada"}});
  ContactRestraint restraint;
  PolicyCheck policies(*rs_, rs_->FindChannel("email"), contact, restraint,
                       kNow);
  DecisionOptions options = Explain();
  options.policies = &policies;
  DecisionResult r = Decide(contact, "email.main", options);
  EXPECT_THAT(r.ranked, IsEmpty());
  ASSERT_EQ(r.candidates.size(), 2u);
  for (const Candidate& c : r.candidates) {
    SCOPED_TRACE(rs_->actions[c.action].id);
    EXPECT_EQ(c.verdict, Verdict::kPolicy);
    EXPECT_EQ(c.policy, PolicyBlock::kConsentMissing);
    EXPECT_EQ(c.detail, "consent for 'email' not given");
    EXPECT_EQ(c.rule, "policies/channels/email/consent_required");
  }
}

TEST_F(DecisionExplain, PolicyBlocksOneAction) {
  ContactSnapshot contact =
      Contact({{"id", "ada"}, {"consents", {{"email", true}}}});
  const int email = rs_->FindChannel("email");
  ContactRestraint restraint;
  restraint.touches.push_back(
      {kNow - absl::Hours(1), Limit::CountOn::kServed, email, A("e-offer")});
  PolicyCheck policies(*rs_, email, contact, restraint, kNow);
  DecisionOptions options = Explain();
  options.policies = &policies;
  DecisionResult r = Decide(contact, "email.main", options);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("e-news"));
  const Candidate& c = Find(r, "e-offer");
  EXPECT_EQ(c.verdict, Verdict::kPolicy);
  EXPECT_EQ(c.policy, PolicyBlock::kActionCap);
  EXPECT_EQ(c.detail, "cap 1 per 7d reached (1 served)");
  EXPECT_EQ(c.rule, "actions/e-offer/caps/0");
  EXPECT_EQ(Find(r, "e-news").verdict, Verdict::kChosen);
  EXPECT_EQ(Find(r, "e-news").policy, PolicyBlock::kNone);
}

TEST_F(DecisionExplain, NoPoliciesWithoutAPolicyCheck) {
  // options.policies null: consent is not checked.
  DecisionResult r = Decide(Contact(), "email.main", Explain());
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("e-news", "e-offer"));
}

// ---- budget_exhausted -------------------------------------------------------

TEST_F(DecisionExplain, BudgetExhausted) {
  DecisionOptions options = Explain();
  const std::vector<int> exhausted = {A("b-limited")};
  options.exhausted_budgets = exhausted;
  DecisionResult r = Decide(Contact(), "web.budget", options);
  const Candidate& c = Find(r, "b-limited");
  EXPECT_EQ(c.verdict, Verdict::kBudgetExhausted);
  EXPECT_EQ(c.detail, "budget 10 per 1d exhausted");
  EXPECT_EQ(c.rule, "actions/b-limited/budget");
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("b-free"));

  // Without it, b-limited (value 2) wins.
  r = Decide(Contact(), "web.budget", Explain());
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("b-limited", "b-free"));
}

TEST_F(DecisionExplain, ExhaustedListIgnoresActionsWithoutBudget) {
  DecisionOptions options = Explain();
  const std::vector<int> exhausted = {A("b-free"), A("r-high")};
  options.exhausted_budgets = exhausted;
  DecisionResult r = Decide(Contact(), "web.budget", options);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("b-limited", "b-free"));
  EXPECT_EQ(Find(r, "b-free").verdict, Verdict::kChosen);
}

// ---- group_already_served ---------------------------------------------------

TEST_F(DecisionExplain, GroupAlreadyServed) {
  DecisionOptions options = Explain();
  options.limit = 3;
  DecisionResult r = Decide(Contact(), "web.groups", options);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("g1", "solo"));
  EXPECT_EQ(Find(r, "g1").verdict, Verdict::kChosen);
  const Candidate& g2 = Find(r, "g2");
  EXPECT_EQ(g2.verdict, Verdict::kGroupAlreadyServed);
  EXPECT_EQ(g2.detail, "group 'promo' already served");
  EXPECT_EQ(g2.rule, "actions/g2");
  EXPECT_EQ(g2.score, 2.0);
  EXPECT_EQ(Find(r, "solo").verdict, Verdict::kChosen);
}

TEST_F(DecisionExplain, BelowLimitBeforeGroup) {
  DecisionOptions options = Explain();
  options.limit = 1;
  DecisionResult r = Decide(Contact(), "web.groups", options);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("g1"));
  EXPECT_EQ(Find(r, "g2").verdict, Verdict::kBelowLimit);
  EXPECT_EQ(Find(r, "solo").verdict, Verdict::kBelowLimit);
}

// ---- ranking_error ----------------------------------------------------------

TEST_F(DecisionExplain, RankingFormula) {
  DecisionResult r = Decide(Contact(), "web.formula", Explain(),
                            {{"divisor", cel::Value::Int(4)}});
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("f-b", "f-a"));
  EXPECT_DOUBLE_EQ(Find(r, "f-b").score, 75.0);
  EXPECT_DOUBLE_EQ(Find(r, "f-a").score, 25.0);
  // The factors are still the default score's.
  EXPECT_DOUBLE_EQ(Find(r, "f-b").factors.value, 3.0);
  EXPECT_DOUBLE_EQ(Find(r, "f-b").factors.propensity, 1.0);
}

TEST_F(DecisionExplain, RankingErrorDivisionByZero) {
  DecisionResult r = Decide(Contact(), "web.formula", Explain(),
                            {{"divisor", cel::Value::Int(0)}});
  EXPECT_THAT(r.ranked, IsEmpty());
  ASSERT_EQ(r.candidates.size(), 2u);
  for (const Candidate& c : r.candidates) {
    SCOPED_TRACE(rs_->actions[c.action].id);
    EXPECT_EQ(c.verdict, Verdict::kRankingError);
    EXPECT_THAT(c.detail, StartsWith("ranking formula gave "));
    EXPECT_THAT(c.detail, HasSubstr("division by zero"));
    EXPECT_EQ(c.rule, "placements/web.formula/ranking");
  }
  EXPECT_DOUBLE_EQ(Find(r, "f-b").factors.value, 3.0);
}

TEST_F(DecisionExplain, RankingErrorMissingKey) {
  DecisionResult r = Decide(Contact(), "web.formula", Explain());
  EXPECT_THAT(r.ranked, IsEmpty());
  const Candidate& c = Find(r, "f-a");
  EXPECT_EQ(c.verdict, Verdict::kRankingError);
  EXPECT_THAT(c.detail, HasSubstr("divisor"));
  EXPECT_EQ(c.rule, "placements/web.formula/ranking");
}

// ---- Scores -----------------------------------------------------------------

TEST_F(DecisionExplain, ScoreIsTheProductOfItsFactors) {
  DecisionOptions options = Explain();
  options.limit = 1;
  DecisionResult r = Decide(Contact(), "web.score", options,
                            {{"page", cel::Value::String("home")}});
  // s-fixed: propensity 0.5, weights 3 (its own) and 1.5 (offers), value 4,
  // lever 1.5; the cart weight does not match, the consideration one is for
  // another phase.
  const Candidate& f = Find(r, "s-fixed");
  EXPECT_EQ(f.verdict, Verdict::kChosen);
  EXPECT_DOUBLE_EQ(f.factors.propensity, 0.5);
  EXPECT_DOUBLE_EQ(f.factors.context_weight, 4.5);
  EXPECT_DOUBLE_EQ(f.factors.value, 4.0);
  EXPECT_DOUBLE_EQ(f.factors.lever, 1.5);
  EXPECT_DOUBLE_EQ(f.score, 0.5 * 4.5 * 4.0 * 1.5);

  // s-adaptive: the prior mean 2 / (2 + 6) without a propensity source; no
  // weight applies to it.
  const Candidate& a = Find(r, "s-adaptive");
  EXPECT_EQ(a.verdict, Verdict::kBelowLimit);
  EXPECT_DOUBLE_EQ(a.factors.propensity, 0.25);
  EXPECT_DOUBLE_EQ(a.factors.context_weight, 1.0);
  EXPECT_DOUBLE_EQ(a.factors.value, 2.0);
  EXPECT_DOUBLE_EQ(a.factors.lever, 1.0);
  EXPECT_DOUBLE_EQ(a.score, 0.5);

  ASSERT_EQ(r.ranked.size(), 1u);
  EXPECT_DOUBLE_EQ(r.ranked[0].score, f.score);
  EXPECT_DOUBLE_EQ(r.ranked[0].factors.context_weight, 4.5);
}

TEST_F(DecisionExplain, ContextWeightsFollowTheRequestAndThePhase) {
  DecisionResult r = Decide(Contact(), "web.score", Explain(),
                            {{"page", cel::Value::String("cart")}});
  EXPECT_DOUBLE_EQ(Find(r, "s-fixed").factors.context_weight, 100.0);

  r = Decide(Contact(), "web.score", Explain());
  EXPECT_DOUBLE_EQ(Find(r, "s-fixed").factors.context_weight, 1.0);
  EXPECT_DOUBLE_EQ(Find(r, "s-fixed").score, 0.5 * 4.0 * 1.5);

  ContactSnapshot considering = Contact({{"phase", "consideration"}});
  r = Decide(considering, "web.score", Explain(),
             {{"page", cel::Value::String("home")}});
  EXPECT_DOUBLE_EQ(Find(r, "s-fixed").factors.context_weight, 3 * 1.5 * 7);
}

class FixedPropensity : public PropensitySource {
 public:
  explicit FixedPropensity(double p) : p_(p) {}
  double Propensity(int, int, int) const override { return p_; }

 private:
  double p_;
};

TEST_F(DecisionExplain, AdaptivePropensityFromTheSource) {
  FixedPropensity source(0.9);
  DecisionOptions options = Explain();
  options.propensities = &source;
  DecisionResult r = Decide(Contact(), "web.score", options);
  const Candidate& a = Find(r, "s-adaptive");
  EXPECT_DOUBLE_EQ(a.factors.propensity, 0.9);
  EXPECT_DOUBLE_EQ(a.score, 0.9 * 2.0);
  // Fixed propensities are not asked.
  EXPECT_DOUBLE_EQ(Find(r, "s-fixed").factors.propensity, 0.5);
  EXPECT_DOUBLE_EQ(Find(r, "s-fixed").score, 0.5 * 4.0 * 1.5);
  EXPECT_THAT(RankedIds(r), ::testing::ElementsAre("s-fixed", "s-adaptive"));
}

TEST(VerdictName, Names) {
  EXPECT_EQ(VerdictName(Verdict::kChosen), "chosen");
  EXPECT_EQ(VerdictName(Verdict::kBelowLimit), "below_limit");
  EXPECT_EQ(VerdictName(Verdict::kConditionFalse), "condition_false");
  EXPECT_EQ(VerdictName(Verdict::kConditionError), "condition_error");
  EXPECT_EQ(VerdictName(Verdict::kHoldout), "holdout");
  EXPECT_EQ(VerdictName(Verdict::kOutsideArm), "outside_arm");
  EXPECT_EQ(VerdictName(Verdict::kPolicy), "policy");
  EXPECT_EQ(VerdictName(Verdict::kBudgetExhausted), "budget_exhausted");
  EXPECT_EQ(VerdictName(Verdict::kGroupAlreadyServed), "group_already_served");
  EXPECT_EQ(VerdictName(Verdict::kRankingError), "ranking_error");
}

}  // namespace
}  // namespace tappa::ruleset
