// How a contact is laid out in Redis. One hash per contact holds its state,
// with short field names so a typical profile stays in Redis' compact
// listpack encoding (at most 128 fields of at most 64 bytes each by default):
//
//   v              version, incremented by every write (optimistic locking)
//   p              phase id
//   ps fs ls       phase since, first seen, last seen
//   l:<channel>    last seen on a channel
//   n:<counter>    all-time counter
//   w:<counter>    windowed counter: "<first bucket>:<c0>,<c1>,..."
//   a:<name>       attribute: "<write time>|" (when known) and compact JSON
//   r              the contact's event-rate token bucket (token_bucket.h)
//   mi, tomb       merged (or being merged) into that contact; tombstone
//                  (merge_store.h)
//   mg:<contact>   that contact was merged into this one (merge marker)
//   k:<channel>    consent: "1" given, "0" withdrawn
//   x:<metric>     CX score: "<score>:<time>" (metric nps, csat, ces)
// Times are Unix milliseconds in base 36 (8 characters for this century).
//   u:<rule>|<key> a pending follow-up of rule <rule> with dedupe key
//                  <key> (16 hex digits of SHA-256 of the dedupe key, ""
//                  hashed for the default key): "<due>|<follow-up id>|<the
//                  dedupe key itself>" (followup_store.h has the rest)
//   na             when an event last raised the contact's score in its
//                  shard's activity index (contact_store.h, "Activity")
//   e:<8 bytes>    idempotency record of an event (contact_store.h)
//   ec             idempotency records written since the last pruning
//
// The phase history is one string key, entries newest first, separated by
// '\n', each
//   "<change time>|<phase>|<event time - change time>|<event
//   type>|<channel>|<placement>"
// with times in base-36 Unix milliseconds. An entry's previous phase is the
// phase of the entry after it, so kMaxHistory + 1 entries are kept. A string
// costs far less Redis memory than a list (a quicklist in Redis 7.0).
//
// Decoding is lenient where a ruleset changed since the data was written:
// fields of counters, channels or phases the ruleset no longer declares are
// ignored; a phase it no longer has reads as its renaming
// (`renamed_phases`) or else as the initial phase (DecodedContact::
// phase_unknown).
#ifndef TAPPA_SERVER_STORE_CONTACT_CODEC_H_
#define TAPPA_SERVER_STORE_CONTACT_CODEC_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/policy.h"
#include "rules/ruleset/ruleset.h"
#include "server/redis/redis_client.h"

namespace tappa::server {

using FieldMap = absl::flat_hash_map<std::string, std::string>;

// A follow-up scheduled for the contact and not yet fired.
struct PendingFollowUp {
  std::string field;    // the contact hash field ("u:...")
  std::string rule_id;  // the follow-up rule's id
  std::string dedupe_key;
  absl::Time due;
  std::string id;  // stable follow-up id: 16 hex digits
};

// The contact hash field of a rule's pending follow-up with `dedupe_key`.
std::string PendingFollowUpField(absl::string_view rule_id,
                                 absl::string_view dedupe_key);

struct DecodedContact {
  bool exists = false;
  // Pending follow-ups, in field order.
  std::vector<PendingFollowUp> pending;
  // The stored phase is one the ruleset neither has nor renames: the
  // contact reads as being in the initial phase.
  bool phase_unknown = false;
  // The contact's restraint record (restraint_codec.h); filled by
  // ContactStore::LoadContact only.
  ruleset::ContactRestraint restraint;
  int64_t version = 0;
  // Field "r": the contact's event-rate token bucket (server/auth/
  // token_bucket.h EncodeBucketState), written with each accepted event
  // when a contact event rate is configured.
  std::string event_rate_state;
  // Field "mi": the contact is being merged, or was merged, into this one
  // (merge_store.h); requests naming it are redirected there.
  std::string merged_into;
  // The redirect is final (a linked alias's hash, or a merge finished):
  // safe to remember. Without it a merge is in progress, and what the
  // merged contact counted is not yet on the survivor.
  bool tombstone = false;
  ruleset::ContactSnapshot snapshot;
};

// Decodes an HGETALL reply (an empty array = no such contact). `now` is used
// to compute windowed counts. Errors: Internal for a reply that is not a
// flat array of strings.
absl::StatusOr<DecodedContact> DecodeContact(const ruleset::Ruleset& ruleset,
                                             absl::string_view contact_id,
                                             const RedisReply& hgetall,
                                             absl::Time now);

// A contact hash's fields and values, in any order (none = no such
// contact).
using StoredFields = std::vector<std::pair<std::string, std::string>>;
// The same decoding, from fields already out of their reply.
DecodedContact DecodeContact(const ruleset::Ruleset& ruleset,
                             absl::string_view contact_id,
                             const StoredFields& fields, absl::Time now);

// The hash fields of a contact (without "v").
FieldMap EncodeContact(const ruleset::Ruleset& ruleset,
                       const ruleset::ContactSnapshot& contact);

// The fields to set and delete to turn `before` into `after`.
void DiffFields(const FieldMap& before, const FieldMap& after,
                std::vector<std::pair<std::string, std::string>>* set,
                std::vector<std::string>* remove);

struct HistoryEntry {
  absl::Time change_time;
  std::string previous_phase;
  std::string phase;
  absl::Time event_time;
  std::string event_type;
  std::string channel;
  std::string placement;
};
// One entry (previous_phase is not stored: see above).
std::string EncodeHistory(const HistoryEntry& entry);
// The entries of a history string, newest first, at most `max`; malformed
// entries are skipped. The oldest kept entry's previous phase is that of the
// entry after it when there is one, else "" (the contact's creation).
std::vector<HistoryEntry> DecodeHistory(absl::string_view text, size_t max);

int64_t MillisOf(absl::Time t);
absl::Time TimeOfMillis(int64_t ms);

// Compact numbers for records that are stored many times per contact.
std::string Base36(int64_t n);  // n >= 0
bool ParseBase36(absl::string_view s, int64_t* n);

}  // namespace tappa::server

#endif  // TAPPA_SERVER_STORE_CONTACT_CODEC_H_
