// ApplyContactOverrides: scalars replace, maps merge entry by entry, and an
// invalid override is an error that leaves the contact unchanged.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "rules/cel/value.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/loader.h"

namespace tappa::ruleset {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr char kRules[] = R"yaml(
phases: [awareness, consideration, conversion]
channels: [web, email, sms]
counters:
  - {id: views, on: 'event.type == "view"'}
  - {id: carts, on: 'event.type == "cart_add"'}
  - {id: purchases, on: 'event.type == "purchase"'}
placements:
  - {id: web.hero, channel: web}
)yaml";

const absl::Time kNow = absl::FromCivil(absl::CivilSecond(2026, 3, 2, 10, 0, 0),
                                        absl::UTCTimeZone());

class ContactOverrides : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = LoadRulesetFromString(kRules, "overrides.yaml");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    rs_ = *loaded;
    absl::StatusOr<ContactSnapshot> c = ContactFromJson(*rs_, Base(), kNow);
    ASSERT_TRUE(c.ok()) << c.status();
    contact_ = *std::move(c);
  }

  static json Base() {
    return json::parse(R"json({
      "id": "ada",
      "phase": "consideration",
      "phase_since": "2026-02-20T10:00:00Z",
      "first_seen": "2026-01-01T09:00:00Z",
      "last_seen": "2026-03-01T08:00:00Z",
      "last_seen_by_channel": {"web": "2026-03-01T08:00:00Z",
                               "email": "2026-02-25T08:00:00Z"},
      "counts": {"views": 7, "carts": 2, "purchases": 1},
      "attrs": {"country": "IT", "tier": "gold"},
      "consents": {"email": true, "sms": false},
      "cx": {"nps": {"score": 9, "at": "2026-02-10T12:00:00Z"}}
    })json");
  }

  absl::Status Apply(const json& overrides) {
    return ApplyContactOverrides(*rs_, overrides, kNow, &contact_);
  }

  int64_t Count(const char* counter) const {
    return contact_.counts.at(rs_->FindCounter(counter));
  }

  // The attribute's value; a null Value when absent.
  cel::Value Attr(const std::string& name) const {
    for (const auto& [k, v] : contact_.attrs) {
      if (k == name) return v;
    }
    return cel::Value::Null();
  }

  int CountAttr(const std::string& name) const {
    int n = 0;
    for (const auto& [k, v] : contact_.attrs) n += k == name;
    return n;
  }

  // -1 absent, 0 withdrawn, 1 given.
  int Consent(const std::string& channel) const {
    int found = -1;
    int n = 0;
    for (const auto& [k, v] : contact_.consents) {
      if (k == channel) {
        found = v ? 1 : 0;
        ++n;
      }
    }
    EXPECT_LE(n, 1) << "duplicate consent " << channel;
    return found;
  }

  static absl::Time T(const char* rfc3339) {
    absl::Time t;
    std::string err;
    EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << err;
    return t;
  }

  std::shared_ptr<const Ruleset> rs_;
  ContactSnapshot contact_;
};

TEST_F(ContactOverrides, EmptyOverridesChangeNothing) {
  ASSERT_TRUE(Apply(json::object()).ok());
  EXPECT_EQ(contact_.id, "ada");
  EXPECT_EQ(contact_.phase, rs_->FindPhase("consideration"));
  EXPECT_EQ(Count("views"), 7);
  EXPECT_EQ(Count("carts"), 2);
  EXPECT_EQ(Count("purchases"), 1);
  EXPECT_EQ(contact_.attrs.size(), 2u);
  EXPECT_EQ(contact_.consents.size(), 2u);
  EXPECT_EQ(contact_.phase_since, T("2026-02-20T10:00:00Z"));
}

TEST_F(ContactOverrides, PhaseIsReplaced) {
  ASSERT_TRUE(Apply({{"phase", "conversion"}}).ok());
  EXPECT_EQ(contact_.phase, rs_->FindPhase("conversion"));
  // Nothing else moves, the phase's time included.
  EXPECT_EQ(contact_.phase_since, T("2026-02-20T10:00:00Z"));
  EXPECT_EQ(contact_.first_seen, T("2026-01-01T09:00:00Z"));
  EXPECT_EQ(contact_.last_seen, T("2026-03-01T08:00:00Z"));
  EXPECT_EQ(Count("views"), 7);
  EXPECT_EQ(contact_.attrs.size(), 2u);
}

TEST_F(ContactOverrides, PhaseBackToTheInitialOne) {
  // The initial phase is also ContactFromJson's default: an explicit override
  // to it must still apply.
  ASSERT_TRUE(Apply({{"phase", "awareness"}}).ok());
  EXPECT_EQ(contact_.phase, rs_->FindPhase("awareness"));
}

TEST_F(ContactOverrides, TimesAreReplaced) {
  ASSERT_TRUE(Apply({{"last_seen", "2026-03-02T09:00:00Z"},
                     {"phase_since", "2026-03-02T08:00:00Z"}})
                  .ok());
  EXPECT_EQ(contact_.last_seen, T("2026-03-02T09:00:00Z"));
  EXPECT_EQ(contact_.phase_since, T("2026-03-02T08:00:00Z"));
  EXPECT_EQ(contact_.first_seen, T("2026-01-01T09:00:00Z"));
}

TEST_F(ContactOverrides, CountsMergePerCounter) {
  ASSERT_TRUE(Apply({{"counts", {{"carts", 5}}}}).ok());
  EXPECT_EQ(Count("carts"), 5);
  EXPECT_EQ(Count("views"), 7);
  EXPECT_EQ(Count("purchases"), 1);
  EXPECT_EQ(contact_.counts.size(), 3u);

  ASSERT_TRUE(Apply({{"counts", {{"views", 0}, {"purchases", 4}}}}).ok());
  EXPECT_EQ(Count("views"), 0);
  EXPECT_EQ(Count("carts"), 5);
  EXPECT_EQ(Count("purchases"), 4);
}

TEST_F(ContactOverrides, CountsOnAShortCountsVector) {
  // A snapshot whose counts vector is shorter than the counters (missing
  // trailing entries count as 0) grows to hold the override.
  contact_.counts = {7};
  ASSERT_TRUE(Apply({{"counts", {{"purchases", 2}}}}).ok());
  ASSERT_EQ(contact_.counts.size(), 3u);
  EXPECT_EQ(Count("views"), 7);
  EXPECT_EQ(Count("carts"), 0);
  EXPECT_EQ(Count("purchases"), 2);
}

TEST_F(ContactOverrides, UnknownCounterIsAnErrorAndChangesNothing) {
  absl::Status s = Apply({{"phase", "conversion"},
                          {"counts", {{"views", 1}, {"typo", 3}}},
                          {"attrs", {{"country", "FR"}}}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("contact.counts.typo"));
  EXPECT_THAT(s.message(), HasSubstr("unknown counter"));
  EXPECT_EQ(contact_.phase, rs_->FindPhase("consideration"));
  EXPECT_EQ(Count("views"), 7);
  EXPECT_EQ(Count("carts"), 2);
  EXPECT_EQ(Count("purchases"), 1);
  ASSERT_TRUE(Attr("country").IsString());
  EXPECT_EQ(Attr("country").string_value(), "IT");
}

TEST_F(ContactOverrides, OtherErrorsChangeNothing) {
  for (const json& bad :
       {json{{"phase", "nirvana"}}, json{{"counts", {{"views", "many"}}}},
        json{{"consents", {{"fax", true}}}},
        json{{"consents", {{"email", "yes"}}}},
        json{{"last_seen", "yesterday"}}, json{{"unknown_field", 1}},
        json::array()}) {
    SCOPED_TRACE(bad.dump());
    absl::Status s = Apply(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(contact_.phase, rs_->FindPhase("consideration"));
    EXPECT_EQ(Count("views"), 7);
    EXPECT_EQ(Consent("email"), 1);
    EXPECT_EQ(contact_.last_seen, T("2026-03-01T08:00:00Z"));
  }
}

TEST_F(ContactOverrides, AttrsMerge) {
  ASSERT_TRUE(
      Apply({{"attrs", {{"tier", "platinum"}, {"timezone", "Europe/Rome"}}}})
          .ok());
  ASSERT_TRUE(Attr("country").IsString());
  EXPECT_EQ(Attr("country").string_value(), "IT");
  ASSERT_TRUE(Attr("tier").IsString());
  EXPECT_EQ(Attr("tier").string_value(), "platinum");
  ASSERT_TRUE(Attr("timezone").IsString());
  EXPECT_EQ(Attr("timezone").string_value(), "Europe/Rome");
  EXPECT_EQ(CountAttr("tier"), 1);
  EXPECT_EQ(contact_.attrs.size(), 3u);

  // Values keep their JSON type.
  ASSERT_TRUE(Apply({{"attrs", {{"vip", true}, {"age", 41}}}}).ok());
  ASSERT_TRUE(Attr("vip").IsBool());
  EXPECT_TRUE(Attr("vip").bool_value());
  ASSERT_TRUE(Attr("age").IsInt());
  EXPECT_EQ(Attr("age").int_value(), 41);
  EXPECT_EQ(contact_.attrs.size(), 5u);
}

TEST_F(ContactOverrides, ConsentsMerge) {
  // Withdraw email, give sms, leave web unknown.
  ASSERT_TRUE(Apply({{"consents", {{"email", false}, {"sms", true}}}}).ok());
  EXPECT_EQ(Consent("email"), 0);
  EXPECT_EQ(Consent("sms"), 1);
  EXPECT_EQ(Consent("web"), -1);

  ASSERT_TRUE(Apply({{"consents", {{"web", true}}}}).ok());
  EXPECT_EQ(Consent("email"), 0);
  EXPECT_EQ(Consent("sms"), 1);
  EXPECT_EQ(Consent("web"), 1);
  EXPECT_EQ(contact_.consents.size(), 3u);
}

TEST_F(ContactOverrides, LastSeenByChannelMerges) {
  ASSERT_TRUE(Apply({{"last_seen_by_channel",
                      {{"sms", "2026-03-02T07:00:00Z"},
                       {"web", "2026-03-02T08:00:00Z"}}}})
                  .ok());
  std::vector<std::pair<std::string, absl::Time>> expected = {
      {"web", T("2026-03-02T08:00:00Z")},
      {"email", T("2026-02-25T08:00:00Z")},
      {"sms", T("2026-03-02T07:00:00Z")}};
  EXPECT_THAT(contact_.last_seen_by_channel,
              ::testing::UnorderedElementsAreArray(expected));
}

TEST_F(ContactOverrides, CxScoresReplaceOnlyThoseGiven) {
  ASSERT_TRUE(
      Apply(
          {{"cx", {{"csat", {{"score", 4}, {"at", "2026-03-01T10:00:00Z"}}}}}})
          .ok());
  ASSERT_TRUE(contact_.nps.has_value());
  EXPECT_EQ(contact_.nps->score, 9);
  ASSERT_TRUE(contact_.csat.has_value());
  EXPECT_EQ(contact_.csat->score, 4);
  EXPECT_EQ(contact_.csat->at, T("2026-03-01T10:00:00Z"));
  EXPECT_FALSE(contact_.ces.has_value());

  ASSERT_TRUE(Apply({{"cx", {{"nps", {{"score", 3}}}}}}).ok());
  EXPECT_EQ(contact_.nps->score, 3);
  EXPECT_EQ(contact_.nps->at, kNow);  // no "at": now
}

TEST_F(ContactOverrides, IdIsIgnored) {
  ASSERT_TRUE(Apply({{"id", "mallory"}, {"counts", {{"views", 8}}}}).ok());
  EXPECT_EQ(contact_.id, "ada");
  EXPECT_EQ(Count("views"), 8);
}

TEST_F(ContactOverrides, OverriddenContactBindsForRules) {
  // The overridden snapshot is what conditions see.
  ASSERT_TRUE(Apply({{"counts", {{"carts", 9}}},
                     {"attrs", {{"tier", "silver"}}},
                     {"consents", {{"sms", true}}}})
                  .ok());
  ContactBinding binding(*rs_, contact_);
  cel::Value contact = binding.value();
  ASSERT_TRUE(contact.IsMap());
  cel::Value counts;
  ASSERT_TRUE(contact.map_value().FindString("counts", &counts));
  cel::Value carts;
  ASSERT_TRUE(counts.map_value().FindString("carts", &carts));
  EXPECT_EQ(carts.int_value(), 9);
  cel::Value views;
  ASSERT_TRUE(counts.map_value().FindString("views", &views));
  EXPECT_EQ(views.int_value(), 7);
  cel::Value attrs;
  ASSERT_TRUE(contact.map_value().FindString("attrs", &attrs));
  cel::Value tier;
  ASSERT_TRUE(attrs.map_value().FindString("tier", &tier));
  EXPECT_EQ(tier.string_value(), "silver");
}

}  // namespace
}  // namespace tappa::ruleset
