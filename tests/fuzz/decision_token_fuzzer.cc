// libFuzzer target for decision tokens (server/tokens/decision_token.h).
// Every input is used twice:
//  1. as a token: Verify must return claims or an error whose message starts
//     with "decision_token: ", never crash; claims it accepts must sign back
//     to a token that verifies to the same claims;
//  2. as claims, when it parses as
//       8 bytes  issued, Unix milliseconds, big-endian
//       1 byte   bit 0 holdout
//       8 times  1 length byte + that many bytes: decision_id, contact_id,
//                action, placement, channel, phase, experiment, variant
//     and the claims are valid: Sign must give a token of at most
//     kMaxDecisionTokenBytes that verifies to the same claims, expires at
//     issued + ttl, and stops verifying when one of its bytes changes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/tokens/decision_token.h"

namespace {

using tappa::server::DecisionTokenClaims;
using tappa::server::DecisionTokenSigner;

// The key of tests/server/tokens/decision_token_test.cc, so the seed
// corpus's valid token (issued at 1'700'000'000'123 ms) verifies here.
constexpr char kKey[] = "0123456789abcdef0123456789abcdef";
constexpr absl::Duration kTtl = absl::Hours(24);
const absl::Time kNow = absl::FromUnixMillis(1'700'000'060'123);

void Check(bool ok) {
  if (!ok) std::abort();
}

const DecisionTokenSigner& Signer() {
  static const DecisionTokenSigner* signer =
      DecisionTokenSigner::Create(kKey, kTtl)->release();
  return *signer;
}

bool IsDecisionTokenError(const absl::Status& status) {
  return absl::StartsWith(status.message(), "decision_token: ") &&
         (absl::IsInvalidArgument(status) || absl::IsPermissionDenied(status));
}

// Signs `claims` (valid) and checks everything a token promises.
void CheckSigned(DecisionTokenClaims claims, uint64_t salt) {
  const DecisionTokenSigner& signer = Signer();
  std::string token = signer.Sign(claims);
  Check(token.size() <= tappa::server::kMaxDecisionTokenBytes);
  absl::StatusOr<DecisionTokenClaims> back =
      signer.Verify(token, claims.issued);
  Check(back.ok());
  if (claims.decision_id.empty()) {
    Check(back->decision_id.size() == 16);
    claims.decision_id = back->decision_id;
  }
  Check(*back == claims);
  absl::StatusOr<DecisionTokenClaims> expired =
      signer.Verify(token, claims.issued + kTtl);
  Check(absl::IsInvalidArgument(expired.status()));
  std::string altered = token;
  size_t at = salt % altered.size();
  altered[at] = static_cast<char>(altered[at] ^ (1 + salt / 7 % 255));
  absl::StatusOr<DecisionTokenClaims> tampered =
      signer.Verify(altered, claims.issued);
  Check(!tampered.ok() && IsDecisionTokenError(tampered.status()));
}

bool ParseClaims(absl::string_view in, DecisionTokenClaims* claims,
                 uint64_t* ms_out) {
  if (in.size() < 9) return false;
  uint64_t ms = 0;
  for (int i = 0; i < 8; ++i) ms = (ms << 8) | static_cast<uint8_t>(in[i]);
  *ms_out = ms;
  claims->issued = absl::FromUnixMillis(static_cast<int64_t>(ms));
  claims->holdout = (static_cast<uint8_t>(in[8]) & 1) != 0;
  in.remove_prefix(9);
  std::string* fields[] = {&claims->decision_id,   &claims->contact_id,
                           &claims->action_id,     &claims->placement_id,
                           &claims->channel_id,    &claims->phase_id,
                           &claims->experiment_id, &claims->variant_id};
  for (std::string* field : fields) {
    if (in.empty()) return false;
    size_t size = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    if (in.size() < size) return false;
    field->assign(in.data(), size);
    in.remove_prefix(size);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<DecisionTokenClaims> verified = Signer().Verify(input, kNow);
  if (verified.ok()) {
    CheckSigned(*verified, size);
  } else {
    Check(IsDecisionTokenError(verified.status()));
  }

  DecisionTokenClaims claims;
  uint64_t ms = 0;
  if (ParseClaims(input, &claims, &ms) &&
      tappa::server::ValidateDecisionTokenClaims(claims).ok()) {
    CheckSigned(claims, ms);
  }
  return 0;
}
