// The restraint record and follow-up payload codecs: what the scripts write
// decodes to what policies and the firer read; damaged or foreign entries
// are skipped, never fatal.
#include "server/store/restraint_codec.h"

#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/ruleset/loader.h"
#include "server/store/contact_codec.h"
#include "server/store/followup_store.h"

namespace tappa::server {
namespace {

using ruleset::Limit;

constexpr char kRules[] = R"yaml(
phases: [awareness]
channels: [web, email]
placements:
  - {id: web.home, channel: web}
  - {id: email.weekly, channel: email}
actions:
  - {id: hello, kind: message, placements: [web.home]}
  - {id: news, kind: email, placements: [email.weekly]}
)yaml";

RedisReply Hash(const std::vector<std::pair<std::string, std::string>>& f) {
  RedisReply r;
  r.type = RedisReply::Type::kArray;
  for (const auto& [k, v] : f) {
    for (const std::string& s : {k, v}) {
      RedisReply e;
      e.type = RedisReply::Type::kString;
      e.str = s;
      r.elements.push_back(e);
    }
  }
  return r;
}

class RestraintCodecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = ruleset::LoadRulesetFromString(kRules, "r.yaml");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    rs_ = *loaded;
  }
  std::shared_ptr<const ruleset::Ruleset> rs_;
};

TEST_F(RestraintCodecTest, DecodesWhatTheScriptsWrite) {
  absl::Time t1 = absl::FromUnixMillis(1'800'000'000'000);
  absl::Time t2 = t1 + absl::Hours(1);
  std::string touches =
      EncodeTouch(t2, Limit::CountOn::kImpression, "email", "news") + "," +
      EncodeTouch(t1, Limit::CountOn::kServed, "web", "hello");
  ruleset::ContactRestraint r = DecodeRestraint(
      *rs_, Hash({{"t", touches},
                  {"ls|hello", "3"},
                  {"li|news", "2"},
                  {"cs|web", "3"},
                  {"gs", "3"},
                  {"gi", "2"},
                  {"d|hello", Base36(MillisOf(t1))},
                  {"dc|web", Base36(MillisOf(t2))},
                  {"fr|cart-reminder",
                   Base36(MillisOf(t2)) + "," + Base36(MillisOf(t1))},
                  {"o|0123456789abcdef", Base36(MillisOf(t1)) + "|ic"}}));
  ASSERT_EQ(r.touches.size(), 2u);
  EXPECT_EQ(r.touches[0].at, t2);
  EXPECT_EQ(r.touches[0].kind, Limit::CountOn::kImpression);
  EXPECT_EQ(r.touches[0].channel, rs_->FindChannel("email"));
  EXPECT_EQ(r.touches[0].action, rs_->FindAction("news"));
  EXPECT_EQ(r.touches[1].kind, Limit::CountOn::kServed);
  EXPECT_EQ(r.action_lifetime.at(rs_->FindAction("hello")).served, 3);
  EXPECT_EQ(r.action_lifetime.at(rs_->FindAction("news")).impressions, 2);
  EXPECT_EQ(r.channel_lifetime.at(rs_->FindChannel("web")).served, 3);
  EXPECT_EQ(r.total_lifetime.served, 3);
  EXPECT_EQ(r.total_lifetime.impressions, 2);
  EXPECT_EQ(r.action_dismissed.at(rs_->FindAction("hello")), t1);
  EXPECT_EQ(r.channel_dismissed.at(rs_->FindChannel("web")), t2);
  EXPECT_THAT(r.followups_fired.at("cart-reminder"),
              ::testing::ElementsAre(t2, t1));
}

TEST_F(RestraintCodecTest, SkipsDamagedAndForeignEntries) {
  ruleset::ContactRestraint r = DecodeRestraint(
      *rs_, Hash({{"t", "garbage,zz|x|web|hello,,1|s|gone|removed-action"},
                  {"ls|removed-action", "5"},
                  {"ls|hello", "not a number"},
                  {"d|hello", "!!"},
                  {"unknown", "1"}}));
  // The well-formed touch of a removed action and channel still counts for
  // global caps, with index -1.
  ASSERT_EQ(r.touches.size(), 1u);
  EXPECT_EQ(r.touches[0].channel, -1);
  EXPECT_EQ(r.touches[0].action, -1);
  EXPECT_TRUE(r.action_lifetime.empty() ||
              r.action_lifetime.at(rs_->FindAction("hello")).served == 0);
  EXPECT_TRUE(r.action_dismissed.empty());
  // At most kMaxTouches touches are read.
  std::string many;
  for (int i = 0; i < 300; ++i) {
    if (!many.empty()) many += ",";
    many += EncodeTouch(absl::FromUnixSeconds(1'800'000'000 - i),
                        Limit::CountOn::kServed, "web", "hello");
  }
  EXPECT_EQ(DecodeRestraint(*rs_, Hash({{"t", many}})).touches.size(),
            static_cast<size_t>(ruleset::kMaxTouches));
}

TEST(FollowUpPayload, RoundTripsAnyDedupeKey) {
  FollowUpPayload p{"contact with spaces", "cart-reminder",
                    "line one\nline two|with bars", absl::FromUnixMillis(42)};
  FollowUpPayload back;
  ASSERT_TRUE(DecodeFollowUpPayload(EncodeFollowUpPayload(p), &back));
  EXPECT_EQ(back.contact_id, p.contact_id);
  EXPECT_EQ(back.rule_id, p.rule_id);
  EXPECT_EQ(back.dedupe_key, p.dedupe_key);
  EXPECT_EQ(back.scheduled, p.scheduled);
  for (const char* bad :
       {"", "a", "a\nb", "a\nb\nnot-a-number\n", "\nb\n1\n"}) {
    EXPECT_FALSE(DecodeFollowUpPayload(bad, &back)) << bad;
  }
}

TEST(FollowUpIds, AreStableAndDistinct) {
  std::string a = NewFollowUpId("ann", "cart-reminder", "", "ev-1");
  EXPECT_EQ(a, NewFollowUpId("ann", "cart-reminder", "", "ev-1"));
  EXPECT_EQ(a.size(), 16u);
  EXPECT_NE(a, NewFollowUpId("ann", "cart-reminder", "", "ev-2"));
  EXPECT_NE(a, NewFollowUpId("ann", "cart-reminder", "x", "ev-1"));
  // Length prefixes keep ("ab", "c") apart from ("a", "bc").
  EXPECT_NE(NewFollowUpId("ab", "c", "", "e"),
            NewFollowUpId("a", "bc", "", "e"));
  EXPECT_EQ(PendingFollowUpField("cart-reminder", "").substr(0, 16),
            "u:cart-reminder|");
  EXPECT_NE(PendingFollowUpField("r", "a"), PendingFollowUpField("r", "b"));
}

}  // namespace
}  // namespace tappa::server
