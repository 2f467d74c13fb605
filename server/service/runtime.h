// What every request handler shares: the ruleset being served (swapped
// atomically on reload; a request keeps the one it started with), the clock,
// the store and the metrics.
#ifndef TAPPA_SERVER_SERVICE_RUNTIME_H_
#define TAPPA_SERVER_SERVICE_RUNTIME_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "rules/ruleset/decision.h"
#include "rules/ruleset/ruleset.h"
#include "server/auth/audit_log.h"
#include "server/auth/authorizer.h"
#include "server/auth/token_bucket.h"
#include "server/metrics/metrics.h"
#include "server/service/admission.h"
#include "server/service/budget_leases.h"
#include "server/service/identity_resolver.h"
#include "server/service/posterior_cache.h"
#include "server/store/contact_store.h"
#include "server/tokens/decision_token.h"

namespace tappa::server {

class ProfileMerger;  // profile_merger.h

// Time is injected so tests and tools can control it.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

// For tests only (--test_clock_scale): time runs `scale` times faster than
// real time from the moment of construction, so a 24-hour follow-up delay
// passes in under a second. Deadlines stay in real time (CallDeadline).
class ScaledClock final : public Clock {
 public:
  explicit ScaledClock(double scale) : origin_(absl::Now()), scale_(scale) {}
  absl::Time Now() const override {
    return origin_ + (absl::Now() - origin_) * scale_;
  }

 private:
  const absl::Time origin_;
  const double scale_;
};

// A ruleset ready to serve: the model, its decision index, and each action's
// content converted once to the protobuf Struct responses carry.
struct ServingRuleset {
  std::shared_ptr<const ruleset::Ruleset> ruleset;
  std::shared_ptr<const ruleset::Decider> decider;
  std::vector<google::protobuf::Struct> contents;  // by action index
  // When this server started serving it (real time).
  absl::Time loaded_at;
  // Whether serving an action must be recorded as a touch for caps that
  // count served actions: the action's own caps, its channel's, or the
  // global ones (so NextBestAction writes nothing when no cap needs it).
  std::vector<bool> action_counts_served;   // by action
  std::vector<bool> channel_counts_served;  // by channel
  bool global_counts_served = false;
  // Whether any action is adaptive (else posteriors need no refreshing).
  bool has_adaptive = false;
  bool RecordsServed(int action, int channel) const {
    return global_counts_served || action_counts_served[action] ||
           channel_counts_served[channel];
  }

  // Fails only if an action's content cannot be converted (never for a
  // ruleset that loaded).
  static absl::StatusOr<std::shared_ptr<const ServingRuleset>> Create(
      std::shared_ptr<const ruleset::Ruleset> ruleset);
};

// Thread-safe holder of the current ServingRuleset.
class RulesetHolder {
 public:
  std::shared_ptr<const ServingRuleset> Get() const {
    return std::atomic_load(&current_);
  }
  void Set(std::shared_ptr<const ServingRuleset> r) {
    std::atomic_store(&current_, std::move(r));
  }

 private:
  std::shared_ptr<const ServingRuleset> current_;
};

struct Runtime {
  const Clock* clock = nullptr;
  RulesetHolder* rulesets = nullptr;
  ContactStore* store = nullptr;
  Metrics* metrics = nullptr;
  // Signs decision tokens and verifies them in ReportOutcome.
  const DecisionTokenSigner* tokens = nullptr;
  BudgetLeases* budgets = nullptr;
  // The bound of calls in flight (load shedding).
  Admission* admission = nullptr;
  PosteriorCache* posteriors = nullptr;
  // Aliases of contacts (identity_store.h) and their resolution; null = ids
  // are taken as they come.
  IdentityStore* identity_store = nullptr;
  IdentityResolver* identities = nullptr;
  // Merges two contacts' profiles when an identity links them
  // (profile_merger.h); null = such links are refused.
  ProfileMerger* merger = nullptr;
  // Who may call what; null = open (every call allowed).
  const Authorizer* authorizer = nullptr;
  // Audit lines (audit_log.h); null = none.
  AuditLog* audit = nullptr;
  // Each contact's event rate (TrackEvent, TrackEvents); unlimited when
  // its rate is <= 0.
  TokenBucket contact_event_rate{0, 0};
  // The time a NextBestAction may take when the client sets no deadline.
  absl::Duration decision_budget = absl::Milliseconds(20);
  // The time each decision of a DecideBatch stream may take from its start.
  absl::Duration batch_decision_budget = absl::Milliseconds(250);
  // The time a write may take when the client sets no deadline.
  absl::Duration write_budget = absl::Seconds(5);
};

// The caller's API key name (authorizer.h), or why the call is refused.
// Every handler calls it first, with its method's scope.
//
// A call its client has already given up on (cancelled, or past its
// deadline before the handler ran: a server behind on its work) is refused
// here too, as CANCELLED or DEADLINE_EXCEEDED, before any work: nobody
// waits for its answer, and its request may not have arrived whole (it
// would otherwise be reported as malformed).
inline absl::StatusOr<std::string> AuthorizeCall(
    const Runtime& runtime, const grpc::ServerContextBase& context,
    Scope scope) {
  if (context.deadline() <= std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError(
        "the call's deadline passed before the server could start it");
  }
  if (context.IsCancelled()) {
    return absl::CancelledError("the client cancelled the call");
  }
  if (runtime.authorizer == nullptr) return std::string(kAnonymousCaller);
  return runtime.authorizer->Authorize(context, scope);
}

// The canonical id of the contact a request names by `id` (its canonical id
// or an alias; identity_resolver.h), or INVALID_ARGUMENT naming
// `field` for a malformed alias. `done` runs at once for a canonical id.
inline void ResolveContact(
    const Runtime& runtime, absl::string_view field, absl::string_view id,
    absl::Time deadline,
    absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) {
  std::shared_ptr<const ServingRuleset> serving = runtime.rulesets->Get();
  const ruleset::Ruleset* rs = serving ? serving->ruleset.get() : nullptr;
  if (AliasNamespace(id, rs).empty() || runtime.identities == nullptr) {
    return done(std::string(id));
  }
  if (absl::Status s = ValidateAlias(field, id, rs); !s.ok()) return done(s);
  runtime.identities->Resolve(id, deadline, std::move(done));
}

// The contact to read first for a request naming `id`, on the paths that
// must not spend a round trip resolving (decisions, events): the contact a
// fresh cache entry names, else `id` itself. An alias's own hash redirects
// to the contact it names (identity_store.h), so the read that follows
// finds the way. INVALID_ARGUMENT naming `field` for a malformed alias.
// `named_as`, when given, is set to `id` when it is an alias (else left
// as it is), for FollowRedirect.
inline absl::StatusOr<std::string> ContactToRead(
    const Runtime& runtime, absl::string_view field, absl::string_view id,
    const ruleset::Ruleset* ruleset, std::string* named_as = nullptr) {
  if (AliasNamespace(id, ruleset).empty()) return std::string(id);
  if (absl::Status s = ValidateAlias(field, id, ruleset); !s.ok()) return s;
  if (named_as != nullptr) *named_as = std::string(id);
  if (runtime.identities != nullptr) {
    if (std::optional<std::string> cached = runtime.identities->Cached(id)) {
      return *std::move(cached);
    }
  }
  return std::string(id);
}

// The most redirects (linked alias to contact, merged contact to survivor)
// a read follows: a longer chain is a merge still in progress, and the
// contact read last answers.
inline constexpr int kMaxRedirects = 3;

// After a request's read found `read`: the contact to read instead when it
// redirects (a linked alias, or a contact merged into another) and fewer
// than kMaxRedirects were followed (`*redirects` counts them), else null.
// A finished redirect (a tombstone) is remembered for `named_as`, the alias
// the request named (empty: none), so its next request reads the contact
// at once.
inline const std::string* FollowRedirect(const Runtime& runtime,
                                         const DecodedContact& read,
                                         absl::string_view named_as,
                                         int* redirects) {
  if (read.merged_into.empty() || *redirects >= kMaxRedirects) return nullptr;
  ++*redirects;
  if (!named_as.empty() && read.tombstone && runtime.identities != nullptr) {
    runtime.identities->Remember(named_as, read.merged_into);
  }
  return &read.merged_into;
}

// Writes an audit line at the server's clock, if auditing is on.
inline void Audit(const Runtime& runtime, absl::string_view method,
                  absl::string_view key_name, absl::string_view target,
                  const absl::Status& result, absl::string_view detail = "") {
  if (runtime.audit == nullptr) return;
  runtime.audit->Record(runtime.clock->Now(), method, key_name, target, result,
                        detail);
}

// Load shedding at the start of a call (admission.h): DEADLINE_EXCEEDED when
// its deadline already passed, RESOURCE_EXHAUSTED at the bound of calls in
// flight; else OK with `*slot` holding the call's place until released.
inline absl::Status Admit(const Runtime& runtime, absl::Time deadline,
                          std::shared_ptr<Admission::Slot>* slot) {
  if (absl::Status s = CheckNotExpired(deadline, absl::Now()); !s.ok()) {
    return s;
  }
  if (runtime.admission == nullptr) return absl::OkStatus();
  *slot = runtime.admission->TryEnter();
  if (*slot == nullptr) return runtime.admission->Overloaded();
  return absl::OkStatus();
}

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_RUNTIME_H_
