#include "rules/ruleset/contact.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rules/cel/stdlib.h"

namespace tappa::ruleset {
namespace {

using cel::Value;

Value TimeValue(absl::Time t) {
  return Value::FromTimestamp(ToCelTimestamp(t));
}

absl::StatusOr<absl::Time> TimeFromJson(const nlohmann::json& json,
                                        absl::string_view field) {
  if (!json.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected an RFC 3339 timestamp string"));
  }
  absl::StatusOr<cel::Timestamp> t =
      cel::ParseTimestamp(json.get<std::string>());
  if (!t.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", t.status().message()));
  }
  return FromCelTimestamp(*t);
}

absl::Status ExpectObject(const nlohmann::json& json, absl::string_view field) {
  if (json.is_object()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": expected an object"));
}

}  // namespace

int64_t BucketOf(absl::Time t, absl::Duration bucket) {
  absl::Duration rem;  // IDivDuration requires somewhere to write it
  return absl::IDivDuration(t - absl::UnixEpoch(), bucket, &rem) -
         (t < absl::UnixEpoch() ? 1 : 0);
}

int64_t WindowBuckets(absl::Duration window, absl::Duration bucket) {
  absl::Duration rem;
  int64_t n = absl::IDivDuration(window, bucket, &rem);
  return rem > absl::ZeroDuration() ? n + 1 : n;
}

int64_t RollingTotal(const RollingCount& count, int64_t current,
                     int64_t window_buckets) {
  int64_t total = 0;
  for (size_t k = 0; k < count.buckets.size(); ++k) {
    int64_t bucket = count.first_bucket + static_cast<int64_t>(k);
    if (bucket > current - window_buckets && bucket <= current) {
      total += count.buckets[k];
    }
  }
  return total;
}

void RollingAdd(RollingCount* count, int64_t current, int64_t window_buckets,
                int64_t delta) {
  int64_t oldest = current - window_buckets + 1;
  if (count->buckets.empty() || count->first_bucket > current) {
    // Empty, or (clock went backwards) only future buckets: start afresh.
    count->buckets.assign(1, delta);
    count->first_bucket = current;
    return;
  }
  // Drop buckets older than the window.
  if (count->first_bucket < oldest) {
    int64_t drop =
        std::min<int64_t>(oldest - count->first_bucket,
                          static_cast<int64_t>(count->buckets.size()));
    count->buckets.erase(count->buckets.begin(), count->buckets.begin() + drop);
    count->first_bucket += drop;
    if (count->buckets.empty()) {
      count->buckets.assign(1, delta);
      count->first_bucket = current;
      return;
    }
  }
  int64_t index = current - count->first_bucket;
  if (index >= static_cast<int64_t>(count->buckets.size())) {
    count->buckets.resize(index + 1, 0);
  }
  count->buckets[index] += delta;
}

void RefreshCounts(const Ruleset& ruleset, absl::Time now,
                   ContactSnapshot* contact) {
  size_t n = ruleset.counters.size();
  contact->counts.resize(n, 0);
  contact->rolling.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const Counter& counter = ruleset.counters[i];
    if (!counter.window.has_value()) continue;
    contact->counts[i] =
        RollingTotal(contact->rolling[i], BucketOf(now, counter.bucket),
                     WindowBuckets(*counter.window, counter.bucket));
  }
}

cel::Timestamp ToCelTimestamp(absl::Time t) {
  int64_t seconds = absl::ToUnixSeconds(t);
  int32_t nanos = static_cast<int32_t>(
      absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds)));
  return {seconds, nanos};
}

absl::Time FromCelTimestamp(cel::Timestamp t) {
  return absl::FromUnixSeconds(t.seconds) + absl::Nanoseconds(t.nanos);
}

bool FieldMap::Find(const Value& key, Value* value) const {
  if (!key.IsString()) return false;
  return FindString(key.string_value(), value);
}

bool FieldMap::FindString(absl::string_view key, Value* value) const {
  for (const auto& [name, field] : fields_) {
    if (name.size() == key.size() && name == key) {
      *value = field;
      return true;
    }
  }
  return false;
}

ContactBinding::ContactBinding(const Ruleset& ruleset,
                               const ContactSnapshot& snapshot) {
  for (size_t i = 0; i < ruleset.counters.size(); ++i) {
    int64_t count = i < snapshot.counts.size() ? snapshot.counts[i] : 0;
    counts_.Add(ruleset.counters[i].id, Value::Int(count));
  }
  // Snapshot keys are distinct by construction (they come from maps); a
  // duplicate would only shadow, so insertion errors are ignored.
  for (const auto& [name, value] : snapshot.attrs) {
    attrs_.Insert(Value::BorrowedString(name), value).IgnoreError();
  }
  for (const auto& [channel, given] : snapshot.consents) {
    consents_.Insert(Value::BorrowedString(channel), Value::Bool(given))
        .IgnoreError();
  }
  for (const auto& [channel, at] : snapshot.last_seen_by_channel) {
    last_seen_by_channel_.Insert(Value::BorrowedString(channel), TimeValue(at))
        .IgnoreError();
  }
  if (snapshot.nps) {
    cx_.Add("nps", Value::Int(snapshot.nps->score));
    cx_.Add("nps_at", TimeValue(snapshot.nps->at));
  }
  if (snapshot.csat) {
    cx_.Add("csat", Value::Int(snapshot.csat->score));
    cx_.Add("csat_at", TimeValue(snapshot.csat->at));
  }
  if (snapshot.ces) {
    cx_.Add("ces", Value::Int(snapshot.ces->score));
    cx_.Add("ces_at", TimeValue(snapshot.ces->at));
  }
  // Most used fields first: the lookup is linear.
  int phase = snapshot.phase >= 0 &&
                      snapshot.phase < static_cast<int>(ruleset.phases.size())
                  ? snapshot.phase
                  : ruleset.initial_phase;
  contact_.Add("phase", Value::BorrowedString(ruleset.phases[phase].id));
  contact_.Add("counts", Value::BorrowedMap(&counts_));
  contact_.Add("attrs", Value::BorrowedMap(&attrs_));
  contact_.Add("consents", Value::BorrowedMap(&consents_));
  contact_.Add("cx", Value::BorrowedMap(&cx_));
  contact_.Add("id", Value::BorrowedString(snapshot.id));
  contact_.Add("phase_since", TimeValue(snapshot.phase_since));
  contact_.Add("first_seen", TimeValue(snapshot.first_seen));
  contact_.Add("last_seen", TimeValue(snapshot.last_seen));
  contact_.Add("last_seen_by_channel",
               Value::BorrowedMap(&last_seen_by_channel_));
}

ContextBinding::ContextBinding(
    absl::string_view channel, absl::string_view placement,
    const std::vector<std::pair<std::string, cel::Value>>& entries) {
  map_.Insert(Value::BorrowedString("channel"), Value::BorrowedString(channel))
      .IgnoreError();
  map_.Insert(Value::BorrowedString("placement"),
              Value::BorrowedString(placement))
      .IgnoreError();
  for (const auto& [name, value] : entries) {
    if (name == "channel" || name == "placement") continue;
    map_.Insert(Value::BorrowedString(name), value).IgnoreError();
  }
}

Value PlainJsonToValue(const nlohmann::json& json) {
  switch (json.type()) {
    case nlohmann::json::value_t::null:
      return Value::Null();
    case nlohmann::json::value_t::boolean:
      return Value::Bool(json.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::Int(json.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = json.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Value::Int(static_cast<int64_t>(u));
      }
      return Value::Uint(u);
    }
    case nlohmann::json::value_t::number_float:
      return Value::Double(json.get<double>());
    case nlohmann::json::value_t::string:
      return Value::String(json.get<std::string>());
    case nlohmann::json::value_t::array: {
      auto* list = new cel::VectorList();
      for (const auto& element : json) list->Append(PlainJsonToValue(element));
      return Value::OwnedList(list);
    }
    case nlohmann::json::value_t::object: {
      auto* map = new cel::VectorMap();
      for (const auto& [key, element] : json.items()) {
        map->Insert(Value::String(key), PlainJsonToValue(element))
            .IgnoreError();
      }
      return Value::OwnedMap(map);
    }
    default:
      return Value::Null();
  }
}

absl::StatusOr<ContactSnapshot> ContactFromJson(const Ruleset& ruleset,
                                                const nlohmann::json& json,
                                                absl::Time now) {
  if (absl::Status s = ExpectObject(json, "contact"); !s.ok()) return s;
  ContactSnapshot c;
  c.phase = ruleset.initial_phase;
  c.phase_since = c.first_seen = c.last_seen = now;
  for (const auto& [key, value] : json.items()) {
    std::string field = absl::StrCat("contact.", key);
    if (key == "id") {
      if (!value.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": expected a string"));
      }
      c.id = value.get<std::string>();
    } else if (key == "phase") {
      int phase =
          value.is_string() ? ruleset.FindPhase(value.get<std::string>()) : -1;
      if (phase < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": unknown phase ", value.dump()));
      }
      c.phase = phase;
    } else if (key == "phase_since" || key == "first_seen" ||
               key == "last_seen") {
      absl::StatusOr<absl::Time> t = TimeFromJson(value, field);
      if (!t.ok()) return t.status();
      (key == "phase_since"  ? c.phase_since
       : key == "first_seen" ? c.first_seen
                             : c.last_seen) = *t;
    } else if (key == "last_seen_by_channel") {
      if (absl::Status s = ExpectObject(value, field); !s.ok()) return s;
      for (const auto& [channel, at] : value.items()) {
        std::string sub = absl::StrCat(field, ".", channel);
        if (ruleset.FindChannel(channel) < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(sub, ": unknown channel"));
        }
        absl::StatusOr<absl::Time> t = TimeFromJson(at, sub);
        if (!t.ok()) return t.status();
        c.last_seen_by_channel.emplace_back(channel, *t);
      }
    } else if (key == "counts") {
      if (absl::Status s = ExpectObject(value, field); !s.ok()) return s;
      c.counts.assign(ruleset.counters.size(), 0);
      for (const auto& [counter, count] : value.items()) {
        std::string sub = absl::StrCat(field, ".", counter);
        int index = ruleset.FindCounter(counter);
        if (index < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(sub, ": unknown counter"));
        }
        if (!count.is_number_integer()) {
          return absl::InvalidArgumentError(
              absl::StrCat(sub, ": expected an integer"));
        }
        c.counts[index] = count.get<int64_t>();
      }
    } else if (key == "attrs") {
      if (absl::Status s = ExpectObject(value, field); !s.ok()) return s;
      for (const auto& [name, attr] : value.items()) {
        c.attrs.emplace_back(name, PlainJsonToValue(attr));
      }
    } else if (key == "consents") {
      if (absl::Status s = ExpectObject(value, field); !s.ok()) return s;
      for (const auto& [channel, given] : value.items()) {
        std::string sub = absl::StrCat(field, ".", channel);
        if (ruleset.FindChannel(channel) < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(sub, ": unknown channel"));
        }
        if (!given.is_boolean()) {
          return absl::InvalidArgumentError(
              absl::StrCat(sub, ": expected a bool"));
        }
        c.consents.emplace_back(channel, given.get<bool>());
      }
    } else if (key == "cx") {
      if (absl::Status s = ExpectObject(value, field); !s.ok()) return s;
      for (const auto& [name, score] : value.items()) {
        std::string sub = absl::StrCat(field, ".", name);
        std::optional<CxScore>* slot = name == "nps"    ? &c.nps
                                       : name == "csat" ? &c.csat
                                       : name == "ces"  ? &c.ces
                                                        : nullptr;
        if (slot == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat(sub, ": unknown score (expected nps, csat or ces)"));
        }
        if (!score.is_object() || !score.contains("score") ||
            !score["score"].is_number_integer()) {
          return absl::InvalidArgumentError(absl::StrCat(
              sub, ": expected {\"score\": int, \"at\": timestamp}"));
        }
        CxScore cx{score["score"].get<int64_t>(), now};
        if (score.contains("at")) {
          absl::StatusOr<absl::Time> t = TimeFromJson(score["at"], sub + ".at");
          if (!t.ok()) return t.status();
          cx.at = *t;
        }
        *slot = cx;
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(field, ": unknown field"));
    }
  }
  return c;
}

namespace {

// Replaces or appends `value` under `key` in a list of pairs.
template <typename V>
void MergeEntry(std::vector<std::pair<std::string, V>>* entries,
                const std::string& key, V value) {
  for (auto& [k, v] : *entries) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries->emplace_back(key, std::move(value));
}

template <typename V>
void MergeAll(const std::vector<std::pair<std::string, V>>& from,
              std::vector<std::pair<std::string, V>>* into) {
  for (const auto& [k, v] : from) MergeEntry(into, k, v);
}

}  // namespace

absl::Status ApplyContactOverrides(const Ruleset& ruleset,
                                   const nlohmann::json& overrides,
                                   absl::Time now, ContactSnapshot* contact) {
  absl::StatusOr<ContactSnapshot> given =
      ContactFromJson(ruleset, overrides, now);
  if (!given.ok()) return given.status();
  ContactSnapshot& c = *contact;
  for (const auto& [key, value] : overrides.items()) {
    if (key == "phase") {
      c.phase = given->phase;
    } else if (key == "phase_since") {
      c.phase_since = given->phase_since;
    } else if (key == "first_seen") {
      c.first_seen = given->first_seen;
    } else if (key == "last_seen") {
      c.last_seen = given->last_seen;
    } else if (key == "last_seen_by_channel") {
      MergeAll(given->last_seen_by_channel, &c.last_seen_by_channel);
    } else if (key == "counts") {
      c.counts.resize(ruleset.counters.size(), 0);
      for (const auto& [counter, n] : value.items()) {
        int index = ruleset.FindCounter(counter);
        if (index >= 0 && static_cast<size_t>(index) < given->counts.size()) {
          c.counts[index] = given->counts[index];
        }
      }
    } else if (key == "attrs") {
      MergeAll(given->attrs, &c.attrs);
    } else if (key == "consents") {
      MergeAll(given->consents, &c.consents);
    } else if (key == "cx") {
      if (given->nps) c.nps = given->nps;
      if (given->csat) c.csat = given->csat;
      if (given->ces) c.ces = given->ces;
    }
  }
  return absl::OkStatus();
}

}  // namespace tappa::ruleset
