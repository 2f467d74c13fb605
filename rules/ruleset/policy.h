// Contact policies: the rules of restraint every channel shares (caps,
// consent, quiet hours, dismissal cooldowns, budgets). Pure computation over
// a contact's restraint record; the server reads and writes that record in
// Redis (server/store/restraint_codec.h).
//
// A contact's restraint record remembers its recent "touches": each action
// served by a decision, and each impression a client reported, with the
// channel it was on. Caps count touches:
//   - an action's caps count that action's touches,
//   - a channel policy's caps count every touch on the channel,
//   - the global caps (policies.caps) count every touch,
// each only touches of its `count_on` kind, within its window `per` (or for
// the contact's lifetime without one). Windowed caps count the record's
// most recent kMaxTouches touches; lifetime caps count per action, channel
// and in total, without a bound.
//
// Caps are best-effort when decisions for the same contact race: two
// requests that read the record before either's touch is written can both
// serve the action (the touch write is not awaited on the response path, by
// design: ARCHITECTURE decision 4). Budgets, in contrast, are exact.
//
// Thread safety: plain values; the functions are pure.
#ifndef TAPPA_RULES_RULESET_POLICY_H_
#define TAPPA_RULES_RULESET_POLICY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/ruleset.h"

namespace tappa::ruleset {

// Touches kept per contact for windowed caps (the newest first).
inline constexpr int kMaxTouches = static_cast<int>(kMaxWindowedCap);
// Fire times kept per follow-up rule and contact (the newest first), for the
// rules' limits. Defined here, with kMaxTouches, so that pure code (merging
// two records) and the store (server/store/followup_store.h) keep the same
// bound.
inline constexpr int kMaxFiredTimes = 128;

struct Touch {
  absl::Time at;
  Limit::CountOn kind = Limit::CountOn::kServed;
  int channel = -1;  // index in the ruleset; -1 when it no longer exists
  int action = -1;   // likewise
};

// Lifetime touch counts, for caps without a window.
struct LifetimeCounts {
  int64_t served = 0;
  int64_t impressions = 0;
  int64_t Of(Limit::CountOn kind) const {
    return kind == Limit::CountOn::kServed ? served : impressions;
  }
};

struct ContactRestraint {
  std::vector<Touch> touches;  // newest first, at most kMaxTouches
  absl::flat_hash_map<int, LifetimeCounts> action_lifetime;   // by action
  absl::flat_hash_map<int, LifetimeCounts> channel_lifetime;  // by channel
  LifetimeCounts total_lifetime;
  // The last dismissal of an action, and the last on a channel.
  absl::flat_hash_map<int, absl::Time> action_dismissed;
  absl::flat_hash_map<int, absl::Time> channel_dismissed;
  // When each follow-up rule (by id) last fired for the contact, newest
  // first, at most kMaxFiredTimes per rule (for the rules' limits).
  absl::flat_hash_map<std::string, std::vector<absl::Time>> followups_fired;
};

// Why a policy blocks an action. kNone = allowed.
enum class PolicyBlock : uint8_t {
  kNone,
  kConsentMissing,          // the channel requires consent the contact lacks
  kQuietHours,              // inside the channel's quiet hours
  kChannelDismissCooldown,  // dismissed something on the channel recently
  kGlobalCap,               // policies.caps
  kChannelCap,              // the channel policy's caps
  kActionCap,               // the action's caps
  kActionDismissCooldown,   // the action itself was dismissed recently
};

struct PolicyVerdict {
  PolicyBlock block = PolicyBlock::kNone;
  // For explanations: "consent for 'email' not given", "cap 2 per 7d
  // reached (2 served)", "quiet hours 21:00-09:00 in Europe/Rome".
  std::string detail;
  // A path into the ruleset: "policies/channels/email/caps/0".
  std::string rule;
};

// The policies of one request: the channel-wide checks are done once, the
// action checks once per candidate.
class PolicyCheck {
 public:
  // All references must outlive the check.
  PolicyCheck(const Ruleset& ruleset, int channel,
              const ContactSnapshot& contact, const ContactRestraint& restraint,
              absl::Time now);

  // Consent, quiet hours, channel dismissal cooldown and the channel and
  // global caps: the same for every action on the channel.
  const PolicyVerdict& channel_verdict() const { return channel_verdict_; }

  // The channel verdict if it blocks, else the action's own caps and
  // dismissal cooldown.
  PolicyVerdict CheckAction(int action) const;

  // How many touches of `kind` on `action` (-1 = any) and `channel` (-1 =
  // any) the cap's window holds.
  int64_t CountTouches(const Limit& limit, int action, int channel) const;

 private:
  PolicyVerdict CheckChannel() const;
  // Whether any of `caps` is reached; if so, says which in `detail` and
  // `index`.
  bool CapReached(const std::vector<Limit>& caps, int action, int channel,
                  std::string* detail, int* index) const;

  const Ruleset& ruleset_;
  int channel_;
  const ContactSnapshot& contact_;
  const ContactRestraint& restraint_;
  absl::Time now_;
  PolicyVerdict channel_verdict_;
};

// "2 per 7d", "1 per lifetime": a limit for messages.
std::string DescribeLimit(const Limit& limit);

// The local minute of the day [0, 1440) of `now` in the contact's time zone
// (the policies' timezone attribute, else the default time zone), and the
// zone's name.
int LocalMinuteOfDay(const Ruleset& ruleset, const ContactSnapshot& contact,
                     absl::Time now, std::string* zone_name);

// True when `minute` falls in [start, end) (spanning midnight when end <
// start).
bool InQuietHours(const QuietHours& quiet, int minute);

// The first moment at or after `now` outside the quiet hours, in the
// contact's time zone (`now` itself when it is outside them).
absl::Time QuietHoursEnd(const Ruleset& ruleset, const QuietHours& quiet,
                         const ContactSnapshot& contact, absl::Time now);

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_POLICY_H_
