// End-to-end tests of journey tracking and next-best-action: the real
// tappa-server binary over real gRPC channels, against a private
// redis-server per test (process_fixture.h). Redis is inspected directly
// where the contract is about storage (keys left after an erasure, memory
// per contact, commands per request).
#include <stdio.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/process_fixture.h"
#include "tests/server/tappa_client.h"

namespace tappa::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

#define ASSERT_RPC_OK(expr)                                          \
  do {                                                               \
    grpc::Status _status = (expr);                                   \
    ASSERT_TRUE(_status.ok()) << #expr << ": " << Describe(_status); \
  } while (0)

// `pattern` with Redis glob characters escaped, for SCAN MATCH.
std::string GlobEscape(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
      out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// Every key whose name matches `pattern`, by SCAN over the whole keyspace
// (KEYS would do too, but SCAN is what an operator would run).
std::vector<std::string> ScanKeys(RedisProcess& redis,
                                  const std::string& pattern) {
  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    absl::StatusOr<SyncRedisReply> r =
        redis.Command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (!r.ok() || r->elements.size() != 2) {
      ADD_FAILURE() << "SCAN failed: "
                    << (r.ok() ? r->str : r.status().ToString());
      return keys;
    }
    cursor = r->elements[0].str;
    for (const SyncRedisReply& k : r->elements[1].elements)
      keys.push_back(k.str);
  } while (cursor != "0");
  std::sort(keys.begin(), keys.end());
  return keys;
}

// Every key that mentions the contact id.
std::vector<std::string> KeysOfContact(RedisProcess& redis,
                                       const std::string& contact_id) {
  return ScanKeys(redis, absl::StrCat("*", GlobEscape(contact_id), "*"));
}

// "tp:{s:NNNN}:", the prefix of the contact's shard, read off its hash key
// (so the test does not re-implement the shard function).
std::string ShardPrefixOf(RedisProcess& redis, const std::string& contact_id) {
  for (const std::string& key : KeysOfContact(redis, contact_id)) {
    size_t at = key.find(":c:");
    if (at != std::string::npos && key.substr(at + 3) == contact_id) {
      return key.substr(0, at + 1);
    }
  }
  ADD_FAILURE() << "no hash key for contact " << contact_id;
  return "";
}

// The shard's count of contacts in `phase` (0 when absent).
int64_t ShardPhaseCount(RedisProcess& redis, const std::string& prefix,
                        const std::string& phase) {
  absl::StatusOr<SyncRedisReply> r =
      redis.Command({"HGET", prefix + "phases", phase});
  int64_t n = 0;
  if (r.ok() && r->type == SyncRedisReply::Type::kString) {
    EXPECT_TRUE(absl::SimpleAtoi(r->str, &n)) << r->str;
  }
  return n;
}

std::vector<std::string> ActionIds(
    const tappa::v1::NextBestActionResponse& response) {
  std::vector<std::string> ids;
  for (const auto& a : response.actions()) ids.push_back(a.action_id());
  return ids;
}

// `INFO commandstats` as command -> calls.
std::map<std::string, int64_t> CommandCalls(RedisProcess& redis) {
  std::map<std::string, int64_t> calls;
  absl::StatusOr<SyncRedisReply> info = redis.Command({"INFO", "commandstats"});
  if (!info.ok()) {
    ADD_FAILURE() << info.status();
    return calls;
  }
  // cmdstat_hgetall:calls=3,usec=12,usec_per_call=4.00,...
  for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
    if (!absl::ConsumePrefix(&line, "cmdstat_")) continue;
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    for (absl::string_view field :
         absl::StrSplit(line.substr(colon + 1), ',')) {
      if (absl::ConsumePrefix(&field, "calls=")) {
        int64_t n = 0;
        if (absl::SimpleAtoi(field, &n))
          calls[std::string(line.substr(0, colon))] = n;
      }
    }
  }
  return calls;
}

std::map<std::string, int64_t> Delta(
    const std::map<std::string, int64_t>& before,
    const std::map<std::string, int64_t>& after) {
  std::map<std::string, int64_t> delta;
  for (const auto& [command, n] : after) {
    auto it = before.find(command);
    int64_t d = n - (it == before.end() ? 0 : it->second);
    if (d != 0) delta[command] = d;
  }
  return delta;
}

// One command seen by MONITOR.
struct MonitoredCommand {
  std::string client;   // "127.0.0.1:port", or "lua" inside a script
  std::string command;  // upper-cased
  std::string first_arg;
};

// Parses `1700000000.123456 [0 127.0.0.1:5000] "HGETALL" "key"`.
bool ParseMonitorLine(absl::string_view line, MonitoredCommand* out) {
  size_t open = line.find('['), close = line.find(']');
  if (open == absl::string_view::npos || close == absl::string_view::npos)
    return false;
  absl::string_view client = line.substr(open + 1, close - open - 1);
  size_t space = client.find(' ');
  out->client = std::string(
      space == absl::string_view::npos ? client : client.substr(space + 1));
  std::vector<std::string> tokens;
  std::string current;
  bool quoted = false;
  for (size_t i = close + 1; i < line.size() && tokens.size() < 2; ++i) {
    char c = line[i];
    if (!quoted) {
      if (c == '"') quoted = true;
    } else if (c == '\\' && i + 1 < line.size()) {
      current.push_back(line[++i]);
    } else if (c == '"') {
      tokens.push_back(current);
      current.clear();
      quoted = false;
    } else {
      current.push_back(c);
    }
  }
  if (tokens.empty()) return false;
  out->command = absl::AsciiStrToUpper(tokens[0]);
  out->first_arg = tokens.size() > 1 ? tokens[1] : "";
  return true;
}

class JourneyE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    ASSERT_NO_FATAL_FAILURE(StartServer());
  }

  // (Re)starts tappa-server on redis_ (retail.yaml unless `rules` says).
  void StartServer(std::vector<std::string> flags = {},
                   std::string rules = "") {
    client_.reset();
    server_.reset();
    ServerProcess::Options options;
    options.redis_url = redis_->url();
    options.rules_path = rules;
    // These tests drive single contacts far faster than a person could; the
    // per-contact event rate limit has its own tests (security_e2e_test).
    options.extra_flags = {"--contact_events_per_second=0"};
    for (std::string& f : flags) options.extra_flags.push_back(std::move(f));
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

  std::unique_ptr<RedisProcess> redis_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TappaClient> client_;
};

// The worked journey of rules/examples/retail.yaml, across channels: a post
// on Instagram, reviews on the web, a purchase, the newsletter, a tagged
// share. Each step moves one phase, and the decisions follow the phase.
TEST_F(JourneyE2eTest, WorkedJourneyMovesThroughAllFivePhases) {
  const std::string kAna = "ana@example.com";
  tappa::v1::TrackEventResponse r;
  tappa::v1::NextBestActionResponse nba;

  // 1. Sees a promotional post on Instagram: a new contact, in awareness.
  ASSERT_RPC_OK(
      client_->Track(MakeEvent(kAna, "ev-1", "post_view", "social", "",
                               {{"network", std::string("instagram")}}),
                     &r));
  EXPECT_TRUE(r.contact_created());
  EXPECT_FALSE(r.duplicate());
  EXPECT_EQ(r.previous_phase(), "");
  EXPECT_EQ(r.phase(), "awareness");
  EXPECT_EQ(r.updated_counters().at("social_views_30d"), 1);
  // Arriving on the home page from Instagram: the lookbook leads (priority
  // 10, and only for paid-social referrers), the brand story follows.
  ASSERT_RPC_OK(
      client_->Nba(MakeNba(kAna, "web", "web.home_hero",
                           {{"referrer", std::string("instagram")}}, 5),
                   &nba));
  EXPECT_EQ(nba.phase(), "awareness");
  EXPECT_FALSE(nba.degraded());
  EXPECT_THAT(ActionIds(nba),
              ElementsAre("influencer-lookbook", "brand-story"));
  EXPECT_FALSE(nba.ruleset_version().empty());
  // Without the referrer, only the brand story.
  ASSERT_RPC_OK(
      client_->Nba(MakeNba(kAna, "web", "web.home_hero", {}, 5), &nba));
  EXPECT_THAT(ActionIds(nba), ElementsAre("brand-story"));

  // 2. Reads reviews on the website: consideration.
  ASSERT_RPC_OK(client_->Track(
      MakeEvent(kAna, "ev-2", "review_read", "web", "web.product_detail"), &r));
  EXPECT_FALSE(r.contact_created());
  EXPECT_EQ(r.previous_phase(), "awareness");
  EXPECT_EQ(r.phase(), "consideration");
  EXPECT_TRUE(r.phase_changed());
  EXPECT_EQ(r.updated_counters().at("review_read_7d"), 1);
  ASSERT_RPC_OK(client_->Nba(MakeNba(kAna, "web", "web.product_detail"), &nba));
  EXPECT_EQ(nba.phase(), "consideration");
  ASSERT_GE(nba.actions_size(), 1);
  EXPECT_EQ(nba.actions(0).action_id(), "top-reviews");

  // 3. Buys: conversion.
  ASSERT_RPC_OK(
      client_->Track(MakeEvent(kAna, "ev-3", "purchase", "web", "web.checkout",
                               {{"order_id", std::string("o-1")}}),
                     &r));
  EXPECT_EQ(r.previous_phase(), "consideration");
  EXPECT_EQ(r.phase(), "conversion");
  EXPECT_EQ(r.updated_counters().at("purchases"), 1);
  // Just bought and not subscribed: the newsletter offer leads the hero.
  ASSERT_RPC_OK(client_->Nba(MakeNba(kAna, "web", "web.home_hero"), &nba));
  EXPECT_EQ(nba.phase(), "conversion");
  ASSERT_GE(nba.actions_size(), 1);
  EXPECT_EQ(nba.actions(0).action_id(), "newsletter-signup-10");

  // 4. Subscribes to the newsletter: retention.
  ASSERT_RPC_OK(client_->Track(
      MakeEvent(kAna, "ev-4", "newsletter_subscribe", "email"), &r));
  EXPECT_EQ(r.previous_phase(), "conversion");
  EXPECT_EQ(r.phase(), "retention");
  ASSERT_RPC_OK(
      client_->Nba(MakeNba(kAna, "app", "app.home_feed", {}, 5), &nba));
  EXPECT_EQ(nba.phase(), "retention");
  // Retention candidates of the app feed whose conditions hold for Ana (one
  // purchase, no NPS yet): the review request (value 4), the NPS survey (2).
  EXPECT_THAT(ActionIds(nba), ElementsAre("review-request", "nps-survey"));

  // 5. Shares a photo on Instagram tagging the brand: advocacy.
  ASSERT_RPC_OK(client_->Track(MakeEvent(kAna, "ev-5", "ugc_share", "social",
                                         "", {{"brand_tagged", true}}),
                               &r));
  EXPECT_EQ(r.previous_phase(), "retention");
  EXPECT_EQ(r.phase(), "advocacy");
  EXPECT_EQ(r.updated_counters().at("tagged_shares"), 1);
  ASSERT_RPC_OK(
      client_->Nba(MakeNba(kAna, "app", "app.home_feed", {}, 5), &nba));
  EXPECT_EQ(nba.phase(), "advocacy");
  ASSERT_GE(nba.actions_size(), 1);
  EXPECT_EQ(nba.actions(0).action_id(), "ugc-thanks");

  // The contact: five history entries, newest first, with what caused each.
  tappa::v1::Contact contact;
  ASSERT_RPC_OK(client_->Get(kAna, &contact));
  EXPECT_EQ(contact.phase(), "advocacy");
  ASSERT_EQ(contact.phase_history_size(), 5);
  struct Expected {
    const char* from;
    const char* to;
    const char* type;
    const char* channel;
  };
  const Expected kHistory[] = {
      {"retention", "advocacy", "ugc_share", "social"},
      {"conversion", "retention", "newsletter_subscribe", "email"},
      {"consideration", "conversion", "purchase", "web"},
      {"awareness", "consideration", "review_read", "web"},
      {"", "awareness", "post_view", "social"},
  };
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(absl::StrCat("history entry ", i));
    const tappa::v1::PhaseChange& h = contact.phase_history(i);
    EXPECT_EQ(h.previous_phase(), kHistory[i].from);
    EXPECT_EQ(h.phase(), kHistory[i].to);
    EXPECT_EQ(h.event_type(), kHistory[i].type);
    EXPECT_EQ(h.channel(), kHistory[i].channel);
    if (i > 0) {
      EXPECT_GE(contact.phase_history(i - 1).change_time().seconds(),
                h.change_time().seconds());
    }
  }
  EXPECT_EQ(contact.phase_start_time().seconds(),
            contact.phase_history(0).change_time().seconds());
  const auto& counters = contact.counters();
  EXPECT_EQ(counters.at("social_views_30d"), 1);
  EXPECT_EQ(counters.at("review_read_7d"), 1);
  EXPECT_EQ(counters.at("purchases"), 1);
  EXPECT_EQ(counters.at("tagged_shares"), 1);
  EXPECT_EQ(counters.at("product_view_7d"), 0);
  EXPECT_EQ(counters.at("cart_add_7d"), 0);
  std::set<std::string> channels;
  for (const auto& c : contact.channels()) channels.insert(c.channel());
  EXPECT_EQ(channels, (std::set<std::string>{"email", "social", "web"}));
}

TEST_F(JourneyE2eTest, DuplicateEventIdsAreNotCountedTwice) {
  tappa::v1::TrackEventResponse first, again;
  auto view = MakeEvent("dup-a", "ev-same", "product_view", "web",
                        "web.product_detail");
  ASSERT_RPC_OK(client_->Track(view, &first));
  EXPECT_FALSE(first.duplicate());
  EXPECT_EQ(first.updated_counters().at("product_view_7d"), 1);

  ASSERT_RPC_OK(client_->Track(view, &again));
  EXPECT_TRUE(again.duplicate());
  EXPECT_THAT(again.updated_counters(), IsEmpty());
  // A repeat returns the first delivery's result.
  EXPECT_EQ(again.phase(), first.phase());
  EXPECT_EQ(again.previous_phase(), first.previous_phase());
  EXPECT_EQ(again.receive_time().seconds(), first.receive_time().seconds());
  EXPECT_EQ(again.receive_time().nanos() / 1000000,
            first.receive_time().nanos() / 1000000);
  EXPECT_TRUE(again.contact_created());

  // In a batch, too (a retried batch comes back as duplicates).
  tappa::v1::TrackEventsRequest batch;
  *batch.add_requests() = view;
  *batch.add_requests() = MakeEvent("dup-a", "ev-other", "product_view", "web",
                                    "web.product_detail");
  tappa::v1::TrackEventsResponse batch_response;
  ASSERT_RPC_OK(client_->TrackBatch(batch, &batch_response));
  ASSERT_EQ(batch_response.results_size(), 2);
  EXPECT_TRUE(batch_response.results(0).response().duplicate());
  EXPECT_FALSE(batch_response.results(1).response().duplicate());

  tappa::v1::Contact contact;
  ASSERT_RPC_OK(client_->Get("dup-a", &contact));
  EXPECT_EQ(contact.counters().at("product_view_7d"), 2);

  // The same event id on another contact is another event.
  tappa::v1::TrackEventResponse other;
  auto view_b = view;
  view_b.set_contact_id("dup-b");
  ASSERT_RPC_OK(client_->Track(view_b, &other));
  EXPECT_FALSE(other.duplicate());
  EXPECT_TRUE(other.contact_created());
  ASSERT_RPC_OK(client_->Get("dup-b", &contact));
  EXPECT_EQ(contact.counters().at("product_view_7d"), 1);
}

// 8 clients × 100 events on one contact, concurrently, through two server
// processes sharing the Redis: one server alone serializes its own events per
// contact, so only a second one makes the atomic conditional write (version
// check and re-read) do real work.
TEST_F(JourneyE2eTest, ConcurrentEventsOnOneContactAreAllCounted) {
  ServerProcess::Options options;
  options.redis_url = redis_->url();
  options.extra_flags = {"--contact_events_per_second=0"};
  absl::StatusOr<std::unique_ptr<ServerProcess>> second =
      ServerProcess::Start(options);
  ASSERT_TRUE(second.ok()) << second.status();

  constexpr int kClients = 8;
  constexpr int kEventsPerClient = 100;
  const std::string kContact = "crowded";
  std::atomic<int> aborted{0}, unavailable{0}, deadline{0}, failed{0},
      duplicates{0};
  std::vector<std::vector<int64_t>> counts(kClients);
  std::map<std::string, int64_t> before = CommandCalls(*redis_);
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    ServerProcess* server = t % 2 == 0 ? server_.get() : second->get();
    threads.emplace_back([&, t, channel = server->NewChannel()] {
      TappaClient client(channel);
      for (int i = 0; i < kEventsPerClient; ++i) {
        auto event = MakeEvent(kContact, absl::StrCat("c", t, "-e", i),
                               "product_view", "web", "web.product_detail");
        tappa::v1::TrackEventResponse r;
        grpc::Status status;
        // Retrying with the same event id is always safe (idempotency).
        for (int attempt = 1; attempt <= 50; ++attempt) {
          status = client.Track(event, &r);
          if (status.ok()) break;
          switch (status.error_code()) {
            case grpc::StatusCode::ABORTED:
              ++aborted;
              break;
            case grpc::StatusCode::UNAVAILABLE:
              ++unavailable;
              break;
            case grpc::StatusCode::DEADLINE_EXCEEDED:
              ++deadline;
              break;
            default:
              attempt = 1000;  // not retryable
          }
          if (attempt < 1000) absl::SleepFor(absl::Milliseconds(attempt));
        }
        if (!status.ok()) {
          ++failed;
          ADD_FAILURE() << "event " << event.event_id() << ": "
                        << Describe(status);
        } else if (r.duplicate()) {
          ++duplicates;  // a retry of an event applied before its answer was
                         // lost
        } else {
          counts[t].push_back(r.updated_counters().at("product_view_7d"));
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();

  std::cout << "[ atomicity ] client retries: ABORTED " << aborted
            << ", UNAVAILABLE " << unavailable << ", DEADLINE_EXCEEDED "
            << deadline << "; duplicates on retry " << duplicates << std::endl;
  RecordProperty("retries_aborted", aborted.load());
  RecordProperty("retries_unavailable", unavailable.load());
  RecordProperty("retries_deadline_exceeded", deadline.load());
  // Server-side version conflicts (re-read and re-evaluated by the server,
  // invisible to clients): commit scripts run beyond one per event.
  std::map<std::string, int64_t> delta = Delta(before, CommandCalls(*redis_));
  int64_t commits = delta["evalsha"] + delta["eval"];
  std::cout << "[ atomicity ] commit scripts run: " << commits << " for "
            << kClients * kEventsPerClient << " events ("
            << commits - kClients * kEventsPerClient
            << " version conflicts retried inside the servers)" << std::endl;
  RecordProperty("server_side_conflicts",
                 static_cast<int>(commits - kClients * kEventsPerClient));
  EXPECT_EQ(failed, 0);

  tappa::v1::Contact contact;
  ASSERT_RPC_OK(client_->Get(kContact, &contact));
  EXPECT_EQ(contact.counters().at("product_view_7d"),
            kClients * kEventsPerClient);

  // Each applied event saw a count of its own: no two writes read the same
  // version, none was lost.
  std::vector<int64_t> all;
  for (const auto& c : counts) all.insert(all.end(), c.begin(), c.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end())
      << "a count seen twice";
  EXPECT_EQ(static_cast<int>(all.size()) + duplicates,
            kClients * kEventsPerClient);
  if (!all.empty()) {
    EXPECT_GE(all.front(), 1);
    EXPECT_LE(all.back(), kClients * kEventsPerClient);
  }

  // One transition (the third view), recorded once, counted once.
  EXPECT_EQ(contact.phase(), "consideration");
  ASSERT_EQ(contact.phase_history_size(), 2);
  EXPECT_EQ(contact.phase_history(0).phase(), "consideration");
  std::string prefix = ShardPrefixOf(*redis_, kContact);
  EXPECT_EQ(ShardPhaseCount(*redis_, prefix, "consideration"), 1);
  EXPECT_EQ(ShardPhaseCount(*redis_, prefix, "awareness"), 0);
}

TEST_F(JourneyE2eTest, DeleteContactLeavesNoKey) {
  const std::string kGone = "forget-me";
  const std::string kKept = "keep-me";
  for (const std::string& id : {kGone, kKept}) {
    ASSERT_RPC_OK(client_->Track(MakeEvent(id, "ev-1", "post_view", "social")));
    ASSERT_RPC_OK(client_->Track(MakeEvent(id, "ev-2", "review_read", "web")));
    ASSERT_RPC_OK(client_->Track(MakeEvent(id, "ev-3", "product_view", "web")));
  }
  std::vector<std::string> keys = KeysOfContact(*redis_, kGone);
  EXPECT_EQ(keys.size(), 2u)
      << absl::StrJoin(keys, ", ");  // hash (with event ids), history
  std::string prefix = ShardPrefixOf(*redis_, kGone);
  int64_t before = ShardPhaseCount(*redis_, prefix, "consideration");
  EXPECT_GE(before, 1);

  tappa::v1::DeleteContactResponse deleted;
  ASSERT_RPC_OK(client_->Delete(kGone, &deleted));
  EXPECT_TRUE(deleted.existed());
  EXPECT_THAT(KeysOfContact(*redis_, kGone), IsEmpty());
  EXPECT_EQ(ShardPhaseCount(*redis_, prefix, "consideration"), before - 1);
  grpc::Status get = client_->Get(kGone);
  EXPECT_EQ(get.error_code(), grpc::StatusCode::NOT_FOUND) << Describe(get);

  // Erasing again is a no-op that counts nothing down twice.
  ASSERT_RPC_OK(client_->Delete(kGone, &deleted));
  EXPECT_FALSE(deleted.existed());
  EXPECT_EQ(ShardPhaseCount(*redis_, prefix, "consideration"), before - 1);

  // The other contact is untouched.
  EXPECT_EQ(KeysOfContact(*redis_, kKept).size(), 2u);
  tappa::v1::Contact kept;
  ASSERT_RPC_OK(client_->Get(kKept, &kept));
  EXPECT_EQ(kept.counters().at("product_view_7d"), 1);

  // After an erasure the old event ids are forgotten too: a re-sent event
  // makes a new contact.
  tappa::v1::TrackEventResponse again;
  ASSERT_RPC_OK(
      client_->Track(MakeEvent(kGone, "ev-1", "post_view", "social"), &again));
  EXPECT_FALSE(again.duplicate());
  EXPECT_TRUE(again.contact_created());
}

// Every bad input is INVALID_ARGUMENT with a message that starts with the
// field at fault, and the server keeps serving.
TEST_F(JourneyE2eTest, BadInputsAreInvalidArgumentNamingTheField) {
  const auto valid = MakeEvent("bad-inputs", "ev-ok", "product_view", "web",
                               "web.product_detail");
  const auto valid_nba = MakeNba("bad-inputs", "web", "web.home_hero");
  auto event = [&](auto change) {
    return [this, valid, change] {
      auto request = valid;
      change(request);
      return client_->Track(request);
    };
  };
  auto nba = [&](auto change) {
    return [this, valid_nba, change] {
      auto request = valid_nba;
      change(request);
      tappa::v1::NextBestActionResponse ignored;
      return client_->Nba(request, &ignored);
    };
  };
  auto batch = [&](int n) {
    return [this, valid, n] {
      tappa::v1::TrackEventsRequest request;
      for (int i = 0; i < n; ++i) {
        auto e = valid;
        e.set_event_id(absl::StrCat("batch-", i));
        *request.add_requests() = e;
      }
      return client_->TrackBatch(request);
    };
  };
  const std::string k129(129, 'x');
  struct Case {
    std::string name;
    std::function<grpc::Status()> call;
    std::string field;
  };
  std::vector<Case> cases = {
      {"empty contact_id", event([](auto& r) { r.set_contact_id(""); }),
       "contact_id"},
      {"129-byte contact_id", event([&](auto& r) { r.set_contact_id(k129); }),
       "contact_id"},
      {"control character in contact_id",
       event([](auto& r) { r.set_contact_id("a\nb"); }), "contact_id"},
      {"empty event_id", event([](auto& r) { r.set_event_id(""); }),
       "event_id"},
      {"129-byte event_id", event([&](auto& r) { r.set_event_id(k129); }),
       "event_id"},
      {"type Bad-Type", event([](auto& r) { r.set_type("Bad-Type"); }), "type"},
      {"empty type", event([](auto& r) { r.set_type(""); }), "type"},
      {"unknown channel", event([](auto& r) { r.set_channel("fax"); }),
       "channel"},
      {"empty channel", event([](auto& r) { r.set_channel(""); }), "channel"},
      {"placement of another channel",
       event([](auto& r) { r.set_placement("email.newsletter_slot"); }),
       "placement"},
      {"unknown placement",
       event([](auto& r) { r.set_placement("web.nowhere"); }), "placement"},
      {"10,000 properties", event([](auto& r) {
         for (int i = 0; i < 10000; ++i) {
           (*r.mutable_properties())[absl::StrCat("p", i)] = ToValue(1.0);
         }
       }),
       "properties"},
      {"2 KB property value", event([](auto& r) {
         (*r.mutable_properties())["note"] = ToValue(std::string(2048, 'x'));
       }),
       "properties"},
      {"property key 'bad key'", event([](auto& r) {
         (*r.mutable_properties())["bad key"] = ToValue(true);
       }),
       "properties"},
      {"null property outside identify", event([](auto& r) {
         (*r.mutable_properties())["gone"].set_null_value(
             google::protobuf::NULL_VALUE);
       }),
       "properties"},
      {"TrackEvents with 0 events", batch(0), "requests"},
      {"TrackEvents with 501 events", batch(501), "requests"},
      {"NBA negative limit", nba([](auto& r) { r.set_limit(-1); }), "limit"},
      {"NBA missing placement", nba([](auto& r) { r.set_placement(""); }),
       "placement"},
      {"NBA unknown placement",
       nba([](auto& r) { r.set_placement("web.nowhere"); }), "placement"},
      {"NBA placement of another channel",
       nba([](auto& r) { r.set_placement("app.home_feed"); }), "placement"},
      {"NBA unknown channel", nba([](auto& r) { r.set_channel("fax"); }),
       "channel"},
      {"NBA empty contact_id", nba([](auto& r) { r.set_contact_id(""); }),
       "contact_id"},
      {"NBA 129-byte contact_id", nba([&](auto& r) { r.set_contact_id(k129); }),
       "contact_id"},
      {"NBA context with 33 entries", nba([](auto& r) {
         for (int i = 0; i < 33; ++i) {
           (*r.mutable_context())[absl::StrCat("k", i)] =
               ToValue(std::string("v"));
         }
       }),
       "context"},
      {"GetContact 129-byte contact_id", [&] { return client_->Get(k129); },
       "contact_id"},
      {"GetContact empty contact_id", [&] { return client_->Get(""); },
       "contact_id"},
      {"DeleteContact 129-byte contact_id",
       [&] { return client_->Delete(k129); }, "contact_id"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    grpc::Status status = c.call();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << Describe(status);
    const std::string& m = status.error_message();
    EXPECT_TRUE(absl::StartsWith(m, c.field + ":") ||
                absl::StartsWith(m, c.field + "."))
        << "message does not start with the field '" << c.field << "': " << m;
  }

  // The limits themselves are fine: 128-byte ids, 64 properties, 1,024-byte
  // values, 32 context entries, 500 events.
  auto edge = valid;
  edge.set_contact_id(std::string(128, 'y'));
  edge.set_event_id(std::string(128, 'z'));
  for (int i = 0; i < 63; ++i)
    (*edge.mutable_properties())[absl::StrCat("p", i)] = ToValue(1.0);
  (*edge.mutable_properties())["note"] = ToValue(std::string(1024, 'x'));
  ASSERT_RPC_OK(client_->Track(edge));
  ASSERT_RPC_OK(batch(500)());
  auto wide = valid_nba;
  for (int i = 0; i < 32; ++i)
    (*wide.mutable_context())[absl::StrCat("k", i)] = ToValue(1.0);
  tappa::v1::NextBestActionResponse nba_response;
  ASSERT_RPC_OK(client_->Nba(wide, &nba_response));

  // Still serving.
  EXPECT_TRUE(server_->running());
  tappa::v1::TrackEventResponse r;
  ASSERT_RPC_OK(client_->Track(valid, &r));
  EXPECT_FALSE(r.duplicate());
}

// Messages above gRPC's 4 MiB default are refused by gRPC itself.
TEST_F(JourneyE2eTest, OversizedMessageIsResourceExhausted) {
  auto huge = MakeEvent("big", "ev-big", "product_view", "web", "",
                        {{"blob", std::string(5 << 20, 'x')}});
  grpc::Status status = client_->Track(huge);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << Describe(status);

  EXPECT_TRUE(server_->running());
  ASSERT_RPC_OK(
      client_->Track(MakeEvent("big", "ev-small", "product_view", "web")));
}

// Strings are proto3 `string`: the wire format requires UTF-8. The request
// bytes are made by hand (the generated code may refuse to send them) and
// the server must name the field rather than answer gRPC's INTERNAL.
TEST_F(JourneyE2eTest, InvalidUtf8IsInvalidArgumentNamingTheField) {
  const std::string kBad = "caf\xc3(\xff";
  auto field = [](int number, const std::string& bytes) {
    std::string out;
    out.push_back(static_cast<char>(number << 3 | 2));
    out.push_back(static_cast<char>(bytes.size()));  // < 128
    return out + bytes;
  };
  struct Case {
    std::string method;
    std::string request;
  };
  std::string event;
  MakeEvent("", "ev-utf8", "product_view", "web").SerializeToString(&event);
  std::string nba;
  MakeNba("", "web", "web.home_hero").SerializeToString(&nba);
  const Case cases[] = {
      {"/tappa.v1.JourneyService/GetContact", field(1, kBad)},
      {"/tappa.v1.JourneyService/DeleteContact", field(1, kBad)},
      {"/tappa.v1.JourneyService/TrackEvent", event + field(2, kBad)},
      {"/tappa.v1.DecisionService/NextBestAction", nba + field(1, kBad)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method);
    auto [status, response] =
        CallRaw(server_->channel(), c.method, c.request, absl::Seconds(5));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << Describe(status);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "contact_id"))
        << Describe(status);
  }
  EXPECT_TRUE(server_->running());
  ASSERT_RPC_OK(
      client_->Track(MakeEvent("utf8-ok", "ev-1", "product_view", "web")));
}

// The value of the first sample of `series` (exact text before the value,
// e.g. `tappa_contacts{phase="advocacy"}`), or -1.
double SampleValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, series) && absl::ConsumePrefix(&line, " ")) {
      double v = -1;
      if (absl::SimpleAtod(line.substr(0, line.find(' ')), &v)) return v;
    }
  }
  return -1;
}

// The value of the first sample of `metric` whose labels contain every one
// of `parts`, or -1.
double SampleWithLabels(const std::string& text, const std::string& metric,
                        const std::vector<std::string>& parts) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, metric + "{")) continue;
    size_t close = line.find("} ");
    if (close == absl::string_view::npos) continue;
    absl::string_view labels = line.substr(0, close);
    bool all = true;
    for (const std::string& p : parts)
      all = all && absl::StrContains(labels, p);
    double v = -1;
    if (all && absl::SimpleAtod(line.substr(close + 2), &v)) return v;
  }
  return -1;
}

TEST_F(JourneyE2eTest, MetricsExposeTrafficAndPassPromtool) {
  tappa::v1::TrackEventResponse r;
  ASSERT_RPC_OK(
      client_->Track(MakeEvent("metrics-1", "ev-1", "post_view", "social")));
  ASSERT_RPC_OK(
      client_->Track(MakeEvent("metrics-1", "ev-2", "review_read", "web"), &r));
  ASSERT_EQ(r.phase(), "consideration");
  tappa::v1::NextBestActionResponse nba;
  ASSERT_RPC_OK(
      client_->Nba(MakeNba("metrics-1", "web", "web.home_hero"), &nba));
  (void)client_->Track(MakeEvent("metrics-1", "ev-3", "Bad-Type", "web"));

  absl::StatusOr<std::string> text = server_->ScrapeMetrics();
  ASSERT_TRUE(text.ok()) << text.status();
  // The method label's spelling (short or full gRPC name) is the server's
  // choice: match its ending.
  EXPECT_EQ(SampleWithLabels(*text, "tappa_grpc_requests_total",
                             {"code=\"OK\"", "TrackEvent\""}),
            2)
      << *text;
  EXPECT_EQ(SampleWithLabels(*text, "tappa_grpc_requests_total",
                             {"code=\"INVALID_ARGUMENT\"", "TrackEvent\""}),
            1);
  EXPECT_EQ(SampleWithLabels(*text, "tappa_grpc_requests_total",
                             {"code=\"OK\"", "NextBestAction\""}),
            1);
  EXPECT_EQ(SampleValue(*text,
                        "tappa_phase_transitions_total{from=\"awareness\",to="
                        "\"consideration\"}"),
            1);
  EXPECT_EQ(SampleValue(*text, absl::StrCat("tappa_ruleset_info{version=\"",
                                            nba.ruleset_version(), "\"}")),
            1);
  EXPECT_TRUE(
      absl::StrContains(*text, "tappa_grpc_request_duration_seconds_bucket"));
  EXPECT_TRUE(absl::StrContains(*text, "tappa_events_total{channel=\"web\"}"));
  EXPECT_TRUE(absl::StrContains(*text, "tappa_redis_command_duration_seconds"));
  EXPECT_FALSE(absl::StrContains(*text, "metrics-1"))
      << "a contact id in a label";

  // promtool reads the exposition on stdin.
  TempDir dir("tappa-promtool");
  std::string path = dir.path() + "/metrics.txt";
  std::ofstream(path) << *text;
  std::string command =
      absl::StrCat("promtool check metrics < '", path, "' 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe))
    output.append(buffer, n);
  int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "promtool check metrics:\n" << output;

  // Contacts per phase are summed from the shards periodically (every 10 s).
  bool counted = PollUntil(
      [&] {
        absl::StatusOr<std::string> t = server_->ScrapeMetrics();
        return t.ok() &&
               SampleValue(*t, "tappa_contacts{phase=\"consideration\"}") == 1;
      },
      absl::Seconds(15), absl::Milliseconds(250));
  EXPECT_TRUE(counted)
      << "tappa_contacts{phase=\"consideration\"} never reached 1";
}

// A typical profile (issue 3): 10 attributes, the 5 windowed counters of
// retail.yaml, 10 history entries, 20 events remembered for idempotency.
// Going round the journey twice needs a way from advocacy back to awareness
// in seconds (retail.yaml only has the 90-day lapse), so the test adds one
// transition to a copy of the ruleset: it changes no key layout.
TEST_F(JourneyE2eTest, TypicalProfileFitsInTwoKilobytes) {
  std::ifstream in(SourceDir() + "/rules/examples/retail.yaml");
  std::stringstream yaml;
  yaml << in.rdbuf();
  std::string rules = yaml.str();
  size_t at = rules.find("\ntransitions:\n");
  ASSERT_NE(at, std::string::npos);
  rules.insert(at + std::string("\ntransitions:\n").size(),
               "  - {to: awareness, from: [advocacy], when: 'event.type == "
               "\"journey_restart\"'}\n");
  TempDir dir("tappa-rules");
  std::string rules_path = dir.path() + "/retail_cycle.yaml";
  std::ofstream(rules_path) << rules;
  ASSERT_NO_FATAL_FAILURE(StartServer({}, rules_path));

  const std::string kId =
      "c7f1d2e4-5b6a-4c3d-8e9f-0a1b2c3d4e5f";  // a UUID, as clients use
  int n = 0;
  auto track = [&](const std::string& type, const std::string& channel,
                   const std::string& placement = "",
                   const Properties& props = {}) {
    ++n;
    // ULID-sized event ids, as the API recommends.
    std::string id =
        absl::StrCat("01HV5Z8Q3K7M2N4P6R8T0W", absl::Dec(n, absl::kZeroPad4));
    grpc::Status s =
        client_->Track(MakeEvent(kId, id, type, channel, placement, props));
    EXPECT_TRUE(s.ok()) << type << ": " << Describe(s);
  };
  track("identify", "web", "",
        {{"email", std::string("giulia.rossi@example.com")},
         {"first_name", std::string("Giulia")},
         {"last_name", std::string("Rossi")},
         {"country", std::string("IT")},
         {"city", std::string("Milano")},
         {"language", std::string("it")},
         {"timezone", std::string("Europe/Rome")},
         {"tier", std::string("silver")},
         {"birth_year", 1991.0},
         {"marketing_opt_in", true}});
  for (int round = 0; round < 2; ++round) {
    if (round == 1) track("journey_restart", "web");
    track("post_view", "social");
    track("review_read", "web", "web.product_detail");
    track("product_view", "web", "web.product_detail");
    track("cart_add", "web", "web.product_detail");
    track("purchase", "web", "web.checkout");
    track("newsletter_subscribe", "email");
    track("email_open", "email", "email.newsletter_slot");
    track("ugc_share", "social", "", {{"brand_tagged", true}});
  }
  track("product_view", "app", "app.home_feed");
  track("review_read", "app", "app.home_feed");
  ASSERT_EQ(n, 20);

  tappa::v1::Contact contact;
  ASSERT_RPC_OK(client_->Get(kId, &contact));
  EXPECT_EQ(contact.phase(), "advocacy");
  EXPECT_EQ(contact.phase_history_size(), 10);
  EXPECT_EQ(contact.attributes_size(), 10);
  for (const char* c : {"product_view_7d", "review_read_7d", "cart_add_7d",
                        "social_views_30d", "newsletter_open_30d"}) {
    EXPECT_GE(contact.counters().at(c), 2) << c;
  }

  std::vector<std::string> keys = KeysOfContact(*redis_, kId);
  // The contact's hash (with its idempotency records) and its history.
  ASSERT_EQ(keys.size(), 2u) << absl::StrJoin(keys, ", ");
  int64_t total = 0;
  std::cout << "[ memory ] contact " << kId << " (" << kId.size()
            << "-byte id):\n";
  for (const std::string& key : keys) {
    absl::StatusOr<SyncRedisReply> bytes =
        redis_->Command({"MEMORY", "USAGE", key, "SAMPLES", "0"});
    absl::StatusOr<SyncRedisReply> encoding =
        redis_->Command({"OBJECT", "ENCODING", key});
    absl::StatusOr<SyncRedisReply> type = redis_->Command({"TYPE", key});
    ASSERT_TRUE(bytes.ok() && encoding.ok() && type.ok());
    // The data itself (field names and values, or list entries), to tell
    // payload from Redis' per-key and per-entry overhead.
    absl::StatusOr<SyncRedisReply> content =
        type->str == "string" ? redis_->Command({"GET", key})
                              : redis_->Command({"HGETALL", key});
    ASSERT_TRUE(content.ok());
    size_t payload = 0, longest = 0, entries = 0;
    if (type->str == "string") {
      // The history: entries separated by newlines.
      payload = content->str.size();
      entries = std::count(content->str.begin(), content->str.end(), '\n') + 1;
      longest = payload;
    } else {
      for (const SyncRedisReply& e : content->elements) {
        payload += e.str.size();
        longest = std::max(longest, e.str.size());
      }
      entries = content->elements.size() / 2;
    }
    total += bytes->integer;
    std::cout << "  " << key << ": " << bytes->integer << " bytes ("
              << type->str << ", " << encoding->str << ", " << entries
              << " entries, " << payload << " bytes of data, longest "
              << longest << ")\n";
    std::string kind = key.substr(key.find("}:") + 2, 1);  // c or h
    RecordProperty(absl::StrCat("memory_", kind),
                   static_cast<int>(bytes->integer));
    // Small hashes must stay in Redis' compact encoding.
    if (type->str == "hash") {
      EXPECT_EQ(encoding->str, "listpack") << key;
    } else {
      EXPECT_EQ(type->str, "string") << key;
    }
  }
  std::cout << "  total: " << total << " bytes" << std::endl;
  RecordProperty("memory_total", static_cast<int>(total));
  EXPECT_LE(total, 2048);
}

// Redis commands per request, from MONITOR (which tells who sent what) and
// INFO commandstats (which counts what scripts run inside Redis too). The
// server's own background work (health PING every 0.5 s, contacts per phase
// every 10 s: one HGETALL per shard's `phases` key) is told apart by MONITOR.
TEST_F(JourneyE2eTest, RedisCommandsPerRequest) {
  constexpr int kRequests = 100;
  for (int c = 0; c < 10; ++c) {
    ASSERT_RPC_OK(client_->Track(
        MakeEvent(absl::StrCat("cmd-", c), "ev-0", "post_view", "social")));
  }
  struct Window {
    std::map<std::string, int64_t> stats;  // commandstats delta
    std::map<std::string, int64_t> sent;  // by the server, excluding background
    std::map<std::string, int64_t> scripted;  // run by Lua inside Redis
    int64_t background_hgetall = 0;
  };
  auto measure = [&](const std::function<void()>& workload) {
    Window w;
    absl::StatusOr<std::unique_ptr<RedisConnection>> monitor =
        redis_->Connect();
    EXPECT_TRUE(monitor.ok());
    if (!monitor.ok()) return w;
    std::map<std::string, int64_t> before = CommandCalls(*redis_);
    absl::StatusOr<SyncRedisReply> ok = (*monitor)->Command({"MONITOR"});
    EXPECT_TRUE(ok.ok() && ok->str == "OK");
    workload();
    const std::string kMarker = "tappa-test-end-of-window";
    EXPECT_TRUE(redis_->Command({"ECHO", kMarker}).ok());
    while (true) {
      absl::StatusOr<SyncRedisReply> line = (*monitor)->ReadReply();
      if (!line.ok()) {
        ADD_FAILURE() << line.status();
        break;
      }
      MonitoredCommand m;
      if (!ParseMonitorLine(line->str, &m)) continue;
      if (m.command == "ECHO" && m.first_arg == kMarker) break;
      if (m.client == "lua") {
        ++w.scripted[m.command];
      } else if (m.command == "PING" ||
                 (m.command == "HGETALL" &&
                  absl::EndsWith(m.first_arg, ":phases"))) {
        if (m.command == "HGETALL") ++w.background_hgetall;
      } else {
        ++w.sent[m.command];
      }
    }
    w.stats = Delta(before, CommandCalls(*redis_));
    // The window's own commands (ECHO, MONITOR, INFO) are the test's.
    w.stats.erase("echo");
    w.stats.erase("monitor");
    w.stats.erase("info");
    return w;
  };
  auto print = [&](const std::string& what, const Window& w) {
    std::cout << "[ commands ] " << what << " (" << kRequests
              << " requests):\n  sent by the server:";
    for (const auto& [c, n] : w.sent) std::cout << " " << c << "=" << n;
    std::cout << "\n  run inside scripts:";
    for (const auto& [c, n] : w.scripted) std::cout << " " << c << "=" << n;
    std::cout << "\n  INFO commandstats delta:";
    for (const auto& [c, n] : w.stats) std::cout << " " << c << "=" << n;
    std::cout << "\n  (background HGETALL of shard phase counts in the window: "
              << w.background_hgetall << ")" << std::endl;
  };

  Window nba = measure([&] {
    for (int i = 0; i < kRequests; ++i) {
      tappa::v1::NextBestActionResponse r;
      ASSERT_RPC_OK(client_->Nba(
          MakeNba(absl::StrCat("cmd-", i % 10), "web", "web.home_hero"), &r));
      ASSERT_FALSE(r.degraded());
    }
  });
  print("NextBestAction", nba);
  // One round trip per decision: two HGETALLs pipelined (the contact and
  // its restraint record). The only other command is the touch script for
  // answers serving an action that a cap counts when served, which the
  // response does not wait for.
  EXPECT_EQ(nba.sent["HGETALL"], 2 * kRequests);
  for (const auto& [command, n] : nba.sent) {
    EXPECT_TRUE(command == "HGETALL" || command == "EVALSHA" ||
                command == "EVAL")
        << command;
  }
  EXPECT_EQ(nba.stats["hgetall"] - nba.background_hgetall, 2 * kRequests);
  RecordProperty("nba_commands_per_request",
                 absl::StrCat(static_cast<double>(nba.stats["hgetall"] -
                                                  nba.background_hgetall) /
                              kRequests));
  RecordProperty(
      "nba_touch_scripts_per_request",
      absl::StrCat(static_cast<double>(nba.sent["EVALSHA"] + nba.sent["EVAL"]) /
                   kRequests));

  Window events = measure([&] {
    for (int i = 0; i < kRequests; ++i) {
      ASSERT_RPC_OK(client_->Track(
          MakeEvent(absl::StrCat("cmd-", i % 10), absl::StrCat("ev-", i + 1),
                    "product_view", "web", "web.product_detail")));
    }
  });
  print("TrackEvent", events);
  // One round trip per event: the EVALSHA alone. The server remembers each
  // contact's hash from its own last commit (the events before the window
  // created them; --recent_contacts), so nothing is read first; the script
  // checks the idempotency record and the version itself.
  EXPECT_EQ(events.sent["HGETALL"], 0);
  EXPECT_EQ(events.sent["HGET"], 0);
  EXPECT_EQ(events.sent["EVALSHA"], kRequests);
  int64_t total = 0;
  for (const auto& [c, n] : events.stats) total += n;
  total -= events.background_hgetall;
  std::cout << "[ commands ] TrackEvent: "
            << static_cast<double>(total) / kRequests
            << " Redis commands per event in all (scripts included); "
            << static_cast<double>(events.sent["HGETALL"] +
                                   events.sent["EVALSHA"]) /
                   kRequests
            << " sent (round trips) per event" << std::endl;
  RecordProperty("event_commands_per_request",
                 absl::StrCat(static_cast<double>(total) / kRequests));
}

}  // namespace
}  // namespace tappa::testing
