// The event path against a real redis-server, with the store remembering
// the hashes its commits write (recent_contacts.h): what it remembers is
// exactly what Redis holds; a remembered contact's event costs one script
// and no read; writes of another replica, and a contact erased and created
// again meanwhile, are never overwritten from a stale memory; a duplicate is
// answered as one even over the contact's event rate.
#include "server/service/event_processor.h"

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "rules/ruleset/loader.h"
#include "tests/server/process_fixture.h"
#include "tests/server/service/service_fixture.h"

namespace tappa::server {
namespace {

using tappa::v1::TrackEventRequest;
using tappa::v1::TrackEventResponse;
using testing::RedisProcess;
using testing::SyncRedisReply;

constexpr char kRules[] = R"(phases: [awareness, consideration, conversion]
channels: [web, email]
counters:
  - {id: views, on: 'event.type == "view"'}
  - {id: carts_7d, on: 'event.type == "cart_add"', window: 7d, bucket: 24h}
transitions:
  - {to: consideration, when: 'event.type == "cart_add"'}
  - {to: conversion, when: 'event.type == "purchase"'}
placements:
  - {id: email.slot, channel: email}
actions:
  - {id: mail, kind: email, placements: [email.slot]}
followups:
  - {id: cart-reminder, on: 'event.type == "cart_add"', after: 24h,
     cancel_on: 'event.type == "purchase"', channel: email, action: mail,
     rearm: true}
)";

constexpr int kShards = 8;

// One server's event path: its own store (and so its own memory of
// contacts) over the shared Redis.
struct Replica {
  std::unique_ptr<ContactStore> store;
  Runtime runtime;
  std::unique_ptr<EventProcessor> events;
};

class EventProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = RedisProcess::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    auto client = testing::ConnectClient(*redis_);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    auto serving = testing::ServingFromYaml(kRules, "events.yaml");
    ASSERT_TRUE(serving.ok()) << serving.status();
    rulesets_.Set(*serving);
  }

  std::unique_ptr<Replica> NewReplica(size_t recent_contacts,
                                      TokenBucket rate = TokenBucket(0, 0)) {
    auto r = std::make_unique<Replica>();
    r->store =
        std::make_unique<ContactStore>(client_.get(), kShards, recent_contacts);
    r->runtime.clock = &clock_;
    r->runtime.rulesets = &rulesets_;
    r->runtime.store = r->store.get();
    r->runtime.metrics = &metrics_;
    r->runtime.contact_event_rate = rate;
    r->events = std::make_unique<EventProcessor>(r->runtime);
    return r;
  }

  static absl::Time Deadline() { return absl::Now() + absl::Seconds(10); }

  // An event through the real event path. `attrs`: identify properties
  // ("" = null: remove the attribute).
  absl::StatusOr<TrackEventResponse> Track(
      Replica& replica, const std::string& contact, const std::string& type,
      const std::string& event_id = "",
      const std::map<std::string, std::string>& attrs = {}) {
    TrackEventRequest request;
    request.set_event_id(event_id.empty() ? absl::StrCat("e", ++event_seq_)
                                          : event_id);
    request.set_contact_id(contact);
    request.set_type(type);
    request.set_channel("web");
    for (const auto& [name, value] : attrs) {
      auto& v = (*request.mutable_properties())[name];
      if (value.empty()) {
        v.set_null_value(google::protobuf::NULL_VALUE);
      } else {
        v.set_string_value(value);
      }
    }
    absl::Notification done;
    absl::StatusOr<TrackEventResponse> out;
    replica.events->Track(request, Deadline(), "test",
                          [&](absl::StatusOr<TrackEventResponse> response) {
                            out = std::move(response);
                            done.Notify();
                          });
    done.WaitForNotification();
    return out;
  }

  // The contact's hash in Redis without its idempotency records.
  std::map<std::string, std::string> InRedis(const std::string& contact) {
    std::map<std::string, std::string> out;
    ContactStore keys(client_.get(), kShards);
    absl::StatusOr<SyncRedisReply> r =
        redis_->Command({"HGETALL", keys.KeysFor(contact).contact});
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return out;
    for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
      const std::string& field = r->elements[i].str;
      if (absl::StartsWith(field, "e:") || field == "ec") continue;
      out[field] = r->elements[i + 1].str;
    }
    return out;
  }

  // What `replica` remembers of the contact; nullopt when nothing.
  std::optional<std::map<std::string, std::string>> Remembered(
      Replica& replica, const std::string& contact) {
    std::optional<std::map<std::string, std::string>> out;
    absl::Notification answered;
    replica.store->LoadForEvent(
        rulesets_.Get()->ruleset, contact, "probe", clock_.Now(), Deadline(),
        ContactStore::EventReadMode::kRecentOnly,
        [&](absl::StatusOr<EventRead> read) {
          EXPECT_TRUE(read.ok() || absl::IsNotFound(read.status()))
              << read.status();
          if (read.ok() && read->cached) {
            out.emplace(read->hash->begin(), read->hash->end());
          }
          answered.Notify();
        });
    answered.WaitForNotification();
    return out;
  }

  // Calls of `command` Redis counted so far (INFO commandstats).
  int64_t Calls(const std::string& command) {
    absl::StatusOr<SyncRedisReply> info =
        redis_->Command({"INFO", "commandstats"});
    EXPECT_TRUE(info.ok()) << info.status();
    if (!info.ok()) return -1;
    const std::string prefix = absl::StrCat("cmdstat_", command, ":calls=");
    for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
      if (!absl::ConsumePrefix(&line, prefix)) continue;
      int64_t n = 0;
      absl::SimpleAtoi(line.substr(0, line.find(',')), &n);
      return n;
    }
    return 0;
  }

  // tappa_event_contact_sources_total{source}.
  double Sources(const std::string& source) {
    for (const auto& family : metrics_.registry()->Collect()) {
      if (family.name != "tappa_event_contact_sources_total") continue;
      for (const auto& metric : family.metric) {
        for (const auto& label : metric.label) {
          if (label.name == "source" && label.value == source) {
            return metric.counter.value;
          }
        }
      }
    }
    return -1;
  }

  testing::FakeClock clock_{absl::FromUnixSeconds(1'700'000'000)};
  std::unique_ptr<RedisProcess> redis_;
  std::unique_ptr<RedisClient> client_;
  RulesetHolder rulesets_;
  Metrics metrics_;
  int event_seq_ = 0;
};

// Every kind of change an event makes (counters, windowed counters rolling
// over days, phases, attributes set and removed, follow-ups scheduled,
// re-armed and cancelled, last-seen times): after each of 300 random events
// over a few contacts, what the store remembers is what Redis holds.
TEST_F(EventProcessorTest, WhatIsRememberedIsWhatRedisHolds) {
  auto replica = NewReplica(100);
  std::mt19937 random(20261130);
  const std::vector<std::string> types = {"view", "cart_add", "purchase",
                                          "identify", "other"};
  int remembered = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string contact = absl::StrCat("c", random() % 4);
    const std::string type = types[random() % types.size()];
    std::map<std::string, std::string> attrs;
    if (type == "identify") {
      attrs["tier"] = random() % 3 == 0 ? "" : absl::StrCat("t", random() % 5);
      attrs["country"] = random() % 2 == 0 ? "" : "FR";
    }
    absl::StatusOr<TrackEventResponse> r =
        Track(*replica, contact, type, "", attrs);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    std::optional<std::map<std::string, std::string>> memory =
        Remembered(*replica, contact);
    ASSERT_TRUE(memory.has_value()) << i << ": " << contact << " forgotten";
    ASSERT_EQ(*memory, InRedis(contact))
        << "after event " << i << " (" << type << ") of " << contact;
    ++remembered;
    clock_.Advance(absl::Minutes(random() % 600));
  }
  EXPECT_EQ(remembered, 300);
}

// The point of remembering: a known contact's event is one script, no read.
// Without memory every event reads first.
TEST_F(EventProcessorTest, ARememberedContactsEventsReadNothing) {
  auto remembering = NewReplica(100);
  auto forgetful = NewReplica(0);
  ASSERT_TRUE(Track(*remembering, "known", "view").ok());
  ASSERT_TRUE(Track(*forgetful, "other", "view").ok());
  const int64_t reads = Calls("hgetall"), scripts = Calls("evalsha");
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<TrackEventResponse> r = Track(*remembering, "known", "view");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->updated_counters().at("views"), i + 2);
  }
  EXPECT_EQ(Calls("hgetall") - reads, 0);
  EXPECT_EQ(Calls("evalsha") - scripts, 10);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(Track(*forgetful, "other", "view").ok());
  EXPECT_EQ(Calls("hgetall") - reads, 10);
}

// Two replicas take turns at one contact, each remembering its own last
// commit, which the other's makes stale: every commit from a stale memory
// fails its version check and the event is applied again to the hash the
// script found (no read). Nothing is lost: the counter counts every view.
TEST_F(EventProcessorTest, AnotherReplicasWritesAreNeverOverwritten) {
  auto a = NewReplica(100);
  auto b = NewReplica(100);
  std::mt19937 random(7);
  int views = 0;
  for (int i = 0; i < 60; ++i) {
    Replica& replica = random() % 2 == 0 ? *a : *b;
    const bool view = random() % 3 != 0;
    absl::StatusOr<TrackEventResponse> r =
        Track(replica, "shared", view ? "view" : "cart_add");
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    if (view) {
      ++views;
      EXPECT_EQ(r->updated_counters().at("views"), views) << "event " << i;
    }
  }
  EXPECT_EQ(InRedis("shared")["n:views"], absl::StrCat(views));
  // Each replica read once, its first event; every stale memory came back
  // from its commit with the hash as it was.
  EXPECT_EQ(Sources("read"), 2);
  EXPECT_GT(Sources("conflict"), 5);
  EXPECT_EQ(Sources("remembered") + Sources("read"), 60);
  // Each replica's memory is either what Redis holds or stale (the other
  // wrote last); the one that wrote last remembers exactly.
  absl::StatusOr<TrackEventResponse> last = Track(*a, "shared", "view");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*Remembered(*a, "shared"), InRedis("shared"));
}

// A contact erased (by another replica) and created again by new events
// must not be taken for the one remembered: the remembered version is never
// one the new contact can reach. With versions counted from 1 both would
// be at 3 here, and the next event would be applied to the erased profile.
TEST_F(EventProcessorTest, AContactErasedAndCreatedAgainIsNotTheRememberedOne) {
  auto a = NewReplica(100);
  auto b = NewReplica(100);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Track(*a, "c", "view").ok());
  absl::Notification erased;
  b->store->DeleteContact("c", Deadline(), [&](absl::StatusOr<bool> existed) {
    EXPECT_TRUE(existed.ok() && *existed);
    erased.Notify();
  });
  erased.WaitForNotification();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Track(*b, "c", "cart_add").ok());
  ASSERT_TRUE(Remembered(*a, "c").has_value());  // stale, unknown to `a`

  absl::StatusOr<TrackEventResponse> r = Track(*a, "c", "view");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->updated_counters().at("views"), 1);
  EXPECT_EQ(r->phase(), "consideration");
  std::map<std::string, std::string> hash = InRedis("c");
  EXPECT_EQ(hash["n:views"], "1");
  EXPECT_TRUE(hash.contains("w:carts_7d"));
}

// Erasing a contact through a store forgets it there at once.
TEST_F(EventProcessorTest, ErasureForgetsTheContact) {
  auto a = NewReplica(100);
  ASSERT_TRUE(Track(*a, "gone", "view").ok());
  ASSERT_TRUE(Remembered(*a, "gone").has_value());
  absl::Notification erased;
  a->store->DeleteContact("gone", Deadline(),
                          [&](absl::StatusOr<bool>) { erased.Notify(); });
  erased.WaitForNotification();
  EXPECT_FALSE(Remembered(*a, "gone").has_value());
}

// A repeat of an accepted event is a duplicate whatever the rate: the
// remembered hash says the contact is over its rate, so the event is read
// before it is refused, and the read finds it.
TEST_F(EventProcessorTest, ARepeatIsADuplicateEvenOverTheRate) {
  auto a = NewReplica(100, TokenBucket(1, 1));  // 1 event/s, burst 1
  absl::StatusOr<TrackEventResponse> first = Track(*a, "c", "view", "once");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->duplicate());
  ASSERT_TRUE(Remembered(*a, "c").has_value());

  absl::StatusOr<TrackEventResponse> again = Track(*a, "c", "view", "once");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate());
  absl::StatusOr<TrackEventResponse> other = Track(*a, "c", "view", "other");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kResourceExhausted)
      << other.status();
  // Under the rate, a repeat is found by the commit itself.
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(Remembered(*a, "c").has_value());
  absl::StatusOr<TrackEventResponse> later = Track(*a, "c", "view", "once");
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_TRUE(later->duplicate());
  EXPECT_EQ(InRedis("c")["n:views"], "1");
}

// An event raises its contact's score in the activity index (retention)
// when the score is a minute old or more, not at every event: the score of
// a contact with events is never more than a minute behind its last one.
TEST_F(EventProcessorTest, ActivityIsNotedOncePerMinute) {
  auto a = NewReplica(100);
  ContactStore keys(client_.get(), kShards);
  const std::string index = keys.ActivityKey(ShardOf("c", kShards));
  auto score = [&]() -> int64_t {
    absl::StatusOr<SyncRedisReply> r = redis_->Command({"ZSCORE", index, "c"});
    int64_t ms = -1;
    if (r.ok()) absl::SimpleAtoi(r->str, &ms);
    return ms;
  };
  const int64_t zadds = Calls("zadd");
  const absl::Time first = clock_.Now();
  ASSERT_TRUE(Track(*a, "c", "view").ok());
  EXPECT_EQ(score(), absl::ToUnixMillis(first));
  clock_.Advance(absl::Seconds(59));
  ASSERT_TRUE(Track(*a, "c", "view").ok());
  EXPECT_EQ(score(), absl::ToUnixMillis(first));  // within the minute
  EXPECT_EQ(Calls("zadd") - zadds, 1);
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(Track(*a, "c", "view").ok());
  EXPECT_EQ(score(), absl::ToUnixMillis(first + absl::Minutes(1)));
  EXPECT_EQ(Calls("zadd") - zadds, 2);
  // A replica that has not seen the contact reads when it last was noted.
  auto b = NewReplica(100);
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(Track(*b, "c", "view").ok());
  EXPECT_EQ(Calls("zadd") - zadds, 2);
}

// Phases in a ring: each event type moves the contact on only from the
// phase before it, so events applied out of order leave transitions out.
constexpr char kRing[] = R"(phases: [pa, pb, pc]
channels: [web]
counters:
  - {id: views, on: 'event.type == "view"'}
transitions:
  - {to: pb, when: 'event.type == "b" && contact.phase == "pa"'}
  - {to: pc, when: 'event.type == "c" && contact.phase == "pb"'}
  - {to: pa, when: 'event.type == "a" && contact.phase == "pc"'}
)";

class EventBurstTest : public EventProcessorTest {
 protected:
  void SetUp() override {
    EventProcessorTest::SetUp();
    auto ring = testing::ServingFromYaml(kRing, "ring.yaml");
    ASSERT_TRUE(ring.ok()) << ring.status();
    rulesets_.Set(*ring);
  }

  // `n` ring events (b, c, a, b, ...) for `contact` handed to `replica` at
  // once, without waiting for any; yields every answer, in order.
  std::vector<absl::StatusOr<TrackEventResponse>> Burst(
      Replica& replica, const std::string& contact, int n) {
    std::vector<absl::StatusOr<TrackEventResponse>> out(n);
    absl::Mutex mu;
    int left = n;
    const char* kTypes[] = {"b", "c", "a"};
    for (int i = 0; i < n; ++i) {
      TrackEventRequest request;
      request.set_event_id(absl::StrCat("ring-", ++event_seq_));
      request.set_contact_id(contact);
      request.set_type(kTypes[i % 3]);
      request.set_channel("web");
      replica.events->Track(
          request, Deadline(), "test",
          [&, i](absl::StatusOr<TrackEventResponse> response) {
            absl::MutexLock lock(&mu);
            out[i] = std::move(response);
            --left;
          });
    }
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* left) { return *left == 0; }, &left));
    return out;
  }
};

// 60 events of one contact at once: after the first (a read), each is sent
// behind the one before without waiting for its answer, and each applies
// on top of it: every transition of the ring happens, in order.
TEST_F(EventBurstTest, AContactsEventsSentTogetherApplyInOrder) {
  auto a = NewReplica(100);
  ASSERT_TRUE(Track(*a, "r", "view").ok());  // created: pa
  const int64_t scripts = Calls("evalsha");
  std::vector<absl::StatusOr<TrackEventResponse>> answers = Burst(*a, "r", 60);
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(answers[i].ok()) << i << ": " << answers[i].status();
    EXPECT_TRUE(answers[i]->phase_changed())
        << "event " << i << " (" << answers[i]->phase() << ")";
  }
  // No read but the first event's (HGETALLs inside the script, pruning
  // idempotency records every 20 events, are not reads), no conflict.
  EXPECT_EQ(Sources("read"), 1);
  EXPECT_EQ(Sources("conflict"), 0);
  EXPECT_EQ(Calls("evalsha") - scripts, 60);
  EXPECT_EQ(InRedis("r")["p"], "pa");
}

// The same while something else keeps writing the contact (its version
// bumped every ~0.3 ms, as a busy replica's or a follow-up's write would):
// commits sent behind one that found the contact changed fail too; they are
// applied again in their order, the oldest first, and none lands before an
// older one (a later event's retry can find a newer hash than an older
// one's and would otherwise win the race).
TEST_F(EventBurstTest, EventsInFlightKeepTheirOrderThroughConflicts) {
  auto a = NewReplica(100);
  ASSERT_TRUE(Track(*a, "r", "view").ok());
  absl::StatusOr<std::unique_ptr<testing::RedisConnection>> writer =
      redis_->Connect();
  ASSERT_TRUE(writer.ok()) << writer.status();
  ContactStore keys(client_.get(), kShards);
  const std::string hash = keys.KeysFor("r").contact;
  std::atomic<bool> stop{false};
  std::thread other([&] {
    while (!stop.load()) {
      ASSERT_TRUE((*writer)->Command({"HINCRBY", hash, "v", "1"}).ok());
      absl::SleepFor(absl::Microseconds(300));
    }
  });
  // Joined however the test ends.
  absl::Cleanup join = [&] {
    stop = true;
    if (other.joinable()) other.join();
  };
  for (int round = 0; round < 5; ++round) {
    std::vector<absl::StatusOr<TrackEventResponse>> answers =
        Burst(*a, "r", 30);
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(answers[i].ok())
          << round << "/" << i << ": " << answers[i].status();
      EXPECT_TRUE(answers[i]->phase_changed())
          << "round " << round << " event " << i << ": "
          << answers[i]->previous_phase() << " > " << answers[i]->phase();
    }
  }
  std::move(join).Invoke();
  EXPECT_EQ(InRedis("r")["p"], "pa");
  EXPECT_GT(Sources("conflict"), 0);
}

}  // namespace
}  // namespace tappa::server
