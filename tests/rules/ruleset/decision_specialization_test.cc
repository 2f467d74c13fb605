// The decision index decides, once per (phase, placement), the top-level
// conjuncts of a condition that read nothing but contact.phase,
// context.channel and context.placement (decision.h). These tests check that
// a decision made with the specialized conditions always equals one made
// with the conditions as written (explanations use those), and that
// bindings other than the ones an entry was specialized for are evaluated
// as written.
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/cel/value.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/decision.h"
#include "rules/ruleset/loader.h"

namespace tappa::ruleset {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

constexpr char kRules[] = R"yaml(
phases: [awareness, consideration]
channels: [web, email]
counters:
  - {id: views, on: 'event.type == "view"'}
placements:
  - {id: web.a, channel: web, max_results: 10}
  - {id: email.a, channel: email, max_results: 10}
actions:
  # Decided by the phase: false in awareness (kept whole), true in
  # consideration (dropped).
  - id: by-phase
    kind: content
    placements: [web.a]
    when: 'contact.phase == "consideration" && contact.counts.views >= 1'
  # Decided by the channel, on both placements.
  - id: by-channel
    kind: content
    placements: [web.a, email.a]
    when: 'context.channel == "web" && contact.counts.views >= 1'
  # Not a conjunction: evaluated whole.
  - id: disjunction
    kind: content
    placements: [web.a]
    when: 'context.placement == "email.a" || contact.counts.views > 5'
  # has() reads contact.attrs: kept; the phase conjunct is decided.
  - id: has-attr
    kind: content
    placements: [web.a]
    when: 'has(contact.attrs.tier) && contact.phase in ["awareness", "consideration"]'
  # `now` is not known in advance: kept.
  - id: by-time
    kind: content
    placements: [web.a]
    when: 'now > timestamp("2000-01-01T00:00:00Z") && context.placement == "web.a"'
  # A conjunct reading the phase and something else: kept.
  - id: mixed
    kind: content
    placements: [web.a]
    when: 'contact.counts.views >= 2 && (contact.phase == "awareness" || contact.counts.views > 100)'
)yaml";

class DecisionSpecialization : public ::testing::Test {
 protected:
  void Use(std::shared_ptr<const Ruleset> rs) {
    rs_ = std::move(rs);
    decider_ = Decider::Create(rs_);
  }

  ContactSnapshot Contact(
      int phase, int64_t views,
      std::vector<std::pair<std::string, cel::Value>> attrs = {}) const {
    ContactSnapshot c;
    c.id = "ada";
    c.phase = phase;
    c.counts.assign(rs_->counters.size(), views);
    c.rolling.assign(rs_->counters.size(), {});
    c.attrs = std::move(attrs);
    return c;
  }

  // The ranked action ids, decided with `channel` bound as the request's
  // channel (the placement's own unless given).
  std::vector<std::string> Ranked(const ContactSnapshot& snapshot,
                                  int placement, bool explain,
                                  const std::string& channel = "") const {
    ContactBinding contact(*rs_, snapshot);
    const Placement& where = rs_->placements[placement];
    ContextBinding context(
        channel.empty() ? rs_->channels[where.channel].id : channel, where.id,
        {});
    DecisionOptions options;
    options.limit = 1000;
    options.explain = explain;
    DecisionResult r =
        decider_->Decide(snapshot.phase, placement, contact.value(),
                         context.value(), kNow, options);
    std::vector<std::string> ids;
    for (const RankedAction& a : r.ranked) {
      ids.push_back(rs_->actions[a.action].id);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  std::shared_ptr<const Ruleset> rs_;
  std::shared_ptr<const Decider> decider_;
};

TEST_F(DecisionSpecialization, EachKindOfConjunct) {
  auto rs = LoadRulesetFromString(kRules, "specialization.yaml");
  ASSERT_TRUE(rs.ok()) << rs.status();
  Use(*rs);
  const int awareness = rs_->FindPhase("awareness");
  const int consideration = rs_->FindPhase("consideration");
  const int web = rs_->FindPlacement("web.a");
  const int email = rs_->FindPlacement("email.a");
  const auto gold = std::vector<std::pair<std::string, cel::Value>>{
      {"tier", cel::Value::String("gold")}};

  EXPECT_THAT(Ranked(Contact(awareness, 0), web, false),
              ElementsAre("by-time"));
  EXPECT_THAT(Ranked(Contact(awareness, 3, gold), web, false),
              ElementsAre("by-channel", "by-time", "has-attr", "mixed"));
  EXPECT_THAT(Ranked(Contact(consideration, 3), web, false),
              ElementsAre("by-channel", "by-phase", "by-time"));
  EXPECT_THAT(Ranked(Contact(consideration, 6, gold), web, false),
              ElementsAre("by-channel", "by-phase", "by-time", "disjunction",
                          "has-attr"));
  EXPECT_THAT(Ranked(Contact(awareness, 3), email, false), IsEmpty());
  // Every case above decides as the conditions are written.
  for (int phase : {awareness, consideration}) {
    for (int placement : {web, email}) {
      for (int64_t views : {0, 1, 2, 3, 6, 200}) {
        for (bool with_tier : {false, true}) {
          ContactSnapshot c =
              Contact(phase, views, with_tier ? gold : decltype(gold){});
          EXPECT_EQ(Ranked(c, placement, false), Ranked(c, placement, true))
              << "phase " << phase << " placement " << placement << " views "
              << views;
        }
      }
    }
  }
}

// A caller binding another channel than the placement's: the conditions are
// evaluated as written, so `context.channel == "web"` is false on web.a.
TEST_F(DecisionSpecialization, OtherBindingsAreEvaluatedAsWritten) {
  auto rs = LoadRulesetFromString(kRules, "specialization.yaml");
  ASSERT_TRUE(rs.ok()) << rs.status();
  Use(*rs);
  const int web = rs_->FindPlacement("web.a");
  ContactSnapshot c = Contact(rs_->FindPhase("consideration"), 3);
  EXPECT_THAT(Ranked(c, web, false, "email"),
              ElementsAre("by-phase", "by-time"));
  EXPECT_THAT(Ranked(c, web, false, "web"),
              ElementsAre("by-channel", "by-phase", "by-time"));
}

// The 1,000-action example the load tests use: every phase and placement,
// contacts drawn at random, specialized decisions equal decisions as written.
TEST_F(DecisionSpecialization, GeneratedRulesetDecidesAsWritten) {
  auto rs = LoadRulesetFile(std::string(TAPPA_SOURCE_DIR) +
                            "/rules/examples/generated_1000.yaml");
  ASSERT_TRUE(rs.ok()) << rs.status();
  Use(*rs);
  std::mt19937 random(7);
  const char* countries[] = {"FR", "IT", "NL", "ES", "US", "DE"};
  const char* tiers[] = {"gold", "silver", "platinum", "basic"};
  int decisions_with_actions = 0;
  for (int phase = 0; phase < static_cast<int>(rs_->phases.size()); ++phase) {
    for (int p = 0; p < static_cast<int>(rs_->placements.size()); ++p) {
      for (int i = 0; i < 8; ++i) {
        ContactSnapshot c = Contact(phase, 0);
        for (int64_t& count : c.counts) count = random() % 6;
        c.attrs = {{"country", cel::Value::String(countries[random() % 6])},
                   {"tier", cel::Value::String(tiers[random() % 4])}};
        std::vector<std::string> specialized = Ranked(c, p, false);
        EXPECT_EQ(specialized, Ranked(c, p, true))
            << rs_->phases[phase].id << " " << rs_->placements[p].id;
        if (specialized.size() > 1) ++decisions_with_actions;
      }
    }
  }
  // Not vacuous: many decisions chose actions beyond the fallback.
  EXPECT_GT(decisions_with_actions, 100);
}

}  // namespace
}  // namespace tappa::ruleset
