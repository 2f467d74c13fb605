// Merging two contacts' stored profiles, crash-safely across two shards
// (issue 7). The absorbed contact B is folded into the survivor A in four
// steps, each one atomic script in one shard and each idempotent, so a
// server killed at any point leaves a state the next attempt (a request
// seeing it, or the background sweep) finishes:
//
//   1 Begin    (B's shard) B's hash gets "mi" = A (merging into A; B's
//              version moves, so events being committed on B re-read), a
//              merge record tp:{s}:m:<B> = {into, started}, and B joins the
//              shard's pending merges tp:{s}:merges. From here, events and
//              decisions for B are redirected to A: B's stored data is
//              frozen and nothing new is counted on it.
//   2 Apply    (A's shard) B's frozen profile merged into A's (pure rules:
//              rules/ruleset/contact_merge.h; history, restraint record,
//              idempotency records and pending follow-ups: below), written
//              with A's version checked and the marker field "mg:<B>" that
//              makes a second apply a no-op.
//   3 Aliases  (each alias's shard, then A's) every alias of B, and B
//              itself, is re-pointed to A and added to A's alias set.
//   4 Finish   (B's shard) B's keys are deleted, its pending follow-ups
//              leave the shard's schedule (their copies were moved to A in
//              step 2), its phase count and activity go, and a tombstone
//              hash {mi: A, tomb: 1} stays so requests naming B by its
//              canonical id reach A; the merge record is deleted.
//
// Thread safety: thread-safe; callbacks run on a Redis loop thread.
#ifndef TAPPA_SERVER_STORE_MERGE_STORE_H_
#define TAPPA_SERVER_STORE_MERGE_STORE_H_

#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rules/ruleset/contact_merge.h"
#include "rules/ruleset/ruleset.h"
#include "server/store/contact_codec.h"
#include "server/store/contact_store.h"
#include "server/store/identity_store.h"

namespace tappa::server {

// The history strings of two contacts (contact_codec.h) interleaved newest
// first by change time (the survivor's first on a tie), at most
// `max_entries` entries.
std::string MergeHistoryText(absl::string_view survivor,
                             absl::string_view absorbed, size_t max_entries);

// Two restraint hashes (restraint_codec.h) merged field by field, without
// decoding (so entries of actions a ruleset no longer has survive): touches
// interleaved newest first and cut to kMaxTouches; lifetime counts summed;
// follow-up fire times united newest first, cut to kMaxFiredTimes;
// dismissals the later; outcome records united (kinds joined); anything
// else the survivor's, else the absorbed's.
FieldMap MergeRestraintFields(const FieldMap& survivor,
                              const FieldMap& absorbed);

// What a step found.
enum class MergeStep { kDone, kConflict, kBusy };

class MergeStore {
 public:
  // Both must outlive the store.
  MergeStore(ContactStore* contacts, IdentityStore* identities);

  template <typename T>
  using Done = absl::AnyInvocable<void(absl::StatusOr<T>)>;

  std::string MergeRecordKey(absl::string_view absorbed) const;
  std::string PendingMergesKey(int shard) const;

  // Step 1. kBusy (with `*other` set) when B is already merging into
  // another contact.
  void Begin(absl::string_view survivor, absl::string_view absorbed,
             absl::Time now, absl::Time deadline,
             Done<std::pair<MergeStep, std::string>> done);

  // Step 2: reads both profiles (one round trip), merges them and writes A
  // (a second round trip); on a version conflict with a concurrent event
  // on A, reads and merges again. kDone also when already applied.
  void Apply(std::shared_ptr<const ruleset::Ruleset> ruleset,
             absl::string_view survivor, absl::string_view absorbed,
             const ruleset::MergeOptions& options, absl::Time now,
             absl::Time deadline, Done<MergeStep> done);

  // Step 3.
  void MoveAliases(absl::string_view survivor, absl::string_view absorbed,
                   absl::Time deadline, Done<int> done);

  // Step 4.
  void Finish(std::shared_ptr<const ruleset::Ruleset> ruleset,
              absl::string_view survivor, absl::string_view absorbed,
              absl::Time deadline, Done<bool> done);

  // The survivor a pending merge record names ("" when there is none).
  void PendingInto(absl::string_view absorbed, absl::Time deadline,
                   Done<std::string> done);

  // Absorbed contacts of merges begun in `shard` before `before`.
  void StalledMerges(int shard, absl::Time before, int limit,
                     absl::Time deadline, Done<std::vector<std::string>> done);

 private:
  void ApplyAttempt(std::shared_ptr<const ruleset::Ruleset> ruleset,
                    std::string survivor, std::string absorbed,
                    ruleset::MergeOptions options, absl::Time now,
                    absl::Time deadline, int attempt, Done<MergeStep> done);

  ContactStore* contacts_;
  IdentityStore* identities_;
  std::string begin_sha_;
  std::string apply_script_;
  std::string apply_sha_;
  std::string repoint_sha_;
  std::string finish_sha_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_STORE_MERGE_STORE_H_
