// Decision tokens: what the server returns with every decided action and
// later accepts, unchanged, to attribute an outcome (impression, click,
// conversion, dismissal) to that decision. A token carries its decision's
// claims and an HMAC-SHA256 over them, so the server needs no state to
// verify one: any process holding the same key can.
//
// Tokens are signed, not encrypted: whoever holds one can read its claims
// (the contact id included). They only prove that this server issued them.
//
// Format, version 1: ten segments joined by '~' (a character of none of the
// segments' alphabets, so splitting is unambiguous):
//
//   t1~<header>~<contact>~<action>~<placement>~<channel>~<phase>
//     ~<experiment>~<variant>~<mac>
//
//   header   base64url without padding of 21 bytes (28 characters):
//              4  key id: the first 4 bytes of SHA-256(key)
//              8  decision id, binary (the 16 hex characters of the claims)
//              8  issued, Unix milliseconds, big-endian two's complement
//              1  flags: bit 0 holdout; other bits zero
//   contact  base64url without padding of the contact id (any bytes)
//   ids      as they are: ruleset ids are [A-Za-z0-9_.:-], which needs no
//            escaping; "" for no experiment or variant
//   mac      base64url without padding of HMAC-SHA256(key, everything before
//            it, up to and including the last '~'), 43 characters
//
// Ruleset ids travel in clear because base64 would cost a third more: with
// every field at its maximum (contact 128 bytes, six ids of 128) a token is
// 2 + 1 + 28 + 1 + 171 + 6 * (1 + 128) + 1 + 43 = 1021 bytes, within
// kMaxDecisionTokenBytes; length-prefixed fields all in base64 would need
// 1279.
// A typical token (a 36-byte contact id, ids of about 20 bytes) is about
// 250 bytes. Tokens use only [A-Za-z0-9_.:~-], safe in URLs and headers.
//
// The key id lets Verify tell a token of another key (a rotated key, another
// deployment) from a forged or damaged one. It is not secret: 32 bits of a
// hash of a key of at least 256 bits reveal nothing useful about the key.
#ifndef TAPPA_SERVER_TOKENS_DECISION_TOKEN_H_
#define TAPPA_SERVER_TOKENS_DECISION_TOKEN_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

// OpenSSL's EVP_MAC_CTX, kept out of this header.
struct evp_mac_ctx_st;

namespace tappa::server {

// No token Sign returns is longer; Verify rejects longer input unread.
inline constexpr size_t kMaxDecisionTokenBytes = 1024;
// The longest contact id and ruleset id a token carries.
inline constexpr size_t kMaxDecisionTokenFieldBytes = 128;
// Keys shorter than this are rejected: HMAC-SHA256's security rests on a
// key of at least the hash's size.
inline constexpr size_t kMinDecisionTokenKeyBytes = 32;
// Longer keys add nothing; the bound keeps a wrong --key_file (a log, a
// binary) from being read whole.
inline constexpr size_t kMaxDecisionTokenKeyBytes = 4096;
// Verify accepts tokens issued up to this far in the future, for clock skew
// between the servers sharing a key; later ones are rejected.
inline constexpr absl::Duration kMaxDecisionTokenClockSkew = absl::Minutes(5);

struct DecisionTokenClaims {
  // Random per decision: 16 lowercase hex characters (64 bits). Sign fills
  // it when empty.
  std::string decision_id;
  // Kept to the millisecond (rounded down).
  absl::Time issued;
  // At most 128 bytes, any bytes.
  std::string contact_id;
  // Ruleset ids: at most 128 bytes of [A-Za-z0-9_.:-] each.
  std::string action_id;
  std::string placement_id;
  std::string channel_id;
  std::string phase_id;
  // "" when the decision was not part of an experiment.
  std::string experiment_id;
  std::string variant_id;
  bool holdout = false;

  friend bool operator==(const DecisionTokenClaims&,
                         const DecisionTokenClaims&) = default;
};

// OK when `claims` can be signed: decision_id empty or 16 lowercase hex
// characters, issued finite, contact_id at most 128 bytes, every ruleset id
// at most 128 bytes of [A-Za-z0-9_.:-]. Otherwise InvalidArgument naming the
// field (never printing the contact id).
absl::Status ValidateDecisionTokenClaims(const DecisionTokenClaims& claims);

// Signs and verifies decision tokens with one key. Immutable after creation,
// so every method is thread-safe.
class DecisionTokenSigner {
 public:
  // `key`: kMinDecisionTokenKeyBytes to kMaxDecisionTokenKeyBytes bytes of
  // any value; `ttl`: positive and finite. Errors: InvalidArgument (the
  // message never contains the key).
  static absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> Create(
      std::string key, absl::Duration ttl);
  // Reads the key from the file at `path`, trailing whitespace (a final
  // newline) removed. Errors name the path, never print the key: those of
  // Create, InvalidArgument for a file over kMaxDecisionTokenKeyBytes, and
  // for a file that cannot be read the code of its errno (NotFound,
  // PermissionDenied, ...).
  static absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> FromFile(
      const std::string& path, absl::Duration ttl);
  // A signer with 32 random bytes from OpenSSL's RAND_bytes as its key, for
  // a server started without one: its tokens verify only in this process
  // and stop verifying when it restarts. Aborts if `ttl` is not positive and
  // finite or the random generator fails (a broken system).
  static std::unique_ptr<DecisionTokenSigner> WithRandomKey(absl::Duration ttl);

  ~DecisionTokenSigner();
  DecisionTokenSigner(const DecisionTokenSigner&) = delete;
  DecisionTokenSigner& operator=(const DecisionTokenSigner&) = delete;

  // Returns the token of `claims`, filling an empty decision_id with a fresh
  // random one. At most kMaxDecisionTokenBytes long. Precondition:
  // ValidateDecisionTokenClaims(claims) is OK (ids come from a validated
  // ruleset, contact ids from a validated request); Sign aborts otherwise,
  // as a token Verify would reject must never reach a client.
  std::string Sign(DecisionTokenClaims claims) const;

  // Returns the claims of `token` if this signer's key signed it and it is
  // valid at `now`: issued at most kMaxDecisionTokenClockSkew after `now`,
  // and `now` before issued + ttl(). The signature is checked before any
  // claim is read; only the framing and the key id are examined before.
  // Error messages start with "decision_token: " and never echo the token:
  //   InvalidArgument: empty, malformed (wrong framing, bad base64, a field
  //     too long, an unknown format version), expired ("expired at
  //     <RFC 3339 time>"), issued in the future.
  //   PermissionDenied: "signed by another key" (its key id is not ours),
  //     "signature does not match" (forged or damaged).
  absl::StatusOr<DecisionTokenClaims> Verify(absl::string_view token,
                                             absl::Time now) const;

  // How long a token stays valid after it was issued.
  absl::Duration ttl() const { return ttl_; }

 private:
  DecisionTokenSigner(std::string key, absl::Duration ttl);

  // HMAC-SHA256(key_, data), base64url without padding. Thread-safe.
  std::string Mac(absl::string_view data) const;

  std::string key_;
  std::string key_id_;  // 4 bytes
  absl::Duration ttl_;
  // HMAC-SHA256 set up with the key once (OpenSSL's EVP_MAC_CTX); each Mac
  // works on a copy. OpenSSL 3's one-shot HMAC() looks the algorithms up
  // and sets the key up again at every call: 6% of a NextBestAction's CPU.
  evp_mac_ctx_st* keyed_mac_ = nullptr;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_TOKENS_DECISION_TOKEN_H_
