// Time zones named by contact data (an attribute set by client events), looked
// up safely on the request path.
//
// absl::LoadTimeZone caches every name it is asked for, valid or not, in a
// process-wide map that is never freed, takes a global lock and reads the
// file system for each new name. Fed from client data, that is unbounded
// memory and file-system probing (`file:` and `..` names included). This
// lookup only passes names shaped like IANA zone names ("Europe/Rome",
// "America/Argentina/Buenos_Aires", "Etc/GMT+5", "UTC") to it, and remembers
// at most kMaxRememberedZones answers: beyond that, names it has not seen
// are not looked up (the caller uses its default zone).
//
// Thread safety: thread-safe.
#ifndef TAPPA_RULES_RULESET_TIME_ZONES_H_
#define TAPPA_RULES_RULESET_TIME_ZONES_H_

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tappa::ruleset {

// More than the IANA database's zones and links (about 600).
inline constexpr int kMaxRememberedZones = 2'000;

// Whether `name` has the shape of an IANA zone name: 1-64 bytes, one to
// three '/'-separated parts, each starting with a letter and made of
// letters, digits, '_', '-' and '+'.
bool LooksLikeZoneName(absl::string_view name);

// Finds the zone named `name`; false when there is none, when the name is
// not shaped like a zone name, or when it is new and the memory of names is
// full.
bool FindTimeZone(absl::string_view name, absl::TimeZone* zone);

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_TIME_ZONES_H_
