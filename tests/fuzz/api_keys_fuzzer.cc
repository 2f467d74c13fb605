// libFuzzer target for the API keys file (server/auth/api_keys.h): any
// input parses to a table or to an InvalidArgument whose every line names
// "fuzz.yaml:<line>:<column>: "; a table it accepts holds only valid names,
// at least one scope per key, rates that are positive or unset, and finds
// a key for the input only when the input hashes to that key's hash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "server/auth/api_keys.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tappa::server::ApiKeyTable> table =
      tappa::server::ApiKeyTable::Parse(text, "fuzz.yaml");
  if (!table.ok()) {
    if (table.status().code() != absl::StatusCode::kInvalidArgument) abort();
    for (absl::string_view line :
         absl::StrSplit(table.status().message(), '\n')) {
      if (!absl::StartsWith(line, "fuzz.yaml:")) abort();
    }
    return 0;
  }
  for (const tappa::server::ApiKey& key : table->keys()) {
    if (key.name.empty() || key.name.size() > 64 || key.scopes == 0) abort();
    if (key.requests_per_second < 0 || key.burst < 0) abort();
    if (key.requests_per_second > 0 && key.burst < 1) abort();
  }
  // A key is found only when the input hashes to its listed hash.
  const tappa::server::ApiKey* found = table->Find(text);
  if (found != nullptr &&
      absl::BytesToHexString(absl::string_view(
          reinterpret_cast<const char*>(found->sha256.data()), 32)) !=
          tappa::server::HashApiKey(text)) {
    abort();
  }
  return 0;
}
