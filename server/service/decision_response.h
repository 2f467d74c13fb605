// Building DecisionService responses from a ruleset::DecisionResult: the
// chosen actions with their tokens, experiments and score factors, and the
// explanation of every candidate.
#ifndef TAPPA_SERVER_SERVICE_DECISION_RESPONSE_H_
#define TAPPA_SERVER_SERVICE_DECISION_RESPONSE_H_

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rules/ruleset/decision.h"
#include "server/service/runtime.h"
#include "server/tokens/decision_token.h"
#include "tappa/v1/decision_service.pb.h"

namespace tappa::server {

// What a token of the decision says besides the action.
struct TokenContext {
  const DecisionTokenSigner* signer = nullptr;  // null: no tokens (Simulate)
  absl::string_view contact_id;
  absl::string_view channel_id;
  absl::string_view placement_id;
  absl::string_view phase_id;  // "" when degraded
  absl::Time now;
};

// Appends one chosen action to the response.
void AddRankedAction(const ServingRuleset& serving,
                     const ruleset::RankedAction& ranked,
                     bool degraded_fallback, const TokenContext& tokens,
                     tappa::v1::NextBestActionResponse* response);

// Fills the response's experiments and, when explaining, candidates.
void AddExplanation(const ruleset::Ruleset& ruleset,
                    const ruleset::DecisionResult& result,
                    tappa::v1::NextBestActionResponse* response);

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_DECISION_RESPONSE_H_
