// Runs profile merges (merge_store.h): the four steps in order, from the
// start or from wherever an interrupted merge stopped, and a sweep that
// finishes merges a crash left behind.
//
// The survivor is the contact a LinkIdentities call names; the absorbed one
// is the contact an identity already named. Merged profiles follow the
// rules of rules/ruleset/contact_merge.h (phase: the furthest).
//
// For tests only, `crash_after_step` (1-3) kills the process right after
// that step (--test_merge_crash_after_step), to prove a merge resumes.
//
// Thread safety: thread-safe.
#ifndef TAPPA_SERVER_SERVICE_PROFILE_MERGER_H_
#define TAPPA_SERVER_SERVICE_PROFILE_MERGER_H_

#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/service/runtime.h"
#include "server/store/merge_store.h"

namespace tappa::server {

class ProfileMerger {
 public:
  // All must outlive the merger.
  ProfileMerger(const Runtime& runtime, MergeStore* store,
                int crash_after_step = 0)
      : runtime_(runtime), store_(store), crash_after_step_(crash_after_step) {}

  // Merges `absorbed` into `survivor`, or finishes doing so. FAILED_
  // PRECONDITION when `absorbed` is already merging into a third contact;
  // ABORTED when writes to the survivor keep conflicting.
  void Merge(std::string survivor, std::string absorbed, absl::Time deadline,
             absl::AnyInvocable<void(absl::Status)> done);

  // Finishes merges begun more than `stall` ago in every shard (at most
  // `per_shard` each). Yields how many it finished.
  void Sweep(absl::Duration stall, int per_shard, absl::Time deadline,
             absl::AnyInvocable<void(absl::StatusOr<int>)> done);

 private:
  void CrashIfAsked(int step) const;

  Runtime runtime_;
  MergeStore* store_;
  const int crash_after_step_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_PROFILE_MERGER_H_
