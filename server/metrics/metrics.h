// The server's Prometheus metrics. Label values come only from sets the
// ruleset or the server bounds (method, status code, channel, placement,
// action id, phase, Redis command); never a contact id or a free-form event
// type. With P phases, C channels, L placements, A actions and N
// (placement, action) pairs, the series are at most:
//   requests 11 methods x 17 codes; latency 11 x (buckets + 2);
//   events C; transitions P x P; decisions N + L fallbacks; degraded L x 3;
//   contacts P; redis commands 8 x (buckets + 3); ruleset info 1;
//   experiment exposures sum(variants + 1) and experiment outcomes 4 x that;
//   outcomes 4 x P; rejected decision tokens 4; budget leases 3;
//   DecideBatch decisions pending 1; contacts erased 2.
//
// Thread safety: every method is thread-safe. Series are created when a
// ruleset is installed, so recording on the request path takes no lock.
#ifndef TAPPA_SERVER_METRICS_METRICS_H_
#define TAPPA_SERVER_METRICS_METRICS_H_

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "rules/ruleset/ruleset.h"

namespace tappa::server {

enum class Method : uint8_t {
  kTrackEvent,
  kTrackEvents,
  kGetContact,
  kDeleteContact,
  kLinkIdentities,
  kExportContact,
  kNextBestAction,
  kReportOutcome,
  kSimulate,
  kDecideBatch,  // one per stream, recorded when the stream finishes
  kHealthCheck,
  kCount,
};
absl::string_view MethodName(Method m);

enum class DegradedReason : uint8_t {
  kStoreUnavailable,
  kStoreTimeout,
  kOverloaded,
};

// Outcomes of ReportOutcome, in the order of the proto enum (minus 1).
enum class OutcomeKind : uint8_t { kImpression, kClick, kConversion, kDismiss };
inline constexpr int kOutcomeKinds = 4;

enum class TokenRejection : uint8_t {
  kMalformed,     // unparseable, or a field out of range
  kExpired,       // past its lifetime (or issued in the future)
  kForeignKey,    // signed with another key
  kBadSignature,  // altered
};

enum class BudgetLease : uint8_t { kGranted, kExhausted, kError };

enum class ReloadResult : uint8_t { kReloaded, kUnchanged, kFailed };

// What became of one identity in LinkIdentities.
enum class IdentityLinkResult : uint8_t {
  kLinked,
  kAlreadyLinked,
  kOwnedByOther,
  kOverContactLimit,
  kOverNamespaceLimit,
};

// Where an event's attempt found the contact it applies to
// (tappa_event_contact_sources_total).
enum class EventContactSource : uint8_t {
  kRemembered,  // this server's last commit (no round trip)
  kRead,        // an HGETALL
  kConflict,    // brought back by a commit that found it changed
};

// Why a call was refused before any work (tappa_auth_rejected_total).
enum class AuthRejection : uint8_t {
  kMissingKey,  // no "authorization: Bearer" metadata
  kUnknownKey,  // a key the keys file does not list
  kScope,       // a listed key without the method's scope
};

// What happens to follow-ups (counted in tappa_followups_total{outcome}).
enum class FollowUpOutcome : uint8_t {
  kScheduled,
  kCancelled,
  kPostponed,
  kDroppedConsent,   // the channel's consent is missing at fire time
  kDroppedCap,       // a cap (channel, global, action) is reached
  kDroppedLimit,     // the rule's per-contact limit is reached
  kDroppedNoAction,  // the placement had no eligible action
  kDroppedRule,      // the rule is gone from the ruleset
  kDroppedMerged,    // the contact was merged away (its copy lives on the
                     // surviving contact)
  kDelivered,        // appended to the delivery stream
  kSent,             // handed to a gRPC consumer
  kRedelivered,      // handed again (unacknowledged, or a reconnect)
  kAcknowledged,
  kCount,
};

// Why contacts were erased (tappa_contacts_erased_total{reason}).
enum class ErasureReason : uint8_t {
  kRetention,  // idle longer than the retention period
  kRequest,    // JourneyService.DeleteContact
  kCount,
};

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  const std::shared_ptr<prometheus::Registry>& registry() const {
    return registry_;
  }

  // Creates the series of a ruleset and makes it current (the info gauge
  // switches to its version).
  void InstallRuleset(const ruleset::Ruleset& rs);

  // `code` is a grpc::StatusCode value (0-16).
  void RecordRequest(Method method, int code, absl::Duration latency);
  void RecordEvent(int channel);
  void RecordTransition(int from, int to);
  void RecordDecision(int placement, int action);
  void RecordFallback(int placement, DegradedReason reason);
  void RecordRuleError();
  // `variant` -1 = the holdout.
  void RecordExposure(int experiment, int variant);
  // An outcome of a decision made in `phase` (-1 when the phase is gone from
  // the ruleset), in `experiment`'s `variant` (experiment -1 = none).
  void RecordOutcome(OutcomeKind kind, int phase, int experiment, int variant);
  void RecordTokenRejected(TokenRejection reason);
  void RecordBudgetLease(BudgetLease result);
  void RecordReload(ReloadResult result);
  void RecordAuthRejected(AuthRejection reason);
  // A call refused by a rate limit (tappa_rate_limited_total): `limit` is
  // "key" (the API key's request rate) or "contact" (a contact's event
  // rate); `key` names the API key that called ("anonymous" without keys),
  // a label the keys file bounds, never a contact id.
  void RecordRateLimited(absl::string_view limit, absl::string_view key);
  // Reloads of the TLS certificate files (SIGHUP): ok, or failed (invalid
  // files; the previous certificates keep serving).
  void RecordTlsReload(bool ok);
  void RecordIdentityLink(IdentityLinkResult result);
  // A contact read in a phase the ruleset neither has nor renames (it is
  // treated as being in the initial phase).
  void RecordUnknownPhase();
  void RecordEventContactSource(EventContactSource source);
  void RecordFollowUps(FollowUpOutcome outcome, int64_t n = 1);
  // Fire time minus due time of a delivered follow-up.
  void RecordFiringLag(absl::Duration lag);
  void SetPendingFollowUps(int64_t n);
  void RecordContactsErased(ErasureReason reason, int64_t n = 1);
  // DecideBatch decisions in progress or waiting to be written, over every
  // stream: +1 when a stream takes a request, -1 when its response is
  // written or dropped (each stream holds at most 1,000).
  void AddDecideBatchPending(int delta);
  // Load shedding (admission.h): the calls worked on now (sampled) and the
  // bound in force (set when it changes).
  void SetCallsInFlight(int n);
  void SetInflightLimit(int limit);
  void RecordRedis(absl::string_view command, absl::Duration latency, bool ok);
  void SetContactsPerPhase(
      const std::vector<std::pair<std::string, int64_t>>& counts);

 private:
  struct RulesetSeries;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Family<prometheus::Counter>* events_;
  prometheus::Family<prometheus::Counter>* transitions_;
  prometheus::Family<prometheus::Counter>* decisions_;
  prometheus::Family<prometheus::Counter>* degraded_;
  prometheus::Family<prometheus::Counter>* rule_errors_family_;
  prometheus::Family<prometheus::Histogram>* redis_latency_;
  prometheus::Family<prometheus::Counter>* redis_errors_;
  prometheus::Family<prometheus::Gauge>* ruleset_info_;
  prometheus::Family<prometheus::Gauge>* contacts_;
  prometheus::Family<prometheus::Counter>* exposures_;
  prometheus::Family<prometheus::Counter>* experiment_outcomes_;
  prometheus::Family<prometheus::Counter>* outcomes_;
  std::array<prometheus::Counter*, 4> tokens_rejected_{};
  std::array<prometheus::Counter*, 3> budget_leases_{};
  std::array<prometheus::Counter*, 3> reloads_{};
  std::array<prometheus::Counter*, 3> auth_rejected_{};
  prometheus::Family<prometheus::Counter>* rate_limited_ = nullptr;
  std::array<prometheus::Counter*, 2> tls_reloads_{};
  std::array<prometheus::Counter*, 5> identity_links_{};
  prometheus::Counter* unknown_phase_ = nullptr;
  std::array<prometheus::Counter*, 3> event_contact_sources_{};
  std::array<prometheus::Counter*, static_cast<size_t>(FollowUpOutcome::kCount)>
      followups_{};
  prometheus::Histogram* firing_lag_ = nullptr;
  prometheus::Gauge* pending_followups_ = nullptr;
  std::array<prometheus::Counter*, static_cast<size_t>(ErasureReason::kCount)>
      erased_{};
  prometheus::Gauge* decide_batch_pending_ = nullptr;
  prometheus::Gauge* calls_in_flight_ = nullptr;
  prometheus::Gauge* inflight_limit_ = nullptr;

  std::array<std::array<prometheus::Counter*, 17>,
             static_cast<size_t>(Method::kCount)>
      request_counters_{};
  std::array<prometheus::Histogram*, static_cast<size_t>(Method::kCount)>
      latencies_{};
  prometheus::Counter* rule_errors_ = nullptr;

  struct RedisSeries {
    std::string command;
    prometheus::Histogram* latency;
    prometheus::Counter* errors;
  };
  std::vector<RedisSeries> redis_;  // fixed at construction
  RedisSeries* redis_other_ = nullptr;

  absl::Mutex mu_;  // serializes InstallRuleset and SetContactsPerPhase
  std::shared_ptr<const RulesetSeries> series_;  // atomic access
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_METRICS_METRICS_H_
