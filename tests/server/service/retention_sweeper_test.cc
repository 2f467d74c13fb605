// Retention against a real redis-server with an injected clock: a sweep
// erases exactly the contacts idle longer than the retention period (every
// key, pending follow-ups, phase counts, activity members) and leaves the
// others untouched; a contact active between look-up and erasure survives;
// each pass stays within its bound.
#include "server/service/retention_sweeper.h"

#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/ruleset/loader.h"
#include "server/service/event_processor.h"
#include "server/store/followup_store.h"
#include "tests/server/process_fixture.h"
#include "tests/server/service/service_fixture.h"

namespace tappa::server {
namespace {

using ::testing::IsEmpty;
using testing::RedisProcess;
using testing::SyncRedisReply;
using ::testing::UnorderedElementsAreArray;

constexpr char kRules[] = R"(phases: [awareness, consideration]
channels: [web, email]
counters:
  - {id: views, on: 'event.type == "view"'}
transitions:
  - {to: consideration, when: 'event.type == "cart_add"'}
placements:
  - {id: email.slot, channel: email}
actions:
  - {id: mail, kind: email, placements: [email.slot]}
followups:
  - {id: cart-reminder, on: 'event.type == "cart_add"', after: 24h,
     channel: email, action: mail}
)";

constexpr int kShards = 8;

class RetentionTest : public ::testing::Test {
 protected:
  const absl::Time t0_ = absl::FromUnixSeconds(1'700'000'000);

  void SetUp() override {
    auto redis = RedisProcess::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    auto client = testing::ConnectClient(*redis_);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    auto serving = testing::ServingFromYaml(kRules, "retention.yaml");
    ASSERT_TRUE(serving.ok()) << serving.status();
    rulesets_.Set(*serving);
    store_ = std::make_unique<ContactStore>(client_.get(), kShards);
    runtime_.clock = &clock_;
    runtime_.rulesets = &rulesets_;
    runtime_.store = store_.get();
    runtime_.metrics = &metrics_;
    events_ = std::make_unique<EventProcessor>(runtime_);
  }

  absl::Time Deadline() const { return absl::Now() + absl::Seconds(10); }

  // An event through the real event path, at the clock's time.
  void Track(const std::string& contact, const std::string& type) {
    tappa::v1::TrackEventRequest request;
    request.set_event_id(absl::StrCat("e", ++event_seq_));
    request.set_contact_id(contact);
    request.set_type(type);
    request.set_channel("web");
    absl::Notification done;
    events_->Track(request, Deadline(), "test",
                   [&](absl::StatusOr<tappa::v1::TrackEventResponse> response) {
                     EXPECT_TRUE(response.ok())
                         << contact << ": " << response.status();
                     done.Notify();
                   });
    done.WaitForNotification();
  }

  // A decision's served touch (what NextBestAction writes for caps).
  void Serve(const std::string& contact) {
    absl::Notification done;
    store_->RecordServed(contact, {{"email", "mail"}}, clock_.Now(), Deadline(),
                         [&](absl::StatusOr<bool> ok) {
                           EXPECT_TRUE(ok.ok()) << ok.status();
                           done.Notify();
                         });
    done.WaitForNotification();
  }

  // A reported click.
  void Click(const std::string& contact) {
    OutcomeWrite write;
    write.decision_id = absl::StrCat("d", ++event_seq_);
    write.kind = 'c';
    write.channel = "email";
    write.action = "mail";
    write.record_ttl = absl::Hours(24 * 30);
    absl::Notification done;
    store_->RecordOutcome(contact, write, clock_.Now(), Deadline(),
                          [&](absl::StatusOr<OutcomeRecord> r) {
                            EXPECT_TRUE(r.ok()) << r.status();
                            done.Notify();
                          });
    done.WaitForNotification();
  }

  // Passes until a whole round of shards found nothing idle; yields the
  // sum and checks every pass kept its bound.
  RetentionSweeper::Pass SweepToCompletion(RetentionSweeper& sweeper,
                                           absl::Duration retention,
                                           const RetentionSweepOptions& o) {
    RetentionSweeper::Pass total;
    const int round = (kShards + o.shards_per_pass - 1) / o.shards_per_pass;
    int quiet = 0;
    for (int i = 0; i < 100 && quiet < round; ++i) {
      absl::Notification done;
      absl::StatusOr<RetentionSweeper::Pass> pass;
      sweeper.RunPass(retention, Deadline(),
                      [&](absl::StatusOr<RetentionSweeper::Pass> p) {
                        pass = std::move(p);
                        done.Notify();
                      });
      done.WaitForNotification();
      EXPECT_TRUE(pass.ok()) << pass.status();
      if (!pass.ok()) break;
      EXPECT_EQ(pass->shards, o.shards_per_pass);
      EXPECT_LE(pass->idle, o.shards_per_pass * o.contacts_per_shard);
      quiet = pass->idle == 0 ? quiet + 1 : 0;
      total.shards += pass->shards;
      total.idle += pass->idle;
      total.erased += pass->erased;
      total.active += pass->active;
      total.backlog = total.backlog || pass->backlog;
    }
    EXPECT_EQ(quiet, round) << "the sweep did not finish";
    return total;
  }

  // Every key, by SCAN, with its DUMP.
  std::map<std::string, std::string> DumpAll() {
    std::map<std::string, std::string> out;
    std::string cursor = "0";
    do {
      absl::StatusOr<SyncRedisReply> r =
          redis_->Command({"SCAN", cursor, "COUNT", "1000"});
      if (!r.ok() || r->elements.size() != 2) {
        ADD_FAILURE() << "SCAN failed";
        return out;
      }
      cursor = r->elements[0].str;
      for (const SyncRedisReply& k : r->elements[1].elements) {
        absl::StatusOr<SyncRedisReply> d = redis_->Command({"DUMP", k.str});
        out[k.str] = d.ok() ? d->str : "?";
      }
    } while (cursor != "0");
    return out;
  }

  // Members (or fields) of every shard's structure named `suffix`.
  std::vector<std::string> ShardMembers(const std::string& suffix,
                                        const std::string& read_command) {
    std::vector<std::string> out;
    for (int s = 0; s < kShards; ++s) {
      std::string key = absl::StrFormat("tp:{s:%04d}:%s", s, suffix);
      std::vector<std::string> command = {read_command, key};
      if (read_command == "ZRANGE") {
        command.push_back("0");
        command.push_back("-1");
      }
      absl::StatusOr<SyncRedisReply> r = redis_->Command(command);
      EXPECT_TRUE(r.ok());
      if (!r.ok()) continue;
      for (const SyncRedisReply& e : r->elements) out.push_back(e.str);
    }
    return out;
  }

  // tappa_contacts_erased_total{reason=`reason`}.
  double Erased(const std::string& reason) {
    for (const prometheus::MetricFamily& f : metrics_.registry()->Collect()) {
      if (f.name != "tappa_contacts_erased_total") continue;
      for (const prometheus::ClientMetric& m : f.metric) {
        for (const prometheus::ClientMetric::Label& l : m.label) {
          if (l.name == "reason" && l.value == reason) return m.counter.value;
        }
      }
    }
    return -1;
  }

  // Contacts per phase summed over the shards.
  std::map<std::string, int64_t> PhaseCounts() {
    std::map<std::string, int64_t> out;
    std::vector<std::string> all = ShardMembers("phases", "HGETALL");
    for (size_t i = 0; i + 1 < all.size(); i += 2) {
      int64_t n = 0;
      EXPECT_TRUE(absl::SimpleAtoi(all[i + 1], &n));
      if (n != 0) out[all[i]] += n;
    }
    return out;
  }

  std::unique_ptr<RedisProcess> redis_;
  std::unique_ptr<RedisClient> client_;
  testing::FakeClock clock_{t0_};
  RulesetHolder rulesets_;
  Metrics metrics_;
  std::ostringstream audit_lines_;
  AuditLog audit_{&audit_lines_};
  std::unique_ptr<ContactStore> store_;
  Runtime runtime_;
  std::unique_ptr<EventProcessor> events_;
  int event_seq_ = 0;
};

// Whether `key` is one of the contact's own keys (c:, h:, q:).
bool IsKeyOf(const std::string& key, const std::string& contact) {
  for (const char* kind : {":c:", ":h:", ":q:"}) {
    if (absl::EndsWith(key, absl::StrCat(kind, contact))) return true;
  }
  return false;
}

TEST(EffectiveRetentionTest, TheShorterOfFlagAndRulesetWins) {
  ruleset::Ruleset none;
  ruleset::Ruleset month;
  month.retention = absl::Hours(24 * 30);
  const absl::Duration days400 = absl::Hours(24 * 400);
  EXPECT_EQ(EffectiveRetention(days400, none), days400);
  EXPECT_EQ(EffectiveRetention(days400, month), absl::Hours(24 * 30));
  EXPECT_EQ(EffectiveRetention(absl::Hours(24 * 7), month),
            absl::Hours(24 * 7));
  // No flag (0 or negative: keep forever): the ruleset alone decides.
  EXPECT_EQ(EffectiveRetention(absl::ZeroDuration(), month),
            absl::Hours(24 * 30));
  EXPECT_EQ(EffectiveRetention(absl::ZeroDuration(), none),
            absl::InfiniteDuration());
  EXPECT_EQ(EffectiveRetention(-absl::Hours(1), none),
            absl::InfiniteDuration());
}

TEST_F(RetentionTest, ErasesExactlyTheIdleContacts) {
  const absl::Duration retention = absl::Hours(24 * 30);
  const absl::Duration day = absl::Hours(24);

  // Day 0: twelve contacts that will go idle, with history, counters, a
  // pending follow-up, restraint records; one known only from served
  // touches (no event ever).
  std::vector<std::string> idle;
  for (int i = 0; i < 12; ++i) {
    std::string id = absl::StrCat("idle-", i);
    Track(id, "view");
    Track(id, "cart_add");  // schedules cart-reminder, due on day 1
    if (i % 3 == 0) Click(id);
    if (i % 3 == 1) Serve(id);
    idle.push_back(id);
  }
  Serve("anonymous");
  idle.push_back("anonymous");
  // Contacts that stay active, each through a different kind of activity.
  std::vector<std::string> active = {"evented", "served", "clicked", "fresh"};
  for (const char* id : {"evented", "served", "clicked"}) {
    Track(id, "view");
  }
  clock_.Set(t0_ + 20 * day);
  Track("evented", "cart_add");
  Serve("served");
  Click("clicked");
  clock_.Set(t0_ + 35 * day);
  Track("fresh", "cart_add");

  // Day 40: the cutoff is day 10.
  clock_.Set(t0_ + 40 * day);
  std::map<std::string, std::string> before = DumpAll();
  ASSERT_EQ(ShardMembers("fd", "ZRANGE").size(), 14u);  // 12 + evented, fresh

  RetentionSweepOptions options;
  options.shards_per_pass = 3;  // not a divisor of 8: passes wrap around
  options.contacts_per_shard = 2;
  options.first_shard = 5;
  RetentionSweeper sweeper(store_.get(), nullptr, &clock_, &metrics_, &audit_,
                           options);
  RetentionSweeper::Pass total = SweepToCompletion(sweeper, retention, options);
  EXPECT_EQ(total.erased, static_cast<int>(idle.size()));
  EXPECT_EQ(Erased("retention"), static_cast<double>(idle.size()));
  // One audit line per erasure, naming the contact and the period.
  std::vector<std::string> audited;
  for (absl::string_view line :
       absl::StrSplit(audit_lines_.str(), '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StrContains(line, R"("audit":"Retention")")) << line;
    EXPECT_TRUE(absl::StrContains(line, R"("key":"retention")")) << line;
    EXPECT_TRUE(absl::StrContains(line, "idle over 720h")) << line;
    const std::string kTarget = R"("target":")";
    size_t at = line.find(kTarget);
    ASSERT_NE(at, absl::string_view::npos) << line;
    line.remove_prefix(at + kTarget.size());
    audited.emplace_back(line.substr(0, line.find('"')));
  }
  EXPECT_THAT(audited, UnorderedElementsAreArray(idle));
  EXPECT_EQ(total.active, 0);
  // 13 idle contacts over 8 shards: some shard had more than 2.
  EXPECT_TRUE(total.backlog);

  std::map<std::string, std::string> after = DumpAll();
  // No key of an idle contact is left...
  for (const auto& [key, dump] : after) {
    for (const std::string& id : idle) {
      EXPECT_FALSE(IsKeyOf(key, id)) << key << " survived";
    }
  }
  // ...every key of an active contact is there, byte for byte...
  int active_keys = 0;
  for (const auto& [key, dump] : before) {
    for (const std::string& id : active) {
      if (!IsKeyOf(key, id)) continue;
      ++active_keys;
      auto it = after.find(key);
      ASSERT_NE(it, after.end()) << key << " was erased";
      EXPECT_EQ(it->second, dump) << key << " changed";
    }
  }
  EXPECT_EQ(active_keys, 4 + 4 + 2);  // 4 c:, 4 h:, q: of served and clicked
  // ...and the shard structures hold only active contacts.
  EXPECT_THAT(ShardMembers("act", "ZRANGE"), UnorderedElementsAreArray(active));
  std::vector<std::string> pending = ShardMembers("fp", "HVALS");
  std::set<std::string> pending_for;
  for (const std::string& payload : pending) {
    FollowUpPayload p;
    ASSERT_TRUE(DecodeFollowUpPayload(payload, &p));
    pending_for.insert(p.contact_id);
  }
  EXPECT_EQ(pending_for, (std::set<std::string>{"evented", "fresh"}));
  EXPECT_EQ(ShardMembers("fd", "ZRANGE").size(), 2u);
  EXPECT_EQ(PhaseCounts(), (std::map<std::string, int64_t>{
                               {"awareness", 2}, {"consideration", 2}}));

  // A second sweep at the same time finds nothing more.
  RetentionSweeper::Pass again = SweepToCompletion(sweeper, retention, options);
  EXPECT_EQ(again.idle, 0);
  EXPECT_EQ(DumpAll(), after);

  // Much later, the others go idle too, and the keyspace is left with
  // empty-handed shard structures only.
  clock_.Set(t0_ + 80 * day);
  RetentionSweeper::Pass rest = SweepToCompletion(sweeper, retention, options);
  EXPECT_EQ(rest.erased, static_cast<int>(active.size()));
  for (const auto& [key, dump] : DumpAll()) {
    EXPECT_TRUE(absl::EndsWith(key, ":phases")) << key << " survived";
  }
  EXPECT_THAT(PhaseCounts(), IsEmpty());
}

TEST_F(RetentionTest, ContactActiveBetweenLookUpAndErasureSurvives) {
  const absl::Duration day = absl::Hours(24);
  Track("late", "cart_add");
  Track("gone", "view");
  clock_.Set(t0_ + 40 * day);
  const absl::Time cutoff = clock_.Now() - 30 * day;

  auto find = [&](const std::string& id) {
    absl::Notification done;
    std::vector<std::string> found;
    store_->FindIdle(ShardOf(id, kShards), cutoff, 100, Deadline(),
                     [&](absl::StatusOr<std::vector<std::string>> ids) {
                       EXPECT_TRUE(ids.ok()) << ids.status();
                       if (ids.ok()) found = *ids;
                       done.Notify();
                     });
    done.WaitForNotification();
    return found;
  };
  auto erase = [&](const std::string& id) {
    absl::Notification done;
    ContactStore::Erasure result = ContactStore::Erasure::kAbsent;
    store_->EraseIfIdle(id, cutoff, Deadline(),
                        [&](absl::StatusOr<ContactStore::Erasure> e) {
                          EXPECT_TRUE(e.ok()) << e.status();
                          if (e.ok()) result = *e;
                          done.Notify();
                        });
    done.WaitForNotification();
    return result;
  };

  // Found idle, then an event arrives before the erasure: kept, whole.
  EXPECT_THAT(find("late"), ::testing::Contains("late"));
  Track("late", "view");
  std::map<std::string, std::string> before = DumpAll();
  EXPECT_EQ(erase("late"), ContactStore::Erasure::kActive);
  EXPECT_EQ(DumpAll(), before);
  EXPECT_THAT(find("late"), ::testing::Not(::testing::Contains("late")));

  // Found idle, then deleted on request (which also drops its activity
  // member): the erasure finds nothing.
  EXPECT_THAT(find("gone"), ::testing::Contains("gone"));
  absl::Notification deleted;
  store_->DeleteContact("gone", Deadline(), [&](absl::StatusOr<bool> existed) {
    EXPECT_TRUE(existed.ok() && *existed);
    deleted.Notify();
  });
  deleted.WaitForNotification();
  EXPECT_THAT(find("gone"), IsEmpty());
  EXPECT_EQ(erase("gone"), ContactStore::Erasure::kAbsent);
  for (const auto& [key, dump] : DumpAll()) {
    EXPECT_FALSE(IsKeyOf(key, "gone")) << key;
  }
}

TEST_F(RetentionTest, NoRetentionErasesNothing) {
  Track("kept", "view");
  clock_.Set(t0_ + absl::Hours(24 * 3650));
  std::map<std::string, std::string> before = DumpAll();
  RetentionSweeper sweeper(store_.get(), nullptr, &clock_, &metrics_, &audit_,
                           {});
  for (absl::Duration retention :
       {absl::InfiniteDuration(), absl::ZeroDuration(), -absl::Hours(1)}) {
    absl::Notification done;
    sweeper.RunPass(retention, Deadline(),
                    [&](absl::StatusOr<RetentionSweeper::Pass> pass) {
                      EXPECT_TRUE(pass.ok());
                      EXPECT_EQ(pass.ok() ? pass->shards : -1, 0);
                      done.Notify();
                    });
    done.WaitForNotification();
  }
  EXPECT_EQ(DumpAll(), before);
}

}  // namespace
}  // namespace tappa::server
