#include "server/store/contact_codec.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/ruleset/loader.h"
#include "server/store/contact_store.h"

namespace tappa::server {
namespace {

constexpr char kRules[] = R"yaml(
phases: [awareness, consideration]
channels: [web, email]
counters:
  - {id: views_7d, on: 'event.type == "product_view"', window: 7d, bucket: 24h}
  - {id: purchases, on: 'event.type == "purchase"'}
placements:
  - {id: web.home, channel: web}
actions:
  - {id: hello, kind: message, placements: [web.home]}
)yaml";

RedisReply HashReply(const FieldMap& fields, int64_t version) {
  RedisReply r;
  r.type = RedisReply::Type::kArray;
  auto add = [&r](const std::string& s) {
    RedisReply e;
    e.type = RedisReply::Type::kString;
    e.str = s;
    r.elements.push_back(e);
  };
  add("v");
  add(std::to_string(version));
  for (const auto& [k, v] : fields) {
    add(k);
    add(v);
  }
  return r;
}

TEST(ContactCodecTest, RoundTripsEveryPart) {
  auto rs = ruleset::LoadRulesetFromString(kRules, "codec.yaml");
  ASSERT_TRUE(rs.ok()) << rs.status();
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  ruleset::ContactSnapshot c;
  c.id = "ada";
  c.phase = 1;
  c.phase_since = now - absl::Hours(2);
  c.first_seen = now - absl::Hours(100);
  c.last_seen = now;
  c.last_seen_by_channel = {{"web", now}, {"email", now - absl::Hours(1)}};
  c.counts = {0, 4};
  c.rolling.resize(2);
  int64_t today = ruleset::BucketOf(now, absl::Hours(24));
  c.rolling[0] = {today - 1, {2, 3}};
  c.attrs = {{"country", cel::Value::String("IT")},
             {"age", cel::Value::Int(34)},
             {"vip", cel::Value::Bool(true)}};
  c.attr_times = {{"country", now - absl::Hours(5)},
                  {"vip", now - absl::Hours(1)},
                  {"gone", now}};  // no such attribute: not stored
  c.consents = {{"email", true}, {"web", false}};
  c.nps = ruleset::CxScore{9, now - absl::Hours(3)};

  FieldMap fields = EncodeContact(**rs, c);
  absl::StatusOr<DecodedContact> d =
      DecodeContact(**rs, "ada", HashReply(fields, 7), now);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->exists);
  EXPECT_EQ(d->version, 7);
  const ruleset::ContactSnapshot& back = d->snapshot;
  EXPECT_EQ(back.phase, 1);
  EXPECT_EQ(back.phase_since, c.phase_since);
  EXPECT_EQ(back.first_seen, c.first_seen);
  EXPECT_EQ(back.counts[0], 5);  // windowed: 2 + 3 within the week
  EXPECT_EQ(back.counts[1], 4);
  ASSERT_EQ(back.attrs.size(), 3u);
  ASSERT_EQ(back.attr_times.size(), 2u);
  for (const auto& [name, at] : back.attr_times) {
    EXPECT_EQ(at,
              name == "country" ? now - absl::Hours(5) : now - absl::Hours(1))
        << name;
  }
  ASSERT_EQ(back.consents.size(), 2u);
  ASSERT_TRUE(back.nps.has_value());
  EXPECT_EQ(back.nps->score, 9);
  EXPECT_EQ(EncodeContact(**rs, back), fields);  // stable
}

TEST(ContactCodecTest, EmptyHashIsANewContactAndUnknownFieldsAreIgnored) {
  auto rs = ruleset::LoadRulesetFromString(kRules, "codec.yaml");
  ASSERT_TRUE(rs.ok());
  RedisReply empty;
  empty.type = RedisReply::Type::kArray;
  auto d = DecodeContact(**rs, "x", empty, absl::Now());
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->exists);
  EXPECT_EQ(d->snapshot.phase, (*rs)->initial_phase);

  // A ruleset that dropped a phase, a counter and a channel still reads it.
  auto old = DecodeContact(
      **rs, "x",
      HashReply({{"p", "gone"}, {"n:old_counter", "3"}, {"l:fax", "1"}}, 1),
      absl::Now());
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->snapshot.phase, (*rs)->initial_phase);
  EXPECT_TRUE(old->snapshot.last_seen_by_channel.empty());
}

TEST(ContactCodecTest, WindowedCountersAreStoredSparsely) {
  auto rs = ruleset::LoadRulesetFromString(kRules, "codec.yaml");
  ASSERT_TRUE(rs.ok());
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  int64_t today = ruleset::BucketOf(now, absl::Hours(24));
  ruleset::ContactSnapshot c;
  c.counts = {0, 0};
  c.rolling.resize(2);
  c.rolling[0] = {today - 6, {0, 0, 3, 0, 0, 0, 1}};
  FieldMap fields = EncodeContact(**rs, c);
  EXPECT_EQ(fields["w:views_7d"], absl::StrCat(today - 6, ":2=3,6=1"));
  auto d = DecodeContact(**rs, "x", HashReply(fields, 1), now);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->snapshot.counts[0], 4);
  EXPECT_EQ(d->snapshot.rolling[0].buckets, c.rolling[0].buckets);
}

TEST(ContactCodecTest, DiffSetsChangedAndRemovesGoneFields) {
  std::vector<std::pair<std::string, std::string>> set;
  std::vector<std::string> remove;
  DiffFields({{"a", "1"}, {"b", "2"}, {"c", "3"}},
             {{"a", "1"}, {"b", "9"}, {"d", "4"}}, &set, &remove);
  EXPECT_THAT(set, ::testing::UnorderedElementsAre(std::make_pair("b", "9"),
                                                   std::make_pair("d", "4")));
  EXPECT_THAT(remove, ::testing::ElementsAre("c"));
}

TEST(ContactStoreKeysTest, EveryKeyOfAContactSharesItsShardTag) {
  EXPECT_EQ(ShardOf("ada", 1024), ShardOf("ada", 1024));
  // FNV-1a 64 of "ada" is fixed: the shard never depends on the process.
  EXPECT_EQ(ShardOf("", 1024),
            static_cast<int>(14695981039346656037ull % 1024));
  ContactStore store(nullptr, 1024);
  ContactKeys keys = store.KeysFor("ada");
  std::string tag = keys.contact.substr(0, keys.contact.find('}') + 1);
  EXPECT_EQ(tag.rfind("tp:{s:", 0), 0u);
  EXPECT_EQ(keys.history.substr(0, tag.size()), tag);
  EXPECT_EQ(keys.shard_phases.substr(0, tag.size()), tag);
}

TEST(EventRecordTest, RoundTripCompactly) {
  auto rs = ruleset::LoadRulesetFromString(kRules, "codec.yaml");
  ASSERT_TRUE(rs.ok());
  EventRecord r{absl::FromUnixMillis(1'800'000'000'123),
                absl::FromUnixMillis(1'800'000'000'000), "awareness",
                "consideration", false};
  std::string text = EncodeEventRecord(**rs, r);
  EXPECT_LE(text.size(), 16u) << text;
  EventRecord back;
  ASSERT_TRUE(DecodeEventRecord(**rs, text, &back));
  EXPECT_EQ(back.receive_time, r.receive_time);
  EXPECT_EQ(back.event_time, r.event_time);
  EXPECT_EQ(back.previous_phase, "awareness");
  EXPECT_EQ(back.phase, "consideration");
  EXPECT_FALSE(back.created);
  r.created = true;
  r.previous_phase = "";
  ASSERT_TRUE(DecodeEventRecord(**rs, EncodeEventRecord(**rs, r), &back));
  EXPECT_TRUE(back.created);
  EXPECT_EQ(back.previous_phase, "");
  EXPECT_FALSE(DecodeEventRecord(**rs, "garbage", &back));
  EXPECT_EQ(EventField("evt-1").size(), 10u);
  EXPECT_EQ(EventField("evt-1").substr(0, 2), "e:");
}

TEST(HistoryTest, PreviousPhaseComesFromTheOlderEntry) {
  absl::Time t = absl::FromUnixSeconds(1'800'000'000);
  std::string text;
  const char* phases[] = {"awareness", "consideration", "conversion"};
  for (int i = 0; i < 3; ++i) {  // oldest first, prepended like the script
    HistoryEntry e{t + absl::Minutes(i),
                   "",
                   phases[i],
                   t + absl::Minutes(i) - absl::Seconds(3),
                   "evt",
                   "web",
                   i == 1 ? "web.home" : ""};
    text = text.empty() ? EncodeHistory(e) : EncodeHistory(e) + "\n" + text;
  }
  std::vector<HistoryEntry> all = DecodeHistory(text, 50);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].phase, "conversion");
  EXPECT_EQ(all[0].previous_phase, "consideration");
  EXPECT_EQ(all[2].previous_phase, "");  // creation
  EXPECT_EQ(all[1].placement, "web.home");
  EXPECT_EQ(all[1].event_time, t + absl::Minutes(1) - absl::Seconds(3));
  std::vector<HistoryEntry> two = DecodeHistory(text, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[1].previous_phase, "awareness");  // from the entry not returned
  EXPECT_TRUE(DecodeHistory("junk\nmore|junk", 50).empty());
}

}  // namespace
}  // namespace tappa::server
