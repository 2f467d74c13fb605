// End-to-end tests of follow-ups: scheduling inside the event's write,
// cancellation by a later event, fire-time checks (consent, quiet hours),
// exactly-once delivery to the shard streams by several server replicas,
// and no loss when a replica is killed. Real redis-server and tappa-server
// processes (process_fixture.h); the servers run a fast test clock
// (--test_clock_scale) so 24-hour delays pass in under a second.
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tappa/v1/followup_service.grpc.pb.h"
#include "tests/server/process_fixture.h"
#include "tests/server/tappa_client.h"

namespace tappa::testing {
namespace {

#define ASSERT_RPC_OK(expr)                                          \
  do {                                                               \
    grpc::Status _status = (expr);                                   \
    ASSERT_TRUE(_status.ok()) << #expr << ": " << Describe(_status); \
  } while (0)

constexpr int kShards = 16;
// One real second is 100,000 server seconds (27.8 hours).
constexpr double kClockScale = 100'000;

struct Delivered {
  std::string followup_id, rule, contact, channel, action, dedupe, token;
  int64_t due_ms = 0, fire_ms = 0;
};

class FollowUpsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    server_ = StartServer();
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<TappaClient>(server_->channel());
  }

  std::unique_ptr<ServerProcess> StartServer() {
    ServerProcess::Options options;
    options.rules_path =
        absl::StrCat(TAPPA_SOURCE_DIR, "/tests/server/testdata/followups.yaml");
    options.redis_url = redis_->url();
    options.extra_flags = {absl::StrCat("--shards=", kShards),
                           absl::StrCat("--test_clock_scale=", kClockScale),
                           "--followup_poll=20ms"};
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  void Track(const std::string& contact, const std::string& type,
             const Properties& properties = {}) {
    static std::atomic<int> next{0};
    ASSERT_RPC_OK(client_->Track(MakeEvent(contact, absl::StrCat("ev-", next++),
                                           type, "web", "", properties)));
  }

  // Every entry of every shard stream.
  std::vector<Delivered> Stream() {
    std::vector<Delivered> out;
    for (int s = 0; s < kShards; ++s) {
      absl::StatusOr<SyncRedisReply> r = redis_->Command(
          {"XRANGE", absl::StrFormat("tp:{s:%04d}:fs", s), "-", "+"});
      EXPECT_TRUE(r.ok());
      if (!r.ok()) continue;
      for (const SyncRedisReply& e : r->elements) {
        Delivered d;
        const auto& f = e.elements[1].elements;
        for (size_t i = 0; i + 1 < f.size(); i += 2) {
          const std::string& k = f[i].str;
          const std::string& v = f[i + 1].str;
          if (k == "followup_id") d.followup_id = v;
          if (k == "rule") d.rule = v;
          if (k == "contact") d.contact = v;
          if (k == "channel") d.channel = v;
          if (k == "action") d.action = v;
          if (k == "dedupe") d.dedupe = v;
          if (k == "token") d.token = v;
          if (k == "due") absl::SimpleAtoi(v, &d.due_ms);
          if (k == "fire") absl::SimpleAtoi(v, &d.fire_ms);
        }
        out.push_back(d);
      }
    }
    return out;
  }

  int64_t PendingCount() {
    int64_t n = 0;
    for (int s = 0; s < kShards; ++s) {
      absl::StatusOr<SyncRedisReply> r =
          redis_->Command({"ZCARD", absl::StrFormat("tp:{s:%04d}:fd", s)});
      if (r.ok()) n += r->integer;
    }
    return n;
  }

  // Waits until nothing is pending and `n` entries are in the streams.
  void WaitDelivered(size_t n, absl::Duration limit = absl::Seconds(30)) {
    absl::Time give_up = absl::Now() + limit;
    while (true) {
      size_t have = Stream().size();
      if (PendingCount() == 0 && have >= n) return;
      ASSERT_LT(absl::Now(), give_up) << "delivered " << have << " of " << n
                                      << ", pending " << PendingCount();
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  std::string Metric(ServerProcess& server, const std::string& line_prefix) {
    absl::StatusOr<std::string> m = server.ScrapeMetrics();
    if (!m.ok()) return "";
    size_t at = m->find(line_prefix);
    if (at == std::string::npos) return "";
    size_t end = m->find('\n', at);
    return m->substr(at + line_prefix.size(), end - at - line_prefix.size());
  }

  // The metric once it shows `expected` (or what it shows after 5 s): the
  // server counts an outcome in the callback of the script that applied it,
  // which may run after the test already saw the outcome in Redis (the
  // replies of two Redis loops are handled on two threads).
  std::string AwaitMetric(ServerProcess& server, const std::string& line_prefix,
                          const std::string& expected) {
    absl::Time give_up = absl::Now() + absl::Seconds(5);
    std::string value = Metric(server, line_prefix);
    while (value != expected && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(10));
      value = Metric(server, line_prefix);
    }
    return value;
  }

  std::unique_ptr<RedisProcess> redis_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TappaClient> client_;
};

TEST_F(FollowUpsE2eTest, CartReminderFiresAfterTheDelayButNotAfterAPurchase) {
  Track("ann", "consent", {{"email", true}});
  Track("bob", "consent", {{"email", true}});
  Track("ann", "cart_add");
  Track("bob", "cart_add");
  Track("bob", "purchase");  // cancels bob's reminder
  WaitDelivered(1);
  std::vector<Delivered> d = Stream();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].contact, "ann");
  EXPECT_EQ(d[0].rule, "cart-reminder");
  EXPECT_EQ(d[0].channel, "email");
  EXPECT_EQ(d[0].action, "cart-reminder-email");
  EXPECT_EQ(d[0].followup_id.size(), 16u);
  EXPECT_FALSE(d[0].token.empty());
  // Fired after its due time, which is 24 hours (server time) after the
  // event.
  EXPECT_GE(d[0].fire_ms, d[0].due_ms);
  // Nothing more comes for bob.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Stream().size(), 1u);
  EXPECT_EQ(AwaitMetric(*server_,
                        "tappa_followups_total{outcome=\"cancelled\"} ", "1"),
            "1");
  EXPECT_EQ(AwaitMetric(*server_,
                        "tappa_followups_total{outcome=\"delivered\"} ", "1"),
            "1");
  // The decision token of a follow-up reports outcomes like any other.
  tappa::v1::ReportOutcomeResponse outcome;
  ASSERT_RPC_OK(
      client_->Outcome(d[0].token, tappa::v1::OUTCOME_CLICK, &outcome));
  EXPECT_EQ(outcome.action_id(), "cart-reminder-email");
}

TEST_F(FollowUpsE2eTest, ConsentWithdrawnBeforeFireTimeDropsIt) {
  Track("cy", "consent", {{"email", true}});
  Track("cy", "cart_add");
  Track("cy", "consent", {{"email", false}});
  absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (PendingCount() != 0) {
    ASSERT_LT(absl::Now(), give_up);
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(Stream().empty());
  EXPECT_EQ(
      AwaitMetric(*server_,
                  "tappa_followups_total{outcome=\"dropped_consent\"} ", "1"),
      "1");
}

TEST_F(FollowUpsE2eTest, QuietHoursPostponeIt) {
  // A time zone where it is about 21:00 on the server's clock now: the
  // nudge, due an hour later, falls in the sms quiet hours (21:00-09:00)
  // and waits for 09:00. The server's clock runs kClockScale times faster
  // than real time from its start, so "now" is read from the server (an
  // event's receive time), not from this process: the ~0.38 s of real time
  // the quiet hours leave are enough for the next two events.
  tappa::v1::TrackEventResponse probe;
  ASSERT_RPC_OK(client_->Track(
      MakeEvent("dee-probe", "ev-probe", "view", "web"), &probe));
  absl::Time server_now = absl::FromUnixSeconds(probe.receive_time().seconds());
  int utc_hour = absl::ToCivilHour(server_now, absl::UTCTimeZone()).hour();
  int offset = ((21 - utc_hour) % 24 + 24 + 12) % 24 - 12;  // [-12, 11]
  std::string zone = offset == 0  ? "Etc/GMT"
                     : offset > 0 ? absl::StrCat("Etc/GMT-", offset)
                                  : absl::StrCat("Etc/GMT+", -offset);
  Track("dee", "identify", {{"timezone", zone}});
  Track("dee", "sms_nudge");
  WaitDelivered(1);
  std::vector<Delivered> d = Stream();
  ASSERT_EQ(d.size(), 1u);
  absl::TimeZone tz;
  ASSERT_TRUE(absl::LoadTimeZone(zone, &tz));
  int fired_hour =
      absl::ToCivilHour(absl::FromUnixMillis(d[0].fire_ms), tz).hour();
  EXPECT_GE(fired_hour, 9) << zone;
  EXPECT_LT(fired_hour, 21) << zone;
  EXPECT_EQ(AwaitMetric(*server_,
                        "tappa_followups_total{outcome=\"postponed\"} ", "1"),
            "1");
}

TEST_F(FollowUpsE2eTest, DedupeKeyAndDeletion) {
  // Two campaigns: two follow-ups; the same campaign again: still two.
  Track("eli", "signup", {{"campaign", std::string("spring")}});
  Track("eli", "signup", {{"campaign", std::string("spring")}});
  Track("eli", "signup", {{"campaign", std::string("summer")}});
  Track("fox", "signup", {{"campaign", std::string("spring")}});
  // Erasing fox removes its pending follow-up before it fires.
  ASSERT_RPC_OK(client_->Delete("fox"));
  WaitDelivered(2);
  absl::SleepFor(absl::Milliseconds(200));
  std::vector<Delivered> d = Stream();
  ASSERT_EQ(d.size(), 2u);
  std::set<std::string> keys;
  for (const Delivered& x : d) {
    EXPECT_EQ(x.contact, "eli");
    EXPECT_EQ(x.action, "push-welcome");  // decided on the placement
    keys.insert(x.dedupe);
  }
  EXPECT_THAT(keys, ::testing::ElementsAre("spring", "summer"));
}

// Reads up to `n` deliveries from a subscription, waiting at most `limit`.
std::vector<tappa::v1::FollowUpDelivery> Receive(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& consumer,
    int n, absl::Duration limit) {
  auto stub = tappa::v1::FollowUpService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + limit));
  tappa::v1::SubscribeFollowUpsRequest request;
  request.set_group("automation");
  request.set_consumer(consumer);
  request.set_visibility_timeout_seconds(1);
  auto reader = stub->SubscribeFollowUps(&context, request);
  std::vector<tappa::v1::FollowUpDelivery> out;
  tappa::v1::SubscribeFollowUpsResponse r;
  while (static_cast<int>(out.size()) < n && reader->Read(&r)) {
    out.push_back(r.delivery());
  }
  context.TryCancel();
  reader->Finish();
  return out;
}

TEST_F(FollowUpsE2eTest, GrpcDeliveryIsRedeliveredUntilAcknowledged) {
  Track("gil", "consent", {{"email", true}});
  Track("gil", "cart_add");
  WaitDelivered(1);
  // Consumer a takes it and does not acknowledge.
  std::vector<tappa::v1::FollowUpDelivery> first =
      Receive(server_->channel(), "a", 1, absl::Seconds(10));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].contact_id(), "gil");
  EXPECT_EQ(first[0].rule_id(), "cart-reminder");
  EXPECT_EQ(first[0].action().action_id(), "cart-reminder-email");
  EXPECT_EQ(first[0].action().content().fields().at("subject").string_value(),
            "You left something in your cart");
  EXPECT_FALSE(first[0].action().decision_token().empty());
  EXPECT_EQ(first[0].delivery_count(), 1);
  // After the visibility timeout (1 s), consumer b gets it again, through
  // another replica: the same follow-up id.
  std::unique_ptr<ServerProcess> other = StartServer();
  ASSERT_NE(other, nullptr);
  std::vector<tappa::v1::FollowUpDelivery> again =
      Receive(other->channel(), "b", 1, absl::Seconds(10));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].followup_id(), first[0].followup_id());
  EXPECT_GE(again[0].delivery_count(), 2);
  // Acknowledged, it does not come back.
  auto stub = tappa::v1::FollowUpService::NewStub(server_->channel());
  grpc::ClientContext context;
  tappa::v1::AckFollowUpRequest ack;
  ack.set_group("automation");
  ack.add_delivery_ids(again[0].delivery_id());
  tappa::v1::AckFollowUpResponse acked;
  ASSERT_RPC_OK(stub->AckFollowUp(&context, ack, &acked));
  EXPECT_EQ(acked.acknowledged(), 1);
  EXPECT_TRUE(
      Receive(server_->channel(), "c", 1, absl::Milliseconds(2500)).empty());
  // A malformed delivery id is refused, naming it.
  grpc::ClientContext bad_context;
  tappa::v1::AckFollowUpRequest bad;
  bad.set_group("automation");
  bad.add_delivery_ids("nonsense");
  grpc::Status s = stub->AckFollowUp(&bad_context, bad, &acked);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("delivery_ids[0]"));
}

// Three replicas poll the same shards: each of 10,000 due follow-ups is
// delivered exactly once.
TEST_F(FollowUpsE2eTest, ThreeReplicasDeliverEachFollowUpExactlyOnce) {
  std::unique_ptr<ServerProcess> second = StartServer();
  std::unique_ptr<ServerProcess> third = StartServer();
  ASSERT_NE(second, nullptr);
  ASSERT_NE(third, nullptr);
  constexpr int kFollowUps = 10'000;
  for (int b = 0; b < kFollowUps / 500; ++b) {
    tappa::v1::TrackEventsRequest batch;
    for (int i = 0; i < 500; ++i) {
      int n = b * 500 + i;
      *batch.add_requests() =
          MakeEvent(absl::StrCat("many-", n), absl::StrCat("signup-", n),
                    "signup", "web", "", {{"campaign", std::string("x")}});
    }
    tappa::v1::TrackEventsResponse response;
    ASSERT_RPC_OK(client_->TrackBatch(batch, &response));
  }
  WaitDelivered(kFollowUps, absl::Seconds(60));
  std::vector<Delivered> d = Stream();
  std::set<std::string> ids;
  for (const Delivered& x : d) ids.insert(x.followup_id);
  EXPECT_EQ(d.size(), static_cast<size_t>(kFollowUps));
  EXPECT_EQ(ids.size(), static_cast<size_t>(kFollowUps));
  int64_t by_replica = 0;
  for (ServerProcess* s : {server_.get(), second.get(), third.get()}) {
    std::string n = Metric(*s, "tappa_followups_total{outcome=\"delivered\"} ");
    int64_t v = 0;
    absl::SimpleAtoi(n, &v);
    by_replica += v;
    std::cout << "replica delivered " << v << "\n";
  }
  EXPECT_EQ(by_replica, kFollowUps);
}

// A replica killed with SIGKILL while 1,000 follow-ups are due loses none:
// the other delivers them.
TEST_F(FollowUpsE2eTest, AKilledReplicaLosesNothing) {
  std::unique_ptr<ServerProcess> victim = StartServer();
  ASSERT_NE(victim, nullptr);
  constexpr int kFollowUps = 1'000;
  tappa::v1::TrackEventsRequest batch;
  for (int b = 0; b < 2; ++b) {
    batch.clear_requests();
    for (int i = 0; i < 500; ++i) {
      int n = b * 500 + i;
      *batch.add_requests() =
          MakeEvent(absl::StrCat("kill-", n), absl::StrCat("k-", n), "signup",
                    "web", "", {{"campaign", std::string("y")}});
    }
    ASSERT_RPC_OK(client_->TrackBatch(batch));
  }
  // Due 72 ms (real) after scheduling: kill the victim while they fire.
  absl::SleepFor(absl::Milliseconds(80));
  ASSERT_EQ(kill(victim->pid(), SIGKILL), 0);
  WaitDelivered(kFollowUps);
  std::vector<Delivered> d = Stream();
  std::set<std::string> ids;
  for (const Delivered& x : d) ids.insert(x.followup_id);
  EXPECT_EQ(d.size(), static_cast<size_t>(kFollowUps));
  EXPECT_EQ(ids.size(), static_cast<size_t>(kFollowUps));
}

}  // namespace
}  // namespace tappa::testing
