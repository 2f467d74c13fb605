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
// string(): from string, int, uint, double (shortest round-trip form, e.g.
// 1.5 -> "1.5", 1e100 -> "1e+100"), bool, bytes (must be valid UTF-8),
// timestamp (RFC 3339, as FormatTimestamp), duration (as FormatDuration).
Value ToString(const Value& v);
// bytes(): from bytes, string (UTF-8 encoding).
Value ToBytes(const Value& v);
// bool(): from bool, string ("true", "false", "True", "TRUE", "t", "1", ...
// as CEL's strconv-compatible list).
Value ToBool(const Value& v);
// timestamp(): from timestamp, string (RFC 3339), int (Unix seconds).
Value ToTimestamp(const Value& v);
// duration(): from duration, string ("1h30m", "1.5s", "-2m", "300ms",
// "1us", "1ns").
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
absl::StatusOr<std::unique_ptr<re2::RE2>> CompileRegex(absl::string_view pattern);

// ---- Timestamps and durations ------------------------------------------
// Arithmetic with CEL's range checks ("timestamp out of range",
// "duration out of range" / "integer overflow").
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
// RFC 3339 with optional fraction and offset; output in UTC with "Z" and a
// fraction of 0, 3, 6 or 9 digits as needed (the protobuf JSON convention):
// "2009-02-13T23:31:30Z", "2009-02-13T23:31:30.500Z".
absl::StatusOr<Timestamp> ParseTimestamp(absl::string_view text);
std::string FormatTimestamp(Timestamp t);
// Go-style durations for parsing ("1h2m3.5s", "-1.5h", "100ms"); output in
// seconds with the protobuf JSON convention: "1.5s", "-0.000000001s", "3600s".
absl::StatusOr<Duration> ParseDuration(absl::string_view text);
std::string FormatDuration(Duration d);
// Shortest representation that round-trips, in CEL's string(double) form.
std::string FormatDouble(double d);

// Validates UTF-8 (used for string(bytes) and for inputs from hosts).
bool IsValidUtf8(absl::string_view s);

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_STDLIB_H_
