#include "server/service/posterior_cache.h"

#include <random>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace tappa::server {

PosteriorCache::PosteriorCache(RedisClient* redis)
    : redis_(redis), table_(std::make_shared<ruleset::PosteriorTable>()) {
  // Replicas start on different stripes.
  next_stripe_ = static_cast<int>(std::random_device{}() % kPosteriorStripes);
}

std::string PosteriorCache::StripeKey(int stripe) const {
  return absl::StrFormat("tp:{p:%02d}:post", stripe);
}

std::shared_ptr<const ruleset::PosteriorTable> PosteriorCache::Table(
    const ruleset::Ruleset& ruleset) const {
  absl::MutexLock lock(&mu_);
  if (table_ruleset_.get() != &ruleset) {
    static const auto* const kEmpty =
        new std::shared_ptr<const ruleset::PosteriorTable>(
            std::make_shared<ruleset::PosteriorTable>());
    return *kEmpty;
  }
  return table_;
}

void PosteriorCache::Add(const ruleset::Ruleset& rs, int action, int placement,
                         int phase, absl::string_view suffix) {
  const ruleset::Action& a = rs.actions[action];
  int arm_phase = ruleset::PosteriorPhase(a, phase);
  std::string field =
      absl::StrCat(a.id, "|", rs.placements[placement].id, "|",
                   arm_phase >= 0 ? absl::string_view(rs.phases[arm_phase].id)
                                  : absl::string_view("*"),
                   "|", suffix);
  absl::MutexLock lock(&mu_);
  ++pending_[field];
}

void PosteriorCache::RecordTrial(const ruleset::Ruleset& rs, int action,
                                 int placement, int phase) {
  Add(rs, action, placement, phase, "n");
}

void PosteriorCache::RecordSuccess(const ruleset::Ruleset& rs, int action,
                                   int placement, int phase) {
  Add(rs, action, placement, phase, "s");
}

void PosteriorCache::Refresh(std::shared_ptr<const ruleset::Ruleset> ruleset,
                             absl::Time deadline,
                             absl::AnyInvocable<void(absl::Status)> done) {
  std::vector<std::vector<std::string>> commands;
  absl::flat_hash_map<std::string, int64_t> flushed;
  {
    absl::MutexLock lock(&mu_);
    flushed.swap(pending_);
    if (!flushed.empty()) {
      std::string key = StripeKey(next_stripe_);
      next_stripe_ = (next_stripe_ + 1) % kPosteriorStripes;
      for (const auto& [field, n] : flushed) {
        commands.push_back({"HINCRBY", key, field, absl::StrCat(n)});
      }
    }
  }
  size_t writes = commands.size();
  for (int s = 0; s < kPosteriorStripes; ++s) {
    commands.push_back({"HGETALL", StripeKey(s)});
  }
  redis_->Pipeline(
      std::move(commands), deadline,
      [this, ruleset = std::move(ruleset), writes, flushed = std::move(flushed),
       done = std::move(done)](
          absl::StatusOr<std::vector<RedisReply>> replies) mutable {
        bool written = replies.ok();
        if (written) {
          for (size_t i = 0; i < writes; ++i) {
            if ((*replies)[i].is_error()) written = false;
          }
        }
        if (!written) {
          // Keep the counts for the next refresh. (A partial failure may
          // count some twice; Redis refusing an HINCRBY on our own key
          // does not happen short of memory exhaustion.)
          absl::MutexLock lock(&mu_);
          for (const auto& [field, n] : flushed) pending_[field] += n;
        }
        if (!replies.ok()) return done(replies.status());
        const ruleset::Ruleset& rs = *ruleset;
        ruleset::PosteriorTable::Builder builder;
        for (size_t i = writes; i < replies->size(); ++i) {
          const RedisReply& r = (*replies)[i];
          for (size_t j = 0; j + 1 < r.elements.size(); j += 2) {
            std::vector<absl::string_view> parts =
                absl::StrSplit(r.elements[j].str, '|');
            int64_t n = 0;
            if (parts.size() != 4 ||
                !absl::SimpleAtoi(r.elements[j + 1].str, &n) || n < 0) {
              continue;
            }
            int action = rs.FindAction(parts[0]);
            int placement = rs.FindPlacement(parts[1]);
            int phase = parts[2] == "*" ? -1 : rs.FindPhase(parts[2]);
            if (action < 0 || placement < 0 || (parts[2] != "*" && phase < 0))
              continue;
            bool trials = parts[3] == "n";
            if (!trials && parts[3] != "s") continue;
            builder
                .Add(action, placement, phase, trials ? 0 : n, trials ? n : 0)
                .IgnoreError();  // out-of-range counts are dropped
          }
        }
        auto table = std::make_shared<const ruleset::PosteriorTable>(
            std::move(builder).Build());
        {
          absl::MutexLock lock(&mu_);
          table_ruleset_ = ruleset;
          table_ = std::move(table);
        }
        done(absl::OkStatus());
      });
}

}  // namespace tappa::server
