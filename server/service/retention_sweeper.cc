#include "server/service/retention_sweeper.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tappa::server {

absl::Duration EffectiveRetention(absl::Duration flag,
                                  const ruleset::Ruleset& ruleset) {
  absl::Duration r =
      flag > absl::ZeroDuration() ? flag : absl::InfiniteDuration();
  if (ruleset.retention.has_value()) r = std::min(r, *ruleset.retention);
  return r;
}

struct RetentionSweeper::PassState {
  std::string retention;  // for audit lines
  absl::Time cutoff;
  absl::Time deadline;
  int shards_left = 0;
  int shard = 0;                  // the shard being swept
  std::vector<std::string> idle;  // its idle contacts
  size_t next = 0;                // the next one to erase
  Pass pass;
  absl::AnyInvocable<void(absl::StatusOr<Pass>)> done;
};

RetentionSweeper::RetentionSweeper(ContactStore* store,
                                   IdentityStore* identities,
                                   const Clock* clock, Metrics* metrics,
                                   AuditLog* audit,
                                   RetentionSweepOptions options)
    : store_(store),
      identities_(identities),
      clock_(clock),
      metrics_(metrics),
      audit_(audit),
      options_(options),
      next_shard_(((options.first_shard % store->shards()) + store->shards()) %
                  store->shards()) {}

void RetentionSweeper::RunPass(
    absl::Duration retention, absl::Time deadline,
    absl::AnyInvocable<void(absl::StatusOr<Pass>)> done) {
  if (retention <= absl::ZeroDuration() ||
      retention == absl::InfiniteDuration()) {
    return done(Pass());
  }
  auto state = std::make_shared<PassState>();
  state->retention =
      absl::StrCat("idle over ", absl::FormatDuration(retention));
  state->cutoff = clock_->Now() - retention;
  state->deadline = deadline;
  state->shards_left =
      std::clamp(options_.shards_per_pass, 1, store_->shards());
  state->done = std::move(done);
  NextShard(std::move(state));
}

// One shard after the other, and within a shard one erasure after the
// other: the sweep never has more than one command in flight, so it cannot
// crowd out request traffic on the shared Redis connections.
void RetentionSweeper::NextShard(std::shared_ptr<PassState> state) {
  if (state->shards_left == 0) {
    auto done = std::move(state->done);
    return done(state->pass);
  }
  if (absl::Now() >= state->deadline) {
    auto done = std::move(state->done);
    return done(absl::DeadlineExceededError(
        "retention sweep: the pass ran out of time"));
  }
  --state->shards_left;
  state->shard = next_shard_.load();
  state->idle.clear();
  state->next = 0;
  const int limit = std::max(1, options_.contacts_per_shard);
  store_->FindIdle(
      state->shard, state->cutoff, limit, state->deadline,
      [this, state, limit](absl::StatusOr<std::vector<std::string>> idle) {
        if (!idle.ok()) {
          auto done = std::move(state->done);
          return done(idle.status());
        }
        state->idle = *std::move(idle);
        state->pass.idle += static_cast<int>(state->idle.size());
        if (static_cast<int>(state->idle.size()) >= limit) {
          state->pass.backlog = true;
        }
        EraseNext(state);
      });
}

void RetentionSweeper::EraseNext(std::shared_ptr<PassState> state) {
  if (state->next == state->idle.size()) {
    // The shard is done: the next pass starts after it even if this one
    // stops early.
    next_shard_.store((state->shard + 1) % store_->shards());
    ++state->pass.shards;
    return NextShard(std::move(state));
  }
  const std::string& id = state->idle[state->next++];
  if (identities_ != nullptr) {
    identities_->EraseAliases(id, state->deadline,
                              [this, state, id](absl::StatusOr<int> erased) {
                                if (!erased.ok()) {
                                  auto done = std::move(state->done);
                                  return done(erased.status());
                                }
                                EraseContact(state, id);
                              });
    return;
  }
  EraseContact(state, id);
}

void RetentionSweeper::EraseContact(std::shared_ptr<PassState> state,
                                    const std::string& id) {
  store_->EraseIfIdle(
      id, state->cutoff, state->deadline,
      [this, state, id](absl::StatusOr<ContactStore::Erasure> erased) {
        if (!erased.ok()) {
          auto done = std::move(state->done);
          return done(erased.status());
        }
        switch (*erased) {
          case ContactStore::Erasure::kErased:
            ++state->pass.erased;
            metrics_->RecordContactsErased(ErasureReason::kRetention);
            if (audit_ != nullptr) {
              audit_->Record(clock_->Now(), "Retention", "retention", id,
                             absl::OkStatus(), state->retention);
            }
            break;
          case ContactStore::Erasure::kActive:
            ++state->pass.active;
            break;
          case ContactStore::Erasure::kAbsent:
            break;
        }
        EraseNext(state);
      });
}

}  // namespace tappa::server
