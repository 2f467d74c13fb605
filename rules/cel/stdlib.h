// CEL's standard functions that are not plain operators: type conversions,
// string functions, regular expressions, and timestamp/duration parsing,
// formatting, arithmetic and accessors. The evaluator dispatches to these
// after resolving a call; each follows the CEL specification (langdef.md,
// "Standard Definitions") and returns an error Value (never throws, never
// has undefined behaviour) when the specification says the call fails.
//
// Every function is thread-safe and allocates only when its result or its
// error message needs new memory.
#ifndef TAPPA_RULES_CEL_STDLIB_H_
#define TAPPA_RULES_CEL_STDLIB_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rules/cel/value.h"

namespace re2 {
class RE2;
}

namespace tappa::cel {

// ---- Conversions (the argument may be of any kind; unsupported kinds give
// "no matching overload for 'int'" etc.) -----------------------------------
// int(): from int, uint (range-checked), double (truncates toward zero;
// NaN/inf/out of range is "range error"), string (decimal, range-checked),
// timestamp (Unix seconds).
Value ToInt(const Value& v);
// uint(): from uint, int (>= 0), double, string.
Value ToUint(const Value& v);
// double(): from double, int, uint, string (decimal or exponent form,
// "NaN", "Infinity", "-Infinity").
Value ToDouble(const Value& v);
// string(): from string, int, uint, double (as FormatDouble), bool, bytes
// (must be valid UTF-8, else "invalid UTF-8"), timestamp (as
// TimestampToString), duration (as DurationToString).
Value ToString(const Value& v);
// bytes(): from bytes, string (UTF-8 encoding).
Value ToBytes(const Value& v);
// bool(): from bool, string (exactly Go's strconv.ParseBool set, as cel-go:
// "1", "t", "T", "true", "TRUE", "True" and "0", "f", "F", "false", "FALSE",
// "False").
Value ToBool(const Value& v);
// timestamp(): from timestamp, string (RFC 3339, as ParseTimestamp), int
// (Unix seconds). Results outside CEL's range are "timestamp out of range".
Value ToTimestamp(const Value& v);
// duration(): from duration, string (as ParseDuration: "1h30m", "1.5s",
// "-2m", "300ms", "1us", "1ns"). Results outside CEL's range are "duration
// out of range".
Value ToDuration(const Value& v);
// dyn(x) is the identity and type(x) is Value::TypeOf(x.kind()): handled by
// the evaluator.

// ---- Strings ------------------------------------------------------------
// size() of a string counts Unicode code points; of bytes, bytes.
Value StringSize(const Value& s);
Value Contains(const Value& s, const Value& sub);
Value StartsWith(const Value& s, const Value& prefix);
Value EndsWith(const Value& s, const Value& suffix);
// matches() with RE2 syntax, unanchored (a partial match, as CEL specifies).
// An invalid pattern is an error naming the pattern.
Value Matches(const Value& s, const Value& pattern);
// The same with a pattern compiled ahead of time (constant patterns are
// compiled once when the program is compiled).
Value MatchesCompiled(const Value& s, const re2::RE2& pattern);
// Compiles a pattern with the options Matches() uses; an error names the
// pattern and RE2's complaint. Patterns are limited in size (RE2 max_mem) so
// a pathological pattern fails to compile instead of exhausting memory.
absl::StatusOr<std::unique_ptr<re2::RE2>> CompileRegex(
    absl::string_view pattern);

// ---- Timestamps and durations ------------------------------------------
// Arithmetic with CEL's range checks ("timestamp out of range",
// "duration out of range"). A duration result must fit in int64 nanoseconds
// (see Duration in value.h), so the difference of two valid timestamps more
// than about 292 years apart is "duration out of range", as in cel-go and the
// conformance tests (timestamp_range/sub_time_duration_over, _under).
Value AddTimestampDuration(Timestamp t, Duration d);
Value SubtractTimestampDuration(Timestamp t, Duration d);
Value SubtractTimestamps(Timestamp a, Timestamp b);  // -> duration
Value AddDurations(Duration a, Duration b);
Value SubtractDurations(Duration a, Duration b);
Value NegateDuration(Duration d);
// <0, 0, >0.
int CompareTimestamps(Timestamp a, Timestamp b);
int CompareDurations(Duration a, Duration b);

// The accessor functions. `tz` is null for UTC, else a string Value: an IANA
// name ("Europe/Rome") or a fixed offset ("+02:00", "-05:30"); an unknown
// zone is an error. Month and day-of-year are 0-based, getDate is 1-based,
// getDayOfMonth 0-based, getDayOfWeek 0 = Sunday, as CEL specifies.
enum class TimeField : uint8_t {
  kFullYear,
  kMonth,
  kDate,
  kDayOfMonth,
  kDayOfWeek,
  kDayOfYear,
  kHours,
  kMinutes,
  kSeconds,
  kMilliseconds,
};
Value TimestampField(TimeField field, Timestamp t, const Value* tz);
// On durations: getHours() etc. give the whole duration in that unit
// (truncated); getMilliseconds() gives the millisecond part of the seconds
// fraction. Other fields are "no matching overload".
Value DurationField(TimeField field, Duration d);

// Parsing and formatting, as used by the conversions and by JSON encodings.
//
// ParseTimestamp: RFC 3339 date-time, "YYYY-MM-DDTHH:MM:SS[.f](Z|+HH:MM)",
// 'T'/'t' and 'Z'/'z' alike, a fraction of 1 to 9 digits, no leap second.
// Malformed text is InvalidArgument; a valid date outside 0001..9999 (after
// applying the offset) is OutOfRange ("timestamp out of range: ...").
absl::StatusOr<Timestamp> ParseTimestamp(absl::string_view text);
// UTC with "Z" and a fraction of 0, 3, 6 or 9 digits as needed (the protobuf
// JSON convention): "2009-02-13T23:31:30Z", "2009-02-13T23:31:30.500Z".
// (ValueToJson uses TimestampToString instead.)
std::string FormatTimestamp(Timestamp t);
// CEL's string(timestamp), as cel-go (Go's RFC3339Nano): UTC with "Z" and
// the fewest fraction digits, "2009-02-13T23:31:30.5Z". Also the JSON form
// written by ValueToJson.
std::string TimestampToString(Timestamp t);
// Go's time.ParseDuration syntax: an optional sign, then one or more
// decimal numbers with optional fraction and a unit (h, m, s, ms, us, µs,
// ns): "1h2m3.5s", "-1.5h", "100ms"; or "0". Computed exactly (fractions
// truncate below 1ns). Malformed text is InvalidArgument; beyond CEL's range
// (int64 nanoseconds, [kMinDurationNanos, kMaxDurationNanos], about +-292
// years: "-9223372036854775808ns" is valid, "320000000000s" is not) is
// OutOfRange ("duration out of range: ...").
absl::StatusOr<Duration> ParseDuration(absl::string_view text);
// Seconds with a fraction of 0, 3, 6 or 9 digits (the protobuf JSON
// convention): "1.500s", "-0.000000001s", "3600s". (ValueToJson uses
// DurationToString instead.)
std::string FormatDuration(Duration d);
// CEL's string(duration), as cel-go: seconds with the fewest fraction
// digits, "1.5s", "-0.000000001s", "3600s". Also the JSON form written by
// ValueToJson.
std::string DurationToString(Duration d);
// CEL's string(double), as cel-go (Go's strconv.FormatFloat(d, 'g', -1, 64)):
// the shortest digits that round-trip, in exponent form (at least two
// exponent digits) when the decimal exponent is < -4 or >= 6: "1", "1.5",
// "-0.0045", "123456", "1e+06", "1.234567e+06", "1e-05", "1e+100", "NaN",
// "+Inf", "-Inf".
std::string FormatDouble(double d);

// Validates UTF-8 (used for string(bytes) and for inputs from hosts).
bool IsValidUtf8(absl::string_view s);

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_STDLIB_H_
