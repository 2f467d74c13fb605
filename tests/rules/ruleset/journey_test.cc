// ApplyEvent: counters, built-in effects and transitions, with time injected.
#include "rules/ruleset/journey.h"

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/ruleset/loader.h"

namespace tappa::ruleset {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kRules[] = R"yaml(
phases: [awareness, consideration, conversion, retention]
channels: [web, email, social]
counters:
  - {id: product_view_7d, on: 'event.type == "product_view"', window: 7d, bucket: 24h}
  - {id: purchases, on: 'event.type == "purchase"'}
transitions:
  - to: consideration
    from: [retention]
    when: 'now - contact.last_seen > duration("2160h")'
  - to: consideration
    from: [awareness]
    when: 'event.type == "product_view" && contact.counts.product_view_7d >= 3'
  - to: conversion
    when: 'event.type == "purchase"'
  - to: retention
    from: [conversion]
    when: 'event.type == "newsletter_subscribe"'
placements:
  - {id: web.home, channel: web}
actions:
  - {id: hello, kind: message, placements: [web.home]}
)yaml";

class JourneyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto rs = LoadRulesetFromString(kRules, "journey.yaml");
    ASSERT_TRUE(rs.ok()) << rs.status();
    rs_ = *rs;
  }

  EventOutcome Apply(absl::string_view type, absl::Time now,
                     bool is_new = false, absl::string_view channel = "web") {
    Event e;
    e.id = "e";
    e.type = std::string(type);
    e.channel = std::string(channel);
    EventOutcome outcome;
    absl::Status s = ApplyEvent(*rs_, e, now, is_new, &contact_, &outcome);
    EXPECT_TRUE(s.ok()) << s;
    return outcome;
  }

  int Phase(absl::string_view id) { return rs_->FindPhase(id); }

  std::shared_ptr<const Ruleset> rs_;
  ContactSnapshot contact_;
  absl::Time t0_ = absl::FromUnixSeconds(1'800'000'000);
};

TEST_F(JourneyTest, NewContactStartsInTheFirstPhase) {
  EventOutcome o = Apply("post_view", t0_, /*is_new=*/true, "social");
  EXPECT_EQ(o.previous_phase, Phase("awareness"));
  EXPECT_EQ(o.phase, Phase("awareness"));
  EXPECT_FALSE(o.phase_changed);
  EXPECT_EQ(contact_.first_seen, t0_);
  EXPECT_EQ(contact_.last_seen, t0_);
}

// "The third product view in 7 days moves to consideration": transitions see
// the counters with this event counted.
TEST_F(JourneyTest, CountingRuleSeesThisEventCounted) {
  Apply("product_view", t0_, true);
  EXPECT_EQ(contact_.phase, Phase("awareness"));
  Apply("product_view", t0_ + absl::Hours(1));
  EXPECT_EQ(contact_.phase, Phase("awareness"));
  EventOutcome third = Apply("product_view", t0_ + absl::Hours(2));
  EXPECT_TRUE(third.phase_changed);
  EXPECT_EQ(contact_.phase, Phase("consideration"));
  EXPECT_EQ(contact_.counts[rs_->FindCounter("product_view_7d")], 3);
  EXPECT_THAT(third.counters_incremented,
              ElementsAre(rs_->FindCounter("product_view_7d")));
}

TEST_F(JourneyTest, WindowedCountersForgetOldEvents) {
  Apply("product_view", t0_, true);
  Apply("product_view", t0_ + absl::Hours(48));
  // Eight days after the first view: only the second is still in the window
  // (plus this one) - no transition. (A window counts whole buckets: the
  // current one and the 6 before it, so between 6 and 7 days.)
  EventOutcome o = Apply("product_view", t0_ + absl::Hours(24 * 8));
  EXPECT_FALSE(o.phase_changed);
  EXPECT_EQ(contact_.counts[rs_->FindCounter("product_view_7d")], 2);
}

// "A retained customer silent for 90 days is back in consideration":
// transitions see last_seen from before this event.
TEST_F(JourneyTest, LapseRuleSeesTheSilenceThisEventEnds) {
  Apply("purchase", t0_, true);
  Apply("newsletter_subscribe", t0_ + absl::Hours(1), false, "email");
  ASSERT_EQ(contact_.phase, Phase("retention"));
  // 89 days of silence: still retained.
  Apply("email_open", t0_ + absl::Hours(1 + 24 * 89), false, "email");
  EXPECT_EQ(contact_.phase, Phase("retention"));
  // Then 91 days of silence.
  absl::Time back = t0_ + absl::Hours(1 + 24 * 89 + 24 * 91);
  EventOutcome o = Apply("page_view", back);
  EXPECT_TRUE(o.phase_changed);
  EXPECT_EQ(contact_.phase, Phase("consideration"));
  EXPECT_EQ(contact_.phase_since, back);
  EXPECT_EQ(contact_.last_seen, back);
}

TEST_F(JourneyTest, AllTimeCountersAndLastSeenPerChannel) {
  Apply("purchase", t0_, true, "web");
  Apply("purchase", t0_ + absl::Hours(1), false, "email");
  EXPECT_EQ(contact_.counts[rs_->FindCounter("purchases")], 2);
  ASSERT_EQ(contact_.last_seen_by_channel.size(), 2u);
  EXPECT_EQ(contact_.last_seen_by_channel[0].first, "web");
  EXPECT_EQ(contact_.last_seen_by_channel[1].second, t0_ + absl::Hours(1));
}

TEST_F(JourneyTest, IdentifyConsentAndCxEvents) {
  Event identify;
  identify.type = "identify";
  identify.channel = "web";
  identify.properties = {{"country", cel::Value::String("IT")},
                         {"tier", cel::Value::String("gold")}};
  EventOutcome o;
  ASSERT_TRUE(ApplyEvent(*rs_, identify, t0_, true, &contact_, &o).ok());
  ASSERT_EQ(contact_.attrs.size(), 2u);
  identify.properties = {{"tier", cel::Value::Null()}};
  ASSERT_TRUE(ApplyEvent(*rs_, identify, t0_, false, &contact_, &o).ok());
  ASSERT_EQ(contact_.attrs.size(), 1u);
  EXPECT_EQ(contact_.attrs[0].first, "country");

  Event consent;
  consent.type = "consent";
  consent.channel = "web";
  consent.properties = {{"email", cel::Value::Bool(true)}};
  ASSERT_TRUE(ApplyEvent(*rs_, consent, t0_, false, &contact_, &o).ok());
  ASSERT_EQ(contact_.consents.size(), 1u);
  EXPECT_TRUE(contact_.consents[0].second);
  consent.properties = {{"fax", cel::Value::Bool(true)}};
  ContactSnapshot before = contact_;
  absl::Status bad = ApplyEvent(*rs_, consent, t0_, false, &contact_, &o);
  EXPECT_EQ(bad.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(bad.message(), HasSubstr("properties.fax"));
  EXPECT_EQ(contact_.consents.size(), before.consents.size());  // unchanged

  Event nps;
  nps.type = "nps";
  nps.channel = "email";
  nps.properties = {{"score", cel::Value::Int(4)}};
  ASSERT_TRUE(ApplyEvent(*rs_, nps, t0_, false, &contact_, &o).ok());
  ASSERT_TRUE(contact_.nps.has_value());
  EXPECT_EQ(contact_.nps->score, 4);
  nps.properties = {{"score", cel::Value::Int(11)}};
  EXPECT_EQ(ApplyEvent(*rs_, nps, t0_, false, &contact_, &o).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(RollingCountTest, BucketsSlideAndBound) {
  RollingCount r;
  int64_t window = 7;
  for (int64_t day = 100; day < 120; ++day) RollingAdd(&r, day, window, 1);
  EXPECT_LE(r.buckets.size(), 7u);
  EXPECT_EQ(RollingTotal(r, 119, window), 7);
  EXPECT_EQ(RollingTotal(r, 122, window), 4);
  EXPECT_EQ(RollingTotal(r, 200, window), 0);
  EXPECT_EQ(WindowBuckets(absl::Hours(24 * 7), absl::Hours(24)), 7);
  EXPECT_EQ(WindowBuckets(absl::Hours(25), absl::Hours(24)), 2);
}

}  // namespace
}  // namespace tappa::ruleset
