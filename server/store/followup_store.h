// Follow-ups in Redis (issue: follow-ups). Every contact shard has
//
//   tp:{s:0042}:fd   sorted set: pending follow-up ids scored by due time
//                    (Unix ms)
//   tp:{s:0042}:fp   hash: follow-up id -> payload (EncodeFollowUpPayload)
//   tp:{s:0042}:fs   stream: delivered follow-ups, read by consumer groups
//
// and each contact's hash has a "u:" field per pending follow-up
// (contact_codec.h), so an event that cancels or re-arms one finds it in the
// read it already does. Scheduling happens inside the event's atomic write
// (ContactStore::CommitEvent). Firing is one script per follow-up that
// checks the follow-up is still due at the time the firer saw (so of two
// replicas firing the same one, exactly one acts), then removes it and
// appends it to the shard's stream, or postpones or drops it, together:
// each due follow-up reaches the stream exactly once, also on Redis Cluster
// (every key of the script is in the shard's slot).
//
// Streams are trimmed by FollowUpStore::Trim to the oldest entry some
// consumer group has not acknowledged (XTRIM MINID), so unacknowledged
// entries are never dropped; a stream without groups keeps its last
// kMaxUngroupedStreamEntries entries.
//
// Thread safety: thread-safe; callbacks run on the Redis client's thread.
#ifndef TAPPA_SERVER_STORE_FOLLOWUP_STORE_H_
#define TAPPA_SERVER_STORE_FOLLOWUP_STORE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rules/ruleset/policy.h"
#include "server/store/contact_store.h"

namespace tappa::server {

inline constexpr int64_t kMaxUngroupedStreamEntries = 100'000;
// How many fired times per rule and contact are remembered (for rule
// limits): the rule engine's bound, so that merged records keep the same.
inline constexpr int kMaxFiredTimes = ruleset::kMaxFiredTimes;

// What the shard's pending hash holds about a follow-up.
struct FollowUpPayload {
  std::string contact_id;
  std::string rule_id;
  std::string dedupe_key;
  absl::Time scheduled;
};
std::string EncodeFollowUpPayload(const FollowUpPayload& p);
bool DecodeFollowUpPayload(absl::string_view text, FollowUpPayload* p);

// The stable id of a follow-up scheduled by an event: 16 hex digits of
// SHA-256 of (contact, rule, dedupe key, event id).
std::string NewFollowUpId(absl::string_view contact_id,
                          absl::string_view rule_id,
                          absl::string_view dedupe_key,
                          absl::string_view event_id);

struct DueFollowUp {
  int shard = 0;
  std::string id;
  absl::Time due;
  FollowUpPayload payload;
};

// One entry of a shard's delivery stream.
struct StreamDelivery {
  int shard = 0;
  std::string entry_id;  // the stream entry id ("1700000000000-0")
  std::vector<std::pair<std::string, std::string>> fields;
  int64_t delivery_count = 1;
};

class FollowUpStore {
 public:
  // `contacts` must outlive this (keys and scripts are shared).
  explicit FollowUpStore(ContactStore* contacts);

  template <typename T>
  using Done = ContactStore::Done<T>;

  std::string DueKey(int shard) const;
  std::string PendingKey(int shard) const;
  std::string StreamKey(int shard) const;

  // Up to `per_shard` follow-ups due at `now` from every shard, with their
  // payloads (two pipelined round trips). Ids whose payload is gone are
  // skipped.
  void FindDue(absl::Time now, int per_shard, absl::Time deadline,
               Done<std::vector<DueFollowUp>> done);

  enum class Resolution { kDeliver, kPostpone, kDrop };
  struct Fire {
    Resolution resolution = Resolution::kDrop;
    absl::Time new_due;  // kPostpone
    // kDeliver: the stream entry's fields, and the touch to record (the
    // channel and action served).
    std::vector<std::pair<std::string, std::string>> entry;
    std::string channel;
    std::string action;
  };
  // Resolves one due follow-up atomically, if it is still pending with the
  // due time `f.due` (else nothing happens). Yields whether it acted.
  void Resolve(const DueFollowUp& f, const Fire& fire, absl::Time now,
               absl::Time deadline, Done<bool> done);

  // Creates consumer group `group` on every shard stream (from the start of
  // each stream; an existing group is left alone).
  void EnsureGroup(absl::string_view group, absl::Time deadline,
                   Done<bool> done);
  // New entries for `consumer` (XREADGROUP ... >), at most `count` per
  // shard, from every shard in one round trip.
  void ReadNew(absl::string_view group, absl::string_view consumer, int count,
               absl::Time deadline, Done<std::vector<StreamDelivery>> done);
  // Entries delivered to `consumer` and not acknowledged (XREADGROUP ... 0),
  // for a consumer that reconnects.
  void ReadOwnPending(absl::string_view group, absl::string_view consumer,
                      int count, absl::Time deadline,
                      Done<std::vector<StreamDelivery>> done);
  // Entries idle longer than `min_idle` in any consumer's hands, given to
  // `consumer` (XAUTOCLAIM on every shard).
  void ClaimIdle(absl::string_view group, absl::string_view consumer,
                 absl::Duration min_idle, int count, absl::Time deadline,
                 Done<std::vector<StreamDelivery>> done);
  // XACK; yields how many were pending.
  void Ack(absl::string_view group,
           const std::vector<std::pair<int, std::string>>& entries,
           absl::Time deadline, Done<int64_t> done);
  // Pending follow-ups summed over the shards (ZCARD of each due index).
  void CountPending(absl::Time deadline, Done<int64_t> done);

  // Trims every shard stream (see the top of this file).
  void Trim(absl::Time deadline, Done<bool> done);

  int shards() const { return contacts_->shards(); }

 private:
  ContactStore* contacts_;
  RedisClient* redis_;
  std::string fire_script_;
  std::string fire_sha_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_STORE_FOLLOWUP_STORE_H_
