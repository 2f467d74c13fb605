// MergeContacts: two rich profiles merged field by field
// (counters all-time and windowed, times, attributes, consents, CX scores,
// phases under each rule), a consent withdrawn on either side surviving the
// merge, and the restraint record (touch order and cap, lifetime sums,
// dismissals, follow-up fire times).
#include "rules/ruleset/contact_merge.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/cel/value.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/journey.h"
#include "rules/ruleset/loader.h"
#include "rules/ruleset/policy.h"

namespace tappa::ruleset {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using CountOn = Limit::CountOn;

constexpr char kRules[] = R"yaml(
phases: [awareness, consideration, conversion, retention, advocacy]
channels: [web, email, sms, social]
counters:
  - {id: views, on: 'event.type == "view"'}
  - {id: purchases, on: 'event.type == "purchase"'}
  - {id: views_7d, on: 'event.type == "view"', window: 7d, bucket: 24h}
  - {id: carts_3h, on: 'event.type == "cart_add"', window: 3h, bucket: 1h}
placements:
  - {id: web.hero, channel: web}
  - {id: email.weekly, channel: email}
actions:
  - {id: hero, kind: content, placements: [web.hero]}
  - {id: weekly, kind: email, placements: [email.weekly]}
)yaml";

absl::Time At(int month, int day, int hour = 0, int minute = 0) {
  return absl::FromCivil(absl::CivilSecond(2026, month, day, hour, minute, 0),
                         absl::UTCTimeZone());
}

absl::Time In2025(int month, int day) {
  return absl::FromCivil(absl::CivilSecond(2025, month, day, 0, 0, 0),
                         absl::UTCTimeZone());
}

const absl::Time kNow = At(3, 2, 10);

// A readable rendering of everything in a snapshot, for comparing whole
// results.
std::string Describe(const ContactSnapshot& c) {
  std::string out = absl::StrCat(c.id, " phase=", c.phase, "@",
                                 absl::FormatTime(c.phase_since),
                                 " seen=", absl::FormatTime(c.first_seen), "..",
                                 absl::FormatTime(c.last_seen), " channels=");
  for (const auto& [k, t] : c.last_seen_by_channel) {
    absl::StrAppend(&out, k, "@", absl::FormatTime(t), ",");
  }
  absl::StrAppend(&out, " counts=");
  for (int64_t n : c.counts) absl::StrAppend(&out, n, ",");
  absl::StrAppend(&out, " rolling=");
  for (const RollingCount& r : c.rolling) {
    absl::StrAppend(&out, r.first_bucket, ":");
    for (int64_t n : r.buckets) absl::StrAppend(&out, n, "/");
    absl::StrAppend(&out, ",");
  }
  absl::StrAppend(&out, " attrs=");
  for (const auto& [k, v] : c.attrs) {
    absl::StrAppend(&out, k, "=", v.DebugString(), ",");
  }
  absl::StrAppend(&out, " consents=");
  for (const auto& [k, g] : c.consents)
    absl::StrAppend(&out, k, "=", g ? "given" : "withdrawn", ",");
  for (const auto* score : {&c.nps, &c.csat, &c.ces}) {
    absl::StrAppend(&out, " cx=");
    if (score->has_value()) {
      absl::StrAppend(&out, (*score)->score, "@",
                      absl::FormatTime((*score)->at));
    }
  }
  return out;
}

class ContactMerge : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = LoadRulesetFromString(kRules, "merge.yaml");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    rs_ = *loaded;
    day_ = BucketOf(kNow, absl::Hours(24));
    hour_ = BucketOf(kNow, absl::Hours(1));
  }

  int Phase(const char* id) const { return rs_->FindPhase(id); }
  int Counter(const char* id) const { return rs_->FindCounter(id); }
  int Channel(const char* id) const { return rs_->FindChannel(id); }
  int Action(const char* id) const { return rs_->FindAction(id); }

  // The canonical profile (the email address): in consideration, with
  // windowed views partly older than the window.
  ContactSnapshot Survivor() const {
    ContactSnapshot c;
    c.id = "ada";
    c.phase = Phase("consideration");
    c.phase_since = At(2, 20);
    c.first_seen = At(1, 10);
    c.last_seen = At(3, 1, 8);
    c.last_seen_by_channel = {{"web", At(3, 1, 8)}, {"email", At(2, 25)}};
    c.counts = {10, 1, 5, 2};
    c.rolling.resize(4);
    // Days day-8 and day-7 have left the 7-day window.
    c.rolling[Counter("views_7d")] = {day_ - 8, {5, 1, 2, 0, 3}};
    c.rolling[Counter("carts_3h")] = {hour_ - 1, {2}};
    c.attrs = {{"country", cel::Value::String("IT")},
               {"tier", cel::Value::String("gold")},
               {"email_domain", cel::Value::String("example.com")}};
    c.consents = {{"email", true}, {"sms", false}, {"web", true}};
    c.nps = CxScore{9, At(2, 10)};
    c.csat = CxScore{4, At(2, 1)};
    return c;
  }

  // The anonymous cookie profile: further along (conversion), active more
  // recently, with fewer counters stored (trailing ones count as 0).
  ContactSnapshot Absorbed() const {
    ContactSnapshot c;
    c.id = "cookie:7f3";
    c.phase = Phase("conversion");
    c.phase_since = At(2, 15);
    c.first_seen = In2025(12, 1);
    c.last_seen = At(3, 2, 9);
    c.last_seen_by_channel = {{"web", At(3, 2, 9)}, {"social", At(2, 28)}};
    c.counts = {4};
    c.rolling.resize(4);
    // Day day-4 overlaps the survivor's; day is today.
    c.rolling[Counter("views_7d")] = {day_ - 4, {4, 0, 0, 0, 1}};
    // Hours hour-5..hour-1, and hour+1 from a clock that ran ahead.
    c.rolling[Counter("carts_3h")] = {hour_ - 5, {1, 1, 1, 1, 1, 0, 9}};
    c.attrs = {{"country", cel::Value::String("DE")},
               {"lang", cel::Value::String("de")}};
    c.consents = {{"email", false}, {"sms", true}, {"social", true}};
    c.nps = CxScore{6, At(2, 20)};
    c.csat = CxScore{5, At(2, 1)};
    c.ces = CxScore{3, At(2, 5)};
    return c;
  }

  ContactSnapshot Merge(const ContactSnapshot& survivor,
                        const ContactSnapshot& absorbed,
                        MergePhaseRule rule = MergePhaseRule::kFurthest) const {
    MergeOptions options;
    options.phase = rule;
    return MergeContacts(*rs_, survivor, absorbed, kNow, options);
  }

  static std::optional<std::string> Attr(const ContactSnapshot& c,
                                         const std::string& name) {
    for (const auto& [k, v] : c.attrs) {
      if (k == name) return std::string(v.string_value());
    }
    return std::nullopt;
  }

  std::shared_ptr<const Ruleset> rs_;
  int64_t day_ = 0;
  int64_t hour_ = 0;
};

TEST_F(ContactMerge, KeepsTheSurvivorsId) {
  EXPECT_EQ(Merge(Survivor(), Absorbed()).id, "ada");
}

TEST_F(ContactMerge, SumsAllTimeCountersMissingEntriesCountingZero) {
  ContactSnapshot merged = Merge(Survivor(), Absorbed());
  ASSERT_EQ(merged.counts.size(), rs_->counters.size());
  EXPECT_EQ(merged.counts[Counter("views")], 14);
  EXPECT_EQ(merged.counts[Counter("purchases")], 1);
  EXPECT_TRUE(merged.rolling[Counter("views")].buckets.empty());
}

TEST_F(ContactMerge, SumsWindowedCountersBucketByBucketWithinTheWindow) {
  ContactSnapshot merged = Merge(Survivor(), Absorbed());
  ASSERT_EQ(merged.rolling.size(), rs_->counters.size());

  // Days: survivor day-6 = 2, day-4 = 3; absorbed day-4 = 4, day = 1. The
  // survivor's days -8 and -7 are outside the window and dropped.
  const RollingCount& views = merged.rolling[Counter("views_7d")];
  EXPECT_EQ(views.first_bucket, day_ - 6);
  EXPECT_THAT(views.buckets, ElementsAre(2, 0, 7, 0, 0, 0, 1));
  EXPECT_EQ(merged.counts[Counter("views_7d")], 10);

  // Hours: the window is hour-2..hour. Survivor hour-1 = 2; absorbed
  // hour-2 = 1 and hour-1 = 1; the absorbed hour+1 (ahead of `now`) and
  // hours before hour-2 are dropped.
  const RollingCount& carts = merged.rolling[Counter("carts_3h")];
  EXPECT_EQ(carts.first_bucket, hour_ - 2);
  EXPECT_THAT(carts.buckets, ElementsAre(1, 3));
  EXPECT_EQ(merged.counts[Counter("carts_3h")], 4);
}

TEST_F(ContactMerge, WindowedBucketsStayBoundedByTheWindow) {
  ContactSnapshot survivor = Survivor();
  ContactSnapshot absorbed = Absorbed();
  // Both sides full of buckets far older and newer than the window.
  survivor.rolling[Counter("views_7d")] = {day_ - 40,
                                           std::vector<int64_t>(45, 1)};
  absorbed.rolling[Counter("views_7d")] = {day_ - 30,
                                           std::vector<int64_t>(60, 1)};
  ContactSnapshot merged = Merge(survivor, absorbed);
  const RollingCount& views = merged.rolling[Counter("views_7d")];
  EXPECT_EQ(views.first_bucket, day_ - 6);
  // Survivor covers day-40..day+4, absorbed day-30..day+29: both cover the
  // whole window, 2 per day.
  EXPECT_THAT(views.buckets, ElementsAre(2, 2, 2, 2, 2, 2, 2));
  EXPECT_EQ(merged.counts[Counter("views_7d")], 14);
}

TEST_F(ContactMerge, WindowedCounterWithNothingInTheWindowIsEmpty) {
  ContactSnapshot survivor = Survivor();
  ContactSnapshot absorbed = Absorbed();
  survivor.rolling[Counter("carts_3h")] = {hour_ - 10, {3, 3}};
  absorbed.rolling[Counter("carts_3h")] = {};
  ContactSnapshot merged = Merge(survivor, absorbed);
  EXPECT_TRUE(merged.rolling[Counter("carts_3h")].buckets.empty());
  EXPECT_EQ(merged.counts[Counter("carts_3h")], 0);
}

TEST_F(ContactMerge, SumsSaturateInsteadOfOverflowing) {
  ContactSnapshot survivor = Survivor();
  ContactSnapshot absorbed = Absorbed();
  survivor.counts[Counter("views")] = std::numeric_limits<int64_t>::max() - 1;
  ContactSnapshot merged = Merge(survivor, absorbed);
  EXPECT_EQ(merged.counts[Counter("views")],
            std::numeric_limits<int64_t>::max());
}

TEST_F(ContactMerge, TakesTheEarlierFirstSeenAndTheLaterLastSeen) {
  ContactSnapshot merged = Merge(Survivor(), Absorbed());
  EXPECT_EQ(merged.first_seen, In2025(12, 1));
  EXPECT_EQ(merged.last_seen, At(3, 2, 9));
  // Symmetric: the same with the roles swapped.
  ContactSnapshot swapped = Merge(Absorbed(), Survivor());
  EXPECT_EQ(swapped.first_seen, In2025(12, 1));
  EXPECT_EQ(swapped.last_seen, At(3, 2, 9));
}

TEST_F(ContactMerge, UnitesLastSeenByChannelKeepingTheLaterTime) {
  ContactSnapshot merged = Merge(Survivor(), Absorbed());
  EXPECT_THAT(merged.last_seen_by_channel,
              ElementsAre(Pair("web", At(3, 2, 9)), Pair("email", At(2, 25)),
                          Pair("social", At(2, 28))));
}

TEST_F(ContactMerge, AttributesOfTheMoreRecentlyActiveProfileWin) {
  // The absorbed profile was active later (3/2 9:00 against 3/1 8:00).
  ContactSnapshot merged = Merge(Survivor(), Absorbed());
  EXPECT_EQ(Attr(merged, "country"), "DE");
  EXPECT_EQ(Attr(merged, "lang"), "de");
  EXPECT_EQ(Attr(merged, "tier"), "gold");
  EXPECT_EQ(Attr(merged, "email_domain"), "example.com");
  EXPECT_EQ(merged.attrs.size(), 4u);

  // The survivor active later: its value wins.
  ContactSnapshot absorbed = Absorbed();
  absorbed.last_seen = At(2, 1);
  EXPECT_EQ(Attr(Merge(Survivor(), absorbed), "country"), "IT");
}

TEST_F(ContactMerge, AttributeConflictsGoToTheMoreRecentWrite) {
  // The absorbed profile is active later, but the survivor wrote "country"
  // after the absorbed one did: the survivor's value is the newer fact.
  ContactSnapshot survivor = Survivor();
  ContactSnapshot absorbed = Absorbed();
  survivor.attr_times = {{"country", At(1, 7)}};
  absorbed.attr_times = {{"country", At(1, 6)}, {"lang", At(1, 6)}};
  ContactSnapshot merged = Merge(survivor, absorbed);
  EXPECT_EQ(Attr(merged, "country"), "IT");
  EXPECT_EQ(Attr(merged, "lang"), "de");
  // The kept values keep their write times.
  std::vector<std::pair<std::string, absl::Time>> times = merged.attr_times;
  std::sort(times.begin(), times.end());
  EXPECT_THAT(times,
              ElementsAre(Pair("country", At(1, 7)), Pair("lang", At(1, 6))));
  // Written later on the absorbed side: its value wins.
  absorbed.attr_times = {{"country", At(1, 8)}};
  EXPECT_EQ(Attr(Merge(survivor, absorbed), "country"), "DE");
  // One side's time unknown (older data): the more recent activity decides.
  absorbed.attr_times.clear();
  EXPECT_EQ(Attr(Merge(survivor, absorbed), "country"), "DE");
}

TEST_F(ContactMerge, AttributeConflictOnATieGoesToTheSurvivor) {
  ContactSnapshot absorbed = Absorbed();
  absorbed.last_seen = Survivor().last_seen;
  ContactSnapshot merged = Merge(Survivor(), absorbed);
  EXPECT_EQ(Attr(merged, "country"), "IT");
  EXPECT_EQ(Attr(merged, "lang"), "de");
}

TEST_F(ContactMerge, AttributeValuesOwnTheirData) {
  ContactSnapshot merged;
  {
    std::string city = "Bologna";
    ContactSnapshot absorbed = Absorbed();
    absorbed.attrs.emplace_back("city", cel::Value::BorrowedString(city));
    merged = Merge(Survivor(), absorbed);
    city.assign("XXXXXXX");  // what a borrowed value would now read
  }
  EXPECT_EQ(Attr(merged, "city"), "Bologna");
  for (const auto& [name, value] : merged.attrs) {
    EXPECT_TRUE(value.IsOwned()) << name;
  }
}

TEST_F(ContactMerge, KeepsAtMostTheAttributeLimitPreferringTheWinner) {
  ContactSnapshot survivor = Survivor();
  ContactSnapshot absorbed = Absorbed();  // the more recently active
  absorbed.attrs.clear();
  survivor.attrs.clear();
  for (size_t i = 0; i < kMaxAttributes - 2; ++i) {
    absorbed.attrs.emplace_back(absl::StrCat("a", i), cel::Value::String("x"));
  }
  for (int i = 0; i < 5; ++i) {
    survivor.attrs.emplace_back(absl::StrCat("s", i), cel::Value::String("y"));
  }
  ContactSnapshot merged = Merge(survivor, absorbed);
  ASSERT_EQ(merged.attrs.size(), kMaxAttributes);
  EXPECT_EQ(Attr(merged, "a0"), "x");
  EXPECT_EQ(Attr(merged, absl::StrCat("a", kMaxAttributes - 3)), "x");
  EXPECT_EQ(Attr(merged, "s0"), "y");
  EXPECT_EQ(Attr(merged, "s1"), "y");
  EXPECT_EQ(Attr(merged, "s2"), std::nullopt);
}

TEST_F(ContactMerge, ConsentsTakeTheMostRestrictiveValuePerChannel) {
  ContactSnapshot merged = Merge(Survivor(), Absorbed());
  EXPECT_THAT(merged.consents,
              ElementsAre(Pair("email", false),  // withdrawn by the absorbed
                          Pair("sms", false),    // withdrawn by the survivor
                          Pair("web", true),     // given on one side only
                          Pair("social", true)));
}

// A consent withdrawn on either side survives, whichever profile survives
// and whichever was active more recently.
TEST_F(ContactMerge, ConsentWithdrawnOnEitherSideSurvivesTheMerge) {
  for (bool withdrawn_on_survivor : {true, false}) {
    for (bool survivor_more_recent : {true, false}) {
      ContactSnapshot survivor = Survivor();
      ContactSnapshot absorbed = Absorbed();
      survivor.consents = {{"email", !withdrawn_on_survivor}};
      absorbed.consents = {{"email", withdrawn_on_survivor}};
      survivor.last_seen = survivor_more_recent ? At(3, 2) : At(1, 2);
      absorbed.last_seen = survivor_more_recent ? At(1, 2) : At(3, 2);
      ContactSnapshot merged = Merge(survivor, absorbed);
      EXPECT_THAT(merged.consents, ElementsAre(Pair("email", false)))
          << "withdrawn on survivor: " << withdrawn_on_survivor
          << ", survivor more recent: " << survivor_more_recent;
    }
  }
}

TEST_F(ContactMerge, KeepsTheMoreRecentCxScoreWithItsTime) {
  ContactSnapshot merged = Merge(Survivor(), Absorbed());
  ASSERT_TRUE(merged.nps.has_value());
  EXPECT_EQ(merged.nps->score, 6);  // the absorbed's, given later
  EXPECT_EQ(merged.nps->at, At(2, 20));
  ASSERT_TRUE(merged.csat.has_value());
  EXPECT_EQ(merged.csat->score, 4);  // the same time: the survivor's
  EXPECT_EQ(merged.csat->at, At(2, 1));
  ASSERT_TRUE(merged.ces.has_value());
  EXPECT_EQ(merged.ces->score, 3);  // only the absorbed has one
  EXPECT_EQ(merged.ces->at, At(2, 5));

  ContactSnapshot neither_ces = Merge(Survivor(), Survivor());
  EXPECT_FALSE(neither_ces.ces.has_value());
}

TEST_F(ContactMerge, PhaseFurthestTakesTheLaterPhaseWithItsSince) {
  // Survivor: consideration since 2/20; absorbed: conversion since 2/15.
  ContactSnapshot merged = Merge(Survivor(), Absorbed());
  EXPECT_EQ(merged.phase, Phase("conversion"));
  EXPECT_EQ(merged.phase_since, At(2, 15));
  // The default options are kFurthest.
  EXPECT_EQ(MergeContacts(*rs_, Survivor(), Absorbed(), kNow).phase,
            Phase("conversion"));
  // And whichever side is further.
  ContactSnapshot swapped = Merge(Absorbed(), Survivor());
  EXPECT_EQ(swapped.phase, Phase("conversion"));
  EXPECT_EQ(swapped.phase_since, At(2, 15));
}

TEST_F(ContactMerge, PhaseSurvivorKeepsTheSurvivorsPhase) {
  ContactSnapshot merged =
      Merge(Survivor(), Absorbed(), MergePhaseRule::kSurvivor);
  EXPECT_EQ(merged.phase, Phase("consideration"));
  EXPECT_EQ(merged.phase_since, At(2, 20));
}

TEST_F(ContactMerge, PhaseMostRecentTakesTheLaterPhaseSince) {
  // The survivor entered consideration (2/20) after the absorbed entered
  // conversion (2/15).
  ContactSnapshot merged =
      Merge(Survivor(), Absorbed(), MergePhaseRule::kMostRecent);
  EXPECT_EQ(merged.phase, Phase("consideration"));
  EXPECT_EQ(merged.phase_since, At(2, 20));

  // A lapse: the survivor in retention since 1/1, the absorbed moved back
  // to consideration on 2/1. The most recent move wins, backwards or not.
  ContactSnapshot survivor = Survivor();
  ContactSnapshot absorbed = Absorbed();
  survivor.phase = Phase("retention");
  survivor.phase_since = At(1, 1);
  absorbed.phase = Phase("consideration");
  absorbed.phase_since = At(2, 1);
  ContactSnapshot lapsed =
      Merge(survivor, absorbed, MergePhaseRule::kMostRecent);
  EXPECT_EQ(lapsed.phase, Phase("consideration"));
  EXPECT_EQ(lapsed.phase_since, At(2, 1));
  // kFurthest on the same pair stays in retention.
  ContactSnapshot furthest = Merge(survivor, absorbed);
  EXPECT_EQ(furthest.phase, Phase("retention"));
  EXPECT_EQ(furthest.phase_since, At(1, 1));

  // The same phase_since: the survivor's.
  absorbed.phase_since = survivor.phase_since;
  EXPECT_EQ(Merge(survivor, absorbed, MergePhaseRule::kMostRecent).phase,
            Phase("retention"));
}

TEST_F(ContactMerge, SamePhaseKeepsTheEarlierSinceUnderEveryRule) {
  ContactSnapshot survivor = Survivor();
  ContactSnapshot absorbed = Absorbed();
  absorbed.phase = survivor.phase;
  absorbed.phase_since = At(2, 25);  // later than the survivor's 2/20
  for (MergePhaseRule rule :
       {MergePhaseRule::kFurthest, MergePhaseRule::kSurvivor,
        MergePhaseRule::kMostRecent}) {
    ContactSnapshot merged = Merge(survivor, absorbed, rule);
    EXPECT_EQ(merged.phase, Phase("consideration"));
    EXPECT_EQ(merged.phase_since, At(2, 20));
    ContactSnapshot swapped = Merge(absorbed, survivor, rule);
    EXPECT_EQ(swapped.phase_since, At(2, 20));
  }
}

TEST_F(ContactMerge, UnknownPhaseIsReadAsTheInitialPhase) {
  ContactSnapshot survivor = Survivor();
  ContactSnapshot absorbed = Absorbed();
  survivor.phase = 99;
  absorbed.phase = Phase("awareness");
  ContactSnapshot merged = Merge(survivor, absorbed);
  EXPECT_EQ(merged.phase, rs_->initial_phase);
  EXPECT_EQ(merged.phase_since, At(2, 15));  // the earlier of the two
}

TEST_F(ContactMerge, IsDeterministic) {
  EXPECT_EQ(Describe(Merge(Survivor(), Absorbed())),
            Describe(Merge(Survivor(), Absorbed())));
}

// The documented contract: the caller must not merge a profile twice.
TEST_F(ContactMerge, IsNotIdempotentForSums) {
  ContactSnapshot once = Merge(Survivor(), Absorbed());
  ContactSnapshot twice = Merge(once, Absorbed());
  EXPECT_EQ(once.counts[Counter("views")], 14);
  EXPECT_EQ(twice.counts[Counter("views")], 18);
  // What is not a sum does not change.
  once.counts = twice.counts;
  once.rolling = twice.rolling;
  EXPECT_EQ(Describe(once), Describe(twice));
}

}  // namespace
}  // namespace tappa::ruleset
