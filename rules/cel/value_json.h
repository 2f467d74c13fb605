// The JSON form of CEL values used by `tappactl expr` and the conformance
// tests: the proto3 JSON mapping of the CEL conformance `Value` message
// (cel.expr.Value), one JSON object with exactly one of these members:
//
//   {"nullValue": null}            {"boolValue": true}
//   {"int64Value": "-1"}           {"uint64Value": "1"}
//   {"doubleValue": 1.5}           ("NaN", "Infinity", "-Infinity" when not
//                                   finite)
//   {"stringValue": "a"}           {"bytesValue": "<standard base64>"}
//   {"listValue": {"values": [VALUE, ...]}}
//   {"mapValue": {"entries": [{"key": VALUE, "value": VALUE}, ...]}}
//   {"objectValue": {"@type": "type.googleapis.com/google.protobuf.Timestamp",
//                    "value": "2009-02-13T23:31:30Z"}}
//   {"objectValue": {"@type": "type.googleapis.com/google.protobuf.Duration",
//                    "value": "1.5s"}}
//   {"typeValue": "int"}           (the names of KindName())
//
// Thread-safe; no exceptions escape (nlohmann's are caught or avoided).
#ifndef TAPPA_RULES_CEL_VALUE_JSON_H_
#define TAPPA_RULES_CEL_VALUE_JSON_H_

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rules/cel/value.h"

namespace tappa::cel {

// Values nested deeper than this (lists and maps inside each other) are
// refused in both directions, so that no input can exhaust the stack.
inline constexpr int kMaxJsonValueDepth = 128;

// Encodes `value` in the canonical form above: int64Value and uint64Value as
// decimal strings, timestamps and durations as the text of CEL's string()
// (TimestampToString / DurationToString: the fewest fraction digits, e.g.
// "2009-02-13T23:31:30.5Z", "1.5s", "3600s", "0.000000001s"; not protobuf's
// 0/3/6/9-digit form), map entries in the map's own order. Fails with
// InvalidArgument for an error value (anywhere inside), a string that is not
// valid UTF-8, or nesting deeper than kMaxJsonValueDepth.
absl::StatusOr<nlohmann::json> ValueToJson(const Value& value);

// Decodes a value in the form above. Lenient where proto3 JSON parsers are:
// int64Value and uint64Value as a string or a JSON number (integral, in
// range); doubleValue as a number, a decimal string or "NaN"/"Infinity"/
// "-Infinity"; bytesValue in standard or URL-safe base64, padded or not;
// nullValue as null or "NULL_VALUE"; a missing "values" or "entries" is
// empty. Timestamps accept any RFC 3339 text ParseTimestamp does and
// durations any text ParseDuration does, so both the fewest-digit form
// ValueToJson writes and protobuf's ("1.500s", "...30.500Z") are read;
// durations outside CEL's range (int64 nanoseconds) are refused.
//
// The result owns all its data (it borrows nothing from `json`). On failure
// the InvalidArgument message starts with `path` extended to the offending
// member, e.g. "bindings.x.listValue.values[1]: int64Value: not an integer".
absl::StatusOr<Value> ValueFromJson(const nlohmann::json& json,
                                    absl::string_view path = "value");

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_VALUE_JSON_H_
