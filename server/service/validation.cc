#include "server/service/validation.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "rules/cel/stdlib.h"

namespace tappa::server {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

bool IsKeyChar(char c, bool first) {
  if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return !first && c >= '0' && c <= '9';
}

// Quotes a user-supplied id for a message, bounded and printable.
std::string Quote(absl::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 64)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 64) out.append("...");
  out.push_back('\'');
  return out;
}

}  // namespace

absl::Status ValidateId(absl::string_view field, absl::string_view id) {
  constexpr absl::string_view kRule =
      "must be 1-128 bytes of UTF-8 without control characters";
  if (id.empty() || id.size() > kMaxIdBytes || !cel::IsValidUtf8(id)) {
    return Invalid(field, kRule);
  }
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7f) return Invalid(field, kRule);
  }
  return absl::OkStatus();
}

absl::Status ValidateEventType(absl::string_view field,
                               absl::string_view type) {
  bool ok =
      !type.empty() && type.size() <= 64 && type[0] >= 'a' && type[0] <= 'z';
  for (char c : type) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  }
  return ok ? absl::OkStatus()
            : Invalid(field, "must match [a-z][a-z0-9_]{0,63}");
}

absl::Status ValidateChannel(const ruleset::Ruleset& rs,
                             absl::string_view field, absl::string_view channel,
                             int* index) {
  if (channel.empty()) return Invalid(field, "is required");
  *index = rs.FindChannel(channel);
  if (*index < 0) {
    return Invalid(field, absl::StrCat(Quote(channel),
                                       " is not a channel of the ruleset"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePlacement(const ruleset::Ruleset& rs,
                               absl::string_view field,
                               absl::string_view placement, int channel,
                               bool optional, int* index) {
  *index = -1;
  if (placement.empty()) {
    return optional ? absl::OkStatus() : Invalid(field, "is required");
  }
  *index = rs.FindPlacement(placement);
  if (*index < 0) {
    return Invalid(field, absl::StrCat(Quote(placement),
                                       " is not a placement of the ruleset"));
  }
  if (channel >= 0 && rs.placements[*index].channel != channel) {
    return Invalid(field, absl::StrCat(Quote(placement), " is not on channel '",
                                       rs.channels[channel].id, "'"));
  }
  return absl::OkStatus();
}

absl::Status ConvertValueMap(
    absl::string_view field,
    const google::protobuf::Map<std::string, google::protobuf::Value>& map,
    size_t max_entries, bool allow_null,
    std::vector<std::pair<std::string, cel::Value>>* out) {
  if (map.size() > max_entries) {
    return Invalid(field, absl::StrCat("at most ", max_entries, " entries"));
  }
  out->reserve(out->size() + map.size());
  for (const auto& [key, value] : map) {
    bool key_ok = !key.empty() && key.size() <= 64;
    for (size_t i = 0; key_ok && i < key.size(); ++i)
      key_ok = IsKeyChar(key[i], i == 0);
    if (!key_ok) {
      return Invalid(absl::StrCat(field, ".", Quote(key)),
                     "keys must match [A-Za-z_][A-Za-z0-9_]{0,63}");
    }
    std::string where = absl::StrCat(field, ".", key);
    switch (value.kind_case()) {
      case google::protobuf::Value::kStringValue:
        if (value.string_value().size() > kMaxStringValueBytes) {
          return Invalid(where, "string values are at most 1024 bytes");
        }
        out->emplace_back(key, cel::Value::String(value.string_value()));
        break;
      case google::protobuf::Value::kNumberValue: {
        double d = value.number_value();
        if (!std::isfinite(d)) return Invalid(where, "numbers must be finite");
        // JSON numbers are doubles; integral ones become CEL ints so rules
        // can compare them with integer literals and counters naturally.
        if (std::trunc(d) == d && std::fabs(d) < 9007199254740992.0) {
          out->emplace_back(key, cel::Value::Int(static_cast<int64_t>(d)));
        } else {
          out->emplace_back(key, cel::Value::Double(d));
        }
        break;
      }
      case google::protobuf::Value::kBoolValue:
        out->emplace_back(key, cel::Value::Bool(value.bool_value()));
        break;
      case google::protobuf::Value::kNullValue:
        if (!allow_null)
          return Invalid(where, "null is only allowed in identify events");
        out->emplace_back(key, cel::Value::Null());
        break;
      default:
        return Invalid(where,
                       "values must be a string, a finite number or a boolean");
    }
  }
  // Map iteration order is unspecified; sort for deterministic behaviour.
  std::sort(out->begin(), out->end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return absl::OkStatus();
}

}  // namespace tappa::server
