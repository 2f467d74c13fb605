// Merging two profiles of the same person: when two contacts turn out to be
// one (an alias links them), the `absorbed` profile is folded into the
// `survivor`, which keeps its canonical id. Pure computation over snapshots
// and restraint records; the server reads both profiles, calls these
// functions and writes the result (issue 7: identities and profile merge).
//
// The rules, field by field (rules/README.md, "Profile merge"):
//
//   id                    the survivor's.
//   counts, rolling       all-time counters are summed. Windowed counters are
//                         summed bucket by bucket (buckets of the same number
//                         added), then only the buckets inside the window at
//                         `now` are kept, so the result is as bounded as
//                         RollingAdd keeps a counter; buckets after `now`'s
//                         (a clock that ran ahead) are dropped too, as
//                         RollingAdd drops them. The visible counts of
//                         windowed counters are then recomputed for `now`
//                         (RefreshCounts): `rolling` is the truth, a windowed
//                         count without buckets counts nothing.
//   first_seen            the earlier; last_seen the later.
//   last_seen_by_channel  the union; the later time where both have one.
//   attrs                 the union. Where both have an attribute, the
//                         value written more recently (attr_times: identify
//                         events record when); when a write time is unknown
//                         (data written before times were kept), the value
//                         of the profile active more recently (the later
//                         last_seen); the survivor on a tie. At most
//                         kMaxAttributes (journey.h): the more recently
//                         active profile's names first. Values own their
//                         data; attr_times follow the values kept.
//   consents              per channel, the most restrictive: withdrawn
//                         (false) on either side stays withdrawn — a merge
//                         never revives a withdrawn consent; given (true)
//                         only when given on one side and not withdrawn on
//                         the other. Channels are the union.
//   nps, csat, ces        each score with its time: the more recent of the
//                         two (the survivor's on a tie).
//   phase, phase_since    by MergeOptions::phase (below). When both profiles
//                         are in the same phase, the earlier phase_since:
//                         the person has been in the phase since then. A
//                         phase outside the ruleset is read as the initial
//                         phase (as ContactBinding reads it).
//
// Restraint records (touches, lifetime counts, dismissals, follow-up fire
// times) are merged by the store on their stored form, so entries of
// actions a ruleset no longer has survive: server/store/merge_store.h,
// MergeRestraintFields.
//
// Sums make a merge NOT idempotent: merging the same absorbed profile twice
// counts its events twice. The caller must apply each merge exactly once:
// the server records a merge marker with the result, and a resumed merge
// checks it rather than merging again. The functions are deterministic: the
// same inputs give the same output, element order included (the survivor's
// entries first, then the absorbed profile's new ones; for attrs, the
// winning profile's first).
//
// Both snapshots (and both records) must come from the same ruleset, the one
// passed, and the snapshots must have been read at `now`. A sum that would
// overflow int64 saturates instead.
//
// Thread safety: pure functions of their arguments.
#ifndef TAPPA_RULES_RULESET_CONTACT_MERGE_H_
#define TAPPA_RULES_RULESET_CONTACT_MERGE_H_

#include "absl/time/time.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/policy.h"
#include "rules/ruleset/ruleset.h"

namespace tappa::ruleset {

// Which phase the merged profile is in: MergePhaseRule (ruleset.h; the
// ruleset's `identity.merge_phase`).
struct MergeOptions {
  MergePhaseRule phase = MergePhaseRule::kFurthest;
};

// The profile that results from folding `absorbed` into `survivor`, under
// the rules above. The result is sized to the ruleset's counters, its counts
// are as seen at `now` and its attribute values own their data.
ContactSnapshot MergeContacts(const Ruleset& ruleset,
                              const ContactSnapshot& survivor,
                              const ContactSnapshot& absorbed, absl::Time now,
                              const MergeOptions& options = MergeOptions());

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_CONTACT_MERGE_H_
