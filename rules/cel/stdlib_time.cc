// Timestamps and durations: parsing, formatting, arithmetic with CEL's range
// checks, and the calendar accessors with time zones.
//
// All arithmetic is done on 128-bit nanosecond counts: every valid timestamp
// and duration (and every sum or difference of two of them) fits with room to
// spare, so a range check after the operation is all that is needed and no
// intermediate step can overflow.

#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "rules/cel/stdlib.h"
#include "rules/cel/value.h"

namespace tappa::cel {
namespace {

using int128 = __int128;

constexpr int64_t kNanosPerSecond = 1000000000;

constexpr int128 kMinTimestampNanos =
    static_cast<int128>(kMinTimestampSeconds) * kNanosPerSecond;
constexpr int128 kMaxTimestampNanos =
    static_cast<int128>(kMaxTimestampSeconds) * kNanosPerSecond +
    (kNanosPerSecond - 1);

constexpr absl::string_view kTimestampRange = "timestamp out of range";
constexpr absl::string_view kDurationRange = "duration out of range";

int128 ToNanos(Timestamp t) {
  return static_cast<int128>(t.seconds) * kNanosPerSecond + t.nanos;
}
int128 ToNanos(Duration d) {
  return static_cast<int128>(d.seconds) * kNanosPerSecond + d.nanos;
}

bool TimestampInRange(int128 ns) {
  return ns >= kMinTimestampNanos && ns <= kMaxTimestampNanos;
}
// CEL's (cel-go's) duration range: what fits in int64 nanoseconds.
bool DurationInRange(int128 ns) {
  return ns >= kMinDurationNanos && ns <= kMaxDurationNanos;
}

// Floor division, so that nanos are always in [0, 1e9) for timestamps.
Timestamp TimestampFromNanos(int128 ns) {
  int128 s = ns / kNanosPerSecond;
  int128 n = ns % kNanosPerSecond;
  if (n < 0) {
    n += kNanosPerSecond;
    s -= 1;
  }
  return {static_cast<int64_t>(s), static_cast<int32_t>(n)};
}

// Truncating division, so that nanos carry the sign of seconds (the
// protobuf Duration normal form).
Duration DurationFromNanos(int128 ns) {
  return {static_cast<int64_t>(ns / kNanosPerSecond),
          static_cast<int32_t>(ns % kNanosPerSecond)};
}

Value TimestampResult(int128 ns) {
  if (!TimestampInRange(ns)) return Value::StaticError(kTimestampRange);
  return Value::FromTimestamp(TimestampFromNanos(ns));
}

Value DurationResult(int128 ns) {
  if (!DurationInRange(ns)) return Value::StaticError(kDurationRange);
  return Value::FromDuration(DurationFromNanos(ns));
}

int Compare128(int128 a, int128 b) { return a < b ? -1 : (a > b ? 1 : 0); }

// Appends `nanos` (0 <= nanos < 1e9) as a fraction: with `trim`, the fewest
// digits that represent it exactly; otherwise 3, 6 or 9 digits (the protobuf
// JSON convention). Nothing is appended for zero.
void AppendFraction(int32_t nanos, bool trim, std::string* out) {
  if (nanos == 0) return;
  std::string digits = absl::StrFormat("%09d", nanos);
  size_t keep = 9;
  if (trim) {
    while (digits[keep - 1] == '0') --keep;
  } else if (nanos % 1000000 == 0) {
    keep = 3;
  } else if (nanos % 1000 == 0) {
    keep = 6;
  }
  out->push_back('.');
  out->append(digits, 0, keep);
}

std::string FormatTimestampImpl(Timestamp t, bool trim) {
  // Normalize defensively: a Timestamp built by hand may carry nanos outside
  // [0, 1e9).
  Timestamp n = TimestampFromNanos(ToNanos(t));
  absl::CivilSecond cs = absl::ToCivilSecond(absl::FromUnixSeconds(n.seconds),
                                             absl::UTCTimeZone());
  std::string out =
      absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d", cs.year(), cs.month(),
                      cs.day(), cs.hour(), cs.minute(), cs.second());
  AppendFraction(n.nanos, trim, &out);
  out.push_back('Z');
  return out;
}

std::string FormatDurationImpl(Duration d, bool trim) {
  int128 ns = ToNanos(d);
  std::string out;
  if (ns < 0) {
    out.push_back('-');
    ns = -ns;
  }
  absl::StrAppend(&out, static_cast<int64_t>(ns / kNanosPerSecond));
  AppendFraction(static_cast<int32_t>(ns % kNanosPerSecond), trim, &out);
  out.push_back('s');
  return out;
}

// ---- Parsing helpers -----------------------------------------------------

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `n` digits at text[*pos].
bool ReadDigits(absl::string_view text, size_t* pos, int n, int* value) {
  if (*pos + n > text.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = text[*pos + i];
    if (!IsDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *value = v;
  return true;
}

bool Expect(absl::string_view text, size_t* pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

absl::Status BadTimestamp(absl::string_view text) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid timestamp \"", absl::CHexEscape(text),
                   "\": expected RFC 3339, e.g. 2009-02-13T23:31:30Z"));
}

absl::Status BadDuration(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid duration \"", absl::CHexEscape(text), "\": ", why));
}

// ---- Time zones -------------------------------------------------------------

// A fixed offset "+HH:MM", "-HH:MM" or "HH:MM" (cel-go accepts the unsigned
// form too). Hours up to 23, minutes up to 59.
bool ParseFixedOffset(absl::string_view text, int* seconds_east) {
  int sign = 1;
  size_t pos = 0;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    if (text[0] == '-') sign = -1;
    pos = 1;
  }
  int hours = 0, minutes = 0;
  if (!ReadDigits(text, &pos, 2, &hours) || !Expect(text, &pos, ':') ||
      !ReadDigits(text, &pos, 2, &minutes) || pos != text.size()) {
    return false;
  }
  if (hours > 23 || minutes > 59) return false;
  *seconds_east = sign * (hours * 3600 + minutes * 60);
  return true;
}

// IANA names are ASCII letters, digits and "/_+-", with no empty, "." or ".."
// component: anything else could never name a zone and must not reach the
// file system as a path.
bool IsPlausibleZoneName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  if (name.front() == '/' || name.back() == '/') return false;
  size_t start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '/') {
      absl::string_view part = name.substr(start, i - start);
      if (part.empty() || part == "." || part == "..") return false;
      start = i + 1;
      continue;
    }
    char c = name[i];
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

// Zones loaded successfully, by name. absl::LoadTimeZone() keeps a process-wide
// cache too, but it also remembers every *failed* name forever; names come
// from data (a contact's time-zone attribute), so failures are not cached
// here and the set stays bounded by the zones that exist.
class ZoneCache {
 public:
  bool Find(absl::string_view name, absl::TimeZone* tz) {
    {
      std::shared_lock lock(mu_);
      auto it = zones_.find(name);
      if (it != zones_.end()) {
        *tz = it->second;
        return true;
      }
    }
    // "localtime" is the host's zone: expressions must not depend on where
    // they run.
    if (!IsPlausibleZoneName(name) || name == "localtime") return false;
    absl::TimeZone loaded;
    if (!absl::LoadTimeZone(std::string(name), &loaded)) return false;
    std::unique_lock lock(mu_);
    zones_.emplace(std::string(name), loaded);
    *tz = loaded;
    return true;
  }

 private:
  std::shared_mutex mu_;
  absl::flat_hash_map<std::string, absl::TimeZone> zones_;
};

ZoneCache& Zones() {
  static ZoneCache* cache = new ZoneCache();  // never destroyed
  return *cache;
}

Value ResolveZone(const Value* tz, absl::TimeZone* zone) {
  if (tz == nullptr) {
    *zone = absl::UTCTimeZone();
    return Value();
  }
  if (!tz->IsString()) {
    return Value::StaticError("time zone must be a string");
  }
  absl::string_view name = tz->string_value();
  if (name.find(':') != absl::string_view::npos) {
    int offset = 0;
    if (!ParseFixedOffset(name, &offset)) {
      return Value::Error(absl::StrCat("invalid time zone offset \"",
                                       absl::CHexEscape(name),
                                       "\": expected +HH:MM or -HH:MM"));
    }
    *zone = absl::FixedTimeZone(offset);
    return Value();
  }
  if (name == "UTC") {
    *zone = absl::UTCTimeZone();
    return Value();
  }
  if (!Zones().Find(name, zone)) {
    return Value::Error(
        absl::StrCat("unknown time zone \"", absl::CHexEscape(name), "\""));
  }
  return Value();
}

}  // namespace

// ---- Arithmetic
// ---------------------------------------------------------------

Value AddTimestampDuration(Timestamp t, Duration d) {
  return TimestampResult(ToNanos(t) + ToNanos(d));
}

Value SubtractTimestampDuration(Timestamp t, Duration d) {
  return TimestampResult(ToNanos(t) - ToNanos(d));
}

Value SubtractTimestamps(Timestamp a, Timestamp b) {
  return DurationResult(ToNanos(a) - ToNanos(b));
}

Value AddDurations(Duration a, Duration b) {
  return DurationResult(ToNanos(a) + ToNanos(b));
}

Value SubtractDurations(Duration a, Duration b) {
  return DurationResult(ToNanos(a) - ToNanos(b));
}

Value NegateDuration(Duration d) { return DurationResult(-ToNanos(d)); }

int CompareTimestamps(Timestamp a, Timestamp b) {
  return Compare128(ToNanos(a), ToNanos(b));
}

int CompareDurations(Duration a, Duration b) {
  return Compare128(ToNanos(a), ToNanos(b));
}

// ---- Accessors
// ------------------------------------------------------------------

Value TimestampField(TimeField field, Timestamp t, const Value* tz) {
  absl::TimeZone zone;
  Value zone_error = ResolveZone(tz, &zone);
  if (zone_error.IsError()) return zone_error;
  Timestamp n = TimestampFromNanos(ToNanos(t));
  // Zone offsets are whole seconds, so the sub-second part is zone-free.
  if (field == TimeField::kMilliseconds) {
    return Value::Int(n.nanos / 1000000);
  }
  absl::CivilSecond cs =
      absl::ToCivilSecond(absl::FromUnixSeconds(n.seconds), zone);
  switch (field) {
    case TimeField::kFullYear:
      return Value::Int(cs.year());
    case TimeField::kMonth:
      return Value::Int(cs.month() - 1);
    case TimeField::kDate:
      return Value::Int(cs.day());
    case TimeField::kDayOfMonth:
      return Value::Int(cs.day() - 1);
    case TimeField::kDayOfWeek: {
      // absl numbers Monday 0 .. Sunday 6; CEL numbers Sunday 0 .. Saturday 6.
      int wd = static_cast<int>(absl::GetWeekday(absl::CivilDay(cs)));
      return Value::Int((wd + 1) % 7);
    }
    case TimeField::kDayOfYear:
      return Value::Int(absl::GetYearDay(absl::CivilDay(cs)) - 1);
    case TimeField::kHours:
      return Value::Int(cs.hour());
    case TimeField::kMinutes:
      return Value::Int(cs.minute());
    case TimeField::kSeconds:
      return Value::Int(cs.second());
    case TimeField::kMilliseconds:
      break;  // handled above
  }
  return Value::StaticError("no matching overload for timestamp accessor");
}

Value DurationField(TimeField field, Duration d) {
  int128 ns = ToNanos(d);
  int128 seconds = ns / kNanosPerSecond;  // truncates toward zero
  switch (field) {
    case TimeField::kHours:
      return Value::Int(static_cast<int64_t>(seconds / 3600));
    case TimeField::kMinutes:
      return Value::Int(static_cast<int64_t>(seconds / 60));
    case TimeField::kSeconds:
      return Value::Int(static_cast<int64_t>(seconds));
    case TimeField::kMilliseconds:
      return Value::Int(static_cast<int64_t>((ns % kNanosPerSecond) / 1000000));
    default:
      return Value::StaticError("no matching overload for duration accessor");
  }
}

// ---- Parsing and formatting
// ---------------------------------------------------------

absl::StatusOr<Timestamp> ParseTimestamp(absl::string_view text) {
  // date-time = full-date ("T" / "t") full-time; full-time = HH:MM:SS
  // [.fraction] ("Z" / "z" / ("+" / "-") HH:MM)        (RFC 3339, 5.6)
  size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!ReadDigits(text, &pos, 4, &year) || !Expect(text, &pos, '-') ||
      !ReadDigits(text, &pos, 2, &month) || !Expect(text, &pos, '-') ||
      !ReadDigits(text, &pos, 2, &day)) {
    return BadTimestamp(text);
  }
  if (pos >= text.size() || (text[pos] != 'T' && text[pos] != 't')) {
    return BadTimestamp(text);
  }
  ++pos;
  if (!ReadDigits(text, &pos, 2, &hour) || !Expect(text, &pos, ':') ||
      !ReadDigits(text, &pos, 2, &minute) || !Expect(text, &pos, ':') ||
      !ReadDigits(text, &pos, 2, &second)) {
    return BadTimestamp(text);
  }
  int32_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() && IsDigit(text[pos])) {
      if (++digits > 9) return BadTimestamp(text);
      nanos = nanos * 10 + (text[pos] - '0');
      ++pos;
    }
    if (digits == 0) return BadTimestamp(text);
    for (int i = digits; i < 9; ++i) nanos *= 10;
  }
  int offset_seconds = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int oh, om;
    if (!ReadDigits(text, &pos, 2, &oh) || !Expect(text, &pos, ':') ||
        !ReadDigits(text, &pos, 2, &om) || oh > 23 || om > 59) {
      return BadTimestamp(text);
    }
    offset_seconds = sign * (oh * 3600 + om * 60);
  } else {
    return BadTimestamp(text);
  }
  if (pos != text.size()) return BadTimestamp(text);
  // Leap seconds (:60) are not representable in a Timestamp, as in protobuf.
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 ||
      second > 59) {
    return BadTimestamp(text);
  }
  absl::CivilSecond cs(year, month, day, hour, minute, second);
  if (cs.day() != day || cs.month() != month) {
    return BadTimestamp(text);  // e.g. February 30: CivilSecond normalized it
  }
  int64_t local = absl::ToUnixSeconds(absl::FromCivil(cs, absl::UTCTimeZone()));
  int128 ns =
      (static_cast<int128>(local) - offset_seconds) * kNanosPerSecond + nanos;
  if (!TimestampInRange(ns)) {
    return absl::OutOfRangeError(
        absl::StrCat(kTimestampRange, ": \"", absl::CHexEscape(text), "\""));
  }
  return TimestampFromNanos(ns);
}

std::string FormatTimestamp(Timestamp t) {
  return FormatTimestampImpl(t, false);
}

std::string TimestampToString(Timestamp t) {
  return FormatTimestampImpl(t, true);
}

absl::StatusOr<Duration> ParseDuration(absl::string_view text) {
  // Go's time.ParseDuration syntax: [-+]? ( digits? [. digits?] unit )+ ,
  // with at least one digit per number, or a bare "0".
  absl::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return Duration{};
  if (s.empty()) return BadDuration(text, "empty");
  // Far beyond the valid range (2^63 ns), yet small enough that
  // kCap * 10 + 9 and kCap times the largest unit (< 2^42 ns) fit in int128:
  // numbers stop growing once they pass it.
  constexpr int128 kCap = static_cast<int128>(1) << 80;
  int128 total = 0;
  while (!s.empty()) {
    int128 whole = 0;
    bool any_digit = false;
    while (!s.empty() && IsDigit(s[0])) {
      any_digit = true;
      if (whole < kCap) whole = whole * 10 + (s[0] - '0');
      s.remove_prefix(1);
    }
    // Fraction digits beyond 18 change the result by far less than 1ns.
    int128 frac = 0, scale = 1;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      while (!s.empty() && IsDigit(s[0])) {
        any_digit = true;
        if (scale < static_cast<int128>(1000000000000000000)) {
          frac = frac * 10 + (s[0] - '0');
          scale *= 10;
        }
        s.remove_prefix(1);
      }
    }
    if (!any_digit) return BadDuration(text, "expected a number");
    size_t unit_len = 0;
    while (unit_len < s.size() && s[unit_len] != '.' && !IsDigit(s[unit_len])) {
      ++unit_len;
    }
    absl::string_view unit = s.substr(0, unit_len);
    s.remove_prefix(unit_len);
    int64_t unit_ns;
    if (unit == "ns") {
      unit_ns = 1;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      unit_ns = 1000;  // "us", "µs" (micro sign) and "μs" (Greek mu)
    } else if (unit == "ms") {
      unit_ns = 1000000;
    } else if (unit == "s") {
      unit_ns = kNanosPerSecond;
    } else if (unit == "m") {
      unit_ns = 60 * kNanosPerSecond;
    } else if (unit == "h") {
      unit_ns = 3600 * kNanosPerSecond;
    } else if (unit.empty()) {
      return BadDuration(text, "missing unit (one of h, m, s, ms, us, ns)");
    } else {
      return BadDuration(
          text, absl::StrCat("unknown unit \"", absl::CHexEscape(unit), "\""));
    }
    if (whole >= kCap) {
      return absl::OutOfRangeError(
          absl::StrCat(kDurationRange, ": \"", absl::CHexEscape(text), "\""));
    }
    total += whole * unit_ns + frac * unit_ns / scale;
    if (total > kCap) total = kCap;
  }
  if (negative) total = -total;
  if (!DurationInRange(total)) {
    return absl::OutOfRangeError(
        absl::StrCat(kDurationRange, ": \"", absl::CHexEscape(text), "\""));
  }
  return DurationFromNanos(total);
}

std::string FormatDuration(Duration d) { return FormatDurationImpl(d, false); }

std::string DurationToString(Duration d) { return FormatDurationImpl(d, true); }

}  // namespace tappa::cel
