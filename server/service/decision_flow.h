// The decision flow NextBestAction and DecideBatch share: read the contact
// (one round trip: its hash and restraint record), decide with policies,
// experiments, budgets and adaptive propensities, answer (with decision
// tokens), and record what was served. Simulate uses the pure part.
#ifndef TAPPA_SERVER_SERVICE_DECISION_FLOW_H_
#define TAPPA_SERVER_SERVICE_DECISION_FLOW_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "rules/ruleset/adaptive.h"
#include "rules/ruleset/decision.h"
#include "server/service/runtime.h"
#include "server/service/validation.h"
#include "tappa/v1/decision_service.pb.h"

namespace tappa::server {

// What the Redis read may use of the call's time: the rest is kept to build
// the fallback answer and send it before the deadline.
absl::Time ReadDeadline(absl::Time start, absl::Time deadline);

// A fresh seed for a decision's Thompson samples.
uint64_t NewDecisionSeed();

// The request fields NextBestAction, Simulate and DecideBatch share,
// validated.
struct DecisionRequest {
  int channel = -1;
  int placement = -1;
  int limit = 1;
  std::vector<std::pair<std::string, cel::Value>> context;
};

// Validates channel, placement, context and limit of any request message
// that has them (the messages name the fields).
template <typename Request>
absl::Status ValidateDecisionRequest(const ruleset::Ruleset& rs,
                                     const Request& request,
                                     DecisionRequest* out) {
  absl::Status status =
      ValidateChannel(rs, "channel", request.channel(), &out->channel);
  if (status.ok()) {
    status =
        ValidatePlacement(rs, "placement", request.placement(), out->channel,
                          /*optional=*/false, &out->placement);
  }
  if (status.ok()) {
    status = ConvertValueMap("context", request.context(), kMaxContextEntries,
                             /*allow_null=*/false, &out->context);
  }
  if (status.ok() && request.limit() < 0) {
    status = absl::InvalidArgumentError("limit: must not be negative");
  }
  out->limit = std::clamp(request.limit(), 1, kMaxLimit);
  return status;
}

// One decision: the inputs, and what the budget leases found so far.
struct Decision {
  std::shared_ptr<const ServingRuleset> serving;
  DecisionRequest request;
  std::string contact_id;
  ruleset::ContactSnapshot contact;
  ruleset::ContactRestraint restraint;
  absl::Time now;
  bool explain = false;
  uint64_t seed = 0;
  std::vector<int> exhausted;  // actions whose budget is spent
  std::vector<int> reserved;   // actions holding a leased unit for this call
  int redirects = 0;           // merged contacts followed while reading
  std::string named_as;        // the alias the request named, if any
};

// The pure decision over what `d` holds (no I/O).
ruleset::DecisionResult Decide(const Decision& d,
                               const ruleset::PosteriorTable& posteriors);

using DecisionDone = std::function<void(const absl::Status&)>;

// The placement's fallback, flagged degraded: when the contact cannot be
// read in time, or the call is shed.
void AnswerDegraded(const Runtime& runtime, const Decision& d,
                    DegradedReason reason,
                    tappa::v1::NextBestActionResponse* response);

// Reads the contact (until `read_deadline`; a failure answers degraded),
// decides, leases budget units (until `deadline`), fills `response` and
// records the served touches; then calls `done` (OK unless something
// unexpected failed). `d` must hold serving, request, contact_id, now,
// explain and seed; `response` must outlive `done`.
void DecideNextBestAction(const Runtime& runtime, std::shared_ptr<Decision> d,
                          absl::Time read_deadline, absl::Time deadline,
                          tappa::v1::NextBestActionResponse* response,
                          DecisionDone done);

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_DECISION_FLOW_H_
