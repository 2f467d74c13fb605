// Applying one event to a contact: counters, built-in event effects
// (attributes, consents, CX scores), last-seen times, and the journey phase
// transition. Pure computation: the server loads the snapshot, calls
// ApplyEvent, and writes the result back atomically.
//
// What rules see, in order:
//   1. Counter `on` conditions see `event` and the contact as it was before
//      the event.
//   2. The event's effects are applied: matching counters incremented
//      (windowed counters in the bucket of the server's `now`), attributes
//      of an `identify` event set (a null property deletes the attribute),
//      consents of a `consent` event set ({"email": true}), the score of an
//      `nps`, `csat` or `ces` event recorded.
//   3. Transition `when` conditions see `event` and the contact with those
//      effects applied, EXCEPT that phase, phase_since, last_seen and
//      last_seen_by_channel are still those from before the event. So a
//      counting rule reads naturally ("contact.counts.product_view_7d >= 3":
//      the third view in 7 days moves the contact), and so does a lapse rule
//      ("now - contact.last_seen > duration('2160h')": this event ends 90
//      days of silence).
//   4. The first transition whose `from` holds the current phase (or is
//      empty) and whose `when` is true moves the contact; a transition to
//      the current phase changes nothing. Then last_seen, last_seen_by_channel
//      and first_seen (for a new contact) are updated to `now`.
// A condition that evaluates to an error or a non-bool counts as false; the
// error is reported in EventOutcome::rule_errors (for metrics and logs).
#ifndef TAPPA_RULES_RULESET_JOURNEY_H_
#define TAPPA_RULES_RULESET_JOURNEY_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "rules/cel/value.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/ruleset.h"

namespace tappa::ruleset {

// The built-in event types with effects on the contact.
inline constexpr absl::string_view kIdentifyEvent = "identify";
inline constexpr absl::string_view kConsentEvent = "consent";
inline constexpr absl::string_view kNpsEvent = "nps";
inline constexpr absl::string_view kCsatEvent = "csat";
inline constexpr absl::string_view kCesEvent = "ces";

// Limits enforced by ApplyEvent on built-in effects.
inline constexpr size_t kMaxAttributes = 64;

struct Event {
  std::string id;
  std::string type;
  std::string channel;    // a channel id of the ruleset
  std::string placement;  // "" or a placement id
  // Values must own their data.
  std::vector<std::pair<std::string, cel::Value>> properties;
};

struct EventOutcome {
  int previous_phase = 0;
  int phase = 0;
  bool phase_changed = false;
  int transition = -1;  // index of the transition taken, or -1
  // Counter indexes incremented by this event.
  std::vector<int> counters_incremented;
  // Follow-up rules whose `on` matched, with their dedupe key ("" for the
  // default key), and those whose `cancel_on` matched (indexes into
  // Ruleset::follow_ups). Both see the contact as transitions do.
  struct FollowUpTrigger {
    int rule = -1;
    std::string dedupe_key;
  };
  std::vector<FollowUpTrigger> followups_triggered;
  std::vector<int> followups_cancelled;
  // "counters/product_view_7d/on: no such key: x" etc.
  std::vector<std::string> rule_errors;
};

// Applies `event` at server time `now` to `contact` (which must be sized to
// the ruleset's counters, e.g. by RefreshCounts; a new contact is a default
// snapshot with `id` set and `is_new` true). Errors (FailedPrecondition)
// leave `contact` unchanged: a consent for an unknown channel, a CX score out
// of range (nps 0-10, csat 1-5, ces 1-7) or not an integer, more than
// kMaxAttributes attributes.
absl::Status ApplyEvent(const Ruleset& ruleset, const Event& event,
                        absl::Time now, bool is_new, ContactSnapshot* contact,
                        EventOutcome* outcome);

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_JOURNEY_H_
