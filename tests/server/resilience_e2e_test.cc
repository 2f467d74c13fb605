// End-to-end tests of what happens when things stop: Redis restarted (with
// SHUTDOWN and with SIGKILL), Redis down or stalled while the server runs,
// the server itself stopped with SIGTERM. Real processes throughout
// (process_fixture.h); ARCHITECTURE decision 6: fail soft for reads, fail
// loud for writes, lose nothing acknowledged.
#include <atomic>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/process_fixture.h"
#include "tests/server/tappa_client.h"

namespace tappa::testing {
namespace {

#define ASSERT_RPC_OK(expr)                                          \
  do {                                                               \
    grpc::Status _status = (expr);                                   \
    ASSERT_TRUE(_status.ok()) << #expr << ": " << Describe(_status); \
  } while (0)

// Generous on purpose: the bound checks that a degraded answer does not wait
// for Redis (seconds), not how fast the machine is.
constexpr absl::Duration kLatencyMargin = absl::Milliseconds(200);

class ResilienceE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    ASSERT_NO_FATAL_FAILURE(StartServer());
  }

  void StartServer(std::vector<std::string> extra_flags = {}) {
    client_.reset();
    server_.reset();
    ServerProcess::Options options;
    options.redis_url = redis_->url();
    options.extra_flags = std::move(extra_flags);
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = std::make_unique<TappaClient>(server_->channel());
  }

  void TearDown() override {
    if (HasFailure() && server_ != nullptr) {
      std::cerr << "---- tappa-server log ----\n" << server_->Log() << "\n";
    }
  }

  // Sends `singles` events one by one and a batch of `batched`, spread over
  // five contacts; adds what was acknowledged to `expected` (contact ->
  // product views).
  void SendEvents(const std::string& tag, int singles, int batched,
                  std::map<std::string, int64_t>* expected) {
    for (int i = 0; i < singles; ++i) {
      std::string contact = absl::StrCat("durable-", i % 5);
      tappa::v1::TrackEventResponse r;
      ASSERT_RPC_OK(client_->Track(
          MakeEvent(contact, absl::StrCat(tag, "-", i), "product_view", "web"),
          &r));
      ASSERT_FALSE(r.duplicate());
      ++(*expected)[contact];
    }
    tappa::v1::TrackEventsRequest batch;
    for (int i = 0; i < batched; ++i) {
      *batch.add_requests() =
          MakeEvent(absl::StrCat("durable-", i % 5),
                    absl::StrCat(tag, "-batch-", i), "product_view", "app");
    }
    tappa::v1::TrackEventsResponse response;
    ASSERT_RPC_OK(client_->TrackBatch(batch, &response));
    ASSERT_EQ(response.results_size(), batched);
    for (int i = 0; i < batched; ++i) {
      ASSERT_TRUE(response.results(i).has_response())
          << response.results(i).error().message();
      ++(*expected)[absl::StrCat("durable-", i % 5)];
    }
  }

  // Waits (bounded) until the server reads contacts again, then checks every
  // acknowledged event is counted.
  void ExpectCounts(const std::map<std::string, int64_t>& expected) {
    bool back =
        PollUntil([&] { return client_->Get(expected.begin()->first).ok(); },
                  absl::Seconds(10), absl::Milliseconds(20));
    ASSERT_TRUE(back)
        << "the server did not read from Redis again after its restart";
    for (const auto& [contact, views] : expected) {
      tappa::v1::Contact c;
      ASSERT_RPC_OK(client_->Get(contact, &c));
      EXPECT_EQ(c.counters().at("product_view_7d"), views) << contact;
    }
  }

  std::unique_ptr<RedisProcess> redis_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TappaClient> client_;
};

TEST_F(ResilienceE2eTest, RedisShutdownKeepsEveryAcknowledgedEvent) {
  std::map<std::string, int64_t> expected;
  ASSERT_NO_FATAL_FAILURE(SendEvents("before", 40, 100, &expected));
  ASSERT_TRUE(redis_->Shutdown().ok());
  ASSERT_TRUE(redis_->Restart().ok()) << redis_->Log();
  ASSERT_NO_FATAL_FAILURE(ExpectCounts(expected));
  // Writes work again (the commit script is sent anew: Redis forgot it).
  ASSERT_NO_FATAL_FAILURE(SendEvents("after", 10, 10, &expected));
  ASSERT_NO_FATAL_FAILURE(ExpectCounts(expected));
}

// appendfsync everysec: what was acknowledged more than a second ago is on
// disk, so even SIGKILL loses none of it.
TEST_F(ResilienceE2eTest,
       RedisSigkillAfterFsyncIntervalKeepsEveryAcknowledgedEvent) {
  std::map<std::string, int64_t> expected;
  ASSERT_NO_FATAL_FAILURE(SendEvents("before", 40, 100, &expected));
  absl::SleepFor(absl::Milliseconds(1500));  // past the fsync interval (1 s)
  redis_->Kill();
  ASSERT_TRUE(redis_->Restart().ok()) << redis_->Log();
  ASSERT_NO_FATAL_FAILURE(ExpectCounts(expected));
  ASSERT_NO_FATAL_FAILURE(SendEvents("after", 10, 10, &expected));
  ASSERT_NO_FATAL_FAILURE(ExpectCounts(expected));
}

// One NextBestAction that must come back degraded with the placement's
// fallback, within `budget` (+ margin). `client_timeout` zero: no client
// deadline, the server's --decision_budget applies.
void ExpectDegradedWithinBudget(const TappaClient& client,
                                absl::Duration client_timeout,
                                absl::Duration budget,
                                tappa::v1::DegradedReason reason) {
  tappa::v1::NextBestActionResponse nba;
  absl::Time start = absl::Now();
  grpc::Status status = client.Nba(MakeNba("down-1", "web", "web.home_hero"),
                                   &nba, client_timeout);
  absl::Duration took = absl::Now() - start;
  std::cout << "[ degraded ] reason " << tappa::v1::DegradedReason_Name(reason)
            << ", "
            << (client_timeout > absl::ZeroDuration()
                    ? absl::StrCat("client deadline ",
                                   absl::FormatDuration(client_timeout))
                    : absl::StrCat("no client deadline, server budget ",
                                   absl::FormatDuration(budget)))
            << ": answered in " << absl::FormatDuration(took) << std::endl;
  ASSERT_TRUE(status.ok()) << Describe(status);
  EXPECT_TRUE(nba.degraded());
  EXPECT_EQ(nba.degraded_reason(), reason);
  ASSERT_EQ(nba.actions_size(), 1);
  EXPECT_EQ(nba.actions(0).action_id(), "brand-story");
  EXPECT_TRUE(nba.actions(0).fallback());
  EXPECT_LT(took, budget + kLatencyMargin);
}

TEST_F(ResilienceE2eTest, RedisDownRefusesEventsDegradesDecisionsAndRecovers) {
  ASSERT_RPC_OK(
      client_->Track(MakeEvent("down-1", "ev-1", "product_view", "web")));

  // Stalled: Redis takes longer than the deadline (CLIENT PAUSE blocks every
  // client's commands). The decision does not wait for it.
  ASSERT_TRUE(redis_->Command({"CLIENT", "PAUSE", "800", "ALL"}).ok());
  ASSERT_NO_FATAL_FAILURE(ExpectDegradedWithinBudget(
      *client_, absl::Milliseconds(50), absl::Milliseconds(50),
      tappa::v1::DEGRADED_REASON_STORE_TIMEOUT));
  ASSERT_NO_FATAL_FAILURE(ExpectDegradedWithinBudget(
      *client_, absl::ZeroDuration(), absl::Milliseconds(20),
      tappa::v1::DEGRADED_REASON_STORE_TIMEOUT));
  bool fresh = PollUntil(
      [&] {
        tappa::v1::NextBestActionResponse r;
        return client_->Nba(MakeNba("down-1", "web", "web.home_hero"), &r)
                   .ok() &&
               !r.degraded();
      },
      absl::Seconds(5), absl::Milliseconds(20));
  ASSERT_TRUE(fresh) << "decisions did not read Redis again after the pause";

  // Down: events are refused loudly, decisions fall back at once.
  redis_->Kill();
  grpc::Status refused;
  bool unavailable = PollUntil(
      [&] {
        refused =
            client_->Track(MakeEvent("down-1", "ev-2", "product_view", "web"));
        EXPECT_FALSE(refused.ok())
            << "an event was acknowledged with Redis down";
        return refused.error_code() == grpc::StatusCode::UNAVAILABLE;
      },
      absl::Seconds(3), absl::Milliseconds(20));
  EXPECT_TRUE(unavailable) << Describe(refused);
  grpc::Status get = client_->Get("down-1");
  EXPECT_EQ(get.error_code(), grpc::StatusCode::UNAVAILABLE) << Describe(get);
  ASSERT_NO_FATAL_FAILURE(ExpectDegradedWithinBudget(
      *client_, absl::Milliseconds(50), absl::Milliseconds(50),
      tappa::v1::DEGRADED_REASON_STORE_UNAVAILABLE));
  ASSERT_NO_FATAL_FAILURE(ExpectDegradedWithinBudget(
      *client_, absl::ZeroDuration(), absl::Milliseconds(20),
      tappa::v1::DEGRADED_REASON_STORE_UNAVAILABLE));

  // Back: the server reconnects by itself; the client's retry (same event
  // id) is applied once.
  absl::Time restarted = absl::Now();
  ASSERT_TRUE(redis_->Restart().ok()) << redis_->Log();
  tappa::v1::TrackEventResponse r;
  bool recovered = PollUntil(
      [&] {
        return client_
            ->Track(MakeEvent("down-1", "ev-2", "product_view", "web"), &r)
            .ok();
      },
      absl::Seconds(5), absl::Milliseconds(20));
  ASSERT_TRUE(recovered) << "events still refused 5 s after Redis came back";
  std::cout << "[ recovery ] events accepted "
            << absl::FormatDuration(absl::Now() - restarted)
            << " after Redis restarted" << std::endl;
  EXPECT_FALSE(r.duplicate());
  tappa::v1::NextBestActionResponse nba;
  ASSERT_RPC_OK(client_->Nba(MakeNba("down-1", "web", "web.home_hero"), &nba));
  EXPECT_FALSE(nba.degraded());
  EXPECT_EQ(nba.phase(), "awareness");
  tappa::v1::Contact contact;
  ASSERT_RPC_OK(client_->Get("down-1", &contact));
  EXPECT_EQ(contact.counters().at("product_view_7d"), 2);
}

// Load shedding: at its bound of calls in flight the server refuses more at
// once (decisions get the fallback, flagged overloaded) and recovers by
// itself when the calls in flight finish.
TEST_F(ResilienceE2eTest, ShedsCallsBeyondItsBoundAndRecovers) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_inflight=2"}));
  // Hold Redis so two events stay in flight.
  ASSERT_TRUE(redis_->Command({"CLIENT", "PAUSE", "1500", "ALL"}).ok());
  std::vector<std::thread> held;
  std::atomic<int> held_ok{0};
  for (int i = 0; i < 2; ++i) {
    held.emplace_back([&, i] {
      if (client_
              ->Track(MakeEvent("shed", absl::StrCat("held-", i),
                                "product_view", "web"))
              .ok()) {
        ++held_ok;
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(300));  // both calls reach the server

  absl::Time start = absl::Now();
  grpc::Status refused =
      client_->Track(MakeEvent("shed", "refused", "product_view", "web"));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << Describe(refused);
  EXPECT_THAT(refused.error_message(), ::testing::HasSubstr("overloaded"));
  tappa::v1::NextBestActionResponse nba;
  ASSERT_RPC_OK(client_->Nba(MakeNba("shed", "web", "web.home_hero"), &nba));
  EXPECT_TRUE(nba.degraded());
  EXPECT_EQ(nba.degraded_reason(), tappa::v1::DEGRADED_REASON_OVERLOADED);
  ASSERT_EQ(nba.actions_size(), 1);
  EXPECT_TRUE(nba.actions(0).fallback());
  // Refusals do not wait for the calls in flight.
  EXPECT_LT(absl::Now() - start, kLatencyMargin);

  for (auto& t : held) t.join();
  EXPECT_EQ(held_ok.load(), 2);
  // Recovered: the places are free again.
  ASSERT_RPC_OK(
      client_->Track(MakeEvent("shed", "after", "product_view", "web")));
  ASSERT_RPC_OK(client_->Nba(MakeNba("shed", "web", "web.home_hero"), &nba));
  EXPECT_FALSE(nba.degraded());
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, ::testing::HasSubstr(
                            "tappa_decisions_degraded_total{placement="
                            "\"web.home_hero\",reason=\"overloaded\"} 1"));
  // The bound in force is exported (quick calls leave it at the maximum).
  EXPECT_THAT(*metrics, ::testing::HasSubstr("\ntappa_inflight_limit 2\n"));
  EXPECT_THAT(*metrics, ::testing::HasSubstr("\ntappa_calls_in_flight "));
}

// --max_concurrent_streams bounds the calls one connection has open: the
// next waits in its client (and runs out its deadline there, never reaching
// the server) while other connections are served; it passes once a stream
// is free.
TEST_F(ResilienceE2eTest, ConnectionsHoldAtMostTheirStreamBound) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_concurrent_streams=2"}));
  std::shared_ptr<grpc::Channel> connection = server_->NewChannel();
  TappaClient one(connection);
  ASSERT_RPC_OK(one.Track(MakeEvent("streams", "warm", "product_view", "web")));
  // Hold Redis so two events stay open on that connection.
  ASSERT_TRUE(redis_->Command({"CLIENT", "PAUSE", "1500", "WRITE"}).ok());
  std::vector<std::thread> held;
  std::atomic<int> held_ok{0};
  for (int i = 0; i < 2; ++i) {
    held.emplace_back([&, i] {
      if (one.Track(MakeEvent("streams", absl::StrCat("held-", i),
                              "product_view", "web"))
              .ok()) {
        ++held_ok;
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(300));  // both calls reach the server

  // Another connection is served meanwhile.
  absl::StatusOr<HealthState> health = server_->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthState::kServing);
  // A third call on the first connection waits for a stream, in the client.
  TappaClient impatient(connection, absl::Milliseconds(400));
  grpc::Status third =
      impatient.Track(MakeEvent("streams", "third", "product_view", "web"));
  EXPECT_EQ(third.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << Describe(third);

  for (auto& t : held) t.join();
  EXPECT_EQ(held_ok.load(), 2);
  // The server never saw the third call: three events counted, not four.
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics,
              ::testing::HasSubstr("tappa_grpc_requests_total{code=\"OK\","
                                   "method=\"tappa.v1.JourneyService/"
                                   "TrackEvent\"} 3"));
  EXPECT_THAT(*metrics, ::testing::Not(::testing::HasSubstr(
                            "code=\"DEADLINE_EXCEEDED\",method=\"tappa.v1."
                            "JourneyService/TrackEvent\"} 1")));
  // A free stream again: the connection takes calls.
  ASSERT_RPC_OK(
      one.Track(MakeEvent("streams", "after", "product_view", "web")));
}

TEST_F(ResilienceE2eTest, SigtermDrainsInFlightCallsAndExitsZero) {
  ASSERT_RPC_OK(
      client_->Track(MakeEvent("drain-1", "ev-1", "product_view", "web")));
  // Hold Redis so the next event is still in flight when SIGTERM arrives.
  ASSERT_TRUE(redis_->Command({"CLIENT", "PAUSE", "1500", "ALL"}).ok());
  grpc::Status in_flight;
  tappa::v1::TrackEventResponse r;
  std::thread call([&] {
    in_flight =
        client_->Track(MakeEvent("drain-1", "ev-2", "product_view", "web"), &r);
  });
  // No signal says "the server has the call and waits on Redis"; a short
  // wait is the only way, well inside the pause.
  absl::SleepFor(absl::Milliseconds(300));
  absl::StatusOr<int> exit_status = server_->Terminate();
  call.join();
  ASSERT_TRUE(exit_status.ok()) << exit_status.status();
  EXPECT_EQ(*exit_status, 0) << server_->Log();
  EXPECT_TRUE(in_flight.ok()) << Describe(in_flight);
  EXPECT_EQ(r.updated_counters().at("product_view_7d"), 2);
  EXPECT_TRUE(absl::StrContains(server_->Log(), "draining")) << server_->Log();

  // What it acknowledged while draining is stored.
  ASSERT_NO_FATAL_FAILURE(StartServer());
  tappa::v1::Contact contact;
  ASSERT_RPC_OK(client_->Get("drain-1", &contact));
  EXPECT_EQ(contact.counters().at("product_view_7d"), 2);
}

TEST_F(ResilienceE2eTest, HealthFollowsRedis) {
  for (const char* service :
       {"", "tappa.v1.JourneyService", "tappa.v1.DecisionService"}) {
    absl::StatusOr<HealthState> state = server_->Health(service);
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(*state, HealthState::kServing) << "service '" << service << "'";
  }
  redis_->Kill();
  absl::Time killed = absl::Now();
  bool not_serving = PollUntil(
      [&] {
        absl::StatusOr<HealthState> s = server_->Health();
        return s.ok() && *s == HealthState::kNotServing;
      },
      absl::Seconds(5), absl::Milliseconds(20));
  EXPECT_TRUE(not_serving) << "still SERVING 5 s after Redis was killed";
  std::cout << "[ health ] NOT_SERVING "
            << absl::FormatDuration(absl::Now() - killed)
            << " after Redis was killed" << std::endl;

  ASSERT_TRUE(redis_->Restart().ok()) << redis_->Log();
  bool serving = PollUntil(
      [&] {
        absl::StatusOr<HealthState> s = server_->Health();
        return s.ok() && *s == HealthState::kServing;
      },
      absl::Seconds(5), absl::Milliseconds(20));
  EXPECT_TRUE(serving) << "not SERVING 5 s after Redis came back";
}

}  // namespace
}  // namespace tappa::testing
