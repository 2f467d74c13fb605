// Data retention (issue 8; README "Data retention"): contacts idle longer
// than the retention period are erased entirely, by a bounded background
// sweep, never on the request path.
//
// Activity is what ContactStore records in each shard's activity index
// (contact_store.h, "Activity"): events, outcomes and served touches; not
// reads, not decisions that write nothing, not follow-ups firing. A pass
// looks at the next `shards_per_pass` shards in turn (round robin, so every
// shard is visited once per shards / shards_per_pass passes), takes at most
// `contacts_per_shard` of each shard's idle contacts (one ZRANGEBYSCORE on
// the shard's index) and erases them one at a time, each with one script
// that re-checks the contact is still idle and deletes everything
// DeleteContact deletes (ContactStore::EraseIfIdle). So a pass costs at most
// shards_per_pass × (1 + contacts_per_shard) round trips, one after the
// other, and a contact active between the look-up and its erasure survives.
// A shard with more idle contacts than that is caught up on later visits.
//
// The contact's aliases (identity_store.h) are erased just before the
// contact itself: a contact that turns active in between keeps its data
// but loses its links (they come back with the next link or identify
// event); the other order could leave alias records naming an erased
// contact if the second step failed.
//
// Correctness never depends on Redis key expiry: contact keys carry no TTL
// (the restraint record's own TTL only frees memory sooner).
//
// Replicas: every server runs a sweeper; passes over the same shard are
// harmless (an erasure is atomic and idempotent, and counted only by the
// replica that deleted something). Start each replica at a random shard so
// their passes spread.
//
// Thread safety: RunPass may be called from one thread at a time, and not
// again before the previous pass called `done`.
#ifndef TAPPA_SERVER_SERVICE_RETENTION_SWEEPER_H_
#define TAPPA_SERVER_SERVICE_RETENTION_SWEEPER_H_

#include <atomic>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rules/ruleset/ruleset.h"
#include "server/auth/audit_log.h"
#include "server/metrics/metrics.h"
#include "server/service/runtime.h"
#include "server/store/contact_store.h"
#include "server/store/identity_store.h"

namespace tappa::server {

// The retention in force: the shorter of the server's flag (`flag` <= 0:
// none) and the ruleset's `retention` key; absl::InfiniteDuration() when
// neither sets one. The shorter wins because both are upper bounds set by
// different owners: a rules edit can shorten what the operator configured,
// never silently lengthen it.
absl::Duration EffectiveRetention(absl::Duration flag,
                                  const ruleset::Ruleset& ruleset);

struct RetentionSweepOptions {
  int shards_per_pass = 64;
  int contacts_per_shard = 100;
  int first_shard = 0;  // where the first pass starts (mod the shard count)
};

class RetentionSweeper {
 public:
  // What one pass did.
  struct Pass {
    int shards = 0;  // shards looked at
    int idle = 0;    // idle contacts found
    int erased = 0;  // of those, erased
    int active = 0;  // active again by the time of their erasure: kept
    // Some shard had at least contacts_per_shard idle contacts (there may be
    // more left).
    bool backlog = false;
  };

  // All must outlive the sweeper; `audit` may be null (no audit lines),
  // `identities` too (no aliases to erase).
  // Each erasure is counted (tappa_contacts_erased_total{reason=
  // "retention"}) and audited: method "Retention", key "retention", the
  // contact id as target, the period as detail.
  RetentionSweeper(ContactStore* store, IdentityStore* identities,
                   const Clock* clock, Metrics* metrics, AuditLog* audit,
                   RetentionSweepOptions options);

  // One bounded pass (see the top of this file): erases the contacts whose
  // last activity is more than `retention` before clock->Now(). A
  // `retention` that is not positive or infinite erases nothing. Stops at
  // the first Redis error or at `deadline` and yields it; shards completed
  // before stay done. `done` runs on the Redis client's thread (or on this
  // one when there is nothing to do).
  void RunPass(absl::Duration retention, absl::Time deadline,
               absl::AnyInvocable<void(absl::StatusOr<Pass>)> done);

 private:
  struct PassState;
  void NextShard(std::shared_ptr<PassState> state);
  void EraseNext(std::shared_ptr<PassState> state);
  void EraseContact(std::shared_ptr<PassState> state, const std::string& id);

  ContactStore* store_;
  IdentityStore* identities_;
  const Clock* clock_;
  Metrics* metrics_;
  AuditLog* audit_;
  const RetentionSweepOptions options_;
  std::atomic<int> next_shard_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_RETENTION_SWEEPER_H_
