// Contact policies: each rule of restraint alone (action caps by kind,
// windows and lifetime counts, channel caps across placements, global caps,
// consent, quiet hours in the contact's time zone, dismissal cooldowns), the
// order in which they are checked, and the detail and rule path of each
// verdict.
#include "rules/ruleset/policy.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "rules/cel/value.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/decision.h"
#include "rules/ruleset/loader.h"

namespace tappa::ruleset {
namespace {

using CountOn = Limit::CountOn;

std::shared_ptr<const Ruleset> MustLoad(const char* text) {
  auto result = LoadRulesetFromString(text, "policy.yaml");
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : nullptr;
}

// Three channels, four placements (two on email), actions with every kind of
// cap and cooldown, and every kind of policy.
constexpr char kShop[] = R"yaml(
phases: [active]
channels: [web, email, sms]
placements:
  - {id: web.hero, channel: web}
  - {id: email.weekly, channel: email}
  - {id: email.promo, channel: email}
  - {id: sms.alert, channel: sms}
actions:
  - id: hero-banner
    kind: content
    placements: [web.hero]
    caps: [{max: 2, per: 7d}]
    dismiss_cooldown: 48h
  - id: hero-once
    kind: content
    placements: [web.hero]
    caps: [{max: 1}]
  - id: hero-seen
    kind: content
    placements: [web.hero]
    caps: [{max: 2, per: 12h, count_on: impression}]
  - id: hero-free
    kind: content
    placements: [web.hero]
  - id: weekly-news
    kind: email
    placements: [email.weekly]
  - id: promo-mail
    kind: email
    placements: [email.promo]
    caps: [{max: 1, per: 30d}]
  - id: sms-alert
    kind: sms
    placements: [sms.alert]
policies:
  caps: [{max: 4, per: 1d}]
  channels:
    email: {caps: [{max: 2, per: 7d}], consent_required: true}
    sms:
      consent_required: true
      quiet_hours: {start: "21:00", end: "09:00"}
    web: {dismiss_cooldown: 24h}
)yaml";

// Lifetime caps on the policies, a second channel cap counting impressions,
// same-day quiet hours, a custom time zone attribute and the default zone.
constexpr char kLifetime[] = R"yaml(
phases: [active]
channels: [web, email]
placements:
  - {id: web.hero, channel: web}
  - {id: email.weekly, channel: email}
actions:
  - {id: banner, kind: content, placements: [web.hero]}
  - {id: news, kind: email, placements: [email.weekly]}
policies:
  timezone_attribute: tz
  caps: [{max: 10}]
  channels:
    email:
      caps: [{max: 3}, {max: 2, per: 7d, count_on: impression}]
      quiet_hours: {start: "13:00", end: "14:30"}
)yaml";

// One channel with every policy, and an action with a cap and a cooldown:
// for the order of the checks.
constexpr char kStrict[] = R"yaml(
phases: [active]
channels: [push]
placements:
  - {id: push.main, channel: push}
actions:
  - id: nudge
    kind: push
    placements: [push.main]
    caps: [{max: 1, per: 7d}]
    dismiss_cooldown: 72h
policies:
  default_timezone: Europe/Rome
  caps: [{max: 3, per: 1d}]
  channels:
    push:
      caps: [{max: 2, per: 2d}]
      consent_required: true
      dismiss_cooldown: 12h
      quiet_hours: {start: "22:00", end: "08:00"}
)yaml";

const Ruleset& Shop() {
  static const std::shared_ptr<const Ruleset> rs = MustLoad(kShop);
  return *rs;
}

const Ruleset& LifetimeRules() {
  static const std::shared_ptr<const Ruleset> rs = MustLoad(kLifetime);
  return *rs;
}

const Ruleset& Strict() {
  static const std::shared_ptr<const Ruleset> rs = MustLoad(kStrict);
  return *rs;
}

absl::Time Utc(int y, int mo, int d, int h, int mi) {
  return absl::FromCivil(absl::CivilMinute(y, mo, d, h, mi),
                         absl::UTCTimeZone());
}

// 20:30 UTC in winter: 21:30 in Rome (UTC+1), 15:30 in New York (UTC-5).
const absl::Time kNow = Utc(2026, 1, 15, 20, 30);

// A contact with every consent given, in New York (outside the sms quiet
// hours at kNow).
ContactSnapshot Contact() {
  ContactSnapshot c;
  c.id = "ada";
  c.consents = {{"email", true}, {"sms", true}};
  c.attrs = {{"timezone", cel::Value::String("America/New_York")}};
  return c;
}

void SetAttr(ContactSnapshot* c, const std::string& name, cel::Value value) {
  for (auto& [k, v] : c->attrs) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  c->attrs.emplace_back(name, std::move(value));
}

// Builds touches from (age, channel, action, kind), newest first.
class Touches {
 public:
  explicit Touches(absl::Time now) : now_(now) {}
  Touches& Add(absl::Duration ago, int channel, int action,
               CountOn kind = CountOn::kServed) {
    touches_.push_back({now_ - ago, kind, channel, action});
    return *this;
  }
  ContactRestraint Restraint() const {
    ContactRestraint r;
    r.touches = touches_;
    std::stable_sort(
        r.touches.begin(), r.touches.end(),
        [](const Touch& a, const Touch& b) { return a.at > b.at; });
    return r;
  }

 private:
  absl::Time now_;
  std::vector<Touch> touches_;
};

class ShopPolicy : public ::testing::Test {
 protected:
  ShopPolicy() : rs_(Shop()) {}

  int Channel(const char* id) const {
    int c = rs_.FindChannel(id);
    EXPECT_GE(c, 0) << id;
    return c;
  }
  int Action(const char* id) const {
    int a = rs_.FindAction(id);
    EXPECT_GE(a, 0) << id;
    return a;
  }
  PolicyVerdict Check(const char* channel, const char* action,
                      const ContactSnapshot& contact,
                      const ContactRestraint& restraint,
                      absl::Time now = kNow) const {
    PolicyCheck check(rs_, Channel(channel), contact, restraint, now);
    return check.CheckAction(Action(action));
  }

  const Ruleset& rs_;
};

// ---- Nothing blocks ---------------------------------------------------------

TEST_F(ShopPolicy, NoTouchesAllowEveryAction) {
  ContactSnapshot contact = Contact();
  ContactRestraint none;
  for (const char* channel : {"web", "email", "sms"}) {
    PolicyCheck check(rs_, Channel(channel), contact, none, kNow);
    EXPECT_EQ(check.channel_verdict().block, PolicyBlock::kNone) << channel;
    EXPECT_EQ(check.channel_verdict().detail, "");
    EXPECT_EQ(check.channel_verdict().rule, "");
  }
  for (const char* action :
       {"hero-banner", "hero-once", "hero-seen", "hero-free"}) {
    PolicyVerdict v = Check("web", action, contact, none);
    EXPECT_EQ(v.block, PolicyBlock::kNone) << action;
    EXPECT_EQ(v.detail, "") << action;
    EXPECT_EQ(v.rule, "") << action;
  }
  EXPECT_EQ(Check("email", "weekly-news", contact, none).block,
            PolicyBlock::kNone);
  EXPECT_EQ(Check("email", "promo-mail", contact, none).block,
            PolicyBlock::kNone);
  EXPECT_EQ(Check("sms", "sms-alert", contact, none).block, PolicyBlock::kNone);
}

// ---- Action caps ----------------------------------------------------------

TEST_F(ShopPolicy, ActionCapBlocksAtMaxServed) {
  const int web = Channel("web");
  const int banner = Action("hero-banner");
  ContactSnapshot contact = Contact();

  ContactRestraint one =
      Touches(kNow).Add(absl::Hours(30), web, banner).Restraint();
  EXPECT_EQ(Check("web", "hero-banner", contact, one).block,
            PolicyBlock::kNone);

  ContactRestraint two = Touches(kNow)
                             .Add(absl::Hours(30), web, banner)
                             .Add(absl::Hours(100), web, banner)
                             .Restraint();
  PolicyVerdict v = Check("web", "hero-banner", contact, two);
  EXPECT_EQ(v.block, PolicyBlock::kActionCap);
  EXPECT_EQ(v.detail, "cap 2 per 7d reached (2 served)");
  EXPECT_EQ(v.rule, "actions/hero-banner/caps/0");

  // Only that action's touches count: the others on the placement are free,
  // and the channel itself does not block.
  PolicyCheck check(rs_, web, contact, two, kNow);
  EXPECT_EQ(check.channel_verdict().block, PolicyBlock::kNone);
  EXPECT_EQ(check.CheckAction(Action("hero-free")).block, PolicyBlock::kNone);
  EXPECT_EQ(check.CheckAction(Action("hero-seen")).block, PolicyBlock::kNone);
}

TEST_F(ShopPolicy, ActionCapBeyondMaxSaysTheCount) {
  const int web = Channel("web");
  const int banner = Action("hero-banner");
  ContactRestraint three = Touches(kNow)
                               .Add(absl::Hours(30), web, banner)
                               .Add(absl::Hours(50), web, banner)
                               .Add(absl::Hours(100), web, banner)
                               .Restraint();
  PolicyVerdict v = Check("web", "hero-banner", Contact(), three);
  EXPECT_EQ(v.block, PolicyBlock::kActionCap);
  EXPECT_EQ(v.detail, "cap 2 per 7d reached (3 served)");
}

TEST_F(ShopPolicy, ServedCapIgnoresImpressions) {
  const int web = Channel("web");
  const int banner = Action("hero-banner");
  ContactRestraint impressions =
      Touches(kNow)
          .Add(absl::Hours(30), web, banner, CountOn::kImpression)
          .Add(absl::Hours(31), web, banner, CountOn::kImpression)
          .Add(absl::Hours(32), web, banner, CountOn::kImpression)
          .Add(absl::Hours(40), web, banner)
          .Restraint();
  EXPECT_EQ(Check("web", "hero-banner", Contact(), impressions).block,
            PolicyBlock::kNone);
}

TEST_F(ShopPolicy, ImpressionCapIgnoresServedTouches) {
  const int web = Channel("web");
  const int seen = Action("hero-seen");
  ContactSnapshot contact = Contact();

  ContactRestraint served = Touches(kNow)
                                .Add(absl::Hours(1), web, seen)
                                .Add(absl::Hours(2), web, seen)
                                .Add(absl::Hours(3), web, seen)
                                .Restraint();
  EXPECT_EQ(Check("web", "hero-seen", contact, served).block,
            PolicyBlock::kNone);

  ContactRestraint shown =
      Touches(kNow)
          .Add(absl::Hours(1), web, seen)
          .Add(absl::Hours(2), web, seen, CountOn::kImpression)
          .Add(absl::Hours(3), web, seen, CountOn::kImpression)
          .Restraint();
  PolicyVerdict v = Check("web", "hero-seen", contact, shown);
  EXPECT_EQ(v.block, PolicyBlock::kActionCap);
  EXPECT_EQ(v.detail, "cap 2 per 12h (impressions) reached (2 impressions)");
  EXPECT_EQ(v.rule, "actions/hero-seen/caps/0");
}

TEST_F(ShopPolicy, TouchesOlderThanTheWindowDoNotCount) {
  const int web = Channel("web");
  const int banner = Action("hero-banner");
  ContactSnapshot contact = Contact();

  ContactRestraint old = Touches(kNow)
                             .Add(absl::Hours(24 * 7 + 1), web, banner)
                             .Add(absl::Hours(24 * 8), web, banner)
                             .Add(absl::Hours(24 * 30), web, banner)
                             .Restraint();
  EXPECT_EQ(Check("web", "hero-banner", contact, old).block,
            PolicyBlock::kNone);

  // One inside, one just outside.
  ContactRestraint straddling =
      Touches(kNow)
          .Add(absl::Hours(24 * 6), web, banner)
          .Add(absl::Hours(24 * 7) + absl::Seconds(1), web, banner)
          .Restraint();
  EXPECT_EQ(Check("web", "hero-banner", contact, straddling).block,
            PolicyBlock::kNone);

  // Both inside, the older one a second from the window's edge.
  ContactRestraint inside =
      Touches(kNow)
          .Add(absl::Hours(24 * 6), web, banner)
          .Add(absl::Hours(24 * 7) - absl::Seconds(1), web, banner)
          .Restraint();
  EXPECT_EQ(Check("web", "hero-banner", contact, inside).block,
            PolicyBlock::kActionCap);

  // The window slides: the same touches a day later no longer reach the cap.
  EXPECT_EQ(Check("web", "hero-banner", contact, inside, kNow + absl::Hours(24))
                .block,
            PolicyBlock::kNone);
}

TEST_F(ShopPolicy, WindowIsOpenAtItsOldEdge) {
  // The window is (now - per, now]: a touch exactly `per` ago has left it.
  const int web = Channel("web");
  const int banner = Action("hero-banner");
  ContactRestraint r = Touches(kNow)
                           .Add(absl::Hours(1), web, banner)
                           .Add(absl::Hours(24 * 7), web, banner)
                           .Restraint();
  PolicyCheck check(rs_, web, Contact(), r, kNow);
  EXPECT_EQ(check.CountTouches(rs_.actions[banner].caps[0], banner, -1), 1);
}

TEST_F(ShopPolicy, ActionCapCountsTheActionOnEveryChannel) {
  // An action's caps count the action's touches wherever they were served.
  const int banner = Action("hero-banner");
  ContactRestraint r = Touches(kNow)
                           .Add(absl::Hours(30), Channel("web"), banner)
                           .Add(absl::Hours(31), Channel("email"), banner)
                           .Restraint();
  EXPECT_EQ(Check("web", "hero-banner", Contact(), r).block,
            PolicyBlock::kActionCap);
}

TEST_F(ShopPolicy, LifetimeActionCapUsesLifetimeCounts) {
  const int web = Channel("web");
  const int once = Action("hero-once");
  ContactSnapshot contact = Contact();

  ContactRestraint counted;
  counted.action_lifetime[once].served = 1;
  PolicyVerdict v = Check("web", "hero-once", contact, counted);
  EXPECT_EQ(v.block, PolicyBlock::kActionCap);
  EXPECT_EQ(v.detail, "cap 1 per lifetime reached (1 served)");
  EXPECT_EQ(v.rule, "actions/hero-once/caps/0");

  // Recent touches are not what a lifetime cap counts...
  ContactRestraint touched_only =
      Touches(kNow).Add(absl::Hours(1), web, once).Restraint();
  EXPECT_EQ(Check("web", "hero-once", contact, touched_only).block,
            PolicyBlock::kNone);

  // ...nor impressions for a served cap, nor other actions' counts, nor the
  // channel's or the total.
  ContactRestraint others;
  others.action_lifetime[once].impressions = 5;
  others.action_lifetime[Action("hero-banner")].served = 9;
  others.channel_lifetime[web].served = 9;
  others.total_lifetime.served = 9;
  EXPECT_EQ(Check("web", "hero-once", contact, others).block,
            PolicyBlock::kNone);
}

// ---- Channel caps -----------------------------------------------------------

TEST_F(ShopPolicy, ChannelCapCountsEveryActionOnTheChannel) {
  // Two emails through email.weekly reach the email cap: it applies on every
  // email placement, so email.promo's action is blocked as well.
  const int email = Channel("email");
  const int news = Action("weekly-news");
  ContactSnapshot contact = Contact();
  ContactRestraint r = Touches(kNow)
                           .Add(absl::Hours(24), email, news)
                           .Add(absl::Hours(72), email, news)
                           .Restraint();
  PolicyCheck check(rs_, email, contact, r, kNow);
  EXPECT_EQ(check.channel_verdict().block, PolicyBlock::kChannelCap);
  for (const char* action : {"promo-mail", "weekly-news"}) {
    PolicyVerdict v = check.CheckAction(Action(action));
    EXPECT_EQ(v.block, PolicyBlock::kChannelCap) << action;
    EXPECT_EQ(v.detail, "cap 2 per 7d reached (2 served) on 'email'");
    EXPECT_EQ(v.rule, "policies/channels/email/caps/0");
  }
}

TEST_F(ShopPolicy, ChannelCapCountsOnlyThatChannel) {
  const int email = Channel("email");
  ContactRestraint r =
      Touches(kNow)
          .Add(absl::Hours(1), email, Action("weekly-news"))
          .Add(absl::Hours(2), Channel("web"), Action("hero-free"))
          .Add(absl::Hours(3), Channel("sms"), Action("sms-alert"))
          .Restraint();
  EXPECT_EQ(Check("email", "promo-mail", Contact(), r).block,
            PolicyBlock::kNone);
}

TEST_F(ShopPolicy, ChannelCapIgnoresOldTouchesAndImpressions) {
  const int email = Channel("email");
  const int news = Action("weekly-news");
  ContactRestraint r =
      Touches(kNow)
          .Add(absl::Hours(1), email, news)
          .Add(absl::Hours(2), email, news, CountOn::kImpression)
          .Add(absl::Hours(3), email, news, CountOn::kImpression)
          .Add(absl::Hours(24 * 8), email, news)
          .Restraint();
  EXPECT_EQ(Check("email", "promo-mail", Contact(), r).block,
            PolicyBlock::kNone);
}

TEST_F(ShopPolicy, TouchesOfRemovedActionsStillCountOnTheChannel) {
  // A touch whose action no longer exists (-1) counts for the channel and
  // global caps, not for any action's.
  const int email = Channel("email");
  ContactRestraint r = Touches(kNow)
                           .Add(absl::Hours(1), email, -1)
                           .Add(absl::Hours(2), email, -1)
                           .Restraint();
  EXPECT_EQ(Check("email", "promo-mail", Contact(), r).block,
            PolicyBlock::kChannelCap);
  PolicyCheck check(rs_, email, Contact(), r, kNow);
  const int promo = Action("promo-mail");
  EXPECT_EQ(check.CountTouches(rs_.actions[promo].caps[0], promo, -1), 0);
}

TEST_F(ShopPolicy, ChannelCapThroughDecide) {
  // The requirement end to end: emails served on email.weekly keep
  // email.promo's action out of a decision on email.promo.
  auto rs = MustLoad(kShop);
  ASSERT_NE(rs, nullptr);
  auto decider = Decider::Create(rs);
  const int email = rs->FindChannel("email");
  const int news = rs->FindAction("weekly-news");
  const int promo = rs->FindAction("promo-mail");
  const int placement = rs->FindPlacement("email.promo");
  ContactSnapshot snapshot = Contact();
  ContactBinding contact(*rs, snapshot);
  const std::vector<std::pair<std::string, cel::Value>> no_entries;
  ContextBinding context("email", "email.promo", no_entries);

  ContactRestraint one =
      Touches(kNow).Add(absl::Hours(5), email, news).Restraint();
  PolicyCheck allowed(*rs, email, snapshot, one, kNow);
  DecisionOptions options;
  options.explain = true;
  options.policies = &allowed;
  DecisionResult r = decider->Decide(0, placement, contact.value(),
                                     context.value(), kNow, options);
  ASSERT_EQ(r.ranked.size(), 1u);
  EXPECT_EQ(r.ranked[0].action, promo);

  ContactRestraint two = Touches(kNow)
                             .Add(absl::Hours(5), email, news)
                             .Add(absl::Hours(50), email, news)
                             .Restraint();
  PolicyCheck blocked(*rs, email, snapshot, two, kNow);
  options.policies = &blocked;
  r = decider->Decide(0, placement, contact.value(), context.value(), kNow,
                      options);
  EXPECT_TRUE(r.ranked.empty());
  ASSERT_EQ(r.candidates.size(), 1u);
  EXPECT_EQ(r.candidates[0].action, promo);
  EXPECT_EQ(r.candidates[0].verdict, Verdict::kPolicy);
  EXPECT_EQ(r.candidates[0].policy, PolicyBlock::kChannelCap);
  EXPECT_EQ(r.candidates[0].detail,
            "cap 2 per 7d reached (2 served) on 'email'");
  EXPECT_EQ(r.candidates[0].rule, "policies/channels/email/caps/0");
}

// ---- Global caps ------------------------------------------------------------

TEST_F(ShopPolicy, GlobalCapCountsEveryChannel) {
  ContactRestraint r =
      Touches(kNow)
          .Add(absl::Hours(1), Channel("web"), Action("hero-free"))
          .Add(absl::Hours(2), Channel("sms"), Action("sms-alert"))
          .Add(absl::Hours(3), Channel("email"), Action("weekly-news"))
          .Add(absl::Hours(4), Channel("web"), Action("hero-banner"))
          .Restraint();
  ContactSnapshot contact = Contact();
  for (const char* channel : {"web", "email", "sms"}) {
    PolicyCheck check(rs_, Channel(channel), contact, r, kNow);
    const PolicyVerdict& v = check.channel_verdict();
    EXPECT_EQ(v.block, PolicyBlock::kGlobalCap) << channel;
    EXPECT_EQ(v.detail, "cap 4 per 1d reached (4 served)");
    EXPECT_EQ(v.rule, "policies/caps/0");
  }
  EXPECT_EQ(Check("web", "hero-free", contact, r).block,
            PolicyBlock::kGlobalCap);
}

TEST_F(ShopPolicy, GlobalCapWindowAndKind) {
  // Three recent touches, one older than a day, and impressions: below 4.
  const int web = Channel("web");
  const int free = Action("hero-free");
  ContactRestraint r = Touches(kNow)
                           .Add(absl::Hours(1), web, free)
                           .Add(absl::Hours(2), web, free)
                           .Add(absl::Hours(3), web, free)
                           .Add(absl::Hours(4), web, free, CountOn::kImpression)
                           .Add(absl::Hours(5), web, free, CountOn::kImpression)
                           .Add(absl::Hours(25), web, free)
                           .Restraint();
  EXPECT_EQ(Check("web", "hero-free", Contact(), r).block, PolicyBlock::kNone);
}

// ---- Lifetime policy caps ---------------------------------------------------

TEST(LifetimePolicy, GlobalLifetimeCapUsesTheTotal) {
  const Ruleset& rs = LifetimeRules();
  ContactSnapshot contact;
  ContactRestraint r;
  r.total_lifetime.served = 9;
  r.total_lifetime.impressions = 50;
  PolicyCheck below(rs, rs.FindChannel("web"), contact, r, kNow);
  EXPECT_EQ(below.channel_verdict().block, PolicyBlock::kNone);

  r.total_lifetime.served = 10;
  PolicyCheck reached(rs, rs.FindChannel("web"), contact, r, kNow);
  EXPECT_EQ(reached.channel_verdict().block, PolicyBlock::kGlobalCap);
  EXPECT_EQ(reached.channel_verdict().detail,
            "cap 10 per lifetime reached (10 served)");
  EXPECT_EQ(reached.channel_verdict().rule, "policies/caps/0");
}

TEST(LifetimePolicy, ChannelLifetimeCapUsesTheChannelCount) {
  const Ruleset& rs = LifetimeRules();
  const int web = rs.FindChannel("web");
  const int email = rs.FindChannel("email");
  ContactSnapshot contact;
  // At 10:00 UTC, outside the email quiet hours.
  const absl::Time now = Utc(2026, 1, 15, 10, 0);

  ContactRestraint r;
  r.channel_lifetime[web].served = 7;
  r.channel_lifetime[email].served = 2;
  r.channel_lifetime[email].impressions = 1;
  PolicyCheck below(rs, email, contact, r, now);
  EXPECT_EQ(below.channel_verdict().block, PolicyBlock::kNone);

  r.channel_lifetime[email].served = 3;
  PolicyCheck reached(rs, email, contact, r, now);
  EXPECT_EQ(reached.channel_verdict().block, PolicyBlock::kChannelCap);
  EXPECT_EQ(reached.channel_verdict().detail,
            "cap 3 per lifetime reached (3 served) on 'email'");
  EXPECT_EQ(reached.channel_verdict().rule, "policies/channels/email/caps/0");

  // The web channel has no caps of its own.
  PolicyCheck web_check(rs, web, contact, r, now);
  EXPECT_EQ(web_check.channel_verdict().block, PolicyBlock::kNone);
}

TEST(LifetimePolicy, SecondChannelCapCountsImpressions) {
  const Ruleset& rs = LifetimeRules();
  const int email = rs.FindChannel("email");
  const int news = rs.FindAction("news");
  const absl::Time now = Utc(2026, 1, 15, 10, 0);
  ContactSnapshot contact;
  ContactRestraint r =
      Touches(now)
          .Add(absl::Hours(1), email, news)
          .Add(absl::Hours(2), email, news)
          .Add(absl::Hours(3), email, news, CountOn::kImpression)
          .Add(absl::Hours(4), email, news, CountOn::kImpression)
          .Restraint();
  PolicyCheck check(rs, email, contact, r, now);
  EXPECT_EQ(check.channel_verdict().block, PolicyBlock::kChannelCap);
  EXPECT_EQ(check.channel_verdict().detail,
            "cap 2 per 7d (impressions) reached (2 impressions) on 'email'");
  EXPECT_EQ(check.channel_verdict().rule, "policies/channels/email/caps/1");
}

TEST(LifetimePolicy, CountTouchesSelectors) {
  const Ruleset& rs = LifetimeRules();
  const int web = rs.FindChannel("web");
  const int email = rs.FindChannel("email");
  const int banner = rs.FindAction("banner");
  const int news = rs.FindAction("news");
  ContactSnapshot contact;
  ContactRestraint r =
      Touches(kNow)
          .Add(absl::Hours(1), web, banner)
          .Add(absl::Hours(2), email, news)
          .Add(absl::Hours(3), email, news, CountOn::kImpression)
          .Add(absl::Hours(4), email, banner)
          .Add(absl::Hours(30), web, banner)
          .Restraint();
  r.action_lifetime[banner] = {5, 4};
  r.channel_lifetime[email] = {7, 6};
  r.total_lifetime = {11, 10};
  PolicyCheck check(rs, web, contact, r, kNow);

  Limit day{2, absl::Hours(24), CountOn::kServed, {}};
  EXPECT_EQ(check.CountTouches(day, -1, -1), 3);
  EXPECT_EQ(check.CountTouches(day, banner, -1), 2);
  EXPECT_EQ(check.CountTouches(day, -1, email), 2);
  EXPECT_EQ(check.CountTouches(day, banner, email), 1);
  EXPECT_EQ(check.CountTouches(day, news, web), 0);
  Limit day_shown{2, absl::Hours(24), CountOn::kImpression, {}};
  EXPECT_EQ(check.CountTouches(day_shown, -1, -1), 1);
  Limit week{2, absl::Hours(24 * 7), CountOn::kServed, {}};
  EXPECT_EQ(check.CountTouches(week, banner, -1), 3);

  Limit lifetime{2, std::nullopt, CountOn::kServed, {}};
  Limit lifetime_shown{2, std::nullopt, CountOn::kImpression, {}};
  EXPECT_EQ(check.CountTouches(lifetime, banner, -1), 5);
  EXPECT_EQ(check.CountTouches(lifetime_shown, banner, -1), 4);
  EXPECT_EQ(check.CountTouches(lifetime, news, -1), 0);
  EXPECT_EQ(check.CountTouches(lifetime, -1, email), 7);
  EXPECT_EQ(check.CountTouches(lifetime_shown, -1, email), 6);
  EXPECT_EQ(check.CountTouches(lifetime, -1, web), 0);
  EXPECT_EQ(check.CountTouches(lifetime, -1, -1), 11);
  EXPECT_EQ(check.CountTouches(lifetime_shown, -1, -1), 10);
}

// ---- Consent ----------------------------------------------------------------

TEST_F(ShopPolicy, ConsentMissingGivenWithdrawn) {
  ContactRestraint none;
  ContactSnapshot missing = Contact();
  missing.consents = {{"sms", true}};  // another channel's does not count
  PolicyVerdict v = Check("email", "weekly-news", missing, none);
  EXPECT_EQ(v.block, PolicyBlock::kConsentMissing);
  EXPECT_EQ(v.detail, "consent for 'email' not given");
  EXPECT_EQ(v.rule, "policies/channels/email/consent_required");

  ContactSnapshot withdrawn = Contact();
  withdrawn.consents = {{"email", false}, {"sms", true}};
  v = Check("email", "promo-mail", withdrawn, none);
  EXPECT_EQ(v.block, PolicyBlock::kConsentMissing);
  EXPECT_EQ(v.rule, "policies/channels/email/consent_required");

  ContactSnapshot given = Contact();
  given.consents = {{"email", true}};
  EXPECT_EQ(Check("email", "weekly-news", given, none).block,
            PolicyBlock::kNone);

  // sms needs its own.
  v = Check("sms", "sms-alert", given, none);
  EXPECT_EQ(v.block, PolicyBlock::kConsentMissing);
  EXPECT_EQ(v.detail, "consent for 'sms' not given");
  EXPECT_EQ(v.rule, "policies/channels/sms/consent_required");
}

TEST_F(ShopPolicy, WebNeedsNoConsent) {
  ContactSnapshot nobody;
  ContactRestraint none;
  EXPECT_EQ(Check("web", "hero-free", nobody, none).block, PolicyBlock::kNone);
  nobody.consents = {{"web", false}};
  EXPECT_EQ(Check("web", "hero-free", nobody, none).block, PolicyBlock::kNone);
}

// ---- Quiet hours ------------------------------------------------------------

TEST_F(ShopPolicy, QuietHoursInTheContactsTimeZone) {
  // 20:30 UTC: 21:30 in Rome (quiet), 15:30 in New York (not).
  ContactRestraint none;
  ContactSnapshot rome = Contact();
  SetAttr(&rome, "timezone", cel::Value::String("Europe/Rome"));
  PolicyVerdict v = Check("sms", "sms-alert", rome, none);
  EXPECT_EQ(v.block, PolicyBlock::kQuietHours);
  EXPECT_EQ(v.detail,
            "quiet hours 21:00-09:00 in Europe/Rome (local time 21:30)");
  EXPECT_EQ(v.rule, "policies/channels/sms/quiet_hours");

  ContactSnapshot new_york = Contact();
  SetAttr(&new_york, "timezone", cel::Value::String("America/New_York"));
  EXPECT_EQ(Check("sms", "sms-alert", new_york, none).block,
            PolicyBlock::kNone);

  // Quiet hours are the sms channel's only.
  EXPECT_EQ(Check("web", "hero-free", rome, none).block, PolicyBlock::kNone);
  EXPECT_EQ(Check("email", "weekly-news", rome, none).block,
            PolicyBlock::kNone);
}

TEST_F(ShopPolicy, QuietHoursFollowDaylightSavingTime) {
  // 19:30 UTC in July: 21:30 in Rome (UTC+2), 15:30 in New York (UTC-4).
  const absl::Time summer = Utc(2026, 7, 15, 19, 30);
  ContactRestraint none;
  ContactSnapshot rome = Contact();
  SetAttr(&rome, "timezone", cel::Value::String("Europe/Rome"));
  EXPECT_EQ(Check("sms", "sms-alert", rome, none, summer).block,
            PolicyBlock::kQuietHours);
  ContactSnapshot new_york = Contact();
  EXPECT_EQ(Check("sms", "sms-alert", new_york, none, summer).block,
            PolicyBlock::kNone);
  // 20:30 UTC in winter is Rome's 21:30; in summer it is 22:30.
  EXPECT_EQ(
      Check("sms", "sms-alert", rome, none, summer + absl::Hours(1)).detail,
      "quiet hours 21:00-09:00 in Europe/Rome (local time 22:30)");
}

TEST_F(ShopPolicy, QuietHoursEdges) {
  // In New York (UTC-5 in January): start is quiet, end is not.
  ContactRestraint none;
  ContactSnapshot c = Contact();
  struct Case {
    int hour;
    int minute;
    bool quiet;
  };
  for (Case k : std::vector<Case>{{20, 59, false},
                                  {21, 0, true},
                                  {23, 59, true},
                                  {0, 0, true},
                                  {8, 59, true},
                                  {9, 0, false},
                                  {12, 0, false}}) {
    // Local time k in New York is k + 5h in UTC.
    absl::Time now =
        absl::FromCivil(absl::CivilMinute(2026, 1, 15, k.hour, k.minute),
                        absl::FixedTimeZone(-5 * 3600));
    SCOPED_TRACE(absl::StrCat(k.hour, ":", k.minute));
    EXPECT_EQ(Check("sms", "sms-alert", c, none, now).block,
              k.quiet ? PolicyBlock::kQuietHours : PolicyBlock::kNone);
  }
}

TEST_F(ShopPolicy, InvalidOrMissingTimeZoneFallsBackToTheDefault) {
  // The default is UTC: 20:30, outside the quiet hours; 22:00 inside.
  ContactRestraint none;
  const absl::Time late = Utc(2026, 1, 15, 22, 0);
  ContactSnapshot invalid = Contact();
  SetAttr(&invalid, "timezone", cel::Value::String("Mars/Olympus_Mons"));
  ContactSnapshot not_a_string = Contact();
  SetAttr(&not_a_string, "timezone", cel::Value::Int(2));
  ContactSnapshot absent = Contact();
  absent.attrs.clear();
  for (const ContactSnapshot* c : {&invalid, &not_a_string, &absent}) {
    EXPECT_EQ(Check("sms", "sms-alert", *c, none).block, PolicyBlock::kNone);
    PolicyVerdict v = Check("sms", "sms-alert", *c, none, late);
    EXPECT_EQ(v.block, PolicyBlock::kQuietHours);
    EXPECT_EQ(v.detail, "quiet hours 21:00-09:00 in UTC (local time 22:00)");
  }
}

TEST(LocalMinuteOfDay, ZoneFromTheAttributeOrTheDefault) {
  const Ruleset& shop = Shop();
  std::string zone;
  ContactSnapshot c;
  c.attrs = {{"timezone", cel::Value::String("Europe/Rome")}};
  EXPECT_EQ(LocalMinuteOfDay(shop, c, kNow, &zone), 21 * 60 + 30);
  EXPECT_EQ(zone, "Europe/Rome");

  c.attrs = {{"timezone", cel::Value::String("America/New_York")}};
  EXPECT_EQ(LocalMinuteOfDay(shop, c, kNow, &zone), 15 * 60 + 30);
  EXPECT_EQ(zone, "America/New_York");

  c.attrs = {{"timezone", cel::Value::String("Not/A_Zone")}};
  EXPECT_EQ(LocalMinuteOfDay(shop, c, kNow, &zone), 20 * 60 + 30);
  EXPECT_EQ(zone, "UTC");

  // The attribute the ruleset names, not "timezone": kLifetime uses "tz" and
  // the default UTC.
  const Ruleset& lifetime = LifetimeRules();
  c.attrs = {{"timezone", cel::Value::String("Europe/Rome")}};
  EXPECT_EQ(LocalMinuteOfDay(lifetime, c, kNow, &zone), 20 * 60 + 30);
  EXPECT_EQ(zone, "UTC");
  c.attrs = {{"tz", cel::Value::String("Asia/Tokyo")}};
  EXPECT_EQ(LocalMinuteOfDay(lifetime, c, kNow, &zone), 5 * 60 + 30);
  EXPECT_EQ(zone, "Asia/Tokyo");

  // A declared default zone.
  const Ruleset& strict = Strict();
  c.attrs.clear();
  EXPECT_EQ(LocalMinuteOfDay(strict, c, kNow, &zone), 21 * 60 + 30);
  EXPECT_EQ(zone, "Europe/Rome");
  c.attrs = {{"timezone", cel::Value::String("nonsense")}};
  EXPECT_EQ(LocalMinuteOfDay(strict, c, kNow, &zone), 21 * 60 + 30);
  EXPECT_EQ(zone, "Europe/Rome");
}

TEST(LifetimePolicy, SameDayQuietHoursWithACustomAttribute) {
  const Ruleset& rs = LifetimeRules();
  const int email = rs.FindChannel("email");
  ContactRestraint none;
  ContactSnapshot utc;
  PolicyCheck at_one(rs, email, utc, none, Utc(2026, 1, 15, 13, 0));
  EXPECT_EQ(at_one.channel_verdict().block, PolicyBlock::kQuietHours);
  EXPECT_EQ(at_one.channel_verdict().detail,
            "quiet hours 13:00-14:30 in UTC (local time 13:00)");
  EXPECT_EQ(at_one.channel_verdict().rule,
            "policies/channels/email/quiet_hours");
  PolicyCheck at_half_past_two(rs, email, utc, none, Utc(2026, 1, 15, 14, 30));
  EXPECT_EQ(at_half_past_two.channel_verdict().block, PolicyBlock::kNone);

  // 13:00 UTC is 14:00 in Rome (quiet), 08:00 in New York (not).
  ContactSnapshot rome;
  rome.attrs = {{"tz", cel::Value::String("Europe/Rome")}};
  PolicyCheck rome_noon(rs, email, rome, none, Utc(2026, 1, 15, 12, 0));
  EXPECT_EQ(rome_noon.channel_verdict().block, PolicyBlock::kQuietHours);
  ContactSnapshot ny;
  ny.attrs = {{"tz", cel::Value::String("America/New_York")}};
  PolicyCheck ny_one(rs, email, ny, none, Utc(2026, 1, 15, 13, 0));
  EXPECT_EQ(ny_one.channel_verdict().block, PolicyBlock::kNone);
}

TEST(InQuietHours, SpanningMidnight) {
  QuietHours q;
  q.start_minute = 21 * 60;
  q.end_minute = 9 * 60;
  EXPECT_TRUE(InQuietHours(q, 21 * 60));
  EXPECT_TRUE(InQuietHours(q, 23 * 60 + 59));
  EXPECT_TRUE(InQuietHours(q, 0));
  EXPECT_TRUE(InQuietHours(q, 8 * 60 + 59));
  EXPECT_FALSE(InQuietHours(q, 9 * 60));
  EXPECT_FALSE(InQuietHours(q, 12 * 60));
  EXPECT_FALSE(InQuietHours(q, 20 * 60 + 59));
}

TEST(InQuietHours, SameDay) {
  QuietHours q;
  q.start_minute = 13 * 60;
  q.end_minute = 14 * 60 + 30;
  EXPECT_FALSE(InQuietHours(q, 0));
  EXPECT_FALSE(InQuietHours(q, 12 * 60 + 59));
  EXPECT_TRUE(InQuietHours(q, 13 * 60));
  EXPECT_TRUE(InQuietHours(q, 14 * 60 + 29));
  EXPECT_FALSE(InQuietHours(q, 14 * 60 + 30));
  EXPECT_FALSE(InQuietHours(q, 23 * 60 + 59));
}

TEST(InQuietHours, FromMidnight) {
  QuietHours q;  // 00:00-06:00
  q.start_minute = 0;
  q.end_minute = 6 * 60;
  EXPECT_TRUE(InQuietHours(q, 0));
  EXPECT_TRUE(InQuietHours(q, 5 * 60 + 59));
  EXPECT_FALSE(InQuietHours(q, 6 * 60));
  EXPECT_FALSE(InQuietHours(q, 23 * 60 + 59));
  q.start_minute = 22 * 60;  // 22:00-00:00 (the loader reads 24:00 as 0)
  q.end_minute = 0;
  EXPECT_FALSE(InQuietHours(q, 21 * 60 + 59));
  EXPECT_TRUE(InQuietHours(q, 22 * 60));
  EXPECT_TRUE(InQuietHours(q, 23 * 60 + 59));
  EXPECT_FALSE(InQuietHours(q, 0));
}

TEST(InQuietHours, EmptyRangeIsNeverQuiet) {
  QuietHours q;
  q.start_minute = q.end_minute = 10 * 60;
  for (int minute = 0; minute < 1440; ++minute) {
    ASSERT_FALSE(InQuietHours(q, minute)) << minute;
  }
}

// ---- Dismissal cooldowns ----------------------------------------------------

TEST_F(ShopPolicy, ActionDismissCooldown) {
  const int banner = Action("hero-banner");
  ContactSnapshot contact = Contact();
  ContactRestraint r;
  r.action_dismissed[banner] = kNow - absl::Hours(2);
  PolicyVerdict v = Check("web", "hero-banner", contact, r);
  EXPECT_EQ(v.block, PolicyBlock::kActionDismissCooldown);
  EXPECT_EQ(v.detail, "dismissed 2h ago; cooldown 2d");
  EXPECT_EQ(v.rule, "actions/hero-banner/dismiss_cooldown");

  // The channel and the other actions are not affected.
  PolicyCheck check(rs_, Channel("web"), contact, r, kNow);
  EXPECT_EQ(check.channel_verdict().block, PolicyBlock::kNone);
  EXPECT_EQ(check.CheckAction(Action("hero-free")).block, PolicyBlock::kNone);

  // Expiry: blocked until exactly 48h after the dismissal.
  r.action_dismissed[banner] = kNow - absl::Hours(48) + absl::Seconds(1);
  EXPECT_EQ(Check("web", "hero-banner", contact, r).block,
            PolicyBlock::kActionDismissCooldown);
  r.action_dismissed[banner] = kNow - absl::Hours(48);
  EXPECT_EQ(Check("web", "hero-banner", contact, r).block, PolicyBlock::kNone);
  r.action_dismissed[banner] = kNow - absl::Hours(24 * 10);
  EXPECT_EQ(Check("web", "hero-banner", contact, r).block, PolicyBlock::kNone);
}

TEST_F(ShopPolicy, DismissalOfAnActionWithoutCooldownDoesNothing) {
  ContactRestraint r;
  r.action_dismissed[Action("hero-free")] = kNow - absl::Minutes(1);
  EXPECT_EQ(Check("web", "hero-free", Contact(), r).block, PolicyBlock::kNone);
}

TEST_F(ShopPolicy, ChannelDismissCooldown) {
  const int web = Channel("web");
  ContactSnapshot contact = Contact();
  ContactRestraint r;
  r.channel_dismissed[web] = kNow - absl::Hours(3);
  PolicyCheck check(rs_, web, contact, r, kNow);
  EXPECT_EQ(check.channel_verdict().block,
            PolicyBlock::kChannelDismissCooldown);
  EXPECT_EQ(check.channel_verdict().detail,
            "dismissed on 'web' 3h ago; cooldown 1d");
  EXPECT_EQ(check.channel_verdict().rule,
            "policies/channels/web/dismiss_cooldown");
  // Every action on the channel.
  for (const char* action :
       {"hero-banner", "hero-once", "hero-seen", "hero-free"}) {
    PolicyVerdict v = check.CheckAction(Action(action));
    EXPECT_EQ(v.block, PolicyBlock::kChannelDismissCooldown) << action;
    EXPECT_EQ(v.rule, "policies/channels/web/dismiss_cooldown");
  }

  // A dismissal on another channel does not count, nor one on a channel
  // without a cooldown.
  ContactRestraint elsewhere;
  elsewhere.channel_dismissed[Channel("email")] = kNow - absl::Minutes(5);
  EXPECT_EQ(Check("web", "hero-free", contact, elsewhere).block,
            PolicyBlock::kNone);
  EXPECT_EQ(Check("email", "weekly-news", contact, elsewhere).block,
            PolicyBlock::kNone);

  // Expiry.
  r.channel_dismissed[web] = kNow - absl::Hours(24);
  EXPECT_EQ(Check("web", "hero-free", contact, r).block, PolicyBlock::kNone);
  r.channel_dismissed[web] = kNow - absl::Hours(24) + absl::Seconds(1);
  EXPECT_EQ(Check("web", "hero-free", contact, r).block,
            PolicyBlock::kChannelDismissCooldown);
}

TEST_F(ShopPolicy, CooldownDetailRoundsToTheSecond) {
  const int web = Channel("web");
  ContactRestraint r;
  r.channel_dismissed[web] = kNow - absl::Minutes(90) - absl::Milliseconds(400);
  PolicyCheck check(rs_, web, Contact(), r, kNow);
  EXPECT_EQ(check.channel_verdict().detail,
            "dismissed on 'web' 90m ago; cooldown 1d");
}

// ---- Order ------------------------------------------------------------------

TEST_F(ShopPolicy, ConsentWinsOverCaps) {
  const int email = Channel("email");
  const int promo = Action("promo-mail");
  ContactSnapshot contact = Contact();
  contact.consents.clear();
  // Global, channel and action caps all reached.
  ContactRestraint r = Touches(kNow)
                           .Add(absl::Hours(1), email, promo)
                           .Add(absl::Hours(2), email, promo)
                           .Add(absl::Hours(3), email, promo)
                           .Add(absl::Hours(4), email, promo)
                           .Restraint();
  PolicyVerdict v = Check("email", "promo-mail", contact, r);
  EXPECT_EQ(v.block, PolicyBlock::kConsentMissing);
  EXPECT_EQ(v.rule, "policies/channels/email/consent_required");
}

TEST_F(ShopPolicy, ConsentWinsOverQuietHours) {
  ContactSnapshot contact = Contact();
  contact.consents = {{"email", true}};
  SetAttr(&contact, "timezone", cel::Value::String("Europe/Rome"));
  EXPECT_EQ(Check("sms", "sms-alert", contact, {}).block,
            PolicyBlock::kConsentMissing);
}

TEST_F(ShopPolicy, GlobalCapWinsOverChannelAndActionCaps) {
  const int email = Channel("email");
  const int promo = Action("promo-mail");
  ContactRestraint r = Touches(kNow)
                           .Add(absl::Hours(1), email, promo)
                           .Add(absl::Hours(2), email, promo)
                           .Add(absl::Hours(3), email, promo)
                           .Add(absl::Hours(4), email, promo)
                           .Restraint();
  EXPECT_EQ(Check("email", "promo-mail", Contact(), r).block,
            PolicyBlock::kGlobalCap);
  // Below the global cap, the channel cap comes before the action's.
  ContactRestraint r2 = Touches(kNow)
                            .Add(absl::Hours(1), email, promo)
                            .Add(absl::Hours(2), email, promo)
                            .Restraint();
  EXPECT_EQ(Check("email", "promo-mail", Contact(), r2).block,
            PolicyBlock::kChannelCap);
  // Below the channel cap, the action's.
  ContactRestraint r3 =
      Touches(kNow).Add(absl::Hours(1), email, promo).Restraint();
  PolicyVerdict v = Check("email", "promo-mail", Contact(), r3);
  EXPECT_EQ(v.block, PolicyBlock::kActionCap);
  EXPECT_EQ(v.detail, "cap 1 per 30d reached (1 served)");
  EXPECT_EQ(v.rule, "actions/promo-mail/caps/0");
}

TEST_F(ShopPolicy, ActionCapWinsOverActionCooldown) {
  const int web = Channel("web");
  const int banner = Action("hero-banner");
  ContactRestraint r = Touches(kNow)
                           .Add(absl::Hours(30), web, banner)
                           .Add(absl::Hours(40), web, banner)
                           .Restraint();
  r.action_dismissed[banner] = kNow - absl::Hours(1);
  EXPECT_EQ(Check("web", "hero-banner", Contact(), r).block,
            PolicyBlock::kActionCap);
  // Channel cooldown before both.
  r.channel_dismissed[web] = kNow - absl::Hours(1);
  EXPECT_EQ(Check("web", "hero-banner", Contact(), r).block,
            PolicyBlock::kChannelDismissCooldown);
}

// Everything blocks at first; lifting one rule at a time shows the next, in
// the documented order: consent, quiet hours, channel cooldown, global cap,
// channel cap, action cap, action cooldown.
TEST(PolicyOrder, EachRuleInTurn) {
  const Ruleset& rs = Strict();
  const int push = rs.FindChannel("push");
  const int nudge = rs.FindAction("nudge");
  // 22:00 UTC in January: 23:00 in Rome (quiet), 14:00 in Los Angeles.
  const absl::Time now = Utc(2026, 1, 15, 22, 0);

  ContactSnapshot contact;
  contact.attrs = {{"timezone", cel::Value::String("Europe/Rome")}};
  ContactRestraint r = Touches(now)
                           .Add(absl::Hours(1), push, nudge)
                           .Add(absl::Hours(2), push, nudge)
                           .Add(absl::Hours(3), push, nudge)
                           .Restraint();
  r.channel_dismissed[push] = now - absl::Hours(1);
  r.action_dismissed[nudge] = now - absl::Hours(1);

  auto check = [&]() {
    PolicyCheck c(rs, push, contact, r, now);
    return c.CheckAction(nudge);
  };
  PolicyVerdict v = check();
  EXPECT_EQ(v.block, PolicyBlock::kConsentMissing);
  EXPECT_EQ(v.rule, "policies/channels/push/consent_required");

  contact.consents = {{"push", true}};
  v = check();
  EXPECT_EQ(v.block, PolicyBlock::kQuietHours);
  EXPECT_EQ(v.detail,
            "quiet hours 22:00-08:00 in Europe/Rome (local time 23:00)");
  EXPECT_EQ(v.rule, "policies/channels/push/quiet_hours");

  contact.attrs = {{"timezone", cel::Value::String("America/Los_Angeles")}};
  v = check();
  EXPECT_EQ(v.block, PolicyBlock::kChannelDismissCooldown);
  EXPECT_EQ(v.detail, "dismissed on 'push' 1h ago; cooldown 12h");
  EXPECT_EQ(v.rule, "policies/channels/push/dismiss_cooldown");

  r.channel_dismissed.clear();
  v = check();
  EXPECT_EQ(v.block, PolicyBlock::kGlobalCap);
  EXPECT_EQ(v.detail, "cap 3 per 1d reached (3 served)");
  EXPECT_EQ(v.rule, "policies/caps/0");

  r.touches.pop_back();  // the oldest: 2 touches left
  v = check();
  EXPECT_EQ(v.block, PolicyBlock::kChannelCap);
  EXPECT_EQ(v.detail, "cap 2 per 2d reached (2 served) on 'push'");
  EXPECT_EQ(v.rule, "policies/channels/push/caps/0");

  r.touches = {
      {now - absl::Hours(24 * 3), Limit::CountOn::kServed, push, nudge}};
  v = check();
  EXPECT_EQ(v.block, PolicyBlock::kActionCap);
  EXPECT_EQ(v.detail, "cap 1 per 7d reached (1 served)");
  EXPECT_EQ(v.rule, "actions/nudge/caps/0");

  r.touches.clear();
  v = check();
  EXPECT_EQ(v.block, PolicyBlock::kActionDismissCooldown);
  EXPECT_EQ(v.detail, "dismissed 1h ago; cooldown 3d");
  EXPECT_EQ(v.rule, "actions/nudge/dismiss_cooldown");

  r.action_dismissed.clear();
  v = check();
  EXPECT_EQ(v.block, PolicyBlock::kNone);
  EXPECT_EQ(v.detail, "");
  EXPECT_EQ(v.rule, "");
}

TEST(PolicyOrder, ChannelVerdictIsSharedByEveryAction) {
  // CheckAction returns the channel verdict unchanged when the channel
  // blocks, whatever the action's own state.
  const Ruleset& rs = Strict();
  const int push = rs.FindChannel("push");
  const int nudge = rs.FindAction("nudge");
  ContactSnapshot contact;
  ContactRestraint r;
  PolicyCheck check(rs, push, contact, r, kNow);
  PolicyVerdict v = check.CheckAction(nudge);
  EXPECT_EQ(v.block, check.channel_verdict().block);
  EXPECT_EQ(v.detail, check.channel_verdict().detail);
  EXPECT_EQ(v.rule, check.channel_verdict().rule);
}

// ---- DescribeLimit ----------------------------------------------------------

TEST(DescribeLimit, Forms) {
  EXPECT_EQ(DescribeLimit({2, absl::Hours(24 * 7), CountOn::kServed, {}}),
            "2 per 7d");
  EXPECT_EQ(DescribeLimit({6, absl::Hours(24), CountOn::kServed, {}}),
            "6 per 1d");
  EXPECT_EQ(DescribeLimit({3, absl::Hours(36), CountOn::kServed, {}}),
            "3 per 36h");
  EXPECT_EQ(DescribeLimit({3, absl::Minutes(90), CountOn::kServed, {}}),
            "3 per 90m");
  EXPECT_EQ(DescribeLimit({3, absl::Seconds(30), CountOn::kServed, {}}),
            "3 per 30s");
  EXPECT_EQ(DescribeLimit({1, std::nullopt, CountOn::kServed, {}}),
            "1 per lifetime");
  EXPECT_EQ(DescribeLimit({2, absl::Hours(12), CountOn::kImpression, {}}),
            "2 per 12h (impressions)");
  EXPECT_EQ(DescribeLimit({5, std::nullopt, CountOn::kImpression, {}}),
            "5 per lifetime (impressions)");
}

}  // namespace
}  // namespace tappa::ruleset
