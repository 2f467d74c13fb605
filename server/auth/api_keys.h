// API keys and their scopes, loaded from the file named by --api_keys_file:
//
//   keys:
//     - name: website                 # [a-z0-9_.-]{1,64}, unique; shown in
//                                     # metrics and audit lines
//       sha256: 5e88489...            # hex SHA-256 of the key (64 digits)
//       scopes: [decide, track]
//       requests_per_second: 500      # optional per-key rate limit ...
//       burst: 1000                   # ... and bucket size (default: 1 s)
//
// The file holds only hashes: reading it does not reveal a key. A client
// sends its key as gRPC metadata "authorization: Bearer <key>". Keys are
// 16-256 printable ASCII characters; `tappactl keygen` makes one.
//
// Thread safety: an ApiKeyTable is immutable once loaded.
#ifndef TAPPA_SERVER_AUTH_API_KEYS_H_
#define TAPPA_SERVER_AUTH_API_KEYS_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tappa::server {

// What a key may do; each RPC requires exactly one scope.
enum class Scope : uint8_t {
  kTrack,        // JourneyService.TrackEvent, TrackEvents
  kDecide,       // DecisionService.*: decisions, outcomes, batch, simulate
  kFollowUps,    // FollowUpService.*
  kReadContact,  // JourneyService.GetContact
  kErase,        // JourneyService.DeleteContact
  kAdmin,        // AdminService.*
  kCount,
};
absl::string_view ScopeName(Scope scope);

inline constexpr int kMaxApiKeys = 1000;
inline constexpr size_t kMinApiKeyLength = 16;
inline constexpr size_t kMaxApiKeyLength = 256;

struct ApiKey {
  std::string name;
  std::array<uint8_t, 32> sha256{};
  uint32_t scopes = 0;  // bit (1 << Scope)
  // <= 0: no limit.
  double requests_per_second = 0;
  double burst = 0;

  bool Allows(Scope scope) const {
    return (scopes & (1u << static_cast<int>(scope))) != 0;
  }
};

class ApiKeyTable {
 public:
  // Parses the YAML text of a keys file. Errors (InvalidArgument) name every
  // problem as "<file_name>:<line>:<column>: <message>", one per line.
  static absl::StatusOr<ApiKeyTable> Parse(absl::string_view yaml,
                                           absl::string_view file_name);
  // Reads and parses a file (NotFound/InvalidArgument).
  static absl::StatusOr<ApiKeyTable> Load(const std::string& path);

  // The key `presented` hashes to, or null. The hash is compared with every
  // key's, each in constant time, so the time taken says nothing about how
  // close a guess came.
  const ApiKey* Find(absl::string_view presented) const;

  const std::vector<ApiKey>& keys() const { return keys_; }

 private:
  std::vector<ApiKey> keys_;
};

// Hex SHA-256 of a key: the form the keys file holds.
std::string HashApiKey(absl::string_view key);

// A new random key ("tpk_" and 43 base64url characters: 256 bits).
std::string GenerateApiKey();

}  // namespace tappa::server

#endif  // TAPPA_SERVER_AUTH_API_KEYS_H_
