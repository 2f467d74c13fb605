#include "rules/ruleset/contact_merge.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rules/ruleset/journey.h"

namespace tappa::ruleset {
namespace {

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t sum;
  if (__builtin_add_overflow(a, b, &sum)) {
    return b > 0 ? std::numeric_limits<int64_t>::max()
                 : std::numeric_limits<int64_t>::min();
  }
  return sum;
}

// Snapshots may omit trailing counters (they count as 0, contact.h).
int64_t CountAt(const ContactSnapshot& contact, size_t i) {
  return i < contact.counts.size() ? contact.counts[i] : 0;
}

const RollingCount& RollingAt(const ContactSnapshot& contact, size_t i) {
  static const RollingCount* const kNone = new RollingCount();
  return i < contact.rolling.size() ? contact.rolling[i] : *kNone;
}

// The sum of `a` and `b` bucket by bucket, keeping only the buckets in the
// window ending with bucket `current` (as RollingAdd would), without zero
// buckets at either end.
RollingCount MergeRolling(const RollingCount& a, const RollingCount& b,
                          int64_t current, int64_t window_buckets) {
  int64_t oldest = current - window_buckets + 1;
  std::vector<int64_t> window(static_cast<size_t>(window_buckets), 0);
  for (const RollingCount* count : {&a, &b}) {
    for (size_t k = 0; k < count->buckets.size(); ++k) {
      int64_t bucket = count->first_bucket + static_cast<int64_t>(k);
      if (bucket < oldest || bucket > current) continue;
      int64_t& slot = window[static_cast<size_t>(bucket - oldest)];
      slot = SaturatingAdd(slot, count->buckets[k]);
    }
  }
  auto first = std::find_if(window.begin(), window.end(),
                            [](int64_t n) { return n != 0; });
  if (first == window.end()) return RollingCount();
  auto last = std::find_if(window.rbegin(), window.rend(), [](int64_t n) {
                return n != 0;
              }).base();
  RollingCount merged;
  merged.first_bucket = oldest + (first - window.begin());
  merged.buckets.assign(first, last);
  return merged;
}

void MergeCounters(const Ruleset& ruleset, const ContactSnapshot& survivor,
                   const ContactSnapshot& absorbed, absl::Time now,
                   ContactSnapshot* merged) {
  size_t n = ruleset.counters.size();
  merged->counts.assign(n, 0);
  merged->rolling.assign(n, RollingCount());
  for (size_t i = 0; i < n; ++i) {
    const Counter& counter = ruleset.counters[i];
    if (!counter.window.has_value()) {
      merged->counts[i] =
          SaturatingAdd(CountAt(survivor, i), CountAt(absorbed, i));
      continue;
    }
    merged->rolling[i] =
        MergeRolling(RollingAt(survivor, i), RollingAt(absorbed, i),
                     BucketOf(now, counter.bucket),
                     WindowBuckets(*counter.window, counter.bucket));
  }
  // The windowed counts, from the merged buckets.
  RefreshCounts(ruleset, now, merged);
}

// The phase as ContactBinding reads it: an unknown index is the initial
// phase.
int KnownPhase(const Ruleset& ruleset, int phase) {
  return phase >= 0 && phase < static_cast<int>(ruleset.phases.size())
             ? phase
             : ruleset.initial_phase;
}

void MergePhase(const Ruleset& ruleset, const ContactSnapshot& survivor,
                const ContactSnapshot& absorbed, MergePhaseRule rule,
                ContactSnapshot* merged) {
  int survivor_phase = KnownPhase(ruleset, survivor.phase);
  int absorbed_phase = KnownPhase(ruleset, absorbed.phase);
  if (survivor_phase == absorbed_phase) {
    merged->phase = survivor_phase;
    merged->phase_since = std::min(survivor.phase_since, absorbed.phase_since);
    return;
  }
  bool take_absorbed = false;
  switch (rule) {
    case MergePhaseRule::kFurthest:
      take_absorbed = absorbed_phase > survivor_phase;
      break;
    case MergePhaseRule::kSurvivor:
      take_absorbed = false;
      break;
    case MergePhaseRule::kMostRecent:
      take_absorbed = absorbed.phase_since > survivor.phase_since;
      break;
  }
  merged->phase = take_absorbed ? absorbed_phase : survivor_phase;
  merged->phase_since =
      take_absorbed ? absorbed.phase_since : survivor.phase_since;
}

template <typename V>
V* FindEntry(std::vector<std::pair<std::string, V>>* entries,
             const std::string& key) {
  for (auto& [k, v] : *entries) {
    if (k == key) return &v;
  }
  return nullptr;
}

// When `contact` last wrote attribute `name`, or nullopt when unknown.
std::optional<absl::Time> WriteTime(const ContactSnapshot& contact,
                                    const std::string& name) {
  for (const auto& [n, t] : contact.attr_times) {
    if (n == name) return t;
  }
  return std::nullopt;
}

void MergeAttributes(const ContactSnapshot& survivor,
                     const ContactSnapshot& absorbed, ContactSnapshot* merged) {
  // Whether the absorbed profile's value of `name` wins a conflict: the
  // more recent write; when a time is unknown (written before times were
  // kept), the more recently active profile; the survivor on a tie.
  auto absorbed_wins = [&](const std::string& name) {
    std::optional<absl::Time> s = WriteTime(survivor, name);
    std::optional<absl::Time> a = WriteTime(absorbed, name);
    if (s.has_value() && a.has_value()) return *a > *s;
    return absorbed.last_seen > survivor.last_seen;
  };
  bool absorbed_active = absorbed.last_seen > survivor.last_seen;
  const ContactSnapshot& first = absorbed_active ? absorbed : survivor;
  const ContactSnapshot& second = absorbed_active ? survivor : absorbed;
  merged->attrs.clear();
  merged->attr_times.clear();
  auto add = [&](const std::string& name, const cel::Value& value,
                 const ContactSnapshot& from) {
    merged->attrs.emplace_back(name, value.Own());
    if (std::optional<absl::Time> t = WriteTime(from, name)) {
      merged->attr_times.emplace_back(name, *t);
    }
  };
  // The more recently active profile's attributes first, so the limit
  // keeps them; each conflict goes to the more recent write.
  for (const auto& [name, value] : first.attrs) {
    const cel::Value* theirs = nullptr;
    for (const auto& [n, v] : second.attrs) {
      if (n == name) theirs = &v;
    }
    bool first_is_absorbed = &first == &absorbed;
    if (theirs != nullptr && absorbed_wins(name) != first_is_absorbed) {
      add(name, *theirs, second);
    } else {
      add(name, value, first);
    }
  }
  for (const auto& [name, value] : second.attrs) {
    if (merged->attrs.size() >= kMaxAttributes) break;
    if (FindEntry(&merged->attrs, name) != nullptr) continue;
    add(name, value, second);
  }
}

void MergeConsents(const ContactSnapshot& survivor,
                   const ContactSnapshot& absorbed, ContactSnapshot* merged) {
  merged->consents = survivor.consents;
  for (const auto& [channel, given] : absorbed.consents) {
    if (bool* mine = FindEntry(&merged->consents, channel)) {
      // A withdrawal on either side wins.
      *mine = *mine && given;
    } else {
      merged->consents.emplace_back(channel, given);
    }
  }
}

void MergeLastSeenByChannel(const ContactSnapshot& survivor,
                            const ContactSnapshot& absorbed,
                            ContactSnapshot* merged) {
  merged->last_seen_by_channel = survivor.last_seen_by_channel;
  for (const auto& [channel, at] : absorbed.last_seen_by_channel) {
    if (absl::Time* mine = FindEntry(&merged->last_seen_by_channel, channel)) {
      *mine = std::max(*mine, at);
    } else {
      merged->last_seen_by_channel.emplace_back(channel, at);
    }
  }
}

std::optional<CxScore> MoreRecentScore(const std::optional<CxScore>& survivor,
                                       const std::optional<CxScore>& absorbed) {
  if (!absorbed.has_value()) return survivor;
  if (!survivor.has_value()) return absorbed;
  return absorbed->at > survivor->at ? absorbed : survivor;
}

}  // namespace

ContactSnapshot MergeContacts(const Ruleset& ruleset,
                              const ContactSnapshot& survivor,
                              const ContactSnapshot& absorbed, absl::Time now,
                              const MergeOptions& options) {
  ContactSnapshot merged;
  merged.id = survivor.id;
  MergePhase(ruleset, survivor, absorbed, options.phase, &merged);
  merged.first_seen = std::min(survivor.first_seen, absorbed.first_seen);
  merged.last_seen = std::max(survivor.last_seen, absorbed.last_seen);
  MergeLastSeenByChannel(survivor, absorbed, &merged);
  MergeCounters(ruleset, survivor, absorbed, now, &merged);
  MergeAttributes(survivor, absorbed, &merged);
  MergeConsents(survivor, absorbed, &merged);
  merged.nps = MoreRecentScore(survivor.nps, absorbed.nps);
  merged.csat = MoreRecentScore(survivor.csat, absorbed.csat);
  merged.ces = MoreRecentScore(survivor.ces, absorbed.ces);
  return merged;
}

}  // namespace tappa::ruleset
