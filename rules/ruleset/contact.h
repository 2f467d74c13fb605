// A contact as the rule engine sees it: a snapshot of the state the server
// keeps in Redis, and the CEL bindings (`contact`, `context`) built from it
// for one request or event.
//
// The bindings follow the types of environment.h exactly: `contact` is an
// object with the fields listed there, `context` a map of the request's
// context entries plus "channel" and "placement".
//
// Thread safety: snapshots and bindings are plain values owned by one request;
// a binding may be read by several threads at once once built.
#ifndef TAPPA_RULES_RULESET_CONTACT_H_
#define TAPPA_RULES_RULESET_CONTACT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "rules/cel/containers.h"
#include "rules/cel/value.h"
#include "rules/ruleset/ruleset.h"

namespace tappa::ruleset {

struct CxScore {
  int64_t score = 0;
  absl::Time at;
};

// A rolling-window counter kept in buckets of the counter's bucket size:
// buckets[k] counts events in bucket number first_bucket + k, bucket number
// n covering [n * bucket, (n + 1) * bucket) since the Unix epoch. Only the
// buckets that can still fall in the window are kept.
struct RollingCount {
  int64_t first_bucket = 0;
  std::vector<int64_t> buckets;
};

// The bucket number of `t` for buckets of `bucket`.
int64_t BucketOf(absl::Time t, absl::Duration bucket);
// How many buckets a window spans: ceil(window / bucket).
int64_t WindowBuckets(absl::Duration window, absl::Duration bucket);
// The events counted in the window ending with bucket `current`: the buckets
// in (current - window_buckets, current].
int64_t RollingTotal(const RollingCount& count, int64_t current,
                     int64_t window_buckets);
// Adds `delta` to bucket `current` and drops buckets that left the window.
void RollingAdd(RollingCount* count, int64_t current, int64_t window_buckets,
                int64_t delta);

struct ContactSnapshot {
  std::string id;
  int phase = 0;  // index into Ruleset::phases
  absl::Time phase_since = absl::UnixEpoch();
  absl::Time first_seen = absl::UnixEpoch();
  absl::Time last_seen = absl::UnixEpoch();
  // Channel id -> last event on it.
  std::vector<std::pair<std::string, absl::Time>> last_seen_by_channel;
  // What rules see as contact.counts, indexed by counter index (missing
  // trailing entries count as 0): the all-time count, or for windowed
  // counters the rolling total at the time the snapshot was taken (see
  // RefreshCounts).
  std::vector<int64_t> counts;
  // The buckets of windowed counters, indexed by counter index (empty for
  // all-time counters). Kept so the store can update windows exactly.
  std::vector<RollingCount> rolling;
  // Attribute values must own their data (cel::Value::Own()).
  std::vector<std::pair<std::string, cel::Value>> attrs;
  // When each attribute was last written (by an identify event); an
  // attribute without an entry was written at an unknown time (before
  // these times were kept). Profile merges keep the most recent write.
  std::vector<std::pair<std::string, absl::Time>> attr_times;
  // Channel id -> consent given (true) or withdrawn (false).
  std::vector<std::pair<std::string, bool>> consents;
  std::optional<CxScore> nps;
  std::optional<CxScore> csat;
  std::optional<CxScore> ces;
};

// Recomputes `counts` of windowed counters from `rolling` as seen at `now`,
// and sizes counts/rolling to the ruleset's counters.
void RefreshCounts(const Ruleset& ruleset, absl::Time now,
                   ContactSnapshot* contact);

cel::Timestamp ToCelTimestamp(absl::Time t);
absl::Time FromCelTimestamp(cel::Timestamp t);

// A map with string keys known ahead (object fields), searched linearly: for
// the ten-odd fields of an object this beats hashing.
class FieldMap final : public cel::MapValue {
 public:
  // `name` must outlive the map (static strings, ruleset ids).
  void Add(absl::string_view name, cel::Value value) {
    fields_.emplace_back(name, std::move(value));
  }
  size_t size() const override { return fields_.size(); }
  bool Find(const cel::Value& key, cel::Value* value) const override;
  bool FindString(absl::string_view key, cel::Value* value) const override;
  cel::Value KeyAt(size_t i) const override {
    return cel::Value::BorrowedString(fields_[i].first);
  }
  cel::Value ValueAt(size_t i) const override { return fields_[i].second; }

 private:
  std::vector<std::pair<absl::string_view, cel::Value>> fields_;
};

// The `contact` binding of one snapshot. Borrows from `ruleset` (counter and
// phase ids) and from `snapshot`: both must outlive the binding and every
// Value taken from it.
class ContactBinding {
 public:
  ContactBinding(const Ruleset& ruleset, const ContactSnapshot& snapshot);
  ContactBinding(const ContactBinding&) = delete;
  ContactBinding& operator=(const ContactBinding&) = delete;

  // A borrowed map Value valid while this binding lives.
  cel::Value value() const { return cel::Value::BorrowedMap(&contact_); }

 private:
  FieldMap counts_;
  cel::VectorMap attrs_;
  cel::VectorMap consents_;
  cel::VectorMap last_seen_by_channel_;
  FieldMap cx_;
  FieldMap contact_;
};

// The `context` binding of one request: `entries` plus "channel" and
// "placement" (which win over entries of the same name). Borrows `channel`,
// `placement` and the entries' names and values (no copies on the request
// path): all must outlive the binding and every Value taken from it.
class ContextBinding {
 public:
  ContextBinding(
      absl::string_view channel, absl::string_view placement,
      const std::vector<std::pair<std::string, cel::Value>>& entries);
  ContextBinding(const ContextBinding&) = delete;
  ContextBinding& operator=(const ContextBinding&) = delete;

  cel::Value value() const { return cel::Value::BorrowedMap(&map_); }

 private:
  cel::VectorMap map_;
};

// ---- JSON forms (tappactl rules eval, tests) -----------------------------
// A plain JSON value as a CEL value: integers are int (uint when above
// INT64_MAX), other numbers double, strings, bools, null, arrays as lists,
// objects as maps with string keys. The result owns its data.
cel::Value PlainJsonToValue(const nlohmann::json& json);

// Parses a contact snapshot from its JSON form (documented in
// rules/README.md, "Offline evaluation"):
//   {"id": "c1", "phase": "consideration", "phase_since": RFC3339,
//    "first_seen": RFC3339, "last_seen": RFC3339,
//    "last_seen_by_channel": {"web": RFC3339},
//    "counts": {"product_view_7d": 3}, "attrs": {"country": "IT"},
//    "consents": {"email": true},
//    "cx": {"nps": {"score": 9, "at": RFC3339}}}
// Every key is optional except that unknown keys, unknown phases, channels
// and counters are errors naming the field ("contact.counts.typo: unknown
// counter"). A missing phase is the ruleset's initial phase; missing times
// are `now`.
absl::StatusOr<ContactSnapshot> ContactFromJson(const Ruleset& ruleset,
                                                const nlohmann::json& json,
                                                absl::Time now);

// Replaces parts of `contact` with those given in `overrides` (the JSON form
// above): "phase", the times and "cx" entries replace; the maps "counts",
// "attrs", "consents" and "last_seen_by_channel" merge entry by entry (an
// entry given replaces the contact's, the others stay); "id" is ignored.
// Errors as ContactFromJson's; `contact` is unchanged on error.
absl::Status ApplyContactOverrides(const Ruleset& ruleset,
                                   const nlohmann::json& overrides,
                                   absl::Time now, ContactSnapshot* contact);

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_CONTACT_H_
