#include "server/store/contact_codec.h"

#include <openssl/sha.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "rules/cel/value_json.h"

namespace tappa::server {
namespace {

using ruleset::ContactSnapshot;

// Times are base-36 Unix milliseconds: 8 characters instead of 13 for
// every timestamp a contact keeps.
bool ParseMillis(absl::string_view s, absl::Time* t) {
  int64_t ms;
  if (!ParseBase36(s, &ms)) return false;
  *t = TimeOfMillis(ms);
  return true;
}

std::string TimeField(absl::Time t) { return Base36(MillisOf(t)); }

// Plain JSON of an attribute value (the inverse of PlainJsonToValue for the
// values events can carry: null, bool, numbers, strings, lists, maps).
nlohmann::json ValueToPlainJson(const cel::Value& v, int depth = 0) {
  if (depth > 32) return nullptr;
  switch (v.kind()) {
    case cel::Kind::kBool:
      return v.bool_value();
    case cel::Kind::kInt:
      return v.int_value();
    case cel::Kind::kUint:
      return v.uint_value();
    case cel::Kind::kDouble:
      return v.double_value();
    case cel::Kind::kString:
      return std::string(v.string_value());
    case cel::Kind::kList: {
      nlohmann::json out = nlohmann::json::array();
      for (size_t i = 0; i < v.list_value().size(); ++i) {
        out.push_back(ValueToPlainJson(v.list_value().Get(i), depth + 1));
      }
      return out;
    }
    case cel::Kind::kMap: {
      nlohmann::json out = nlohmann::json::object();
      const cel::MapValue& m = v.map_value();
      for (size_t i = 0; i < m.size(); ++i) {
        cel::Value k = m.KeyAt(i);
        if (k.IsString())
          out[std::string(k.string_value())] =
              ValueToPlainJson(m.ValueAt(i), depth + 1);
      }
      return out;
    }
    default:
      return nullptr;
  }
}

// Windowed counters are stored sparsely, "<first bucket>:<offset>=<count>,...",
// with only the non-empty buckets: a 7-day window in hourly buckets would
// otherwise need 168 numbers, too long for the hash's compact encoding.
std::string EncodeRolling(const ruleset::RollingCount& r) {
  std::string out = absl::StrCat(r.first_bucket, ":");
  bool first = true;
  for (size_t k = 0; k < r.buckets.size(); ++k) {
    if (r.buckets[k] == 0) continue;
    absl::StrAppend(&out, first ? "" : ",", k, "=", r.buckets[k]);
    first = false;
  }
  return out;
}

bool DecodeRolling(absl::string_view s, ruleset::RollingCount* r) {
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(s, absl::MaxSplits(':', 1));
  if (!absl::SimpleAtoi(parts.first, &r->first_bucket)) return false;
  r->buckets.clear();
  if (parts.second.empty()) return true;
  for (absl::string_view entry : absl::StrSplit(parts.second, ',')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(entry, absl::MaxSplits('=', 1));
    int64_t offset, n;
    // Offsets beyond the largest window (ruleset limit) are corrupt data.
    if (!absl::SimpleAtoi(kv.first, &offset) ||
        !absl::SimpleAtoi(kv.second, &n) || offset < 0 ||
        offset >= ruleset::kMaxWindowBuckets) {
      return false;
    }
    if (static_cast<size_t>(offset) >= r->buckets.size())
      r->buckets.resize(offset + 1, 0);
    r->buckets[offset] = n;
  }
  return true;
}

}  // namespace

std::string PendingFollowUpField(absl::string_view rule_id,
                                 absl::string_view dedupe_key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(dedupe_key.data()),
         dedupe_key.size(), digest);
  return absl::StrCat("u:", rule_id, "|",
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(digest), 8)));
}

int64_t MillisOf(absl::Time t) { return absl::ToUnixMillis(t); }
absl::Time TimeOfMillis(int64_t ms) { return absl::FromUnixMillis(ms); }

namespace {

// Decodes `n` fields; field(i) and value(i) give the i-th pair.
template <typename FieldAt, typename ValueAt>
DecodedContact DecodeFields(const ruleset::Ruleset& rs,
                            absl::string_view contact_id, size_t n,
                            FieldAt field_at, ValueAt value_at,
                            absl::Time now) {
  DecodedContact out;
  ContactSnapshot& c = out.snapshot;
  c.id = std::string(contact_id);
  c.phase = rs.initial_phase;
  c.counts.assign(rs.counters.size(), 0);
  c.rolling.assign(rs.counters.size(), {});
  out.exists = n > 0;
  for (size_t i = 0; i < n; ++i) {
    const std::string& field = field_at(i);
    const std::string& value = value_at(i);
    if (field == "v") {
      absl::SimpleAtoi(value, &out.version);
    } else if (field == "p") {
      int phase = rs.ResolveStoredPhase(value);
      if (phase >= 0) {
        c.phase = phase;
      } else {
        out.phase_unknown = true;
      }
    } else if (field == "r") {
      out.event_rate_state = value;
    } else if (field == "mi") {
      out.merged_into = value;
    } else if (field == "tomb") {
      out.tombstone = true;
    } else if (field == "ps") {
      ParseMillis(value, &c.phase_since);
    } else if (field == "fs") {
      ParseMillis(value, &c.first_seen);
    } else if (field == "ls") {
      ParseMillis(value, &c.last_seen);
    } else if (field.size() > 2 && field[1] == ':') {
      absl::string_view name = absl::string_view(field).substr(2);
      switch (field[0]) {
        case 'l': {
          absl::Time t;
          if (rs.FindChannel(name) >= 0 && ParseMillis(value, &t)) {
            c.last_seen_by_channel.emplace_back(std::string(name), t);
          }
          break;
        }
        case 'n': {
          int counter = rs.FindCounter(name);
          int64_t n;
          if (counter >= 0 && !rs.counters[counter].window &&
              absl::SimpleAtoi(value, &n)) {
            c.counts[counter] = n;
          }
          break;
        }
        case 'w': {
          int counter = rs.FindCounter(name);
          if (counter >= 0 && rs.counters[counter].window) {
            DecodeRolling(value, &c.rolling[counter]);
          }
          break;
        }
        case 'a': {
          // An optional "<base-36 write time>|" before the JSON: JSON
          // never starts with base-36 digits followed by '|'.
          absl::string_view json = value;
          size_t bar = json.find('|');
          int64_t written = 0;
          bool timed = bar != absl::string_view::npos && bar > 0 &&
                       ParseBase36(json.substr(0, bar), &written);
          if (timed) json = json.substr(bar + 1);
          nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
          if (!j.is_discarded()) {
            c.attrs.emplace_back(std::string(name),
                                 ruleset::PlainJsonToValue(j));
            if (timed) {
              c.attr_times.emplace_back(std::string(name),
                                        TimeOfMillis(written));
            }
          }
          break;
        }
        case 'u': {
          // "<due>|<id>|<dedupe key>"
          std::vector<absl::string_view> parts =
              absl::StrSplit(value, absl::MaxSplits('|', 2));
          PendingFollowUp p;
          if (parts.size() != 3 || !ParseMillis(parts[0], &p.due)) break;
          p.field = field;
          p.rule_id = std::string(name.substr(0, name.find('|')));
          p.id = std::string(parts[1]);
          p.dedupe_key = std::string(parts[2]);
          out.pending.push_back(std::move(p));
          break;
        }
        case 'k':
          if (rs.FindChannel(name) >= 0)
            c.consents.emplace_back(std::string(name), value == "1");
          break;
        case 'x': {
          std::pair<absl::string_view, absl::string_view> parts =
              absl::StrSplit(value, absl::MaxSplits(':', 1));
          ruleset::CxScore score;
          if (!absl::SimpleAtoi(parts.first, &score.score) ||
              !ParseMillis(parts.second, &score.at)) {
            break;
          }
          if (name == "nps") c.nps = score;
          if (name == "csat") c.csat = score;
          if (name == "ces") c.ces = score;
          break;
        }
        default:
          break;
      }
    }
  }
  ruleset::RefreshCounts(rs, now, &c);
  return out;
}

}  // namespace

absl::StatusOr<DecodedContact> DecodeContact(const ruleset::Ruleset& rs,
                                             absl::string_view contact_id,
                                             const RedisReply& reply,
                                             absl::Time now) {
  if (reply.type != RedisReply::Type::kArray ||
      reply.elements.size() % 2 != 0) {
    return absl::InternalError("contact hash: unexpected reply shape");
  }
  const std::vector<RedisReply>& e = reply.elements;
  return DecodeFields(
      rs, contact_id, e.size() / 2,
      [&e](size_t i) -> const std::string& { return e[2 * i].str; },
      [&e](size_t i) -> const std::string& { return e[2 * i + 1].str; }, now);
}

DecodedContact DecodeContact(const ruleset::Ruleset& rs,
                             absl::string_view contact_id,
                             const StoredFields& fields, absl::Time now) {
  return DecodeFields(
      rs, contact_id, fields.size(),
      [&fields](size_t i) -> const std::string& { return fields[i].first; },
      [&fields](size_t i) -> const std::string& { return fields[i].second; },
      now);
}

FieldMap EncodeContact(const ruleset::Ruleset& rs, const ContactSnapshot& c) {
  FieldMap f;
  f["p"] = rs.phases[c.phase].id;
  f["ps"] = TimeField(c.phase_since);
  f["fs"] = TimeField(c.first_seen);
  f["ls"] = TimeField(c.last_seen);
  for (const auto& [channel, t] : c.last_seen_by_channel) {
    f[absl::StrCat("l:", channel)] = TimeField(t);
  }
  for (size_t i = 0; i < rs.counters.size(); ++i) {
    const ruleset::Counter& counter = rs.counters[i];
    if (counter.window) {
      if (i < c.rolling.size() && !c.rolling[i].buckets.empty()) {
        f[absl::StrCat("w:", counter.id)] = EncodeRolling(c.rolling[i]);
      }
    } else if (i < c.counts.size() && c.counts[i] != 0) {
      f[absl::StrCat("n:", counter.id)] = absl::StrCat(c.counts[i]);
    }
  }
  for (const auto& [name, value] : c.attrs) {
    // "<write time>|<JSON>" (the time in base-36 ms) when the write time is
    // known: in the value itself, since a separate field per attribute
    // would double the fields, and one field for all would outgrow Redis'
    // compact-encoding value limit (64 bytes).
    std::string prefix;
    for (const auto& [attr, at] : c.attr_times) {
      if (attr == name) {
        prefix = absl::StrCat(Base36(MillisOf(at)), "|");
        break;
      }
    }
    f[absl::StrCat("a:", name)] = absl::StrCat(
        prefix, ValueToPlainJson(value).dump(
                    -1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  for (const auto& [channel, given] : c.consents) {
    // One character assigned with its length: GCC 12 warns (-Wrestrict,
    // a known false positive) on assigning the ternary's char pointer.
    f[absl::StrCat("k:", channel)].assign(1, given ? '1' : '0');
  }
  auto cx = [&f](absl::string_view metric,
                 const std::optional<ruleset::CxScore>& s) {
    if (s)
      f[absl::StrCat("x:", metric)] =
          absl::StrCat(s->score, ":", TimeField(s->at));
  };
  cx("nps", c.nps);
  cx("csat", c.csat);
  cx("ces", c.ces);
  return f;
}

void DiffFields(const FieldMap& before, const FieldMap& after,
                std::vector<std::pair<std::string, std::string>>* set,
                std::vector<std::string>* remove) {
  for (const auto& [k, v] : after) {
    auto it = before.find(k);
    if (it == before.end() || it->second != v) set->emplace_back(k, v);
  }
  for (const auto& [k, v] : before) {
    if (!after.contains(k)) remove->push_back(k);
  }
}

std::string Base36(int64_t n) {
  if (n <= 0) return "0";
  std::string out;
  while (n > 0) {
    int d = static_cast<int>(n % 36);
    out.push_back(static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10));
    n /= 36;
  }
  return std::string(out.rbegin(), out.rend());
}

bool ParseBase36(absl::string_view s, int64_t* n) {
  if (s.empty() || s.size() > 12) return false;
  int64_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'z' ? c - 'a' + 10
                                   : -1;
    if (d < 0) return false;
    v = v * 36 + d;
  }
  *n = v;
  return true;
}

std::string EncodeHistory(const HistoryEntry& e) {
  int64_t change = MillisOf(e.change_time);
  int64_t delta = change - MillisOf(e.event_time);
  return absl::StrCat(Base36(change), "|", e.phase, "|",
                      delta > 0 ? Base36(delta) : "", "|", e.event_type, "|",
                      e.channel, "|", e.placement);
}

std::vector<HistoryEntry> DecodeHistory(absl::string_view text, size_t max) {
  std::vector<HistoryEntry> entries;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, '|');
    int64_t change = 0, delta = 0;
    if (parts.size() != 6 || !ParseBase36(parts[0], &change) ||
        (!parts[2].empty() && !ParseBase36(parts[2], &delta))) {
      continue;
    }
    HistoryEntry e;
    e.change_time = TimeOfMillis(change);
    e.phase = std::string(parts[1]);
    e.event_time = TimeOfMillis(change - delta);
    e.event_type = std::string(parts[3]);
    e.channel = std::string(parts[4]);
    e.placement = std::string(parts[5]);
    if (!entries.empty()) entries.back().previous_phase = e.phase;
    if (entries.size() == max) break;  // read one more only for its phase
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace tappa::server
