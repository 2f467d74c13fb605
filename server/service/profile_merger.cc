#include "server/service/profile_merger.h"

#include <unistd.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tappa::server {

void ProfileMerger::CrashIfAsked(int step) const {
  if (crash_after_step_ != step) return;
  std::cerr << "tappa-server: --test_merge_crash_after_step=" << step
            << ": exiting mid-merge" << std::endl;
  _exit(86);
}

void ProfileMerger::Merge(std::string survivor, std::string absorbed,
                          absl::Time deadline,
                          absl::AnyInvocable<void(absl::Status)> done) {
  auto shared_done =
      std::make_shared<absl::AnyInvocable<void(absl::Status)>>(std::move(done));
  std::shared_ptr<const ServingRuleset> serving = runtime_.rulesets->Get();
  if (serving == nullptr) {
    return (*shared_done)(absl::UnavailableError("no ruleset is loaded"));
  }
  store_->Begin(
      survivor, absorbed, runtime_.clock->Now(), deadline,
      [this, serving, survivor, absorbed, deadline,
       shared_done](absl::StatusOr<std::pair<MergeStep, std::string>> begun) {
        if (!begun.ok()) return (*shared_done)(begun.status());
        if (begun->first == MergeStep::kBusy) {
          return (*shared_done)(absl::FailedPreconditionError(
              absl::StrCat("contact ", absorbed, " is being merged into ",
                           begun->second, "; retry once that merge is done")));
        }
        CrashIfAsked(1);
        store_->Apply(
            serving->ruleset, survivor, absorbed,
            ruleset::MergeOptions{serving->ruleset->identity.merge_phase},
            runtime_.clock->Now(), deadline,
            [this, serving, survivor, absorbed, deadline,
             shared_done](absl::StatusOr<MergeStep> applied) {
              if (!applied.ok()) return (*shared_done)(applied.status());
              if (*applied == MergeStep::kConflict) {
                return (*shared_done)(absl::AbortedError(absl::StrCat(
                    "contact_id: too many concurrent writes to ", survivor,
                    " during the merge; retry (the merge resumes)")));
              }
              CrashIfAsked(2);
              store_->MoveAliases(
                  survivor, absorbed, deadline,
                  [this, serving, survivor, absorbed, deadline,
                   shared_done](absl::StatusOr<int> moved) {
                    if (!moved.ok()) return (*shared_done)(moved.status());
                    if (runtime_.identities != nullptr) {
                      runtime_.identities->Forget(absorbed);
                    }
                    CrashIfAsked(3);
                    store_->Finish(
                        serving->ruleset, survivor, absorbed, deadline,
                        [shared_done](absl::StatusOr<bool> finished) {
                          (*shared_done)(finished.status());
                        });
                  });
            });
      });
}

void ProfileMerger::Sweep(absl::Duration stall, int per_shard,
                          absl::Time deadline,
                          absl::AnyInvocable<void(absl::StatusOr<int>)> done) {
  struct Pass {
    std::atomic<int> remaining{0};
    std::atomic<int> finished{0};
    absl::AnyInvocable<void(absl::StatusOr<int>)> done;
  };
  auto pass = std::make_shared<Pass>();
  pass->done = std::move(done);
  const int shards = runtime_.store->shards();
  pass->remaining = shards;
  auto shard_done = [pass] {
    if (pass->remaining.fetch_sub(1) == 1) pass->done(pass->finished.load());
  };
  const absl::Time before = runtime_.clock->Now() - stall;
  for (int shard = 0; shard < shards; ++shard) {
    store_->StalledMerges(
        shard, before, per_shard, deadline,
        [this, pass, shard_done,
         deadline](absl::StatusOr<std::vector<std::string>> stalled) {
          if (!stalled.ok() || stalled->empty()) return shard_done();
          auto left = std::make_shared<std::atomic<int>>(
              static_cast<int>(stalled->size()));
          for (const std::string& absorbed : *stalled) {
            store_->PendingInto(
                absorbed, deadline,
                [this, pass, shard_done, left, absorbed,
                 deadline](absl::StatusOr<std::string> into) {
                  auto one_done = [pass, shard_done, left](bool finished) {
                    if (finished) ++pass->finished;
                    if (left->fetch_sub(1) == 1) shard_done();
                  };
                  if (!into.ok() || into->empty()) return one_done(false);
                  Merge(*into, absorbed, deadline,
                        [one_done](absl::Status s) { one_done(s.ok()); });
                });
          }
        });
  }
}

}  // namespace tappa::server
