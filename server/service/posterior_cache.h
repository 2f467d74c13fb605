// The server's view of adaptive actions' posteriors (rules/ruleset/
// adaptive.h): trials and successes counted in memory as decisions and
// outcomes happen, added to Redis counters and read back as a summed table
// once per refresh (about every second).
//
// Redis layout: 64 stripe hashes tp:{p:NN}:post, each with fields
// "<action id>|<placement id>|<phase id or *>|n" (trials) and "...|s"
// (successes). A server adds its counts to one stripe per refresh, chosen
// in turn, so no key is hot; a refresh reads every stripe (64 HGETALLs
// pipelined in one round trip) and sums them. Counts are by id, so a
// reloaded ruleset keeps the evidence of the actions it still has.
//
// Counts held in memory since the last refresh are lost if the process dies
// (at most a second of evidence): the posterior is a statistical estimate,
// not an account.
//
// Thread safety: thread-safe.
#ifndef TAPPA_SERVER_SERVICE_POSTERIOR_CACHE_H_
#define TAPPA_SERVER_SERVICE_POSTERIOR_CACHE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rules/ruleset/adaptive.h"
#include "rules/ruleset/ruleset.h"
#include "server/redis/redis_client.h"

namespace tappa::server {

inline constexpr int kPosteriorStripes = 64;

class PosteriorCache {
 public:
  // `redis` must outlive the cache.
  explicit PosteriorCache(RedisClient* redis);

  // The table of the last refresh for `ruleset` (indexes into it); an empty
  // table (every arm at its prior) before the first refresh for it.
  std::shared_ptr<const ruleset::PosteriorTable> Table(
      const ruleset::Ruleset& ruleset) const;

  // Counts one serve of adaptive `action` (a trial), and one success.
  // Indexes into `ruleset`; `phase` is the contact's phase (the arm key's
  // phase follows ruleset::PosteriorPhase).
  void RecordTrial(const ruleset::Ruleset& ruleset, int action, int placement,
                   int phase);
  void RecordSuccess(const ruleset::Ruleset& ruleset, int action, int placement,
                     int phase);

  // Adds the counts held in memory to a stripe, then reads every stripe and
  // rebuilds the table for `ruleset`. Calls `done` on the Redis thread. On
  // failure the counts are kept for the next refresh.
  void Refresh(std::shared_ptr<const ruleset::Ruleset> ruleset,
               absl::Time deadline,
               absl::AnyInvocable<void(absl::Status)> done);

  std::string StripeKey(int stripe) const;

 private:
  void Add(const ruleset::Ruleset& ruleset, int action, int placement,
           int phase, absl::string_view suffix);

  RedisClient* redis_;
  mutable absl::Mutex mu_;
  // Field -> count not yet added to Redis.
  absl::flat_hash_map<std::string, int64_t> pending_ ABSL_GUARDED_BY(mu_);
  int next_stripe_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const ruleset::Ruleset> table_ruleset_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const ruleset::PosteriorTable> table_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_POSTERIOR_CACHE_H_
