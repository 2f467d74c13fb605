#include "server/tokens/decision_token.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace tappa::server {
namespace {

constexpr absl::string_view kVersion = "t1";
constexpr absl::string_view kSeparatorText = "~";
constexpr char kSeparator = kSeparatorText[0];
// version, header, contact, six ids, mac.
constexpr size_t kIdFields = 6;
constexpr size_t kSegments = 3 + kIdFields + 1;

constexpr size_t kKeyIdBytes = 4;
constexpr size_t kDecisionIdBytes = 8;
constexpr size_t kIssuedBytes = 8;
constexpr size_t kHeaderBytes =
    kKeyIdBytes + kDecisionIdBytes + kIssuedBytes + 1;
constexpr size_t kMacBytes = 32;  // SHA-256
constexpr uint8_t kHoldoutFlag = 1;

// Length of base64url without padding of n bytes.
constexpr size_t Base64Chars(size_t n) {
  return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}
constexpr size_t kHeaderChars = Base64Chars(kHeaderBytes);
constexpr size_t kMacChars = Base64Chars(kMacBytes);
static_assert(kHeaderChars == 28 && kMacChars == 43);

// The promise of the header: a token of maximal fields fits.
constexpr size_t kLongestToken = kVersion.size() + 1 + kHeaderChars + 1 +
                                 Base64Chars(kMaxDecisionTokenFieldBytes) +
                                 kIdFields * (1 + kMaxDecisionTokenFieldBytes) +
                                 1 + kMacChars;
static_assert(kLongestToken == 1021);
static_assert(kLongestToken <= kMaxDecisionTokenBytes);

// The ruleset ids in token order, with their names for messages.
using IdMember = std::string DecisionTokenClaims::*;
constexpr std::array<IdMember, kIdFields> kIdMembers = {
    &DecisionTokenClaims::action_id,     &DecisionTokenClaims::placement_id,
    &DecisionTokenClaims::channel_id,    &DecisionTokenClaims::phase_id,
    &DecisionTokenClaims::experiment_id, &DecisionTokenClaims::variant_id};
constexpr std::array<absl::string_view, kIdFields> kIdNames = {
    "action_id", "placement_id",  "channel_id",
    "phase_id",  "experiment_id", "variant_id"};

// A broken precondition or a broken system: nothing sensible to return.
[[noreturn]] void Fatal(absl::string_view what) {
  std::fprintf(stderr, "decision_token: fatal: %.*s\n",
               static_cast<int>(what.size()), what.data());
  std::abort();
}

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("decision_token: malformed token: ", what));
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

bool IsRulesetIdChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '.' || c == ':' || c == '-';
}

bool IsBase64UrlChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '-';
}

bool AllOf(absl::string_view s, bool (*pred)(char)) {
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

bool IsLowerHex(char c) {
  return absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
         (c >= 'a' && c <= 'f');
}

// Strict base64url without padding: absl's decoder also takes padding and
// other leniencies, which framing checks must not.
bool DecodeBase64Url(absl::string_view in, std::string* out) {
  if (!AllOf(in, IsBase64UrlChar) || in.size() % 4 == 1) return false;
  return absl::WebSafeBase64Unescape(in, out);
}

void AppendBigEndian(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

uint64_t ReadBigEndian(absl::string_view in) {
  uint64_t v = 0;
  for (char c : in) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

std::string NewDecisionId() {
  // One generator per thread: absl::BitGen is not thread-safe and locking
  // would serialize every decision. It is seeded from the OS, so ids of
  // different processes do not follow each other.
  thread_local absl::BitGen gen;
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(gen));
}

std::string KeyId(absl::string_view key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(key.data(), key.size(), digest, &size, EVP_sha256(),
                 nullptr) != 1) {
    Fatal("SHA-256 failed");
  }
  return std::string(reinterpret_cast<const char*>(digest), kKeyIdBytes);
}

absl::Status ValidateTtl(absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration() || ttl == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("decision_token: ttl must be positive and finite, got ",
                     absl::FormatDuration(ttl)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateDecisionTokenClaims(const DecisionTokenClaims& claims) {
  const std::string& id = claims.decision_id;
  if (!id.empty() &&
      (id.size() != 2 * kDecisionIdBytes || !AllOf(id, IsLowerHex))) {
    return absl::InvalidArgumentError(
        "decision_token: decision_id must be empty or 16 lowercase hex "
        "characters");
  }
  if (claims.issued < absl::FromUnixMillis(INT64_MIN) ||
      claims.issued > absl::FromUnixMillis(INT64_MAX)) {
    return absl::InvalidArgumentError(
        "decision_token: issued must be a finite time");
  }
  if (claims.contact_id.size() > kMaxDecisionTokenFieldBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("decision_token: contact_id must be at most ",
                     kMaxDecisionTokenFieldBytes, " bytes"));
  }
  for (size_t i = 0; i < kIdFields; ++i) {
    const std::string& value = claims.*kIdMembers[i];
    if (value.size() > kMaxDecisionTokenFieldBytes ||
        !AllOf(value, IsRulesetIdChar)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "decision_token: ", kIdNames[i], " must be at most ",
          kMaxDecisionTokenFieldBytes, " bytes of [A-Za-z0-9_.:-]"));
    }
  }
  return absl::OkStatus();
}

DecisionTokenSigner::DecisionTokenSigner(std::string key, absl::Duration ttl)
    : key_(std::move(key)), key_id_(KeyId(key_)), ttl_(ttl) {
  EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  keyed_mac_ = hmac == nullptr ? nullptr : EVP_MAC_CTX_new(hmac);
  EVP_MAC_free(hmac);  // the context holds its own reference
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  if (keyed_mac_ == nullptr ||
      EVP_MAC_init(keyed_mac_,
                   reinterpret_cast<const unsigned char*>(key_.data()),
                   key_.size(), params) != 1) {
    Fatal("HMAC-SHA256 setup failed");
  }
}

DecisionTokenSigner::~DecisionTokenSigner() {
  EVP_MAC_CTX_free(keyed_mac_);  // cleanses its key schedule
  // Best effort: keeps the key out of freed memory and core dumps.
  OPENSSL_cleanse(key_.data(), key_.size());
}

absl::StatusOr<std::unique_ptr<DecisionTokenSigner>>
DecisionTokenSigner::Create(std::string key, absl::Duration ttl) {
  if (key.size() < kMinDecisionTokenKeyBytes ||
      key.size() > kMaxDecisionTokenKeyBytes) {
    size_t size = key.size();
    OPENSSL_cleanse(key.data(), key.size());
    return absl::InvalidArgumentError(absl::StrCat(
        "decision_token: the key must be ", kMinDecisionTokenKeyBytes, " to ",
        kMaxDecisionTokenKeyBytes, " bytes, got ", size));
  }
  if (absl::Status s = ValidateTtl(ttl); !s.ok()) {
    OPENSSL_cleanse(key.data(), key.size());
    return s;
  }
  return std::unique_ptr<DecisionTokenSigner>(
      new DecisionTokenSigner(std::move(key), ttl));
}

absl::StatusOr<std::unique_ptr<DecisionTokenSigner>>
DecisionTokenSigner::FromFile(const std::string& path, absl::Duration ttl) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("decision_token: cannot open key file ", path));
  }
  // One byte more than allowed tells an oversized file from a full one.
  std::string buffer(kMaxDecisionTokenKeyBytes + 1, '\0');
  size_t read = std::fread(buffer.data(), 1, buffer.size(), file);
  int read_errno = std::ferror(file) ? errno : 0;
  std::fclose(file);
  absl::string_view key(buffer.data(), read);
  key = absl::StripTrailingAsciiWhitespace(key);
  std::string key_copy(key);
  OPENSSL_cleanse(buffer.data(), buffer.size());
  if (read_errno != 0) {
    return absl::ErrnoToStatus(
        read_errno,
        absl::StrCat("decision_token: cannot read key file ", path));
  }
  if (read > kMaxDecisionTokenKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("decision_token: key file ", path, " is over ",
                     kMaxDecisionTokenKeyBytes, " bytes"));
  }
  absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> signer =
      Create(std::move(key_copy), ttl);
  if (!signer.ok()) {
    return absl::Status(
        signer.status().code(),
        absl::StrCat(signer.status().message(), " (key file ", path, ")"));
  }
  return signer;
}

std::unique_ptr<DecisionTokenSigner> DecisionTokenSigner::WithRandomKey(
    absl::Duration ttl) {
  if (absl::Status s = ValidateTtl(ttl); !s.ok()) Fatal(s.message());
  std::string key(kMinDecisionTokenKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()),
                 static_cast<int>(key.size())) != 1) {
    Fatal("RAND_bytes failed");
  }
  return std::unique_ptr<DecisionTokenSigner>(
      new DecisionTokenSigner(std::move(key), ttl));
}

std::string DecisionTokenSigner::Mac(absl::string_view data) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t size = 0;
  // A copy of the keyed context, so concurrent calls share nothing but a
  // read of it.
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed_mac_);
  const bool ok =
      ctx != nullptr &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) == 1 &&
      EVP_MAC_final(ctx, mac, &size, sizeof(mac)) == 1;
  EVP_MAC_CTX_free(ctx);
  if (!ok || size != kMacBytes) Fatal("HMAC-SHA256 failed");
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(mac), size));
}

std::string DecisionTokenSigner::Sign(DecisionTokenClaims claims) const {
  if (absl::Status s = ValidateDecisionTokenClaims(claims); !s.ok()) {
    Fatal(s.message());
  }
  if (claims.decision_id.empty()) claims.decision_id = NewDecisionId();

  std::string header = key_id_;
  header += absl::HexStringToBytes(claims.decision_id);
  AppendBigEndian(static_cast<uint64_t>(absl::ToUnixMillis(claims.issued)),
                  &header);
  header.push_back(static_cast<char>(claims.holdout ? kHoldoutFlag : 0));

  std::string token;
  token.reserve(kMaxDecisionTokenBytes);
  absl::StrAppend(&token, kVersion, kSeparatorText,
                  absl::WebSafeBase64Escape(header), kSeparatorText,
                  absl::WebSafeBase64Escape(claims.contact_id));
  for (IdMember member : kIdMembers) {
    token.push_back(kSeparator);
    token += claims.*member;
  }
  token.push_back(kSeparator);
  token += Mac(token);
  return token;
}

absl::StatusOr<DecisionTokenClaims> DecisionTokenSigner::Verify(
    absl::string_view token, absl::Time now) const {
  if (token.empty()) {
    return absl::InvalidArgumentError("decision_token: empty token");
  }
  if (token.size() > kMaxDecisionTokenBytes) {
    return Malformed(
        absl::StrCat("longer than ", kMaxDecisionTokenBytes, " bytes"));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(token, kSeparator);
  // The version first, so that a token of a later format is reported as
  // such whatever its framing.
  absl::string_view version = parts[0];
  if (version != kVersion) {
    if (version.size() >= 2 && version[0] == 't' &&
        AllOf(version.substr(1), [](char c) {
          return absl::ascii_isdigit(static_cast<unsigned char>(c));
        })) {
      return absl::InvalidArgumentError(
          "decision_token: unknown format version");
    }
    return Malformed("no format version");
  }
  if (parts.size() != kSegments) {
    return Malformed(absl::StrCat(parts.size(), " segments, not ", kSegments));
  }
  std::string header;
  if (parts[1].size() != kHeaderChars || !DecodeBase64Url(parts[1], &header) ||
      header.size() != kHeaderBytes) {
    return Malformed("bad header");
  }
  absl::string_view mac = parts[kSegments - 1];
  if (mac.size() != kMacChars) return Malformed("bad signature length");

  // Comparing key ids is not secret-dependent (the id is public), so a
  // plain comparison is fine; it only sharpens the error for a token of
  // another key.
  if (absl::string_view(header).substr(0, kKeyIdBytes) != key_id_) {
    return absl::PermissionDeniedError("decision_token: signed by another key");
  }
  // Both sides are canonical base64url of 32 bytes, so comparing the text
  // compares the MACs, and no other encoding of a MAC can pass.
  std::string expected = Mac(token.substr(0, token.size() - kMacChars));
  if (CRYPTO_memcmp(expected.data(), mac.data(), kMacChars) != 0) {
    return absl::PermissionDeniedError(
        "decision_token: signature does not match");
  }

  // Signed by us from here on: the checks below only guard against a
  // signer bug or a leaked key, not against forgery.
  absl::string_view fields = header;
  fields.remove_prefix(kKeyIdBytes);
  DecisionTokenClaims claims;
  claims.decision_id =
      absl::BytesToHexString(fields.substr(0, kDecisionIdBytes));
  fields.remove_prefix(kDecisionIdBytes);
  claims.issued = absl::FromUnixMillis(
      static_cast<int64_t>(ReadBigEndian(fields.substr(0, kIssuedBytes))));
  fields.remove_prefix(kIssuedBytes);
  uint8_t flags = static_cast<uint8_t>(fields[0]);
  if ((flags & ~kHoldoutFlag) != 0) return Malformed("unknown flags");
  claims.holdout = (flags & kHoldoutFlag) != 0;
  if (parts[2].size() > Base64Chars(kMaxDecisionTokenFieldBytes) ||
      !DecodeBase64Url(parts[2], &claims.contact_id)) {
    return Malformed("bad contact_id");
  }
  for (size_t i = 0; i < kIdFields; ++i) {
    absl::string_view value = parts[3 + i];
    if (value.size() > kMaxDecisionTokenFieldBytes ||
        !AllOf(value, IsRulesetIdChar)) {
      return Malformed(absl::StrCat("bad ", kIdNames[i]));
    }
    claims.*kIdMembers[i] = std::string(value);
  }

  if (claims.issued - kMaxDecisionTokenClockSkew > now) {
    return absl::InvalidArgumentError(absl::StrCat(
        "decision_token: issued at ", Rfc3339(claims.issued), ", more than ",
        absl::FormatDuration(kMaxDecisionTokenClockSkew), " in the future"));
  }
  absl::Time expiry = claims.issued + ttl_;
  if (now >= expiry) {
    return absl::InvalidArgumentError(
        absl::StrCat("decision_token: expired at ", Rfc3339(expiry)));
  }
  return claims;
}

}  // namespace tappa::server
