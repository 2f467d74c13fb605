// Fires due follow-ups (issue: follow-ups). Any number of server replicas
// run one each; FollowUpStore::Resolve makes each due follow-up act once.
//
// For every due follow-up the firer reads the contact (its hash and
// restraint record) and checks again, at fire time:
//   - the rule still exists (else dropped: rule_removed);
//   - the channel's consent (else dropped: consent);
//   - the channel's quiet hours in the contact's time zone (else postponed
//     to their end);
//   - the channel's and the global caps and the channel's dismissal
//     cooldown (else dropped: cap), the rule's own per-contact `limit`
//     (else dropped: limit);
//   - the action: the rule's fixed action (its caps and cooldown apply,
//     else dropped: cap), or the best action decided on the rule's
//     placement now (none eligible: dropped: no_action);
// then appends it, with a decision token, to the shard's delivery stream.
// A follow-up cancelled by a later event was removed from the due index by
// that event's write and never comes here.
//
// Thread safety: RunOnce may be called from one thread at a time.
#ifndef TAPPA_SERVER_SERVICE_FOLLOWUP_FIRER_H_
#define TAPPA_SERVER_SERVICE_FOLLOWUP_FIRER_H_

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/service/runtime.h"
#include "server/store/followup_store.h"

namespace tappa::server {

class FollowUpFirer {
 public:
  // Both must outlive the firer.
  FollowUpFirer(const Runtime& runtime, FollowUpStore* store)
      : runtime_(runtime), store_(store) {}

  // Resolves the follow-ups due now (at most `per_shard` per shard); calls
  // `done` when every one is resolved, with the number delivered.
  void RunOnce(int per_shard, absl::Duration budget,
               absl::AnyInvocable<void(absl::StatusOr<int>)> done);

 private:
  const Runtime& runtime_;
  FollowUpStore* store_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_FOLLOWUP_FIRER_H_
