#include "server/service/budget_leases.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tappa::server {

std::string BudgetLeases::WindowOf(const ruleset::Limit& budget,
                                   absl::Time now) {
  if (!budget.per.has_value()) return "all";
  absl::Duration rem;
  return absl::StrCat(
      absl::IDivDuration(now - absl::UnixEpoch(), *budget.per, &rem));
}

int64_t BudgetLeases::BlockSize(const ruleset::Limit& budget) {
  return std::clamp<int64_t>(budget.max / 20, 1, 100);
}

bool BudgetLeases::TryTake(const ruleset::Action& action, absl::Time now) {
  std::string window = WindowOf(*action.budget, now);
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(action.id);
  if (it == leases_.end() || it->second.window != window ||
      it->second.units == 0) {
    return false;
  }
  --it->second.units;
  return true;
}

bool BudgetLeases::KnownExhausted(const ruleset::Action& action,
                                  absl::Time now) const {
  std::string window = WindowOf(*action.budget, now);
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(action.id);
  return it != leases_.end() && it->second.window == window &&
         it->second.exhausted && it->second.units == 0;
}

void BudgetLeases::Reserve(
    const ruleset::Action& action, absl::Time now, absl::Time deadline,
    absl::AnyInvocable<void(absl::StatusOr<bool>)> done) {
  const ruleset::Limit& budget = *action.budget;
  std::string window = WindowOf(budget, now);
  // The key lives a window past its own (clocks of replicas differ a bit).
  absl::Duration ttl =
      budget.per.has_value() ? 2 * *budget.per : absl::Hours(24 * 3660);
  store_->LeaseBudget(
      action.id, window, budget.max, BlockSize(budget), ttl, deadline,
      [this, id = action.id, window,
       done = std::move(done)](absl::StatusOr<int64_t> granted) mutable {
        if (!granted.ok()) return done(granted.status());
        bool taken = false;
        {
          absl::MutexLock lock(&mu_);
          Lease& lease = leases_[id];
          if (lease.window != window) lease = Lease{window, 0, false};
          if (*granted == 0) lease.exhausted = true;
          lease.units += *granted;
          // A concurrent lease may have left units even when this one got
          // none.
          if (lease.units > 0) {
            --lease.units;
            taken = true;
          }
        }
        done(taken);
      });
}

}  // namespace tappa::server
