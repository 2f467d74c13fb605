// The compiled, validated model of a ruleset: what Tappa knows about a
// journey (phases, channels, placements), how events move contacts (counters,
// transitions), what it may show (actions), under which rules of restraint
// (caps, contact policies), how it experiments, and which follow-ups it
// schedules. The YAML schema is documented in rules/README.md; the loader
// (loader.h) is the only producer of a Ruleset.
//
// Every reference is resolved at load time: phases, channels, placements,
// actions and counters are referred to by their index in the Ruleset's
// vectors (the id strings are kept for responses, metrics and messages).
// Every expression is compiled: Expression::program is never null in a
// loaded ruleset, and conditions whose result type is known are bool.
//
// Thread safety: a Ruleset is immutable once loaded and handed out as
// std::shared_ptr<const Ruleset>; any number of threads may read it at once.
// A reload builds a new Ruleset and swaps the pointer; a request keeps the
// one it started with.
#ifndef TAPPA_RULES_RULESET_RULESET_H_
#define TAPPA_RULES_RULESET_RULESET_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "rules/cel/program.h"
#include "rules/cel/value.h"
#include "rules/ruleset/environment.h"

namespace tappa::ruleset {

// ---- Limits (documented in rules/README.md) ------------------------------
// The loader rejects rulesets beyond these, with a message naming the limit.
inline constexpr size_t kMaxRulesetBytes = 4 * 1024 * 1024;  // 4 MiB
// YAML nesting (mappings and sequences inside each other), enforced while
// parsing (yaml-cpp recurses once per level) and again when aliases are
// followed.
inline constexpr int kMaxYamlDepth = 64;
// Nodes parsed, and nodes visited while reading the document with aliases
// counted every time they are used (bounds "billion laughs" documents).
// Parsed nodes cost about 150 bytes each.
inline constexpr int64_t kMaxYamlNodes = 500'000;
inline constexpr size_t kMaxExpressionBytes = 16 * 1024;
inline constexpr size_t kMaxIdBytes = 128;
inline constexpr int kMaxPhases = 64;
inline constexpr int kMaxChannels = 64;
inline constexpr int kMaxPlacements = 1'000;
inline constexpr int kMaxActions = 10'000;
inline constexpr int kMaxCounters = 256;
inline constexpr int kMaxTransitions = 1'000;
inline constexpr int kMaxContextWeights = 1'000;
inline constexpr int kMaxExperiments = 100;
inline constexpr int kMaxVariants = 100;
inline constexpr int kMaxFollowUps = 1'000;
inline constexpr int kMaxConstants = 1'000;
// A rolling window holds at most this many buckets per contact.
inline constexpr int64_t kMaxWindowBuckets = 1'000;
// A windowed cap counts at most this many recent touches of a contact
// (policy.h), so its max may not exceed it.
inline constexpr int64_t kMaxWindowedCap = 128;
// Action priority (a tier compared before the score) lies in this range.
inline constexpr int kMinPriority = -1'000;
inline constexpr int kMaxPriority = 1'000;
// Durations (windows, delays, cooldowns) lie in (0, kMaxDuration].
inline constexpr absl::Duration kMaxDuration = absl::Hours(24 * 3660);
// A ruleset's `retention` is at least this long: shorter is almost surely a
// unit slip (`13m` is 13 minutes, not months) and would erase contacts in
// the middle of a visit.
inline constexpr absl::Duration kMinRetention = absl::Hours(24);
// Content payloads are at most this many bytes once serialized as JSON.
inline constexpr size_t kMaxContentBytes = 64 * 1024;

// A position in the ruleset file, 1-based; columns count Unicode code
// points. {0, 0} when unknown.
struct Location {
  int line = 0;
  int column = 0;
};

// One compiled expression. `program` is never null in a loaded ruleset.
// Evaluate it with the variables of the environment its context declares
// (environment.h: EventSlots, ConditionSlots, RankingSlots).
struct Expression {
  std::string source;
  std::shared_ptr<const cel::Program> program;
  // Where the expression's first character is in the file (for runtime
  // errors and explanations).
  Location location;
  // Action conditions only: the operands of a top-level `a && b && c`,
  // compiled alone, for explanations (conjuncts.h); empty otherwise.
  std::vector<Expression> conjuncts;
};

// A limit of `max` occurrences per rolling window `per`; without `per` the
// limit holds for the contact's lifetime (or, for budgets, forever).
struct Limit {
  enum class CountOn : uint8_t {
    kServed,      // each time the action is returned by a decision
    kImpression,  // each reported impression outcome
  };
  int64_t max = 0;                    // >= 1
  std::optional<absl::Duration> per;  // nullopt = no window
  CountOn count_on = CountOn::kServed;
  Location location;
};

enum class ActionKind : uint8_t {
  kMessage,  // an on-site or in-app message
  kEmail,
  kOffer,  // a discount or promotion
  kPush,
  kSms,
  kContent,  // an article, a banner, a block of personalized content
  kSurvey,   // an NPS / CSAT / CES request
  kReferral,
  kRecommendation,
};
// "message", "email", ...; the YAML spelling.
absl::string_view ActionKindName(ActionKind kind);
// Parses the YAML spelling; false when unknown.
bool ParseActionKind(absl::string_view name, ActionKind* kind);

struct Phase {
  std::string id;
  std::string description;
};

struct Channel {
  std::string id;
  std::string description;
};

// A named slot on a channel where actions are shown ("web.home_hero").
struct Placement {
  std::string id;
  int channel = -1;  // index into Ruleset::channels
  // The action served when the contact cannot be loaded in time (the answer
  // is then flagged degraded) and to holdout contacts of an experiment on
  // this placement; -1 when none.
  int fallback_action = -1;
  // At most this many actions per answer (the request's limit is capped by
  // it); 0 = no cap of the placement's own.
  int max_results = 0;
  // At most one action per action group in an answer.
  bool one_per_group = false;
  // A ranking formula replacing the default score (propensity ×
  // context_weight × value × lever); evaluated in the ranking context.
  std::optional<Expression> ranking;
  Location location;
};

// Counts events per contact: all time, or over a rolling window kept in
// buckets of `bucket` (the server's clock picks the bucket). Visible to
// expressions as `contact.counts.<id>` (an int).
struct Counter {
  std::string id;  // a CEL identifier
  Expression on;   // event context; counts the event when true
  std::optional<absl::Duration> window;          // nullopt = all time
  absl::Duration bucket = absl::ZeroDuration();  // set iff window is set
  Location location;
};

// Moves a contact to `to` when an event matches. Transitions are tried in
// file order after the event's counters are applied; the first whose `from`
// contains the current phase (or is empty) and whose `when` is true wins.
struct Transition {
  int to = -1;            // phase index
  std::vector<int> from;  // phase indexes; empty = from any phase
  Expression when;        // event context
  Location location;
};

// Something Tappa can show or send.
struct Action {
  std::string id;
  ActionKind kind = ActionKind::kMessage;
  std::string description;
  // Phase indexes where the action is eligible, ascending; every phase when
  // the YAML omits `phases` (all_phases is then true).
  std::vector<int> phases;
  bool all_phases = false;
  // Placement indexes where the action may be shown, in file order; at least
  // one.
  std::vector<int> placements;
  // Eligibility (condition context); nullopt = always eligible.
  std::optional<Expression> when;
  int priority = 0;         // a tier compared before the score; higher wins
  double value = 1.0;       // business value, finite, >= 0
  double lever = 1.0;       // operations' weight, finite, >= 0
  double propensity = 1.0;  // fixed propensity in [0, 1]
  // Adaptive propensity (Thompson sampling over a Beta posterior).
  struct Adaptive {
    double prior_successes = 1.0;  // alpha, > 0
    double prior_failures = 1.0;   // beta, > 0
    bool per_phase = false;        // one posterior per phase
  };
  std::optional<Adaptive> adaptive;
  std::string group;  // "" = no group
  // The payload returned with the action: always a JSON object (YAML plain
  // scalars keep their type, quoted ones are strings). content_json is its
  // compact serialization, "{}" when empty.
  nlohmann::json content = nlohmann::json::object();
  std::string content_json = "{}";
  // Per-contact caps; all must allow the action.
  std::vector<Limit> caps;
  // A global budget (e.g. 1,000 discount codes per day) across contacts.
  std::optional<Limit> budget;
  // After the contact dismisses this action, it is not shown again for this
  // long (in addition to the channel's dismiss_cooldown).
  std::optional<absl::Duration> dismiss_cooldown;
  Location location;
};

// Multiplies the score of the actions it applies to when its condition holds
// for the request (`context.referrer in paid_social` → 1.5 on awareness
// actions). The weights of all matching entries multiply.
struct ContextWeight {
  Expression when;      // condition context
  double weight = 1.0;  // finite, > 0
  // Filters (all must match; empty = no filter).
  std::vector<int> phases;   // the contact's phase
  std::vector<int> actions;  // action indexes
  std::vector<std::string> groups;
  std::vector<ActionKind> kinds;
  Location location;
};

// Quiet hours: no delivery on the channel between start and end in the
// contact's time zone (end < start spans midnight).
struct QuietHours {
  int start_minute = 0;  // minutes after local midnight, [0, 1440)
  int end_minute = 0;
  Location location;
};

// Rules of restraint for one channel, shared by every action on it.
struct ChannelPolicy {
  int channel = -1;
  std::vector<Limit> caps;        // across all actions on the channel
  bool consent_required = false;  // contact.consents[channel] must be true
  std::optional<absl::Duration> dismiss_cooldown;
  std::optional<QuietHours> quiet_hours;
  Location location;
};

struct Policies {
  // Caps across every channel and action (e.g. at most 5 touches a day).
  std::vector<Limit> caps;
  // Indexed by channel index; channels without a policy get a default
  // ChannelPolicy (no caps, no consent needed) with `channel` set.
  std::vector<ChannelPolicy> channels;
  // The contact attribute holding the contact's IANA time zone, and the zone
  // assumed when it is absent or invalid (validated at load time).
  std::string timezone_attribute = "timezone";
  std::string default_timezone = "UTC";
};

// An experiment over a placement or an action group. Assignment is
// deterministic from SHA-256(experiment id + ":" + contact id) into 10,000
// buckets: the first holdout × 10,000 buckets are the holdout, the rest are
// split by weight in variant order.
struct Experiment {
  std::string id;
  std::string description;
  int placement = -1;  // exactly one of placement / group is set
  std::string group;
  double holdout = 0.0;  // share in [0, 1]; holdout contacts get control
  struct Variant {
    std::string id;
    double weight = 1.0;  // finite, >= 0; the sum over variants is > 0
    // The actions this arm may serve, indexes; empty = all in scope.
    std::vector<int> actions;
    // Multiplies the lever of the actions in scope for contacts in the arm.
    double lever = 1.0;
    Location location;
  };
  std::vector<Variant> variants;  // at least one
  bool enabled = true;
  Location location;
};

// A delayed message to marketing automation: scheduled by an event matching
// `on`, due `after` later, cancelled by a later event matching `cancel_on`.
struct FollowUp {
  std::string id;
  std::string description;
  Expression on;                        // event context
  absl::Duration after;                 // > 0
  std::optional<Expression> cancel_on;  // event context
  int channel = -1;
  // Exactly one: a fixed action, or a placement decided at fire time.
  int action = -1;
  int placement = -1;
  // At most `max` fired per contact (per window when set); nullopt = no
  // limit.
  std::optional<Limit> limit;
  // Pending follow-ups with the same key are one: by default the follow-up
  // id; with `dedupe_key`, the id plus the expression's string value (event
  // context, e.g. event.properties.cart_id).
  std::optional<Expression> dedupe_key;
  // When a trigger matches while one is pending with the same key: re-arm
  // (move the due time to now + after) if true, else keep the pending one.
  bool rearm = false;
  Location location;
};

// Which phase a merged profile is in (`identity.merge_phase`;
// rules/ruleset/contact_merge.h).
enum class MergePhaseRule {
  // The phase further along the ruleset's phase order: a merge reveals that
  // the person already got that far (the default).
  kFurthest,
  // The survivor's phase, whatever the absorbed profile's.
  kSurvivor,
  // The phase of the profile that entered its phase later (the later
  // phase_since; the survivor's on a tie): the latest known move wins, even
  // when it went backwards (e.g. a lapse from retention to consideration).
  kMostRecent,
};

// Built-in identity namespaces (aliases "<namespace>:<value>").
inline constexpr const char* kBuiltInNamespaces[] = {
    "cookie", "device", "email_sha256", "phone_sha256", "crm", "social"};

// The ruleset's `identity:` section (README, "Identities").
struct IdentitySettings {
  // Namespaces beyond the built-in ones ([a-z][a-z0-9_]{0,31}).
  std::vector<std::string> namespaces;
  // Namespaces an `identify` event links by itself (its `identities`); the
  // others are linked only by LinkIdentities.
  std::vector<std::string> auto_link = {"email_sha256", "phone_sha256", "crm"};
  int max_aliases = 50;
  int max_aliases_per_namespace = 10;
  MergePhaseRule merge_phase = MergePhaseRule::kFurthest;

  // Whether `ns` is a built-in or declared namespace.
  bool IsNamespace(absl::string_view ns) const;
  bool AutoLinks(absl::string_view ns) const;
};

class Ruleset {
 public:
  Ruleset() = default;
  Ruleset(const Ruleset&) = delete;
  Ruleset& operator=(const Ruleset&) = delete;

  // The file name given to the loader, used in messages.
  std::string source_name;
  // Hex SHA-256 of the file's bytes (64 lowercase hex digits): the ruleset
  // version reported in responses and metrics.
  std::string version;
  std::string name;         // optional `name:` key
  std::string description;  // optional `description:` key

  std::vector<Phase> phases;  // at least one, in journey order
  int initial_phase = 0;      // new contacts start here
  // Phases of earlier rulesets and the phase (index) their contacts are in
  // now (`renamed_phases: {old: new}`). Contacts stored in a phase neither
  // this ruleset nor this map knows are in initial_phase.
  std::vector<std::pair<std::string, int>> renamed_phases;
  std::vector<Channel> channels;
  std::vector<Placement> placements;
  std::vector<Counter> counters;
  std::vector<Transition> transitions;
  std::vector<Action> actions;
  std::vector<ContextWeight> context_weights;
  Policies policies;
  std::vector<Experiment> experiments;
  std::vector<FollowUp> follow_ups;
  // Contacts idle longer than this are erased (`retention:`; the server's
  // --retention flag may shorten it, see README.md). nullopt: the flag
  // alone decides. At least kMinRetention, and longer than every follow-up's
  // `after`.
  std::optional<absl::Duration> retention;
  IdentitySettings identity;
  // Named constants folded into expressions, in file order; values own their
  // data.
  std::vector<std::pair<std::string, cel::Value>> constants;

  // The environments expressions were compiled in; tools compile ad-hoc
  // expressions against them (`tappactl rules eval`).
  std::shared_ptr<const Environments> environments;

  // Lookups by id; -1 when absent.
  int FindPhase(absl::string_view id) const;
  // The phase a stored phase id means now: itself, its renaming, or -1.
  int ResolveStoredPhase(absl::string_view id) const;
  int FindChannel(absl::string_view id) const;
  int FindPlacement(absl::string_view id) const;
  int FindAction(absl::string_view id) const;
  int FindCounter(absl::string_view id) const;
  int FindExperiment(absl::string_view id) const;
  int FindFollowUp(absl::string_view id) const;

  // Called once by the loader after the vectors are filled.
  void BuildIndexes();

 private:
  absl::flat_hash_map<std::string, int> phase_index_;
  absl::flat_hash_map<std::string, int> channel_index_;
  absl::flat_hash_map<std::string, int> placement_index_;
  absl::flat_hash_map<std::string, int> action_index_;
  absl::flat_hash_map<std::string, int> counter_index_;
  absl::flat_hash_map<std::string, int> experiment_index_;
  absl::flat_hash_map<std::string, int> follow_up_index_;
};

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_RULESET_H_
