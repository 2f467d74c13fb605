#include "server/store/contact_store.h"

#include <openssl/sha.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "server/store/restraint_codec.h"

namespace tappa::server {
namespace {

// A Lua function shared by the scripts that write a contact's data on
// behalf of a request: raises the contact's score in its shard's activity
// index to `now`. GT: never lowers it, so a replica whose clock lags a
// little cannot make a contact look idler than it is (a new member is
// added as usual).
constexpr char kActivityLua[] = R"lua(
local function note_activity(key, id, now)
  redis.call('ZADD', key, 'GT', now, id)
end
)lua";

// A Lua function shared by the scripts that keep idempotency records in a
// hash (events' "e:" fields, outcomes' "o|" fields; each value starts with
// its base-36 receive time): every `every` writes (counted in field
// `counter`) it drops the records older than `ttl` ms and then the oldest
// beyond `cap`.
constexpr char kPruneLua[] = R"lua(
local function prune_records(key, prefix, counter, every, ttl, cap, now)
  if redis.call('HINCRBY', key, counter, 1) < every then return end
  local all = redis.call('HGETALL', key)
  local live = {}
  local n = string.len(prefix)
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, n) == prefix then
      local t = tonumber(string.match(all[i + 1], '^(%w+)'), 36) or 0
      if t + ttl <= now then
        redis.call('HDEL', key, all[i])
      else
        live[#live + 1] = {t, all[i]}
      end
    end
  end
  if #live > cap then
    table.sort(live, function(a, b) return a[1] < b[1] end)
    for i = 1, #live - cap do redis.call('HDEL', key, live[i][2]) end
  end
  redis.call('HSET', key, counter, '0')
end
)lua";

// KEYS: contact, history, shard phases, shard follow-ups due, shard
// follow-ups pending, shard activity index.
// ARGV: 1 expected version, 2 event field, 3 event record, 4 now ms,
//   5 idempotency window ms, 6 max idempotency records, 7 prune every,
//   8 history entry or "", 9 max history entries, 10 old phase or "",
//   11 new phase, 12 N, then N field/value pairs, then M, then M fields to
//   delete, then S, then S (follow-up id, due ms, payload) triples to
//   schedule, then C, then C follow-up ids to cancel, then "1" to raise the
//   contact's score in the activity index (else ""), then the new version
//   (a fresh random number: recent_contacts.h says why), then (last) the
//   contact id.
// Returns {"dup", record} | {"conflict", the contact's HGETALL} |
//   {"ok", new version}.
constexpr char kCommitBody[] = R"lua(
local now = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local function received(rec)
  return tonumber(string.match(rec, '^(%w+)'), 36) or 0
end
local got = redis.call('HMGET', KEYS[1], ARGV[2], 'v')
local rec = got[1]
if rec and received(rec) + window > now then return {'dup', rec} end
local v = tonumber(got[2] or '0')
if v ~= tonumber(ARGV[1]) then
  return {'conflict', redis.call('HGETALL', KEYS[1])}
end
local n = tonumber(ARGV[12])
local set = {'v', ARGV[#ARGV - 1], ARGV[2], ARGV[3]}
for i = 13, 12 + 2 * n do set[#set + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(set))
local m = tonumber(ARGV[13 + 2 * n])
if m > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 14 + 2 * n, 13 + 2 * n + m))
end
prune_records(KEYS[1], 'e:', 'ec', tonumber(ARGV[7]), window,
              tonumber(ARGV[6]), now)
if ARGV[8] ~= '' then
  local h = redis.call('GET', KEYS[2])
  local s = ARGV[8]
  if h then s = s .. '\n' .. h end
  local keep, pos, count = tonumber(ARGV[9]), 0, 0
  while true do
    local i = string.find(s, '\n', pos + 1, true)
    if not i then break end
    count = count + 1
    if count == keep then s = string.sub(s, 1, i - 1) break end
    pos = i
  end
  redis.call('SET', KEYS[2], s)
end
move_phase_count(KEYS[3], ARGV[10], ARGV[11])
local at = schedule_followups(KEYS[4], KEYS[5], 14 + 2 * n + m)
for i = 1, tonumber(ARGV[at]) do
  redis.call('ZREM', KEYS[4], ARGV[at + i])
  redis.call('HDEL', KEYS[5], ARGV[at + i])
end
if ARGV[#ARGV - 2] == '1' then note_activity(KEYS[6], ARGV[#ARGV], now) end
return {'ok', ARGV[#ARGV - 1]}
)lua";

// KEYS: contact, history, shard phases, restraint, shard follow-ups due,
// shard follow-ups pending, shard activity index.
// ARGV: 1 contact id, 2 cutoff ms or "".
// Deletes every key of the contact, its pending follow-ups ("u:" fields:
// "<due>|<id>|<key>"), its place in the phase counts and its activity
// member. With a cutoff (retention) it first re-checks, atomically with the
// deletion, that the contact's last activity is still before the cutoff.
// Returns 1 when anything was deleted, 0 when nothing existed, 2 when the
// contact was active at or after the cutoff (nothing is deleted).
constexpr char kDeleteScript[] = R"lua(
if ARGV[2] ~= '' then
  local last = redis.call('ZSCORE', KEYS[7], ARGV[1])
  if last and tonumber(last) >= tonumber(ARGV[2]) then return 2 end
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'u:' then
    local id = string.match(all[i + 1], '^%w*|(%x+)|')
    if id then
      redis.call('ZREM', KEYS[5], id)
      redis.call('HDEL', KEYS[6], id)
    end
  end
end
local p = redis.call('HGET', KEYS[1], 'p')
local n = redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
if p then redis.call('HINCRBY', KEYS[3], p, -1) end
redis.call('ZREM', KEYS[7], ARGV[1])
-- The contact's aliases live in other shards: DeleteContact and retention
-- erase them first (IdentityStore::EraseAliases), then run this script.
if n > 0 then return 1 end
return 0
)lua";

// KEYS: restraint record, shard activity index. ARGV: 1 mode ("serve" or
// "outcome"), 2 now (base 36), 3 now ms, 4 max touches, 5 record ttl ms,
// then the mode's arguments, then (last) the contact id.
//   serve: 6 N, then N (channel, action) pairs; returns 1.
//   outcome: 6 decision id, 7 kind (i c v d), 8 channel, 9 action, 10 outcome
//     record ttl ms, 11 max outcome records, 12 prune every; returns 0 for a
//     duplicate, 1 when new, 2 when new but a click or conversion of the
//     decision was already recorded.
constexpr char kRestraintBody[] = R"lua(
local key = KEYS[1]
local now36, now = ARGV[2], tonumber(ARGV[3])
local max_touches = tonumber(ARGV[4])
local result = 1
if ARGV[1] == 'serve' then
  local n = tonumber(ARGV[6])
  for i = 0, n - 1 do
    touch(key, now36, max_touches, 's', ARGV[7 + 2 * i], ARGV[8 + 2 * i])
  end
else
  local field = 'o|' .. ARGV[6]
  local kind = ARGV[7]
  local rec = redis.call('HGET', key, field)
  local kinds = ''
  if rec then
    kinds = string.match(rec, '|(%a*)$') or ''
    if string.find(kinds, kind, 1, true) then return 0 end
    if string.find(kinds, '[cv]') then result = 2 end
  end
  redis.call('HSET', key, field, now36 .. '|' .. kinds .. kind)
  if kind == 'i' then
    touch(key, now36, max_touches, 'i', ARGV[8], ARGV[9])
  elseif kind == 'd' then
    redis.call('HSET', key, 'd|' .. ARGV[9], now36, 'dc|' .. ARGV[8], now36)
  end
  prune_records(key, 'o|', 'oc', tonumber(ARGV[12]), tonumber(ARGV[10]),
                tonumber(ARGV[11]), now)
end
redis.call('PEXPIRE', key, ARGV[5])
note_activity(KEYS[2], ARGV[#ARGV], now)
return result
)lua";

// KEYS: budget window key. ARGV: 1 max, 2 block, 3 ttl ms. Returns the units
// granted (0 when the budget is spent).
constexpr char kBudgetScript[] = R"lua(
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return grant
)lua";

}  // namespace

const char kShardUpdatesLua[] = R"lua(
local function move_phase_count(counts_key, from, to)
  if from == to then return end
  if from ~= '' then redis.call('HINCRBY', counts_key, from, -1) end
  redis.call('HINCRBY', counts_key, to, 1)
end
local function schedule_followups(due_key, payload_key, at)
  local n = tonumber(ARGV[at])
  for i = 0, n - 1 do
    local id = ARGV[at + 1 + 3 * i]
    redis.call('ZADD', due_key, ARGV[at + 2 + 3 * i], id)
    redis.call('HSET', payload_key, id, ARGV[at + 3 + 3 * i])
  end
  return at + 1 + 3 * n
end
)lua";

const char kTouchLua[] = R"lua(
local function touch(key, now36, max_touches, kind, ch, a)
  local s = now36 .. '|' .. kind .. '|' .. ch .. '|' .. a
  local t = redis.call('HGET', key, 't')
  if t then s = s .. ',' .. t end
  local pos, count = 0, 0
  while true do
    local i = string.find(s, ',', pos + 1, true)
    if not i then break end
    count = count + 1
    if count == max_touches then s = string.sub(s, 1, i - 1) break end
    pos = i
  end
  redis.call('HSET', key, 't', s)
  redis.call('HINCRBY', key, 'l' .. kind .. '|' .. a, 1)
  redis.call('HINCRBY', key, 'c' .. kind .. '|' .. ch, 1)
  redis.call('HINCRBY', key, 'g' .. kind, 1)
end
)lua";

std::string ScriptSha(absl::string_view data) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

absl::Status UnexpectedReply(absl::string_view what, const RedisReply& reply) {
  if (reply.is_error() && absl::StartsWith(reply.str, "OOM")) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the store is out of memory (", what, "): ", reply.str));
  }
  return absl::InternalError(absl::StrCat(what, ": unexpected reply from Redis",
                                          reply.is_error() ? ": " : "",
                                          reply.str));
}

namespace {

uint64_t Fnv1a64(absl::string_view s) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64 offset basis
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// The Redis connection of a contact's event commands (and reads for
// events): one, so that they reach Redis in the order they are sent.
uint64_t EventAffinity(absl::string_view contact_id) {
  return Fnv1a64(contact_id);
}

}  // namespace

int ShardOf(absl::string_view contact_id, int shards) {
  return static_cast<int>(Fnv1a64(contact_id) % static_cast<uint64_t>(shards));
}

// The idempotency field of an event id: "e:" and 8 bytes of its SHA-256
// (collisions among one contact's events are negligible: ~1e-16 for 50 ids).
std::string EventField(absl::string_view event_id) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(event_id.data()),
         event_id.size(), digest);
  return absl::StrCat(
      "e:", absl::string_view(reinterpret_cast<const char*>(digest), 8));
}

std::string EncodeEventRecord(const ruleset::Ruleset& rs,
                              const EventRecord& r) {
  int64_t receive = MillisOf(r.receive_time);
  int64_t delta = receive - MillisOf(r.event_time);
  int previous = r.created ? -1 : rs.FindPhase(r.previous_phase);
  return absl::StrCat(Base36(receive), ":", delta > 0 ? Base36(delta) : "", ":",
                      previous >= 0 ? absl::StrCat(previous) : "", ":",
                      rs.FindPhase(r.phase));
}

bool DecodeEventRecord(const ruleset::Ruleset& rs, absl::string_view text,
                       EventRecord* r) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  int64_t receive = 0, delta = 0;
  int phase = -1;
  if (parts.size() != 4 || !ParseBase36(parts[0], &receive) ||
      (!parts[1].empty() && !ParseBase36(parts[1], &delta)) ||
      !absl::SimpleAtoi(parts[3], &phase)) {
    return false;
  }
  auto name = [&rs](int index) {
    return index >= 0 && index < static_cast<int>(rs.phases.size())
               ? rs.phases[index].id
               : std::string();
  };
  int previous = -1;
  r->created = parts[2].empty();
  if (!r->created && !absl::SimpleAtoi(parts[2], &previous)) return false;
  r->receive_time = TimeOfMillis(receive);
  r->event_time = TimeOfMillis(receive - delta);
  r->previous_phase = r->created ? "" : name(previous);
  r->phase = name(phase);
  return true;
}

ContactStore::ContactStore(RedisClient* redis, int shards,
                           size_t recent_contacts)
    : redis_(redis),
      shards_(shards),
      recent_(recent_contacts),
      commit_script_(
          absl::StrCat(kActivityLua, kPruneLua, kShardUpdatesLua, kCommitBody)),
      commit_sha_(ScriptSha(commit_script_)),
      delete_sha_(ScriptSha(kDeleteScript)),
      restraint_script_(
          absl::StrCat(kTouchLua, kActivityLua, kPruneLua, kRestraintBody)),
      restraint_sha_(ScriptSha(restraint_script_)),
      budget_sha_(ScriptSha(kBudgetScript)) {}

std::string ContactStore::ShardPhasesKey(int shard) const {
  return absl::StrFormat("tp:{s:%04d}:phases", shard);
}

ContactKeys ContactStore::KeysFor(absl::string_view contact_id) const {
  std::string prefix =
      absl::StrFormat("tp:{s:%04d}:", ShardOf(contact_id, shards_));
  return ContactKeys{absl::StrCat(prefix, "c:", contact_id),
                     absl::StrCat(prefix, "h:", contact_id),
                     absl::StrCat(prefix, "phases"),
                     absl::StrCat(prefix, "q:", contact_id),
                     absl::StrCat(prefix, "fd"),
                     absl::StrCat(prefix, "fp"),
                     absl::StrCat(prefix, "act")};
}

std::string ContactStore::ActivityKey(int shard) const {
  return absl::StrFormat("tp:{s:%04d}:act", shard);
}

std::string ContactStore::BudgetKey(absl::string_view action_id,
                                    absl::string_view window) const {
  return absl::StrCat("tp:{b:", action_id, "}:", window);
}

void ContactStore::LoadContact(std::shared_ptr<const ruleset::Ruleset> ruleset,
                               absl::string_view contact_id, absl::Time now,
                               absl::Time deadline, Done<DecodedContact> done) {
  ContactKeys keys = KeysFor(contact_id);
  redis_->Pipeline(
      {{"HGETALL", keys.contact}, {"HGETALL", keys.restraint}}, deadline,
      [ruleset = std::move(ruleset), id = std::string(contact_id), now,
       done = std::move(done)](
          absl::StatusOr<std::vector<RedisReply>> replies) mutable {
        if (!replies.ok()) return done(replies.status());
        for (const RedisReply& r : *replies) {
          if (r.is_error()) return done(UnexpectedReply("HGETALL", r));
        }
        absl::StatusOr<DecodedContact> contact =
            DecodeContact(*ruleset, id, (*replies)[0], now);
        if (contact.ok()) {
          contact->restraint = DecodeRestraint(*ruleset, (*replies)[1]);
        }
        done(std::move(contact));
      });
}

namespace {

// The fields of an HGETALL reply but the idempotency records, moved out of
// it. Errors: Internal for a reply that is not a flat array of strings.
absl::StatusOr<ContactHash> HashOfReply(absl::string_view what,
                                        RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray ||
      reply.elements.size() % 2 != 0) {
    return UnexpectedReply(what, reply);
  }
  auto fields = std::make_shared<StoredFields>();
  fields->reserve(reply.elements.size() / 2);
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    std::string& field = reply.elements[i].str;
    if (absl::StartsWith(field, "e:") || field == "ec") continue;
    fields->emplace_back(std::move(field),
                         std::move(reply.elements[i + 1].str));
  }
  return fields;
}

// `base` with an applied commit's changes: what the contact's hash holds
// after it, idempotency records aside.
ContactHash AfterCommit(const StoredFields& base, const EventWrite& write,
                        absl::string_view version,
                        absl::string_view activity_noted) {
  // Base copied, then the script's HSET and HDEL replayed on it. A contact
  // hash has a few dozen fields at most: a linear search beats building an
  // index for each commit.
  auto after = std::make_shared<StoredFields>(base);
  auto set = [&after](absl::string_view field, absl::string_view value) {
    for (auto& [f, v] : *after) {
      if (f == field) {
        v = std::string(value);
        return;
      }
    }
    after->emplace_back(std::string(field), std::string(value));
  };
  set("v", version);
  if (!activity_noted.empty()) set(kActivityNotedField, activity_noted);
  for (const auto& [field, value] : write.set_fields) set(field, value);
  for (const std::string& field : write.remove_fields) {
    auto it =
        std::find_if(after->begin(), after->end(),
                     [&field](const auto& f) { return f.first == field; });
    if (it != after->end()) after->erase(it);
  }
  return after;
}

// Whether `hash` says its contact's activity was noted after `since`.
bool ActivityNotedAfter(const StoredFields& hash, absl::Time since) {
  for (const auto& [field, value] : hash) {
    if (field != kActivityNotedField) continue;
    int64_t ms;
    return ParseBase36(value, &ms) && TimeOfMillis(ms) > since;
  }
  return false;
}

// Event versions: uniform in [kMinEventVersion, kMaxEventVersion).
int64_t NewEventVersion() {
  thread_local absl::InsecureBitGen bits;
  return absl::Uniform<int64_t>(bits, kMinEventVersion, kMaxEventVersion);
}

}  // namespace

void ContactStore::LoadForEvent(std::shared_ptr<const ruleset::Ruleset> ruleset,
                                absl::string_view contact_id,
                                absl::string_view event_id, absl::Time now,
                                absl::Time deadline, EventReadMode mode,
                                Done<EventRead> done) {
  if (mode != EventReadMode::kRead) {
    if (ContactHash recent = recent_.Get(contact_id)) {
      EventRead read;
      read.hash = std::move(recent);
      read.cached = true;
      return done(std::move(read));
    }
    if (mode == EventReadMode::kRecentOnly) {
      return done(absl::NotFoundError("the contact is not remembered"));
    }
  }
  ContactKeys keys = KeysFor(contact_id);
  redis_->CommandInOrder(
      EventAffinity(contact_id), {"HGETALL", keys.contact}, deadline,
      [ruleset = std::move(ruleset), now, field = EventField(event_id),
       done = std::move(done)](absl::StatusOr<RedisReply> hash) mutable {
        if (!hash.ok()) return done(hash.status());
        EventRead read;
        // The record first: HashOfReply leaves records out.
        for (size_t i = 0; i + 1 < hash->elements.size(); i += 2) {
          EventRecord r;
          if (hash->elements[i].str == field &&
              DecodeEventRecord(*ruleset, hash->elements[i + 1].str, &r) &&
              r.receive_time + kIdempotencyWindow > now) {
            read.duplicate_of = r;
          }
        }
        absl::StatusOr<ContactHash> fields = HashOfReply("HGETALL", *hash);
        if (!fields.ok()) return done(fields.status());
        read.hash = *std::move(fields);
        done(std::move(read));
      });
}

bool ContactStore::CommitEvent(std::shared_ptr<const ruleset::Ruleset> ruleset,
                               absl::string_view contact_id,
                               const EventWrite& w, absl::Time now,
                               absl::Time deadline, Done<CommitResult> done) {
  ContactKeys keys = KeysFor(contact_id);
  std::vector<std::string> args;
  args.reserve(15 + 2 * w.set_fields.size() + w.remove_fields.size());
  args.push_back(absl::StrCat(w.expected_version));
  args.push_back(EventField(w.event_id));
  args.push_back(EncodeEventRecord(*ruleset, w.record));
  args.push_back(absl::StrCat(MillisOf(now)));
  args.push_back(absl::StrCat(absl::ToInt64Milliseconds(kIdempotencyWindow)));
  args.push_back(absl::StrCat(kMaxIdempotencyRecords));
  args.push_back(absl::StrCat(kPruneIdempotencyEvery));
  args.push_back(w.history ? EncodeHistory(*w.history) : "");
  args.push_back(absl::StrCat(kMaxHistory + 1));
  args.push_back(w.old_phase);
  args.push_back(w.new_phase);
  // The activity index is raised once its score is kActivityResolution old
  // (a ZADD into a shard's sorted set is the script's dearest command); the
  // hash remembers when it was (field "na").
  const bool note_activity =
      w.base == nullptr ||
      !ActivityNotedAfter(*w.base, now - kActivityResolution);
  const std::string noted = note_activity ? Base36(MillisOf(now)) : "";
  args.push_back(absl::StrCat(w.set_fields.size() + (note_activity ? 1 : 0)));
  for (const auto& [k, v] : w.set_fields) {
    args.push_back(k);
    args.push_back(v);
  }
  if (note_activity) {
    args.push_back(kActivityNotedField);
    args.push_back(noted);
  }
  args.push_back(absl::StrCat(w.remove_fields.size()));
  for (const std::string& f : w.remove_fields) args.push_back(f);
  args.push_back(absl::StrCat(w.schedule.size()));
  for (const FollowUpSchedule& f : w.schedule) {
    args.push_back(f.id);
    args.push_back(absl::StrCat(MillisOf(f.due)));
    args.push_back(f.payload);
  }
  args.push_back(absl::StrCat(w.cancel.size()));
  for (const std::string& id : w.cancel) args.push_back(id);
  args.push_back(note_activity ? "1" : "");
  std::string version = absl::StrCat(NewEventVersion());
  args.push_back(version);
  args.emplace_back(contact_id);
  // What the hash will hold if the commit applies, remembered now for the
  // next event of the contact (which may be sent behind this one: the
  // version chain makes it apply only on top of it).
  const bool remembered = remembers() && w.base != nullptr;
  if (remembered) {
    recent_.Put(contact_id, AfterCommit(*w.base, w, version, noted));
  }
  RunScript(
      commit_script_, commit_sha_,
      {keys.contact, keys.history, keys.shard_phases, keys.followups_due,
       keys.followups_pending, keys.activity},
      std::move(args), deadline,
      [this, ruleset = std::move(ruleset), id = std::string(contact_id),
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        // Unless the commit applied, what is remembered (this commit's
        // outcome, or one computed from it) is not what Redis holds.
        if (!reply.ok() || reply->type != RedisReply::Type::kArray ||
            reply->elements.empty() || reply->elements[0].str != "ok") {
          recent_.Erase(id);
        }
        if (!reply.ok()) return done(reply.status());
        if (reply->type != RedisReply::Type::kArray ||
            reply->elements.empty()) {
          return done(UnexpectedReply("commit script", *reply));
        }
        const std::string& tag = reply->elements[0].str;
        CommitResult result;
        if (tag == "ok") {
          result.outcome = CommitResult::Outcome::kApplied;
        } else if (tag == "conflict" && reply->elements.size() == 2) {
          absl::StatusOr<ContactHash> current =
              HashOfReply("commit script", reply->elements[1]);
          if (!current.ok()) return done(current.status());
          result.outcome = CommitResult::Outcome::kConflict;
          result.current = *std::move(current);
        } else if (tag == "dup" && reply->elements.size() == 2 &&
                   DecodeEventRecord(*ruleset, reply->elements[1].str,
                                     &result.duplicate_of)) {
          result.outcome = CommitResult::Outcome::kDuplicate;
        } else {
          return done(UnexpectedReply("commit script", *reply));
        }
        done(std::move(result));
      },
      EventAffinity(contact_id));
  return remembered;
}

void ContactStore::ReadContact(std::shared_ptr<const ruleset::Ruleset> ruleset,
                               absl::string_view contact_id, absl::Time now,
                               absl::Time deadline,
                               Done<StoredContactView> done) {
  ContactKeys keys = KeysFor(contact_id);
  redis_->Pipeline(
      {{"HGETALL", keys.contact}, {"GET", keys.history}}, deadline,
      [ruleset = std::move(ruleset), id = std::string(contact_id), now,
       done = std::move(done)](
          absl::StatusOr<std::vector<RedisReply>> replies) mutable {
        if (!replies.ok()) return done(replies.status());
        if ((*replies)[0].is_error())
          return done(UnexpectedReply("HGETALL", (*replies)[0]));
        if ((*replies)[1].is_error())
          return done(UnexpectedReply("GET", (*replies)[1]));
        absl::StatusOr<DecodedContact> contact =
            DecodeContact(*ruleset, id, (*replies)[0], now);
        if (!contact.ok()) return done(contact.status());
        StoredContactView view;
        view.contact = *std::move(contact);
        view.history = DecodeHistory((*replies)[1].str, kMaxHistory);
        done(std::move(view));
      });
}

namespace {

// Yields the integer reply of a script, or an error.
RedisClient::Callback IntegerReply(
    absl::string_view what,
    absl::AnyInvocable<void(absl::StatusOr<int64_t>)> done) {
  return [what = std::string(what),
          done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
    if (!reply.ok()) return done(reply.status());
    if (reply->type != RedisReply::Type::kInteger) {
      return done(UnexpectedReply(what, *reply));
    }
    done(reply->integer);
  };
}

}  // namespace

void ContactStore::RunDelete(absl::string_view contact_id,
                             absl::string_view cutoff_ms, absl::Time deadline,
                             Done<int64_t> done) {
  // Not needed for correctness (a commit from a stale entry fails its
  // version check), but an erased contact's data should not linger here.
  recent_.Erase(contact_id);
  ContactKeys keys = KeysFor(contact_id);
  RunScript(kDeleteScript, delete_sha_,
            {keys.contact, keys.history, keys.shard_phases, keys.restraint,
             keys.followups_due, keys.followups_pending, keys.activity},
            {std::string(contact_id), std::string(cutoff_ms)}, deadline,
            IntegerReply("delete script", std::move(done)));
}

void ContactStore::DeleteContact(absl::string_view contact_id,
                                 absl::Time deadline, Done<bool> done) {
  RunDelete(contact_id, "", deadline,
            [done = std::move(done)](absl::StatusOr<int64_t> n) mutable {
              if (!n.ok()) return done(n.status());
              done(*n == 1);
            });
}

void ContactStore::EraseIfIdle(absl::string_view contact_id, absl::Time cutoff,
                               absl::Time deadline, Done<Erasure> done) {
  RunDelete(contact_id, absl::StrCat(MillisOf(cutoff)), deadline,
            [done = std::move(done)](absl::StatusOr<int64_t> n) mutable {
              if (!n.ok()) return done(n.status());
              done(*n == 1   ? Erasure::kErased
                   : *n == 2 ? Erasure::kActive
                             : Erasure::kAbsent);
            });
}

void ContactStore::FindIdle(int shard, absl::Time cutoff, int limit,
                            absl::Time deadline,
                            Done<std::vector<std::string>> done) {
  // "(" excludes the cutoff itself: idle means last active strictly before.
  redis_->Command(
      {"ZRANGEBYSCORE", ActivityKey(shard), "-inf",
       absl::StrCat("(", MillisOf(cutoff)), "LIMIT", "0", absl::StrCat(limit)},
      deadline,
      [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        if (reply->type != RedisReply::Type::kArray) {
          return done(UnexpectedReply("ZRANGEBYSCORE", *reply));
        }
        std::vector<std::string> ids;
        ids.reserve(reply->elements.size());
        for (RedisReply& e : reply->elements) ids.push_back(std::move(e.str));
        done(std::move(ids));
      });
}

void ContactStore::RecordServed(absl::string_view contact_id,
                                const std::vector<TouchWrite>& touches,
                                absl::Time now, absl::Time deadline,
                                Done<bool> done) {
  std::vector<std::string> args = {
      "serve",
      Base36(MillisOf(now)),
      absl::StrCat(MillisOf(now)),
      absl::StrCat(ruleset::kMaxTouches),
      absl::StrCat(absl::ToInt64Milliseconds(kRestraintTtl)),
      absl::StrCat(touches.size())};
  for (const TouchWrite& t : touches) {
    args.push_back(t.channel);
    args.push_back(t.action);
  }
  args.emplace_back(contact_id);
  ContactKeys keys = KeysFor(contact_id);
  RunScript(
      restraint_script_, restraint_sha_, {keys.restraint, keys.activity},
      std::move(args), deadline,
      IntegerReply("restraint script",
                   [done = std::move(done)](absl::StatusOr<int64_t> n) mutable {
                     if (!n.ok()) return done(n.status());
                     done(true);
                   }));
}

void ContactStore::RecordOutcome(absl::string_view contact_id,
                                 const OutcomeWrite& w, absl::Time now,
                                 absl::Time deadline,
                                 Done<OutcomeRecord> done) {
  std::vector<std::string> args = {
      "outcome",
      Base36(MillisOf(now)),
      absl::StrCat(MillisOf(now)),
      absl::StrCat(ruleset::kMaxTouches),
      absl::StrCat(absl::ToInt64Milliseconds(kRestraintTtl)),
      w.decision_id,
      std::string(1, w.kind),
      w.channel,
      w.action,
      absl::StrCat(absl::ToInt64Milliseconds(w.record_ttl)),
      absl::StrCat(kMaxOutcomeRecords),
      absl::StrCat(kPruneIdempotencyEvery),
      std::string(contact_id)};
  ContactKeys keys = KeysFor(contact_id);
  RunScript(
      restraint_script_, restraint_sha_, {keys.restraint, keys.activity},
      std::move(args), deadline,
      IntegerReply("restraint script", [done = std::move(done)](
                                           absl::StatusOr<int64_t> n) mutable {
        if (!n.ok()) return done(n.status());
        if (*n == 0) return done(OutcomeRecord::kDuplicate);
        done(*n == 2 ? OutcomeRecord::kNewAfterSuccess : OutcomeRecord::kNew);
      }));
}

void ContactStore::LeaseBudget(absl::string_view action_id,
                               absl::string_view window, int64_t max,
                               int64_t block, absl::Duration ttl,
                               absl::Time deadline, Done<int64_t> done) {
  RunScript(kBudgetScript, budget_sha_, {BudgetKey(action_id, window)},
            {absl::StrCat(max), absl::StrCat(block),
             absl::StrCat(absl::ToInt64Milliseconds(ttl))},
            deadline, IntegerReply("budget script", std::move(done)));
}

void ContactStore::CountPhases(
    absl::Time deadline,
    Done<std::vector<std::pair<std::string, int64_t>>> done) {
  std::vector<std::vector<std::string>> commands;
  commands.reserve(shards_);
  for (int s = 0; s < shards_; ++s)
    commands.push_back({"HGETALL", ShardPhasesKey(s)});
  redis_->Pipeline(
      std::move(commands), deadline,
      [done = std::move(done)](
          absl::StatusOr<std::vector<RedisReply>> replies) mutable {
        if (!replies.ok()) return done(replies.status());
        absl::flat_hash_map<std::string, int64_t> totals;
        for (const RedisReply& r : *replies) {
          for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
            int64_t n = 0;
            if (absl::SimpleAtoi(r.elements[i + 1].str, &n)) {
              totals[r.elements[i].str] += n;
            }
          }
        }
        done(std::vector<std::pair<std::string, int64_t>>(totals.begin(),
                                                          totals.end()));
      });
}

void ContactStore::RunScript(absl::string_view script, const std::string& sha,
                             std::vector<std::string> keys,
                             std::vector<std::string> args, absl::Time deadline,
                             RedisClient::Callback done,
                             std::optional<uint64_t> affinity) {
  std::vector<std::string> command;
  command.reserve(3 + keys.size() + args.size());
  command.push_back("EVALSHA");
  command.push_back(sha);
  command.push_back(absl::StrCat(keys.size()));
  for (std::string& k : keys) command.push_back(std::move(k));
  for (std::string& a : args) command.push_back(std::move(a));
  // The arguments again for the EVAL fallback (the client consumes the
  // command it sends).
  std::vector<std::string> retry = command;
  RedisClient* redis = redis_;
  auto send = [redis, affinity](std::vector<std::string> command,
                                absl::Time deadline,
                                RedisClient::Callback done) {
    if (affinity.has_value()) {
      redis->CommandInOrder(*affinity, std::move(command), deadline,
                            std::move(done));
    } else {
      redis->Command(std::move(command), deadline, std::move(done));
    }
  };
  send(std::move(command), deadline,
       [send, retry = std::move(retry), script, deadline,
        done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
         if (reply.ok() && reply->is_error() &&
             absl::StartsWith(reply->str, "NOSCRIPT")) {
           // First use on this Redis (or after a restart): send the body
           // once; Redis caches it for the EVALSHAs that follow.
           retry[0] = "EVAL";
           retry[1] = std::string(script);
           send(std::move(retry), deadline, std::move(done));
           return;
         }
         done(std::move(reply));
       });
}

void ContactStore::RunScriptOnEach(absl::string_view script,
                                   const std::string& sha,
                                   std::vector<ScriptCall> calls,
                                   absl::Time deadline, absl::string_view what,
                                   Done<int64_t> done) {
  if (calls.empty()) return done(int64_t{0});
  struct Pass {
    explicit Pass(size_t n, std::string what, Done<int64_t> done)
        : remaining(static_cast<int>(n)),
          what(std::move(what)),
          done(std::move(done)) {}
    std::atomic<int> remaining;
    std::atomic<int64_t> sum{0};
    std::atomic<bool> failed{false};
    absl::Status error;  // written by the first failure only
    const std::string what;
    Done<int64_t> done;
  };
  auto pass =
      std::make_shared<Pass>(calls.size(), std::string(what), std::move(done));
  for (ScriptCall& call : calls) {
    RunScript(script, sha, std::move(call.keys), std::move(call.args), deadline,
              [pass](absl::StatusOr<RedisReply> r) {
                if (!r.ok() || r->type != RedisReply::Type::kInteger) {
                  if (!pass->failed.exchange(true)) {
                    pass->error =
                        r.ok() ? UnexpectedReply(pass->what, *r) : r.status();
                  }
                } else {
                  pass->sum += r->integer;
                }
                if (pass->remaining.fetch_sub(1) != 1) return;
                if (pass->failed) return pass->done(pass->error);
                pass->done(pass->sum.load());
              });
  }
}

}  // namespace tappa::server
