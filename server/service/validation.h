// Validation of API requests against the documented limits
// (proto/README.md, "Limits"). Every error is InvalidArgument with a message
// that names the field and the rule broken:
//   "contact_id: must be 1-128 bytes of UTF-8 without control characters"
//   "properties.color: string values are at most 1024 bytes"
//   "placement: 'web.nope' is not a placement of the ruleset"
#ifndef TAPPA_SERVER_SERVICE_VALIDATION_H_
#define TAPPA_SERVER_SERVICE_VALIDATION_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/map.h"
#include "google/protobuf/struct.pb.h"
#include "rules/cel/value.h"
#include "rules/ruleset/ruleset.h"

namespace tappa::server {

inline constexpr size_t kMaxIdBytes = 128;
inline constexpr size_t kMaxProperties = 64;
inline constexpr size_t kMaxContextEntries = 32;
inline constexpr size_t kMaxStringValueBytes = 1024;
inline constexpr int kMaxLimit = 50;
inline constexpr int kMaxBatch = 500;

// contact_id, event_id: 1-128 bytes of valid UTF-8 without control
// characters.
absl::Status ValidateId(absl::string_view field, absl::string_view id);
// `[a-z][a-z0-9_]{0,63}`.
absl::Status ValidateEventType(absl::string_view field, absl::string_view type);
// A channel id of the ruleset; writes its index.
absl::Status ValidateChannel(const ruleset::Ruleset& rs,
                             absl::string_view field, absl::string_view channel,
                             int* index);
// "" (when `optional`) or a placement of the ruleset on `channel`; writes its
// index (-1 for "").
absl::Status ValidatePlacement(const ruleset::Ruleset& rs,
                               absl::string_view field,
                               absl::string_view placement, int channel,
                               bool optional, int* index);

// Converts a properties/context map into CEL values (owned), enforcing the
// entry limit, key syntax and value rules. `allow_null` for identify events.
absl::Status ConvertValueMap(
    absl::string_view field,
    const google::protobuf::Map<std::string, google::protobuf::Value>& map,
    size_t max_entries, bool allow_null,
    std::vector<std::pair<std::string, cel::Value>>* out);

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_VALIDATION_H_
