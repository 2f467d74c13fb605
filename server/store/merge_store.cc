#include "server/store/merge_store.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/store/followup_store.h"

namespace tappa::server {
namespace {

// Step 1. KEYS: B's hash, B's merge record, B's shard's pending merges.
// ARGV: A, now ms, B. Yields {"ok"} or {"busy", other survivor}.
constexpr char kBeginScript[] = R"lua(
local cur = redis.call('HGET', KEYS[1], 'mi')
if cur and cur ~= ARGV[1] then return {'busy', cur} end
if redis.call('HGET', KEYS[1], 'tomb') then return {'ok'} end
if not cur then
  redis.call('HSET', KEYS[1], 'mi', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'v', 1)
end
redis.call('HSET', KEYS[2], 'into', ARGV[1], 'started', ARGV[2])
redis.call('ZADD', KEYS[3], 'NX', ARGV[2], ARGV[3])
return {'ok'}
)lua";

// Step 2. KEYS: A's hash, history, restraint record, shard phases, due
// follow-ups, pending follow-ups, activity index. ARGV: 1 expected version,
// 2 marker field, 3 now ms, 4 merged history ("" = none), 5 old phase or
// "", 6 new phase, 7 A, 8 restraint TTL ms, then N and N field/value pairs
// to set, M and M fields to delete, R and R restraint field/value pairs
// (the whole record), S and S (id, due ms, payload) follow-ups to schedule.
// Yields "ok", "done" (already applied) or "conflict".
constexpr char kApplyBody[] = R"lua(
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return 'done' end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return 'conflict' end
local at = 9
local n = tonumber(ARGV[at])
local set = {'v', tostring(v + 1), ARGV[2], ARGV[3]}
for i = at + 1, at + 2 * n do set[#set + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(set))
at = at + 2 * n + 1
local m = tonumber(ARGV[at])
if m > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, at + 1, at + m)) end
at = at + m + 1
if ARGV[4] ~= '' then redis.call('SET', KEYS[2], ARGV[4]) end
local r = tonumber(ARGV[at])
redis.call('DEL', KEYS[3])
if r > 0 then
  redis.call('HSET', KEYS[3], unpack(ARGV, at + 1, at + 2 * r))
  redis.call('PEXPIRE', KEYS[3], ARGV[8])
end
schedule_followups(KEYS[5], KEYS[6], at + 2 * r + 1)
move_phase_count(KEYS[4], ARGV[5], ARGV[6])
redis.call('ZADD', KEYS[7], 'GT', ARGV[3], ARGV[7])
return 'ok'
)lua";

// Step 3, per alias. KEYS: the alias record, the hash of a contact whose
// canonical id is the alias (same shard). ARGV: B, A. Points the record at
// A unless it names a third contact; a tombstone that pointed at B now
// points at A (so erasing A finds it). Yields 1 when the record names A.
constexpr char kRepointScript[] = R"lua(
local o = redis.call('GET', KEYS[1])
local moved = 0
if (not o) or o == ARGV[1] or o == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2])
  moved = 1
end
if redis.call('HGET', KEYS[2], 'tomb') and
   redis.call('HGET', KEYS[2], 'mi') == ARGV[1] then
  redis.call('HSET', KEYS[2], 'mi', ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'v', 1)
elseif moved == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'mi', ARGV[2], 'tomb', '1', 'v', '1')
end
return moved
)lua";

// Step 4. KEYS: B's hash, history, restraint record, alias set, shard
// phases, due follow-ups, pending follow-ups, activity index, merge record,
// pending merges. ARGV: A, B, then B's pending follow-up ids. Yields 1 when
// it erased B, 0 when B was already a tombstone.
constexpr char kFinishScript[] = R"lua(
local function done()
  redis.call('DEL', KEYS[9])
  redis.call('ZREM', KEYS[10], ARGV[2])
end
if redis.call('HGET', KEYS[1], 'tomb') then done() return 0 end
local p = redis.call('HGET', KEYS[1], 'p')
if p then redis.call('HINCRBY', KEYS[5], p, -1) end
for i = 3, #ARGV do
  redis.call('ZREM', KEYS[6], ARGV[i])
  redis.call('HDEL', KEYS[7], ARGV[i])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'mi', ARGV[1], 'tomb', '1')
redis.call('ZREM', KEYS[8], ARGV[2])
done()
return 1
)lua";

int64_t LeadingBase36(absl::string_view s) {
  size_t end = s.find('|');
  int64_t n = 0;
  if (!ParseBase36(s.substr(0, end), &n)) return 0;
  return n;
}

// Entries newest first by their leading base-36 time; the survivor's first
// on a tie (a stable sort of survivor's then absorbed's).
std::vector<std::string> NewestFirst(std::vector<std::string> survivor,
                                     std::vector<std::string> absorbed,
                                     size_t max) {
  for (std::string& e : absorbed) survivor.push_back(std::move(e));
  std::stable_sort(survivor.begin(), survivor.end(),
                   [](const std::string& a, const std::string& b) {
                     return LeadingBase36(a) > LeadingBase36(b);
                   });
  if (survivor.size() > max) survivor.resize(max);
  return survivor;
}

std::vector<std::string> SplitNonEmpty(absl::string_view s, char sep) {
  return absl::StrSplit(s, sep, absl::SkipEmpty());
}

FieldMap FieldsOf(const RedisReply& hgetall) {
  FieldMap fields;
  for (size_t i = 0; i + 1 < hgetall.elements.size(); i += 2) {
    fields[hgetall.elements[i].str] = hgetall.elements[i + 1].str;
  }
  return fields;
}

}  // namespace

std::string MergeHistoryText(absl::string_view survivor,
                             absl::string_view absorbed, size_t max_entries) {
  return absl::StrJoin(NewestFirst(SplitNonEmpty(survivor, '\n'),
                                   SplitNonEmpty(absorbed, '\n'), max_entries),
                       "\n");
}

FieldMap MergeRestraintFields(const FieldMap& survivor,
                              const FieldMap& absorbed) {
  FieldMap out = survivor;
  for (const auto& [field, value] : absorbed) {
    auto it = out.find(field);
    if (it == out.end()) {
      out[field] = value;
      continue;
    }
    std::string& mine = it->second;
    if (field == "t") {
      mine = absl::StrJoin(
          NewestFirst(SplitNonEmpty(mine, ','), SplitNonEmpty(value, ','),
                      ruleset::kMaxTouches),
          ",");
    } else if (field == "gs" || field == "gi" ||
               absl::StartsWith(field, "ls|") ||
               absl::StartsWith(field, "li|") ||
               absl::StartsWith(field, "cs|") ||
               absl::StartsWith(field, "ci|")) {
      int64_t a = 0, b = 0;
      (void)absl::SimpleAtoi(mine, &a);
      (void)absl::SimpleAtoi(value, &b);
      mine = absl::StrCat(a + b);
    } else if (absl::StartsWith(field, "fr|")) {
      mine = absl::StrJoin(
          NewestFirst(SplitNonEmpty(mine, ','), SplitNonEmpty(value, ','),
                      ruleset::kMaxFiredTimes),
          ",");
    } else if (absl::StartsWith(field, "d|") ||
               absl::StartsWith(field, "dc|")) {
      if (LeadingBase36(value) > LeadingBase36(mine)) mine = value;
    } else if (absl::StartsWith(field, "o|")) {
      // "<time>|<kinds>": the earlier time, every kind either recorded.
      size_t bar = value.find('|');
      if (bar != std::string::npos) {
        for (char kind : value.substr(bar + 1)) {
          if (mine.find(kind, mine.find('|') + 1) == std::string::npos) {
            mine.push_back(kind);
          }
        }
      }
    }
    // Anything else ("oc", unknown fields): the survivor's.
  }
  return out;
}

MergeStore::MergeStore(ContactStore* contacts, IdentityStore* identities)
    : contacts_(contacts),
      identities_(identities),
      begin_sha_(ScriptSha(kBeginScript)),
      apply_script_(absl::StrCat(kShardUpdatesLua, kApplyBody)),
      apply_sha_(ScriptSha(apply_script_)),
      repoint_sha_(ScriptSha(kRepointScript)),
      finish_sha_(ScriptSha(kFinishScript)) {}

std::string MergeStore::MergeRecordKey(absl::string_view absorbed) const {
  return absl::StrFormat("tp:{s:%04d}:m:%s",
                         ShardOf(absorbed, contacts_->shards()), absorbed);
}

std::string MergeStore::PendingMergesKey(int shard) const {
  return absl::StrFormat("tp:{s:%04d}:merges", shard);
}

void MergeStore::Begin(absl::string_view survivor, absl::string_view absorbed,
                       absl::Time now, absl::Time deadline,
                       Done<std::pair<MergeStep, std::string>> done) {
  ContactKeys b = contacts_->KeysFor(absorbed);
  contacts_->RunScript(
      kBeginScript, begin_sha_,
      {b.contact, MergeRecordKey(absorbed),
       PendingMergesKey(ShardOf(absorbed, contacts_->shards()))},
      {std::string(survivor), absl::StrCat(MillisOf(now)),
       std::string(absorbed)},
      deadline,
      [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        if (reply->type != RedisReply::Type::kArray ||
            reply->elements.empty()) {
          return done(UnexpectedReply("merge begin script", *reply));
        }
        if (reply->elements[0].str == "busy" && reply->elements.size() == 2) {
          return done(std::make_pair(MergeStep::kBusy,
                                     std::move(reply->elements[1].str)));
        }
        done(std::make_pair(MergeStep::kDone, std::string()));
      });
}

void MergeStore::Apply(std::shared_ptr<const ruleset::Ruleset> ruleset,
                       absl::string_view survivor, absl::string_view absorbed,
                       const ruleset::MergeOptions& options, absl::Time now,
                       absl::Time deadline, Done<MergeStep> done) {
  ApplyAttempt(std::move(ruleset), std::string(survivor), std::string(absorbed),
               options, now, deadline, 1, std::move(done));
}

void MergeStore::ApplyAttempt(std::shared_ptr<const ruleset::Ruleset> ruleset,
                              std::string survivor, std::string absorbed,
                              ruleset::MergeOptions options, absl::Time now,
                              absl::Time deadline, int attempt,
                              Done<MergeStep> done) {
  ContactKeys a = contacts_->KeysFor(survivor);
  ContactKeys b = contacts_->KeysFor(absorbed);
  contacts_->redis()->Pipeline(
      {{"HGETALL", a.contact},
       {"GET", a.history},
       {"HGETALL", a.restraint},
       {"HGETALL", b.contact},
       {"GET", b.history},
       {"HGETALL", b.restraint}},
      deadline,
      [this, ruleset, survivor, absorbed, options, now, deadline, attempt, a,
       done = std::move(done)](
          absl::StatusOr<std::vector<RedisReply>> replies) mutable {
        if (!replies.ok()) return done(replies.status());
        std::vector<RedisReply>& r = *replies;
        for (const RedisReply& reply : r) {
          if (reply.is_error()) {
            return done(UnexpectedReply("merge read", reply));
          }
        }
        const std::string marker = absl::StrCat("mg:", absorbed);
        FieldMap a_fields = FieldsOf(r[0]);
        FieldMap b_fields = FieldsOf(r[3]);
        if (a_fields.contains(marker) || b_fields.contains("tomb")) {
          return done(MergeStep::kDone);
        }
        const ruleset::Ruleset& rs = *ruleset;
        absl::StatusOr<DecodedContact> a_contact =
            DecodeContact(rs, survivor, r[0], now);
        absl::StatusOr<DecodedContact> b_contact =
            DecodeContact(rs, absorbed, r[3], now);
        if (!a_contact.ok()) return done(a_contact.status());
        if (!b_contact.ok()) return done(b_contact.status());
        // A hash that only marks a merge (B linked before any event) holds
        // no profile.
        const bool a_exists = a_fields.contains("p");
        const bool b_exists = b_fields.contains("p");
        ruleset::ContactSnapshot merged =
            b_exists ? ruleset::MergeContacts(rs, a_contact->snapshot,
                                              b_contact->snapshot, now, options)
                     : a_contact->snapshot;
        merged.id = survivor;
        if (!a_exists && b_exists) {
          merged = b_contact->snapshot;
          merged.id = survivor;
        }

        std::vector<std::pair<std::string, std::string>> set;
        std::vector<std::string> remove;
        FieldMap old_fields =
            a_exists ? EncodeContact(rs, a_contact->snapshot) : FieldMap();
        if (a_exists || b_exists) {
          DiffFields(old_fields, EncodeContact(rs, merged), &set, &remove);
        }
        // B's idempotency records: a retried event first applied to B is
        // recognized on A.
        for (const auto& [field, value] : b_fields) {
          if (absl::StartsWith(field, "e:") && !a_fields.contains(field)) {
            set.emplace_back(field, value);
          }
        }
        // B's pending follow-ups move to A, unless A has one of the same
        // rule and dedupe key.
        std::vector<FollowUpSchedule> schedule;
        for (const PendingFollowUp& p : b_contact->pending) {
          if (a_fields.contains(p.field)) continue;
          std::string id = NewFollowUpId(survivor, p.rule_id, p.dedupe_key,
                                         absl::StrCat("merge:", absorbed));
          set.emplace_back(p.field, absl::StrCat(Base36(MillisOf(p.due)), "|",
                                                 id, "|", p.dedupe_key));
          schedule.push_back({id, p.due,
                              EncodeFollowUpPayload(
                                  {survivor, p.rule_id, p.dedupe_key, now})});
        }
        std::string history =
            r[4].is_nil() ? std::string()
                          : MergeHistoryText(r[1].is_nil() ? "" : r[1].str,
                                             r[4].str, kMaxHistory + 1);
        FieldMap restraint =
            MergeRestraintFields(FieldsOf(r[2]), FieldsOf(r[5]));

        std::vector<std::string> args = {
            a_exists ? absl::StrCat(a_contact->version) : "0",
            marker,
            absl::StrCat(MillisOf(now)),
            history,
            a_exists ? rs.phases[a_contact->snapshot.phase].id : "",
            (a_exists || b_exists) ? rs.phases[merged.phase].id : "",
            survivor,
            absl::StrCat(absl::ToInt64Milliseconds(kRestraintTtl))};
        if (!a_exists && !b_exists) args[5] = "";
        args.push_back(absl::StrCat(set.size()));
        for (auto& [f, v] : set) {
          args.push_back(f);
          args.push_back(v);
        }
        args.push_back(absl::StrCat(remove.size()));
        for (auto& f : remove) args.push_back(f);
        args.push_back(absl::StrCat(restraint.size()));
        for (auto& [f, v] : restraint) {
          args.push_back(f);
          args.push_back(v);
        }
        args.push_back(absl::StrCat(schedule.size()));
        for (const FollowUpSchedule& s : schedule) {
          args.push_back(s.id);
          args.push_back(absl::StrCat(MillisOf(s.due)));
          args.push_back(s.payload);
        }
        contacts_->RunScript(
            apply_script_, apply_sha_,
            {a.contact, a.history, a.restraint, a.shard_phases, a.followups_due,
             a.followups_pending, a.activity},
            std::move(args), deadline,
            [this, ruleset, survivor, absorbed, options, now, deadline, attempt,
             done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
              if (!reply.ok()) return done(reply.status());
              if (reply->type != RedisReply::Type::kString &&
                  reply->type != RedisReply::Type::kStatus) {
                return done(UnexpectedReply("merge apply script", *reply));
              }
              if (reply->str == "conflict") {
                if (attempt >= 32) return done(MergeStep::kConflict);
                return ApplyAttempt(std::move(ruleset), std::move(survivor),
                                    std::move(absorbed), options, now, deadline,
                                    attempt + 1, std::move(done));
              }
              done(MergeStep::kDone);
            });
      });
}

void MergeStore::MoveAliases(absl::string_view survivor,
                             absl::string_view absorbed, absl::Time deadline,
                             Done<int> done) {
  identities_->Aliases(
      absorbed, deadline,
      [this, survivor = std::string(survivor), absorbed = std::string(absorbed),
       deadline, done = std::move(done)](
          absl::StatusOr<std::vector<std::string>> aliases) mutable {
        if (!aliases.ok()) return done(aliases.status());
        // B's own id goes too: it names A from now on (as an alias when it
        // has an alias's shape; through its tombstone otherwise).
        aliases->push_back(absorbed);
        std::vector<ContactStore::ScriptCall> calls;
        std::vector<std::string> sadd = {"SADD",
                                         identities_->AliasSetKey(survivor)};
        for (std::string& alias : *aliases) {
          calls.push_back({{identities_->AliasKey(alias),
                            contacts_->KeysFor(alias).contact},
                           {absorbed, survivor}});
          sadd.push_back(std::move(alias));
        }
        contacts_->RunScriptOnEach(
            kRepointScript, repoint_sha_, std::move(calls), deadline, "repoint",
            [this, sadd = std::move(sadd), deadline,
             done = std::move(done)](absl::StatusOr<int64_t> moved) mutable {
              if (!moved.ok()) return done(moved.status());
              contacts_->redis()->Command(
                  std::move(sadd), deadline,
                  [moved = static_cast<int>(*moved), done = std::move(done)](
                      absl::StatusOr<RedisReply> added) mutable {
                    if (!added.ok()) return done(added.status());
                    done(moved);
                  });
            });
      });
}

void MergeStore::Finish(std::shared_ptr<const ruleset::Ruleset> ruleset,
                        absl::string_view survivor, absl::string_view absorbed,
                        absl::Time deadline, Done<bool> done) {
  ContactKeys b = contacts_->KeysFor(absorbed);
  contacts_->redis()->Command(
      {"HGETALL", b.contact}, deadline,
      [this, ruleset, b, survivor = std::string(survivor),
       absorbed = std::string(absorbed), deadline,
       done = std::move(done)](absl::StatusOr<RedisReply> hash) mutable {
        if (!hash.ok()) return done(hash.status());
        if (hash->type != RedisReply::Type::kArray) {
          return done(UnexpectedReply("merge finish read", *hash));
        }
        absl::StatusOr<DecodedContact> decoded =
            DecodeContact(*ruleset, absorbed, *hash, absl::Now());
        if (!decoded.ok()) return done(decoded.status());
        std::vector<std::string> args = {survivor, absorbed};
        for (const PendingFollowUp& p : decoded->pending) args.push_back(p.id);
        int shard = ShardOf(absorbed, contacts_->shards());
        contacts_->RunScript(
            kFinishScript, finish_sha_,
            {b.contact, b.history, b.restraint,
             identities_->AliasSetKey(absorbed), b.shard_phases,
             b.followups_due, b.followups_pending, b.activity,
             MergeRecordKey(absorbed), PendingMergesKey(shard)},
            std::move(args), deadline,
            [done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
              if (!r.ok()) return done(r.status());
              if (r->type != RedisReply::Type::kInteger) {
                return done(UnexpectedReply("merge finish script", *r));
              }
              done(r->integer == 1);
            });
      });
}

void MergeStore::PendingInto(absl::string_view absorbed, absl::Time deadline,
                             Done<std::string> done) {
  contacts_->redis()->Command(
      {"HGET", MergeRecordKey(absorbed), "into"}, deadline,
      [done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
        if (!r.ok()) return done(r.status());
        if (r->is_nil()) return done(std::string());
        if (r->type != RedisReply::Type::kString) {
          return done(UnexpectedReply("merge record", *r));
        }
        done(std::move(r->str));
      });
}

void MergeStore::StalledMerges(int shard, absl::Time before, int limit,
                               absl::Time deadline,
                               Done<std::vector<std::string>> done) {
  contacts_->redis()->Command(
      {"ZRANGEBYSCORE", PendingMergesKey(shard), "-inf",
       absl::StrCat(MillisOf(before)), "LIMIT", "0", absl::StrCat(limit)},
      deadline, [done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
        if (!r.ok()) return done(r.status());
        if (r->type != RedisReply::Type::kArray) {
          return done(UnexpectedReply("pending merges", *r));
        }
        std::vector<std::string> ids;
        for (RedisReply& e : r->elements) ids.push_back(std::move(e.str));
        done(std::move(ids));
      });
}

}  // namespace tappa::server
