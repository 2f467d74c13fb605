// End-to-end tests of decisioning: contact policies, budgets, experiments,
// decision tokens and outcomes, explanations, Simulate and adaptive ranking,
// through the real tappa-server binary over real gRPC channels against a
// private redis-server (process_fixture.h). The ruleset is
// tests/server/testdata/decisioning.yaml.
#include <stdio.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/process_fixture.h"
#include "tests/server/tappa_client.h"

namespace tappa::testing {
namespace {

using tappa::v1::CandidateExplanation;
using tappa::v1::NextBestActionResponse;

#define ASSERT_RPC_OK(expr)                                          \
  do {                                                               \
    grpc::Status _status = (expr);                                   \
    ASSERT_TRUE(_status.ok()) << #expr << ": " << Describe(_status); \
  } while (0)

std::string RulesPath() {
  return absl::StrCat(TAPPA_SOURCE_DIR,
                      "/tests/server/testdata/decisioning.yaml");
}

std::vector<std::string> ActionIds(const NextBestActionResponse& r) {
  std::vector<std::string> ids;
  for (const auto& a : r.actions()) ids.push_back(a.action_id());
  return ids;
}

const CandidateExplanation* FindCandidate(const NextBestActionResponse& r,
                                          absl::string_view action) {
  for (const auto& c : r.candidates()) {
    if (c.action_id() == action) return &c;
  }
  return nullptr;
}

class DecisioningE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    key_path_ = absl::StrCat(dir_.path(), "/token.key");
    std::ofstream(key_path_) << "an-end-to-end-test-key-of-at-least-32-bytes\n";
    server_ = StartServer({});
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<TappaClient>(server_->channel());
  }

  std::unique_ptr<ServerProcess> StartServer(
      std::vector<std::string> extra_flags, std::string key_path = "") {
    ServerProcess::Options options;
    options.rules_path = RulesPath();
    options.redis_url = redis_->url();
    options.extra_flags = std::move(extra_flags);
    options.extra_flags.push_back(absl::StrCat(
        "--decision_token_key_file=", key_path.empty() ? key_path_ : key_path));
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  void Track(const std::string& contact, const std::string& type,
             const std::string& channel, const Properties& properties = {}) {
    static std::atomic<int> next{0};
    ASSERT_RPC_OK(client_->Track(MakeEvent(contact, absl::StrCat("ev-", next++),
                                           type, channel, "", properties)));
  }

  NextBestActionResponse Nba(const std::string& contact,
                             const std::string& channel,
                             const std::string& placement,
                             const Properties& context = {}) {
    tappa::v1::NextBestActionRequest request =
        MakeNba(contact, channel, placement, context);
    request.set_explain(true);
    NextBestActionResponse response;
    grpc::Status status = client_->Nba(request, &response);
    EXPECT_TRUE(status.ok()) << Describe(status);
    EXPECT_FALSE(response.degraded());
    return response;
  }

  // The contact's restraint hash field, as Redis has it ("" when absent).
  std::string RestraintField(const std::string& contact,
                             const std::string& field) {
    absl::StatusOr<SyncRedisReply> keys =
        redis_->Command({"KEYS", absl::StrCat("tp:{s:*}:q:", contact)});
    if (!keys.ok() || keys->elements.empty()) return "";
    absl::StatusOr<SyncRedisReply> v =
        redis_->Command({"HGET", keys->elements[0].str, field});
    return v.ok() ? v->str : "";
  }

  // Waits until `n` served touches of the contact are recorded (the write
  // is not awaited by NextBestAction).
  void WaitServed(const std::string& contact, int n) {
    absl::Time give_up = absl::Now() + absl::Seconds(5);
    while (RestraintField(contact, "gs") != absl::StrCat(n)) {
      ASSERT_LT(absl::Now(), give_up)
          << "served touches of " << contact << ": "
          << RestraintField(contact, "gs") << ", want " << n;
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  // Every key and its DUMP.
  std::map<std::string, std::string> DumpAll() {
    std::map<std::string, std::string> out;
    absl::StatusOr<SyncRedisReply> keys = redis_->Command({"KEYS", "*"});
    EXPECT_TRUE(keys.ok());
    if (!keys.ok()) return out;
    for (const SyncRedisReply& k : keys->elements) {
      absl::StatusOr<SyncRedisReply> d = redis_->Command({"DUMP", k.str});
      out[k.str] = d.ok() ? d->str : "?";
    }
    return out;
  }

  TempDir dir_{"tappa-decisioning"};
  std::string key_path_;
  std::unique_ptr<RedisProcess> redis_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TappaClient> client_;
};

TEST_F(DecisioningE2eTest, EmailCapAppliesOnEveryEmailPlacement) {
  Track("ann", "consent", "web", {{"email", true}});
  NextBestActionResponse first = Nba("ann", "email", "email.weekly");
  EXPECT_THAT(ActionIds(first), ::testing::ElementsAre("newsletter"));
  WaitServed("ann", 1);

  // The channel's cap (1 per 7 days) holds on the other email placement.
  NextBestActionResponse second = Nba("ann", "email", "email.promo");
  EXPECT_TRUE(second.actions().empty());
  const CandidateExplanation* promo = FindCandidate(second, "promo-mail");
  ASSERT_NE(promo, nullptr);
  EXPECT_EQ(promo->verdict(), tappa::v1::CANDIDATE_VERDICT_CHANNEL_CAP);
  EXPECT_EQ(promo->rule(), "policies/channels/email/caps/0");
  EXPECT_THAT(promo->detail(), ::testing::HasSubstr("cap 1 per 7d reached"));

  // Web is another channel: unaffected.
  EXPECT_THAT(ActionIds(Nba("ann", "web", "web.hero")),
              ::testing::ElementsAre("welcome-offer"));
}

TEST_F(DecisioningE2eTest, EmailNeedsConsentAndWithdrawalStopsIt) {
  NextBestActionResponse none = Nba("bob", "email", "email.weekly");
  EXPECT_TRUE(none.actions().empty());
  const CandidateExplanation* c = FindCandidate(none, "newsletter");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->verdict(), tappa::v1::CANDIDATE_VERDICT_CONSENT_MISSING);
  EXPECT_EQ(c->rule(), "policies/channels/email/consent_required");

  Track("bob", "consent", "web", {{"email", true}});
  EXPECT_THAT(ActionIds(Nba("bob", "email", "email.weekly")),
              ::testing::ElementsAre("newsletter"));
  Track("bob", "consent", "web", {{"email", false}});
  EXPECT_TRUE(Nba("bob", "email", "email.promo").actions().empty());
}

TEST_F(DecisioningE2eTest, QuietHoursFollowTheContactsTimeZone) {
  Track("cat", "consent", "web", {{"sms", true}});
  auto simulate_at = [&](const std::string& contact, absl::Time at) {
    tappa::v1::SimulateRequest request;
    request.set_contact_id(contact);
    request.set_channel("sms");
    request.set_placement("sms.alert");
    request.mutable_at()->set_seconds(absl::ToUnixSeconds(at));
    tappa::v1::SimulateResponse response;
    EXPECT_TRUE(client_->Simulate(request, &response).ok());
    return response.decision();
  };
  absl::Time noon_utc = absl::FromCivil(absl::CivilSecond(2026, 6, 1, 12, 0, 0),
                                        absl::UTCTimeZone());
  absl::Time late_utc = absl::FromCivil(absl::CivilSecond(2026, 6, 1, 22, 0, 0),
                                        absl::UTCTimeZone());
  EXPECT_THAT(ActionIds(simulate_at("cat", noon_utc)),
              ::testing::ElementsAre("sms-alert"));
  NextBestActionResponse late = simulate_at("cat", late_utc);
  EXPECT_TRUE(late.actions().empty());
  ASSERT_NE(FindCandidate(late, "sms-alert"), nullptr);
  EXPECT_EQ(FindCandidate(late, "sms-alert")->verdict(),
            tappa::v1::CANDIDATE_VERDICT_QUIET_HOURS);
  EXPECT_THAT(FindCandidate(late, "sms-alert")->detail(),
              ::testing::HasSubstr("21:00-09:00 in UTC"));

  // Noon in UTC is 21:00 in Tokyo: quiet there.
  Track("cat", "identify", "web", {{"timezone", std::string("Asia/Tokyo")}});
  NextBestActionResponse tokyo = simulate_at("cat", noon_utc);
  EXPECT_TRUE(tokyo.actions().empty());
  EXPECT_THAT(FindCandidate(tokyo, "sms-alert")->detail(),
              ::testing::HasSubstr("in Asia/Tokyo"));
}

TEST_F(DecisioningE2eTest, ActionCapCountsServedActions) {
  for (int i = 0; i < 2; ++i) {
    EXPECT_THAT(ActionIds(Nba("dan", "web", "web.hero")),
                ::testing::ElementsAre("welcome-offer"));
    WaitServed("dan", i + 1);
  }
  NextBestActionResponse third = Nba("dan", "web", "web.hero");
  EXPECT_THAT(ActionIds(third), ::testing::ElementsAre("house-banner"));
  ASSERT_NE(FindCandidate(third, "welcome-offer"), nullptr);
  EXPECT_EQ(FindCandidate(third, "welcome-offer")->verdict(),
            tappa::v1::CANDIDATE_VERDICT_ACTION_CAP);
  EXPECT_EQ(FindCandidate(third, "welcome-offer")->rule(),
            "actions/welcome-offer/caps/0");
}

TEST_F(DecisioningE2eTest, AcquisitionOfferStopsAfterConversion) {
  EXPECT_THAT(ActionIds(Nba("kim", "web", "web.hero")),
              ::testing::ElementsAre("welcome-offer"));
  Track("kim", "purchase", "web");
  NextBestActionResponse after = Nba("kim", "web", "web.hero");
  EXPECT_EQ(after.phase(), "conversion");
  EXPECT_THAT(ActionIds(after), ::testing::ElementsAre("house-banner"));
  // Not even a candidate: the offer is for the awareness phase only.
  EXPECT_EQ(FindCandidate(after, "welcome-offer"), nullptr);
}

TEST_F(DecisioningE2eTest, ImpressionCapCountsReportedImpressions) {
  std::vector<std::string> tokens;
  for (int i = 0; i < 3; ++i) {
    NextBestActionResponse r = Nba("eve", "web", "web.side");
    ASSERT_THAT(ActionIds(r), ::testing::ElementsAre("impression-capped"));
    tokens.push_back(r.actions(0).decision_token());
  }
  for (int i = 0; i < 2; ++i) {
    ASSERT_RPC_OK(client_->Outcome(tokens[i], tappa::v1::OUTCOME_IMPRESSION));
  }
  NextBestActionResponse after = Nba("eve", "web", "web.side");
  EXPECT_TRUE(after.actions().empty());
  EXPECT_EQ(FindCandidate(after, "impression-capped")->verdict(),
            tappa::v1::CANDIDATE_VERDICT_ACTION_CAP);
  EXPECT_THAT(FindCandidate(after, "impression-capped")->detail(),
              ::testing::HasSubstr("(2 impressions)"));
}

TEST_F(DecisioningE2eTest, OutcomesAreIdempotentPerTokenAndKind) {
  NextBestActionResponse r = Nba("fay", "web", "web.side");
  ASSERT_EQ(r.actions_size(), 1);
  const std::string token = r.actions(0).decision_token();
  ASSERT_FALSE(token.empty());
  EXPECT_LE(token.size(), 1024u);

  tappa::v1::ReportOutcomeResponse first, again, click;
  ASSERT_RPC_OK(client_->Outcome(token, tappa::v1::OUTCOME_IMPRESSION, &first));
  EXPECT_FALSE(first.duplicate());
  EXPECT_EQ(first.contact_id(), "fay");
  EXPECT_EQ(first.action_id(), "impression-capped");
  ASSERT_RPC_OK(client_->Outcome(token, tappa::v1::OUTCOME_IMPRESSION, &again));
  EXPECT_TRUE(again.duplicate());
  ASSERT_RPC_OK(client_->Outcome(token, tappa::v1::OUTCOME_CLICK, &click));
  EXPECT_FALSE(click.duplicate());
  // One impression counted, not two.
  EXPECT_EQ(RestraintField("fay", "gi"), "1");

  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, ::testing::HasSubstr(
                            "tappa_outcomes_total{outcome=\"impression\",phase="
                            "\"awareness\"} 1"));
}

TEST_F(DecisioningE2eTest,
       ForgedForeignExpiredAndMalformedTokensChangeNothing) {
  NextBestActionResponse r = Nba("gus", "web", "web.side");
  ASSERT_EQ(r.actions_size(), 1);
  const std::string token = r.actions(0).decision_token();
  std::map<std::string, std::string> before = DumpAll();

  // Tampered: one character of the signed part changed.
  std::string forged = token;
  size_t at = forged.size() / 2;
  forged[at] = forged[at] == 'A' ? 'B' : 'A';
  grpc::Status s = client_->Outcome(forged, tappa::v1::OUTCOME_CLICK);
  EXPECT_TRUE(s.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
              s.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
      << Describe(s);

  // Signed by another server's key.
  std::string other_key = absl::StrCat(dir_.path(), "/other.key");
  std::ofstream(other_key) << "another-deployment-with-its-own-32-byte-key\n";
  std::unique_ptr<ServerProcess> other = StartServer({}, other_key);
  ASSERT_NE(other, nullptr);
  TappaClient other_client(other->channel());
  tappa::v1::NextBestActionResponse foreign;
  ASSERT_RPC_OK(other_client.Nba(MakeNba("gus", "web", "web.side"), &foreign));
  ASSERT_EQ(foreign.actions_size(), 1);
  s = client_->Outcome(foreign.actions(0).decision_token(),
                       tappa::v1::OUTCOME_CLICK);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(s);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("another key"));

  s = client_->Outcome("not a token", tappa::v1::OUTCOME_CLICK);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("decision_token"));
  s = client_->Outcome(token, tappa::v1::OUTCOME_UNSPECIFIED);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("outcome"));

  // Nothing above wrote anything (the other server's decision only read).
  EXPECT_EQ(DumpAll(), before);

  // Expired: a server whose tokens live 1 second.
  std::unique_ptr<ServerProcess> short_lived =
      StartServer({"--decision_token_ttl=1s"});
  ASSERT_NE(short_lived, nullptr);
  TappaClient short_client(short_lived->channel());
  tappa::v1::NextBestActionResponse soon;
  ASSERT_RPC_OK(short_client.Nba(MakeNba("gus", "web", "web.side"), &soon));
  ASSERT_EQ(soon.actions_size(), 1);
  absl::SleepFor(absl::Milliseconds(1100));
  s = short_client.Outcome(soon.actions(0).decision_token(),
                           tappa::v1::OUTCOME_CLICK);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("expired"));

  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, ::testing::HasSubstr(
                            "tappa_decision_tokens_rejected_total{reason="
                            "\"foreign_key\"} 1"));
}

TEST_F(DecisioningE2eTest, DismissalStartsTheCooldowns) {
  NextBestActionResponse r = Nba("hal", "web", "web.hero");
  ASSERT_THAT(ActionIds(r), ::testing::ElementsAre("welcome-offer"));
  ASSERT_RPC_OK(client_->Outcome(r.actions(0).decision_token(),
                                 tappa::v1::OUTCOME_DISMISS));
  NextBestActionResponse after = Nba("hal", "web", "web.hero");
  EXPECT_TRUE(after.actions().empty());
  EXPECT_EQ(FindCandidate(after, "welcome-offer")->verdict(),
            tappa::v1::CANDIDATE_VERDICT_CHANNEL_DISMISS_COOLDOWN);
  EXPECT_EQ(FindCandidate(after, "welcome-offer")->rule(),
            "policies/channels/web/dismiss_cooldown");
  // The action's own cooldown (24h) outlasts the channel's (1h).
  tappa::v1::SimulateRequest later;
  later.set_contact_id("hal");
  later.set_channel("web");
  later.set_placement("web.hero");
  later.mutable_at()->set_seconds(absl::ToUnixSeconds(absl::Now()) + 7200);
  tappa::v1::SimulateResponse simulated;
  ASSERT_RPC_OK(client_->Simulate(later, &simulated));
  EXPECT_EQ(FindCandidate(simulated.decision(), "welcome-offer")->verdict(),
            tappa::v1::CANDIDATE_VERDICT_ACTION_DISMISS_COOLDOWN);
  EXPECT_THAT(ActionIds(simulated.decision()),
              ::testing::ElementsAre("house-banner"));
}

TEST_F(DecisioningE2eTest, BudgetIsNeverOversoldBy16ConcurrentClients) {
  std::unique_ptr<ServerProcess> second = StartServer({});
  ASSERT_NE(second, nullptr);
  std::atomic<int> served{0}, answered{0}, errors{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t) {
    ServerProcess* server = t % 2 == 0 ? server_.get() : second.get();
    clients.emplace_back([&, t, channel = server->NewChannel()] {
      TappaClient client(channel);
      for (int i = 0; i < 20; ++i) {
        NextBestActionResponse r;
        grpc::Status s = client.Nba(
            MakeNba(absl::StrCat("budget-", t, "-", i), "web", "web.deal"), &r);
        if (!s.ok() || r.degraded()) {
          ++errors;
          continue;
        }
        ++answered;
        for (const auto& a : r.actions()) {
          if (a.action_id() == "limited-deal") ++served;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(answered.load(), 320);
  // Budget 50: never more, and at most one unserved unit per replica (two
  // replicas, blocks of 2) short of it.
  EXPECT_LE(served.load(), 50);
  EXPECT_GE(served.load(), 48);
  absl::StatusOr<SyncRedisReply> keys =
      redis_->Command({"KEYS", "tp:{b:limited-deal}:*"});
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->elements.size(), 1u);
  absl::StatusOr<SyncRedisReply> leased =
      redis_->Command({"GET", keys->elements[0].str});
  ASSERT_TRUE(leased.ok());
  EXPECT_EQ(leased->str, "50");
  std::cout << "budget 50: served " << served.load() << " of 320 requests\n";
}

TEST_F(DecisioningE2eTest, ExperimentArmsAreStableAcrossServers) {
  std::unique_ptr<ServerProcess> second = StartServer({});
  ASSERT_NE(second, nullptr);
  TappaClient other(second->channel());
  std::map<std::string, int> arms;
  for (int i = 0; i < 300; ++i) {
    std::string contact = absl::StrCat("exp-", i);
    NextBestActionResponse a = Nba(contact, "web", "web.test");
    NextBestActionResponse b;
    ASSERT_RPC_OK(other.Nba(MakeNba(contact, "web", "web.test"), &b));
    ASSERT_EQ(a.experiments_size(), 1);
    ASSERT_EQ(b.experiments_size(), 1);
    EXPECT_EQ(a.experiments(0).variant_id(), b.experiments(0).variant_id());
    EXPECT_EQ(a.experiments(0).holdout(), b.experiments(0).holdout());
    ASSERT_EQ(a.actions_size(), 1);
    const auto& action = a.actions(0);
    EXPECT_EQ(action.experiment_id(), "hero-test");
    if (a.experiments(0).holdout()) {
      // Control treatment: the placement's fallback, flagged holdout.
      EXPECT_EQ(action.action_id(), "house-banner");
      EXPECT_TRUE(action.holdout());
      ++arms["holdout"];
    } else {
      EXPECT_EQ(action.action_id(),
                a.experiments(0).variant_id() == "a" ? "arm-a" : "arm-b");
      EXPECT_EQ(action.variant_id(), a.experiments(0).variant_id());
      ++arms[a.experiments(0).variant_id()];
    }
  }
  // Holdout 20%, then 50:30 → 50% and 30% of everyone; loose bounds for 300.
  EXPECT_GT(arms["holdout"], 30);
  EXPECT_LT(arms["holdout"], 90);
  EXPECT_GT(arms["a"], 110);
  EXPECT_GT(arms["b"], 55);
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics,
              ::testing::HasSubstr(absl::StrCat(
                  "tappa_experiment_exposures_total{experiment=\"hero-test\","
                  "variant=\"holdout\"} ",
                  arms["holdout"])));
}

TEST_F(DecisioningE2eTest, ExplanationNamesTheFalseCondition) {
  NextBestActionResponse r =
      Nba("ivy", "web", "web.hero", {{"page", std::string("checkout")}});
  EXPECT_THAT(ActionIds(r), ::testing::ElementsAre("house-banner"));
  const CandidateExplanation* c = FindCandidate(r, "welcome-offer");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->verdict(), tappa::v1::CANDIDATE_VERDICT_CONDITION_FALSE);
  EXPECT_EQ(c->false_condition(),
            "(!has(context.page) || context.page != \"checkout\")");
  EXPECT_EQ(c->rule(), "actions/welcome-offer/when");
  const CandidateExplanation* chosen = FindCandidate(r, "house-banner");
  ASSERT_NE(chosen, nullptr);
  EXPECT_EQ(chosen->verdict(), tappa::v1::CANDIDATE_VERDICT_CHOSEN);
  EXPECT_EQ(chosen->factors().propensity(), 1.0);
  EXPECT_EQ(chosen->factors().value(), 1.0);
}

TEST_F(DecisioningE2eTest, TappactlPrintsTheExplanationAsATable) {
  std::string command = absl::StrCat(
      "TAPPA_SERVER=", server_->grpc_address(), " ", TAPPACTL_PATH,
      " nba ivy --channel web --placement web.hero --context page=checkout "
      "--explain 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0)
    output.append(buffer, n);
  EXPECT_EQ(pclose(pipe), 0) << output;
  EXPECT_THAT(output, ::testing::HasSubstr("contact ivy in phase awareness"));
  EXPECT_THAT(output, ::testing::ContainsRegex(
                          "welcome-offer +condition_false .*context.page != "
                          "\"checkout\"\\) \\[actions/welcome-offer/when\\]"));
  EXPECT_THAT(output,
              ::testing::ContainsRegex("house-banner +chosen +1 +1 +1 +1 +1"));
}

TEST_F(DecisioningE2eTest, SimulateChangesNothingInRedis) {
  Track("jon", "consent", "web", {{"email", true}});
  NextBestActionResponse r = Nba("jon", "web", "web.hero");
  ASSERT_EQ(r.actions_size(), 1);
  WaitServed("jon", 1);
  ASSERT_RPC_OK(client_->Outcome(r.actions(0).decision_token(),
                                 tappa::v1::OUTCOME_IMPRESSION));
  std::map<std::string, std::string> before = DumpAll();

  tappa::v1::SimulateRequest request;
  request.set_contact_id("jon");
  request.set_channel("web");
  request.set_placement("web.hero");
  (*request.mutable_contact()->mutable_fields())["phase"].set_string_value(
      "conversion");
  tappa::v1::SimulateResponse response;
  ASSERT_RPC_OK(client_->Simulate(request, &response));
  EXPECT_EQ(response.decision().phase(), "conversion");
  // welcome-offer is for awareness only: not a candidate in conversion.
  EXPECT_EQ(FindCandidate(response.decision(), "welcome-offer"), nullptr);
  EXPECT_THAT(ActionIds(response.decision()),
              ::testing::ElementsAre("house-banner"));
  EXPECT_TRUE(response.decision().actions(0).decision_token().empty());

  // A hypothetical contact, never stored.
  tappa::v1::SimulateRequest hypothetical;
  hypothetical.set_channel("email");
  hypothetical.set_placement("email.weekly");
  auto& fields = *hypothetical.mutable_contact()->mutable_fields();
  fields["id"].set_string_value("nobody");
  (*fields["consents"].mutable_struct_value()->mutable_fields())["email"]
      .set_bool_value(true);
  ASSERT_RPC_OK(client_->Simulate(hypothetical, &response));
  EXPECT_THAT(ActionIds(response.decision()),
              ::testing::ElementsAre("newsletter"));

  // A bad hypothetical contact names the field.
  (*fields["counts"].mutable_struct_value()->mutable_fields())["typo"]
      .set_number_value(1);
  grpc::Status s = client_->Simulate(hypothetical, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("counts.typo"));

  EXPECT_EQ(DumpAll(), before);
}

// Round trips: a decision awaits one (two HGETALLs pipelined); the served
// touch is one script only when a cap needs it.
TEST_F(DecisioningE2eTest, CommandsPerDecision) {
  auto stats = [&]() {
    std::map<std::string, int64_t> calls;
    absl::StatusOr<SyncRedisReply> info =
        redis_->Command({"INFO", "commandstats"});
    EXPECT_TRUE(info.ok());
    for (absl::string_view line : absl::StrSplit(info->str, '\n')) {
      // cmdstat_hgetall:calls=200,usec=...
      if (!absl::ConsumePrefix(&line, "cmdstat_")) continue;
      std::vector<absl::string_view> parts = absl::StrSplit(line, ':');
      if (parts.size() < 2 || !absl::ConsumePrefix(&parts[1], "calls="))
        continue;
      int64_t n = 0;
      absl::SimpleAtoi(parts[1].substr(0, parts[1].find(',')), &n);
      calls[std::string(parts[0])] = n;
    }
    return calls;
  };
  // A server of its own whose posterior refresh (64 HGETALLs a second) does
  // not run during the count.
  server_ = StartServer({"--posterior_refresh=1h"});
  ASSERT_NE(server_, nullptr);
  client_ = std::make_unique<TappaClient>(server_->channel());
  ASSERT_TRUE(redis_->Command({"CONFIG", "RESETSTAT"}).ok());
  for (int i = 0; i < 100; ++i)
    Nba(absl::StrCat("stat-", i), "web", "web.side");
  std::map<std::string, int64_t> uncapped = stats();
  EXPECT_EQ(uncapped["hgetall"], 200);
  EXPECT_EQ(uncapped["evalsha"] + uncapped["eval"], 0);

  ASSERT_TRUE(redis_->Command({"CONFIG", "RESETSTAT"}).ok());
  for (int i = 0; i < 100; ++i)
    Nba(absl::StrCat("stat-", i), "web", "web.hero");
  WaitServed("stat-99", 1);
  std::map<std::string, int64_t> capped = stats();
  EXPECT_EQ(capped["hgetall"], 200);
  EXPECT_EQ(capped["evalsha"], 100);
  std::cout << "per decision: " << uncapped["hgetall"] / 100.0
            << " HGETALL (1 round trip) without served caps; "
            << capped["hgetall"] / 100.0 << " HGETALL + "
            << capped["evalsha"] / 100.0 << " EVALSHA (not awaited) with\n";
}

TEST_F(DecisioningE2eTest, AdaptiveRankingLearnsFromClicks) {
  // bandit-2 is always clicked, bandit-1 never: after a posterior refresh
  // (every second) bandit-2 wins nearly every Thompson draw.
  std::map<std::string, int> before;
  for (int i = 0; i < 200; ++i) {
    NextBestActionResponse r =
        Nba(absl::StrCat("bandit-", i), "web", "web.bandit");
    ASSERT_EQ(r.actions_size(), 1);
    ++before[r.actions(0).action_id()];
    if (r.actions(0).action_id() == "bandit-2") {
      ASSERT_RPC_OK(client_->Outcome(r.actions(0).decision_token(),
                                     tappa::v1::OUTCOME_CLICK));
    }
  }
  absl::SleepFor(absl::Milliseconds(2500));  // two refreshes
  std::map<std::string, int> after;
  for (int i = 0; i < 100; ++i) {
    NextBestActionResponse r =
        Nba(absl::StrCat("bandit-late-", i), "web", "web.bandit");
    ASSERT_EQ(r.actions_size(), 1);
    ++after[r.actions(0).action_id()];
  }
  std::cout << "bandit-2 share: " << before["bandit-2"] / 2.0
            << "% before learning, " << after["bandit-2"] << "% after\n";
  EXPECT_GT(after["bandit-2"], 90);
}

}  // namespace
}  // namespace tappa::testing
