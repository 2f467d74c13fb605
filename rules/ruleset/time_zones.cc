#include "rules/ruleset/time_zones.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"

namespace tappa::ruleset {
namespace {

struct ZoneMemory {
  absl::Mutex mu;
  // Name -> the zone, or nullopt when the name is not a zone.
  absl::flat_hash_map<std::string, std::optional<absl::TimeZone>> zones
      ABSL_GUARDED_BY(mu);
};

ZoneMemory& Memory() {
  static ZoneMemory* const memory = new ZoneMemory;  // never destroyed
  return *memory;
}

}  // namespace

bool LooksLikeZoneName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() > 3) return false;
  for (absl::string_view part : parts) {
    if (part.empty() ||
        !absl::ascii_isalpha(static_cast<unsigned char>(part[0])))
      return false;
    for (char c : part) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
          c != '-' && c != '+') {
        return false;
      }
    }
  }
  return true;
}

bool FindTimeZone(absl::string_view name, absl::TimeZone* zone) {
  if (!LooksLikeZoneName(name)) return false;
  ZoneMemory& memory = Memory();
  {
    absl::ReaderMutexLock lock(&memory.mu);
    auto it = memory.zones.find(name);
    if (it != memory.zones.end()) {
      if (!it->second.has_value()) return false;
      *zone = *it->second;
      return true;
    }
    if (memory.zones.size() >= static_cast<size_t>(kMaxRememberedZones)) {
      return false;
    }
  }
  absl::TimeZone loaded;
  std::optional<absl::TimeZone> found;
  if (absl::LoadTimeZone(std::string(name), &loaded)) found = loaded;
  absl::MutexLock lock(&memory.mu);
  if (memory.zones.size() < static_cast<size_t>(kMaxRememberedZones)) {
    memory.zones.emplace(std::string(name), found);
  }
  if (!found.has_value()) return false;
  *zone = *found;
  return true;
}

}  // namespace tappa::ruleset
