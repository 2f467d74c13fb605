// The expression environments of a ruleset: which variables an expression
// may use in each context, their static types, and the index (slot) at which
// the runtime binds each variable's value.
//
// Contexts and their variables (slots are fixed: the runtime binds
// `vars[kConditionSlots.contact] = ...` without looking anything up):
//
//   event context      counters `on`, transitions `when`, follow-ups `on`,
//                      `cancel_on`, `dedupe_key`:     event, contact, now
//   condition context  actions `when`, context weights `when`:
//                                                     contact, context, now
//   ranking context    placements `ranking`:          contact, context, now,
//                                                     action, propensity,
//                                                     context_weight
//
// The types below are a contract with the runtime views that bind values
// (rules/ruleset/contact.h and the server): at run time an object is a
// MapValue with string keys, one per field, except where a field is said to
// be absent when unknown (then has() tests it).
//
//   contact  object "contact" {
//     id: string,
//     phase: string,                 the current phase id
//     phase_since: timestamp,        when the contact entered it
//     first_seen: timestamp,
//     last_seen: timestamp,          the last event on any channel
//     last_seen_by_channel: map(string, timestamp)   channel id -> time;
//                                    channels never seen are absent keys
//     counts: object "counts" {<counter id>: int, ...}  one field per
//                                    declared counter, in declaration order,
//                                    always present (0 when nothing counted)
//     attrs: map(string, dyn),       attributes set by identify events
//     consents: map(string, bool),   channel id -> consent; absent = unknown
//     cx: object "cx" {nps: int, csat: int, ces: int,
//                      nps_at: timestamp, csat_at: timestamp,
//                      ces_at: timestamp}
//                                    the latest CX scores; a score never
//                                    given is an absent key (and so is its
//                                    _at), test with has(contact.cx.nps)
//   }
//   event    object "event" {
//     id: string, type: string, channel: string,
//     placement: string,             "" when the event has none
//     properties: map(string, dyn),
//     time: timestamp                the server's time for the event
//   }
//   context  map(string, dyn): the request's context entries plus "channel"
//            and "placement" (the request's, overriding entries of the same
//            name)
//   now      timestamp: the server's clock when the request or event is
//            handled (injected, never read ad hoc)
//   action   object "action" {id: string, kind: string, group: string,
//            priority: int, value: double, lever: double}
//   propensity, context_weight   double
//
// Named constants declared in the ruleset (`constants:`) are visible in every
// context and folded into the programs at compile time.
//
// Thread safety: an Environments is immutable once built and may be shared.
#ifndef TAPPA_RULES_RULESET_ENVIRONMENT_H_
#define TAPPA_RULES_RULESET_ENVIRONMENT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "rules/cel/program.h"
#include "rules/cel/types.h"
#include "rules/cel/value.h"

namespace tappa::ruleset {

// Variable indexes of the event context.
struct EventSlots {
  int event;
  int contact;
  int now;
};
inline constexpr EventSlots kEventSlots{0, 1, 2};
inline constexpr int kEventVariableCount = 3;

// Variable indexes of the condition context.
struct ConditionSlots {
  int contact;
  int context;
  int now;
};
inline constexpr ConditionSlots kConditionSlots{0, 1, 2};
inline constexpr int kConditionVariableCount = 3;

// Variable indexes of the ranking context.
struct RankingSlots {
  int contact;
  int context;
  int now;
  int action;
  int propensity;
  int context_weight;
};
inline constexpr RankingSlots kRankingSlots{0, 1, 2, 3, 4, 5};
inline constexpr int kRankingVariableCount = 6;

// The variable names, as expressions spell them.
inline constexpr absl::string_view kEventVar = "event";
inline constexpr absl::string_view kContactVar = "contact";
inline constexpr absl::string_view kContextVar = "context";
inline constexpr absl::string_view kNowVar = "now";
inline constexpr absl::string_view kActionVar = "action";
inline constexpr absl::string_view kPropensityVar = "propensity";
inline constexpr absl::string_view kContextWeightVar = "context_weight";

// Names a ruleset constant may not take: the variables above, CEL's type
// names and reserved words. True when `name` is one of them.
bool IsReservedName(absl::string_view name);

// The static types (see the contract above). `counter_ids` are the declared
// counters in declaration order.
cel::Type ContactType(absl::Span<const std::string> counter_ids);
cel::Type CountsType(absl::Span<const std::string> counter_ids);
cel::Type CxType();
cel::Type EventType();
cel::Type ContextType();
cel::Type ActionType();

class Environments {
 public:
  // Builds the three environments. `constants` values must own their data
  // (cel::Value::Own()); names must not be reserved (the loader checks).
  static std::shared_ptr<const Environments> Build(
      absl::Span<const std::string> counter_ids,
      absl::Span<const std::pair<std::string, cel::Value>> constants);

  const cel::Environment& event() const { return event_; }
  const cel::Environment& condition() const { return condition_; }
  const cel::Environment& ranking() const { return ranking_; }
  const cel::Type& contact_type() const { return contact_type_; }

 private:
  Environments() = default;

  cel::Environment event_;
  cel::Environment condition_;
  cel::Environment ranking_;
  cel::Type contact_type_;
};

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_ENVIRONMENT_H_
