// Global budgets (e.g. 1,000 discount codes per day) without a hot key and
// without overselling.
//
// Redis holds, per action and budget window, how many units have been
// leased (ContactStore::LeaseBudget); the lease script never grants beyond
// the budget, so the sum of everything served across replicas cannot exceed
// it. Each server leases blocks of units and hands them out from memory, so
// Redis sees one lease per block, not one write per decision. The price:
// units leased by a replica but not served by the end of the window are
// not served by anyone (at most one block per replica per window), and a
// replica that dies loses its unserved units for the window.
//
// Block size: 5% of the budget, at least 1 and at most 100 units.
//
// Thread safety: thread-safe.
#ifndef TAPPA_SERVER_SERVICE_BUDGET_LEASES_H_
#define TAPPA_SERVER_SERVICE_BUDGET_LEASES_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rules/ruleset/ruleset.h"
#include "server/store/contact_store.h"

namespace tappa::server {

class BudgetLeases {
 public:
  // `store` must outlive this.
  explicit BudgetLeases(ContactStore* store) : store_(store) {}

  // The window a budget is in at `now`: "<n>" for n = now / per, or "all"
  // for a budget without a window.
  static std::string WindowOf(const ruleset::Limit& budget, absl::Time now);
  static int64_t BlockSize(const ruleset::Limit& budget);

  // Takes one unit of `action`'s budget from the local lease if it has one.
  bool TryTake(const ruleset::Action& action, absl::Time now);

  // Leases a block from Redis and, when granted, takes one unit of it
  // (keeping the rest locally). Yields whether a unit was taken (false: the
  // budget is spent for the window), or the store's error, which callers
  // treat as "no unit" (budgets never oversell, so doubt means no).
  void Reserve(const ruleset::Action& action, absl::Time now,
               absl::Time deadline,
               absl::AnyInvocable<void(absl::StatusOr<bool>)> done);

  // Whether the last lease for the action's current window found it spent
  // (Simulate reports these without leasing).
  bool KnownExhausted(const ruleset::Action& action, absl::Time now) const;

 private:
  struct Lease {
    std::string window;
    int64_t units = 0;
    bool exhausted = false;
  };

  ContactStore* store_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_BUDGET_LEASES_H_
