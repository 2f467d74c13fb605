#include "server/store/followup_store.h"

#include <openssl/sha.h>

#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "server/store/contact_codec.h"

namespace tappa::server {
namespace {

// KEYS: 1 shard due index, 2 shard payloads, 3 shard stream, 4 the contact's
// hash, 5 its restraint record.
// ARGV: 1 follow-up id, 2 the due ms the firer saw, 3 mode (deliver,
// postpone, drop), 4 now (base 36), 5 the contact's "u:" field, 6 new due
// ms, 7 new due (base 36), 8 rule id, 9 max touches, 10 max fired times, 11
// restraint ttl ms, 12 channel, 13 action, 14 N, then N stream field/value
// pairs. Returns 1 when it acted, 0 when the follow-up was no longer pending
// at that due time (another replica resolved it, or an event re-armed or
// cancelled it).
constexpr char kFireBody[] = R"lua(
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
local mode = ARGV[3]
local cur = redis.call('HGET', KEYS[4], ARGV[5])
local mine = cur and string.find(cur, '|' .. ARGV[1] .. '|', 1, true)
if mode == 'postpone' then
  redis.call('ZADD', KEYS[1], ARGV[6], ARGV[1])
  if mine then
    local rest = string.sub(cur, string.find(cur, '|', 1, true))
    redis.call('HSET', KEYS[4], ARGV[5], ARGV[7] .. rest)
    redis.call('HINCRBY', KEYS[4], 'v', 1)
  end
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if mine then
  redis.call('HDEL', KEYS[4], ARGV[5])
  redis.call('HINCRBY', KEYS[4], 'v', 1)
end
if mode == 'deliver' then
  local n = tonumber(ARGV[14])
  local fields = {}
  for i = 1, 2 * n do fields[i] = ARGV[14 + i] end
  redis.call('XADD', KEYS[3], '*', unpack(fields))
  touch(KEYS[5], ARGV[4], tonumber(ARGV[9]), 's', ARGV[12], ARGV[13])
  local f = 'fr|' .. ARGV[8]
  local s = ARGV[4]
  local old = redis.call('HGET', KEYS[5], f)
  if old then s = s .. ',' .. old end
  local keep, pos, count = tonumber(ARGV[10]), 0, 0
  while true do
    local i = string.find(s, ',', pos + 1, true)
    if not i then break end
    count = count + 1
    if count == keep then s = string.sub(s, 1, i - 1) break end
    pos = i
  end
  redis.call('HSET', KEYS[5], f, s)
  redis.call('PEXPIRE', KEYS[5], ARGV[11])
end
return 1
)lua";

absl::Status Unexpected(absl::string_view what, const RedisReply& r) {
  return absl::InternalError(absl::StrCat(what, ": unexpected reply from Redis",
                                          r.is_error() ? ": " : "", r.str));
}

// Appends the entries of one stream's XREADGROUP / XAUTOCLAIM entry list.
void AddEntries(int shard, const RedisReply& list, int64_t delivery_count,
                std::vector<StreamDelivery>* out) {
  for (const RedisReply& e : list.elements) {
    if (e.elements.size() != 2) continue;  // deleted entries are nil
    StreamDelivery d;
    d.shard = shard;
    d.entry_id = e.elements[0].str;
    d.delivery_count = delivery_count;
    const RedisReply& fields = e.elements[1];
    for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
      d.fields.emplace_back(fields.elements[i].str, fields.elements[i + 1].str);
    }
    out->push_back(std::move(d));
  }
}

}  // namespace

std::string EncodeFollowUpPayload(const FollowUpPayload& p) {
  // The dedupe key comes last: it is the only part that may hold '\n'.
  return absl::StrCat(p.contact_id, "\n", p.rule_id, "\n",
                      MillisOf(p.scheduled), "\n", p.dedupe_key);
}

bool DecodeFollowUpPayload(absl::string_view text, FollowUpPayload* p) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(text, absl::MaxSplits('\n', 3));
  int64_t ms = 0;
  if (parts.size() != 4 || parts[0].empty() || parts[1].empty() ||
      !absl::SimpleAtoi(parts[2], &ms)) {
    return false;
  }
  p->contact_id = std::string(parts[0]);
  p->rule_id = std::string(parts[1]);
  p->scheduled = TimeOfMillis(ms);
  p->dedupe_key = std::string(parts[3]);
  return true;
}

std::string NewFollowUpId(absl::string_view contact_id,
                          absl::string_view rule_id,
                          absl::string_view dedupe_key,
                          absl::string_view event_id) {
  std::string data =
      absl::StrCat(contact_id.size(), ":", contact_id, rule_id.size(), ":",
                   rule_id, dedupe_key.size(), ":", dedupe_key, event_id);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), 8));
}

FollowUpStore::FollowUpStore(ContactStore* contacts)
    : contacts_(contacts),
      redis_(contacts->redis()),
      fire_script_(absl::StrCat(kTouchLua, kFireBody)),
      fire_sha_(ScriptSha(fire_script_)) {}

std::string FollowUpStore::DueKey(int shard) const {
  return absl::StrFormat("tp:{s:%04d}:fd", shard);
}
std::string FollowUpStore::PendingKey(int shard) const {
  return absl::StrFormat("tp:{s:%04d}:fp", shard);
}
std::string FollowUpStore::StreamKey(int shard) const {
  return absl::StrFormat("tp:{s:%04d}:fs", shard);
}

void FollowUpStore::FindDue(absl::Time now, int per_shard, absl::Time deadline,
                            Done<std::vector<DueFollowUp>> done) {
  std::vector<std::vector<std::string>> commands;
  for (int s = 0; s < shards(); ++s) {
    commands.push_back({"ZRANGEBYSCORE", DueKey(s), "-inf",
                        absl::StrCat(MillisOf(now)), "WITHSCORES", "LIMIT", "0",
                        absl::StrCat(per_shard)});
  }
  redis_->Pipeline(
      std::move(commands), deadline,
      [this, deadline, done = std::move(done)](
          absl::StatusOr<std::vector<RedisReply>> replies) mutable {
        if (!replies.ok()) return done(replies.status());
        auto due = std::make_shared<std::vector<DueFollowUp>>();
        std::vector<std::vector<std::string>> reads;
        for (int s = 0; s < static_cast<int>(replies->size()); ++s) {
          const RedisReply& r = (*replies)[s];
          if (r.is_error()) return done(Unexpected("ZRANGEBYSCORE", r));
          for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
            int64_t ms = 0;
            double score = 0;
            if (!absl::SimpleAtod(r.elements[i + 1].str, &score)) continue;
            ms = static_cast<int64_t>(score);
            DueFollowUp f;
            f.shard = s;
            f.id = r.elements[i].str;
            f.due = TimeOfMillis(ms);
            reads.push_back({"HGET", PendingKey(s), f.id});
            due->push_back(std::move(f));
          }
        }
        if (due->empty()) return done(std::vector<DueFollowUp>());
        redis_->Pipeline(
            std::move(reads), deadline,
            [due, done = std::move(done)](
                absl::StatusOr<std::vector<RedisReply>> payloads) mutable {
              if (!payloads.ok()) return done(payloads.status());
              std::vector<DueFollowUp> out;
              for (size_t i = 0; i < due->size(); ++i) {
                FollowUpPayload p;
                if (DecodeFollowUpPayload((*payloads)[i].str, &p)) {
                  (*due)[i].payload = std::move(p);
                  out.push_back(std::move((*due)[i]));
                }
              }
              done(std::move(out));
            });
      });
}

void FollowUpStore::Resolve(const DueFollowUp& f, const Fire& fire,
                            absl::Time now, absl::Time deadline,
                            Done<bool> done) {
  ContactKeys keys = contacts_->KeysFor(f.payload.contact_id);
  const char* mode = fire.resolution == Resolution::kDeliver    ? "deliver"
                     : fire.resolution == Resolution::kPostpone ? "postpone"
                                                                : "drop";
  std::vector<std::string> args = {
      f.id,
      absl::StrCat(MillisOf(f.due)),
      mode,
      Base36(MillisOf(now)),
      PendingFollowUpField(f.payload.rule_id, f.payload.dedupe_key),
      absl::StrCat(MillisOf(fire.new_due)),
      Base36(std::max<int64_t>(0, MillisOf(fire.new_due))),
      f.payload.rule_id,
      absl::StrCat(ruleset::kMaxTouches),
      absl::StrCat(kMaxFiredTimes),
      absl::StrCat(absl::ToInt64Milliseconds(kRestraintTtl)),
      fire.channel,
      fire.action,
      absl::StrCat(fire.entry.size())};
  for (const auto& [k, v] : fire.entry) {
    args.push_back(k);
    args.push_back(v);
  }
  contacts_->RunScript(
      fire_script_, fire_sha_,
      {DueKey(f.shard), PendingKey(f.shard), StreamKey(f.shard), keys.contact,
       keys.restraint},
      std::move(args), deadline,
      [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        if (reply->type != RedisReply::Type::kInteger) {
          return done(Unexpected("fire script", *reply));
        }
        done(reply->integer == 1);
      });
}

void FollowUpStore::EnsureGroup(absl::string_view group, absl::Time deadline,
                                Done<bool> done) {
  std::vector<std::vector<std::string>> commands;
  for (int s = 0; s < shards(); ++s) {
    commands.push_back({"XGROUP", "CREATE", StreamKey(s), std::string(group),
                        "0", "MKSTREAM"});
  }
  redis_->Pipeline(std::move(commands), deadline,
                   [done = std::move(done)](
                       absl::StatusOr<std::vector<RedisReply>> r) mutable {
                     if (!r.ok()) return done(r.status());
                     for (const RedisReply& x : *r) {
                       // BUSYGROUP: it exists already, as wanted.
                       if (x.is_error() && x.str.rfind("BUSYGROUP", 0) != 0)
                         return done(Unexpected("XGROUP CREATE", x));
                     }
                     done(true);
                   });
}

namespace {

void ReadGroupFrom(RedisClient* redis, const FollowUpStore& store,
                   absl::string_view group, absl::string_view consumer,
                   int count, absl::string_view from, int64_t delivery_count,
                   absl::Time deadline,
                   ContactStore::Done<std::vector<StreamDelivery>> done) {
  std::vector<std::string> command = {"XREADGROUP",
                                      "GROUP",
                                      std::string(group),
                                      std::string(consumer),
                                      "COUNT",
                                      absl::StrCat(count),
                                      "STREAMS"};
  for (int s = 0; s < store.shards(); ++s)
    command.push_back(store.StreamKey(s));
  for (int s = 0; s < store.shards(); ++s) command.emplace_back(from);
  redis->Command(
      std::move(command), deadline,
      [delivery_count, shards = store.shards(),
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        if (reply->is_error()) return done(Unexpected("XREADGROUP", *reply));
        std::vector<StreamDelivery> out;
        for (const RedisReply& stream : reply->elements) {
          if (stream.elements.size() != 2) continue;
          // "tp:{s:0042}:fs"
          int shard = 0;
          const std::string& key = stream.elements[0].str;
          if (key.size() < 10 || !absl::SimpleAtoi(key.substr(6, 4), &shard) ||
              shard >= shards)
            continue;
          AddEntries(shard, stream.elements[1], delivery_count, &out);
        }
        done(std::move(out));
      });
}

}  // namespace

void FollowUpStore::ReadNew(absl::string_view group, absl::string_view consumer,
                            int count, absl::Time deadline,
                            Done<std::vector<StreamDelivery>> done) {
  ReadGroupFrom(redis_, *this, group, consumer, count, ">", 1, deadline,
                std::move(done));
}

void FollowUpStore::ReadOwnPending(absl::string_view group,
                                   absl::string_view consumer, int count,
                                   absl::Time deadline,
                                   Done<std::vector<StreamDelivery>> done) {
  ReadGroupFrom(redis_, *this, group, consumer, count, "0", 2, deadline,
                std::move(done));
}

void FollowUpStore::ClaimIdle(absl::string_view group,
                              absl::string_view consumer,
                              absl::Duration min_idle, int count,
                              absl::Time deadline,
                              Done<std::vector<StreamDelivery>> done) {
  std::vector<std::vector<std::string>> commands;
  for (int s = 0; s < shards(); ++s) {
    commands.push_back({"XAUTOCLAIM", StreamKey(s), std::string(group),
                        std::string(consumer),
                        absl::StrCat(absl::ToInt64Milliseconds(min_idle)), "0",
                        "COUNT", absl::StrCat(count)});
  }
  redis_->Pipeline(std::move(commands), deadline,
                   [done = std::move(done)](
                       absl::StatusOr<std::vector<RedisReply>> r) mutable {
                     if (!r.ok()) return done(r.status());
                     std::vector<StreamDelivery> out;
                     for (int s = 0; s < static_cast<int>(r->size()); ++s) {
                       const RedisReply& x = (*r)[s];
                       // NOGROUP: the stream has no such group yet.
                       if (x.is_error() || x.elements.size() < 2) continue;
                       AddEntries(s, x.elements[1], 2, &out);
                     }
                     done(std::move(out));
                   });
}

void FollowUpStore::Ack(absl::string_view group,
                        const std::vector<std::pair<int, std::string>>& entries,
                        absl::Time deadline, Done<int64_t> done) {
  std::vector<std::vector<std::string>> commands;
  for (const auto& [shard, id] : entries) {
    commands.push_back({"XACK", StreamKey(shard), std::string(group), id});
  }
  if (commands.empty()) return done(int64_t{0});
  redis_->Pipeline(std::move(commands), deadline,
                   [done = std::move(done)](
                       absl::StatusOr<std::vector<RedisReply>> r) mutable {
                     if (!r.ok()) return done(r.status());
                     int64_t n = 0;
                     for (const RedisReply& x : *r) {
                       if (x.is_error()) return done(Unexpected("XACK", x));
                       n += x.integer;
                     }
                     done(n);
                   });
}

void FollowUpStore::CountPending(absl::Time deadline, Done<int64_t> done) {
  std::vector<std::vector<std::string>> commands;
  for (int s = 0; s < shards(); ++s) commands.push_back({"ZCARD", DueKey(s)});
  redis_->Pipeline(std::move(commands), deadline,
                   [done = std::move(done)](
                       absl::StatusOr<std::vector<RedisReply>> r) mutable {
                     if (!r.ok()) return done(r.status());
                     int64_t n = 0;
                     for (const RedisReply& x : *r) n += x.integer;
                     done(n);
                   });
}

void FollowUpStore::Trim(absl::Time deadline, Done<bool> done) {
  std::vector<std::vector<std::string>> infos;
  for (int s = 0; s < shards(); ++s) {
    infos.push_back({"XINFO", "GROUPS", StreamKey(s)});
  }
  redis_->Pipeline(
      std::move(infos), deadline,
      [this, deadline, done = std::move(done)](
          absl::StatusOr<std::vector<RedisReply>> r) mutable {
        if (!r.ok()) return done(r.status());
        // Per shard: the groups' names and last delivered ids.
        std::vector<std::vector<std::string>> commands;
        std::vector<std::vector<std::string>> pending;
        auto plan =
            std::make_shared<std::vector<std::pair<int, std::string>>>();
        for (int s = 0; s < static_cast<int>(r->size()); ++s) {
          const RedisReply& groups = (*r)[s];
          if (groups.is_error()) continue;  // no stream yet
          if (groups.elements.empty()) {
            commands.push_back({"XTRIM", StreamKey(s), "MAXLEN", "~",
                                absl::StrCat(kMaxUngroupedStreamEntries)});
            continue;
          }
          std::string min_id;
          for (const RedisReply& g : groups.elements) {
            std::string name, last;
            for (size_t i = 0; i + 1 < g.elements.size(); i += 2) {
              if (g.elements[i].str == "name") name = g.elements[i + 1].str;
              if (g.elements[i].str == "last-delivered-id")
                last = g.elements[i + 1].str;
            }
            pending.push_back({"XPENDING", StreamKey(s), name});
            plan->emplace_back(s, last);
          }
        }
        redis_->Pipeline(
            std::move(pending), deadline,
            [this, plan, commands = std::move(commands), deadline,
             done = std::move(done)](
                absl::StatusOr<std::vector<RedisReply>> p) mutable {
              if (!p.ok()) return done(p.status());
              // The oldest id any group still needs, per shard: its oldest
              // pending entry, else the entry after its last delivered one
              // (approximated by the last delivered id itself).
              auto before = [](const std::string& a, const std::string& b) {
                int64_t am = 0, as = 0, bm = 0, bs = 0;
                std::pair<absl::string_view, absl::string_view> x =
                    absl::StrSplit(a, absl::MaxSplits('-', 1));
                std::pair<absl::string_view, absl::string_view> y =
                    absl::StrSplit(b, absl::MaxSplits('-', 1));
                absl::SimpleAtoi(x.first, &am);
                absl::SimpleAtoi(x.second, &as);
                absl::SimpleAtoi(y.first, &bm);
                absl::SimpleAtoi(y.second, &bs);
                return am != bm ? am < bm : as < bs;
              };
              std::vector<std::string> min_id(shards());
              for (size_t i = 0; i < plan->size(); ++i) {
                auto [shard, last] = (*plan)[i];
                std::string need = last;
                const RedisReply& x = (*p)[i];
                if (!x.is_error() && x.elements.size() >= 2 &&
                    x.elements[0].integer > 0 &&
                    before(x.elements[1].str, need)) {
                  need = x.elements[1].str;
                }
                if (min_id[shard].empty() || before(need, min_id[shard]))
                  min_id[shard] = need;
              }
              for (int s = 0; s < shards(); ++s) {
                if (min_id[s].empty() || min_id[s] == "0-0") continue;
                commands.push_back({"XTRIM", StreamKey(s), "MINID", min_id[s]});
              }
              if (commands.empty()) return done(true);
              redis_->Pipeline(
                  std::move(commands), deadline,
                  [done = std::move(done)](
                      absl::StatusOr<std::vector<RedisReply>> t) mutable {
                    if (!t.ok()) return done(t.status());
                    done(true);
                  });
            });
      });
}

}  // namespace tappa::server
