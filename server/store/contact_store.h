// Contact state in Redis: key layout, shards, and the reads and atomic
// writes the request handlers need (ARCHITECTURE decisions 3 and 4).
//
// Contacts are spread over a fixed number of shards by FNV-1a-64 of the
// contact id (stable across processes and releases; never absl::Hash). Every
// key of a contact carries its shard's hash tag, so a contact and its
// shard's structures live in one Redis Cluster slot and one Lua script can
// update them together:
//
//   tp:{s:0042}:c:<contact id>   hash: the contact (contact_codec.h),
//                                including its idempotency records: field
//                                "e:" + the first 8 bytes of SHA-256(event
//                                id), value "<receive ms>:<receive - event
//                                ms>:<previous phase>:<phase>" (base-36
//                                times, phase indexes; "" previous = created)
//   tp:{s:0042}:h:<contact id>   string: phase history (contact_codec.h)
//   tp:{s:0042}:phases           hash: contacts per phase in the shard
//   tp:{s:0042}:fd / :fp / :fs   the shard's follow-ups: due index, pending
//                                payloads, delivery stream (followup_store.h)
//   tp:{s:0042}:q:<contact id>   hash: the contact's restraint record
//                                (touches, dismissals, outcome records;
//                                restraint_codec.h)
//   tp:{s:0042}:act              sorted set: the shard's activity index,
//                                contact id scored by its last activity
//                                (Unix ms); see "Activity" below
//   tp:{b:<action id>}:<window>  string: units of the action's global budget
//                                leased in that budget window (window =
//                                Unix ms / window length, or "all"); its
//                                own hash tag, so budgets spread over the
//                                cluster
//
// Round trips: a decision reads with two HGETALLs pipelined in one round
// trip (the contact and its restraint record); an event reads with one
// HGETALL (the idempotency record comes with it) and writes with one EVALSHA
// that checks the contact's version and applies everything (fields, history,
// idempotency record, phase counts) or nothing. The read is skipped when
// this server's last commit for the contact is remembered
// (recent_contacts.h): the commit's own checks (idempotency record,
// version) then stand in for it, and a commit that finds the hash changed
// answers with the hash as it is, so the event is re-applied without
// another read. A contact's event commands (its reads for events and its
// commits) all go to one Redis connection, so they land in the order they
// are sent: the next event of a contact can be sent behind the commit of
// the one before, before it is answered (event_processor.h). Scripts get
// `now` as an argument.
//
// Versions ("v"): every write of a contact hash changes it. The event
// commit sets a fresh random number in [kMinEventVersion,
// kMaxEventVersion); other scripts add one.
//
// Activity (retention, issue 8): every script that writes a contact's data
// on behalf of a request also raises the contact's score in its shard's
// activity index to `now` (ZADD GT, so replicas with slightly different
// clocks never move it back): the event commit, and the restraint script
// (outcomes reported, and served touches recorded by a decision). The event
// commit does so at most once per kActivityResolution per contact (the
// contact's field "na" says when it last did): a score is then at most that
// much older than the contact's last event. Decisions
// that write nothing, reads, and follow-ups firing are not activity. So every
// contact id with a key has a member there, and the retention sweeper
// (server/service/retention_sweeper.h) finds idle contacts per shard without
// a scan of the keyspace. The member costs roughly 60-100 bytes a contact.
//
// Memory: a typical profile (10 attributes, 5 windowed counters, 10 history
// entries, 20 remembered events) costs under 2 KB of Redis memory; keeping
// the idempotency records in the contact's hash saves a key, and the history
// as one string avoids a list's quicklist overhead.
//
// Thread safety: thread-safe; callbacks run on the Redis client's loop
// thread and must not block.
#ifndef TAPPA_SERVER_STORE_CONTACT_STORE_H_
#define TAPPA_SERVER_STORE_CONTACT_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rules/ruleset/ruleset.h"
#include "server/redis/redis_client.h"
#include "server/store/contact_codec.h"
#include "server/store/recent_contacts.h"

namespace tappa::server {

inline constexpr int kDefaultShards = 1024;
inline constexpr int kMaxHistory = 50;
// Idempotency: an event id is remembered for this long...
inline constexpr absl::Duration kIdempotencyWindow = absl::Hours(24 * 7);
// ...and at most this many per contact (the oldest are forgotten first), so
// that even a very busy contact's hash stays under Redis' 128-field compact
// encoding limit (a fat hash slows every HGETALL, decisions included). A
// client retry comes long before a person produces 50 more events.
inline constexpr int kMaxIdempotencyRecords = 50;
// Records are pruned (expired ones dropped, then the oldest beyond the cap)
// once this many were written since the last pruning.
inline constexpr int kPruneIdempotencyEvery = 20;
// How stale a contact's score in the activity index may be after an event.
inline constexpr absl::Duration kActivityResolution = absl::Minutes(1);
// The contact hash field holding when an event commit last raised that
// score (base-36 Unix ms).
inline constexpr char kActivityNotedField[] = "na";
// The range of the versions event commits draw. At least 2^32, far above
// what the scripts that add one to a version ever reach from a contact
// created by one of them; under 10^13, so that a Lua script's tostring
// (14 significant digits) of a version plus a few stays exact.
inline constexpr int64_t kMinEventVersion = int64_t{1} << 32;
inline constexpr int64_t kMaxEventVersion = 10'000'000'000'000;

// Stable shard of a contact id.
int ShardOf(absl::string_view contact_id, int shards);

// Hex SHA-1 of a script (its EVALSHA name).
std::string ScriptSha(absl::string_view script);

// The error for a reply of the wrong shape (or an error reply) to `what`:
// ResourceExhausted when Redis is out of memory, else Internal.
absl::Status UnexpectedReply(absl::string_view what, const RedisReply& reply);

// A Lua function shared by the scripts that record touches:
// touch(key, now36, max_touches, kind, channel, action) prepends a touch to
// the restraint record `key` (restraint_codec.h) and counts it.
extern const char kTouchLua[];
// Lua functions for scripts that write a contact's shard structures:
// move_phase_count(counts_key, from, to) moves the contact between the
// shard's phase counts ("" = from none; nothing when equal);
// schedule_followups(due_key, payload_key, at) reads ARGV[at] = S and S
// (id, due ms, payload) triples, schedules them, and yields the index after
// them.
extern const char kShardUpdatesLua[];

struct ContactKeys {
  std::string contact;
  std::string history;
  std::string shard_phases;
  std::string restraint;
  std::string followups_due;      // followup_store.h
  std::string followups_pending;  // followup_store.h
  std::string activity;           // the shard's activity index
};

// A follow-up to schedule (or re-arm: same id, new due time) in an event's
// atomic write. The contact's "u:" field goes in set_fields.
struct FollowUpSchedule {
  std::string id;
  absl::Time due;
  std::string payload;  // followup_store.h: EncodeFollowUpPayload
};

// A restraint record's hash expires after this long without a write.
inline constexpr absl::Duration kRestraintTtl = absl::Hours(24 * 400);
// ReportOutcome's idempotency records: kept for the token lifetime, at most
// this many per contact, pruned every kPruneIdempotencyEvery writes.
inline constexpr int kMaxOutcomeRecords = 100;

// One touch to record: an action served (or shown) on a channel.
struct TouchWrite {
  std::string channel;
  std::string action;
};

// One outcome to record.
enum class OutcomeRecord {
  kDuplicate,  // this outcome of this decision was already recorded
  kNew,
  kNewAfterSuccess,  // new, but a click or conversion was recorded before
};

struct OutcomeWrite {
  std::string decision_id;  // from the token
  char kind = 'i';          // i impression, c click, v conversion, d dismiss
  std::string channel;
  std::string action;
  absl::Duration record_ttl;  // how long the idempotency record is kept
};

// The stored first result of an event (returned again for a duplicate).
struct EventRecord {
  absl::Time receive_time;
  absl::Time event_time;
  std::string previous_phase;
  std::string phase;
  bool created = false;
};
// Phases are stored as indexes of `ruleset` (an index the ruleset no longer
// has decodes as "").
std::string EncodeEventRecord(const ruleset::Ruleset& ruleset,
                              const EventRecord& record);
bool DecodeEventRecord(const ruleset::Ruleset& ruleset, absl::string_view text,
                       EventRecord* record);
// The hash field of an event id's record.
std::string EventField(absl::string_view event_id);

// What one event's atomic write changes.
struct EventWrite {
  int64_t expected_version = 0;  // 0 = the contact must not exist yet
  std::string event_id;
  EventRecord record;
  std::vector<std::pair<std::string, std::string>> set_fields;
  std::vector<std::string> remove_fields;
  std::optional<HistoryEntry> history;
  // The hash the write was computed from (EventRead::hash): with the write
  // applied, it is what the next event of the contact may start from.
  ContactHash base;
  std::string old_phase;  // "" for a new contact
  std::string new_phase;
  // Follow-ups scheduled and cancelled (by id) with the event, in the
  // contact's shard's due index, atomically with the rest.
  std::vector<FollowUpSchedule> schedule;
  std::vector<std::string> cancel;
};

struct CommitResult {
  enum class Outcome { kApplied, kConflict, kDuplicate };
  Outcome outcome = Outcome::kApplied;
  EventRecord duplicate_of;  // kDuplicate
  // kConflict: the contact's hash as the commit found it (the event is not
  // among its idempotency records).
  ContactHash current;
};

struct EventRead {
  ContactHash hash;  // never null; no fields = no such contact
  // Remembered from this server's last commit, not read: whether the event
  // was seen before is unknown (the commit finds out). A caller that would
  // answer without committing (a refusal, a redirect) reads first.
  bool cached = false;
  std::optional<EventRecord> duplicate_of;  // a record within the window
};

struct StoredContactView {
  DecodedContact contact;
  std::vector<HistoryEntry> history;
};

class ContactStore {
 public:
  // `redis` must outlive the store. `recent_contacts` bounds the contacts
  // whose hash is remembered after an event commit (0: none).
  ContactStore(RedisClient* redis, int shards, size_t recent_contacts = 0);

  int shards() const { return shards_; }
  ContactKeys KeysFor(absl::string_view contact_id) const;
  std::string ShardPhasesKey(int shard) const;

  template <typename T>
  using Done = absl::AnyInvocable<void(absl::StatusOr<T>)>;

  // The contact's hash and its restraint record (DecodedContact::restraint):
  // two HGETALLs pipelined in one round trip.
  void LoadContact(std::shared_ptr<const ruleset::Ruleset> ruleset,
                   absl::string_view contact_id, absl::Time now,
                   absl::Time deadline, Done<DecodedContact> done);

  // Where LoadForEvent may take the contact from.
  enum class EventReadMode {
    kRecentOrRead,  // remembered, else read
    kRead,          // read
    kRecentOnly,    // remembered, else NotFound (nothing sent)
  };
  // One HGETALL (on the contact's connection, behind its commits): the
  // contact and, when present, the event's record; or, without a round trip
  // (`done` runs before this returns), the hash this store's last commit for
  // the contact left (EventRead::cached).
  void LoadForEvent(std::shared_ptr<const ruleset::Ruleset> ruleset,
                    absl::string_view contact_id, absl::string_view event_id,
                    absl::Time now, absl::Time deadline, EventReadMode mode,
                    Done<EventRead> done);

  // The atomic conditional write. Sent on the contact's own connection, so
  // a contact's commits reach Redis in the order they are made. It
  // remembers write.base with the write's changes for the contact at once
  // (true; false when nothing is remembered), for the next event of the
  // contact, and forgets the contact again unless the commit applies.
  bool CommitEvent(std::shared_ptr<const ruleset::Ruleset> ruleset,
                   absl::string_view contact_id, const EventWrite& write,
                   absl::Time now, absl::Time deadline,
                   Done<CommitResult> done);

  // HGETALL + GET of the history, pipelined.
  void ReadContact(std::shared_ptr<const ruleset::Ruleset> ruleset,
                   absl::string_view contact_id, absl::Time now,
                   absl::Time deadline, Done<StoredContactView> done);

  // Deletes every key of the contact, its pending follow-ups, its place in
  // the phase counts and its activity member, atomically. Yields whether
  // anything existed.
  void DeleteContact(absl::string_view contact_id, absl::Time deadline,
                     Done<bool> done);

  // Retention. Up to `limit` contacts of `shard` whose last activity is
  // before `cutoff`, oldest first (one ZRANGEBYSCORE).
  void FindIdle(int shard, absl::Time cutoff, int limit, absl::Time deadline,
                Done<std::vector<std::string>> done);
  enum class Erasure {
    kErased,  // every key of the contact is gone
    kActive,  // active at or after `cutoff` since it was found: kept
    kAbsent,  // nothing was stored (any stale activity member is removed)
  };
  // DeleteContact, in the same script, if and only if the contact's last
  // activity is still before `cutoff` when the script runs: a contact that
  // became active after FindIdle saw it survives.
  void EraseIfIdle(absl::string_view contact_id, absl::Time cutoff,
                   absl::Time deadline, Done<Erasure> done);
  std::string ActivityKey(int shard) const;

  // Records served touches (caps with count_on: served). One script; the
  // caller need not wait for it.
  void RecordServed(absl::string_view contact_id,
                    const std::vector<TouchWrite>& touches, absl::Time now,
                    absl::Time deadline, Done<bool> done);

  // Records an outcome unless already recorded for the decision: an
  // impression is a touch, a dismissal starts cooldowns.
  void RecordOutcome(absl::string_view contact_id, const OutcomeWrite& write,
                     absl::Time now, absl::Time deadline,
                     Done<OutcomeRecord> done);

  // Leases up to `block` units of a budget of `max` per window: atomically
  // takes min(block, max - used) and yields how many (0 when spent). The
  // key expires `ttl` after the lease.
  void LeaseBudget(absl::string_view action_id, absl::string_view window,
                   int64_t max, int64_t block, absl::Duration ttl,
                   absl::Time deadline, Done<int64_t> done);
  std::string BudgetKey(absl::string_view action_id,
                        absl::string_view window) const;

  // Contacts per phase summed over every shard (pipelined HGETALLs; for
  // metrics, off the request path).
  void CountPhases(absl::Time deadline,
                   Done<std::vector<std::pair<std::string, int64_t>>> done);

  // EVALSHA, falling back to EVAL when Redis does not know the script yet.
  // `sha` is Sha1Hex(script). `script` must outlive the call (a constant, or
  // a member of a store that outlives its calls): only a view of it is kept
  // for the fallback, not a copy per call.
  // With an `affinity`, it goes to that connection
  // (RedisClient::CommandInOrder), its EVAL fallback too.
  void RunScript(absl::string_view script, const std::string& sha,
                 std::vector<std::string> keys, std::vector<std::string> args,
                 absl::Time deadline, RedisClient::Callback done,
                 std::optional<uint64_t> affinity = std::nullopt);

  // One call of a script: its keys (all in one slot) and arguments.
  struct ScriptCall {
    std::vector<std::string> keys;
    std::vector<std::string> args;
  };
  // Runs `script` once per call, all at once (the calls may be on different
  // slots, as a contact's aliases are: a script may only touch one), and
  // yields the sum of their integer replies once every call has answered,
  // or the first failure; `what` names the script in errors. No calls: 0,
  // at once.
  void RunScriptOnEach(absl::string_view script, const std::string& sha,
                       std::vector<ScriptCall> calls, absl::Time deadline,
                       absl::string_view what, Done<int64_t> done);

  RedisClient* redis() const { return redis_; }
  // Whether event commits remember their outcome (recent_contacts > 0).
  bool remembers() const { return recent_.capacity() > 0; }

 private:
  // The delete script, unconditional (`cutoff_ms` "") or retention's; yields
  // its integer reply.
  void RunDelete(absl::string_view contact_id, absl::string_view cutoff_ms,
                 absl::Time deadline, Done<int64_t> done);

  RedisClient* redis_;
  int shards_;
  RecentContacts recent_;
  std::string commit_script_;
  std::string commit_sha_;
  std::string delete_sha_;
  std::string restraint_script_;
  std::string restraint_sha_;
  std::string budget_sha_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_STORE_CONTACT_STORE_H_
