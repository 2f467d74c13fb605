// Timestamps and durations. Expected values come from the CEL conformance
// suite (tests/simple/testdata/timestamps.textproto), RFC 3339, Go's
// time.ParseDuration syntax and the protobuf JSON mapping; epoch seconds were
// worked out by hand (2009-02-13T23:31:30Z is 1234567890).
#include <string>

#include "gtest/gtest.h"
#include "rules/cel/stdlib.h"
#include "rules/cel/value.h"

namespace tappa::cel {
namespace {

constexpr Timestamp kFriday{1234567890, 0};  // 2009-02-13T23:31:30Z, a Friday

Timestamp T(const char* text) {
  absl::StatusOr<Timestamp> t = ParseTimestamp(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status();
  return t.value_or(Timestamp{});
}
Duration D(const char* text) {
  absl::StatusOr<Duration> d = ParseDuration(text);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status();
  return d.value_or(Duration{});
}

int64_t IntOf(const Value& v) {
  EXPECT_TRUE(v.IsInt()) << v.DebugString();
  return v.IsInt() ? v.int_value() : -999;
}

bool IsErrorWith(const Value& v, absl::string_view part) {
  return v.IsError() && v.error_message().find(part) != absl::string_view::npos;
}

TEST(ParseTimestampTest, Valid) {
  EXPECT_EQ(T("2009-02-13T23:31:30Z"), kFriday);
  EXPECT_EQ(T("2009-02-13t23:31:30z"), kFriday);
  EXPECT_EQ(T("2009-02-14T01:31:30+02:00"), kFriday);
  EXPECT_EQ(T("2009-02-13T18:01:30-05:30"), kFriday);
  EXPECT_EQ(T("2009-02-13T23:31:30-00:00"), kFriday);
  EXPECT_EQ(T("1970-01-01T00:00:00Z"), (Timestamp{0, 0}));
  EXPECT_EQ(T("1969-12-31T23:59:59.5Z"), (Timestamp{-1, 500000000}));
  EXPECT_EQ(T("2009-02-13T23:31:20.123456789Z"),
            (Timestamp{1234567880, 123456789}));
  EXPECT_EQ(T("2009-02-13T23:31:30.1Z"), (Timestamp{1234567890, 100000000}));
  EXPECT_EQ(T("1972-01-01T10:00:20.021-05:00"),
            (Timestamp{63126020, 21000000}));
  EXPECT_EQ(T("2000-02-29T00:00:00Z"), (Timestamp{951782400, 0}));  // leap day
  EXPECT_EQ(T("0001-01-01T00:00:00Z"), (Timestamp{kMinTimestampSeconds, 0}));
  EXPECT_EQ(T("9999-12-31T23:59:59.999999999Z"),
            (Timestamp{kMaxTimestampSeconds, 999999999}));
  // The offset may bring an out-of-range local time back into range.
  EXPECT_EQ(T("0001-01-01T01:00:00+01:00"),
            (Timestamp{kMinTimestampSeconds, 0}));
}

TEST(ParseTimestampTest, Invalid) {
  for (const char* bad : {"",
                          "2009-02-13",
                          "2009-02-13T23:31:30",
                          "2009-02-13 23:31:30Z",
                          "2009-2-13T23:31:30Z",
                          "2009-02-13T23:31Z",
                          "2009-02-13T24:00:00Z",
                          "2009-02-13T23:60:00Z",
                          "2009-12-31T23:59:60Z",
                          "2009-13-01T00:00:00Z",
                          "2009-00-01T00:00:00Z",
                          "2009-02-29T00:00:00Z",
                          "1900-02-29T00:00:00Z",
                          "2009-04-31T00:00:00Z",
                          "2009-02-00T00:00:00Z",
                          "2009-02-13T23:31:30.Z",
                          "2009-02-13T23:31:30.1234567891Z",
                          "2009-02-13T23:31:30+0200",
                          "2009-02-13T23:31:30+24:00",
                          "2009-02-13T23:31:30+02:60",
                          "2009-02-13T23:31:30Zjunk",
                          "10000-01-01T00:00:00Z",
                          "+2009-02-13T23:31:30Z"}) {
    absl::StatusOr<Timestamp> t = ParseTimestamp(bad);
    EXPECT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  for (const char* out : {"0000-01-01T00:00:00Z", "0001-01-01T00:00:00+00:01",
                          "9999-12-31T23:59:59-00:01"}) {
    absl::StatusOr<Timestamp> t = ParseTimestamp(out);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kOutOfRange) << out;
    EXPECT_NE(t.status().message().find("timestamp out of range"),
              absl::string_view::npos);
  }
}

TEST(FormatTimestampTest, ProtobufJsonFractions) {
  EXPECT_EQ(FormatTimestamp(kFriday), "2009-02-13T23:31:30Z");
  EXPECT_EQ(FormatTimestamp({1234567890, 500000000}),
            "2009-02-13T23:31:30.500Z");
  EXPECT_EQ(FormatTimestamp({1234567890, 120000}),
            "2009-02-13T23:31:30.000120Z");
  EXPECT_EQ(FormatTimestamp({1234567890, 1}), "2009-02-13T23:31:30.000000001Z");
  EXPECT_EQ(FormatTimestamp({-1, 0}), "1969-12-31T23:59:59Z");
  EXPECT_EQ(FormatTimestamp({kMinTimestampSeconds, 0}), "0001-01-01T00:00:00Z");
  EXPECT_EQ(FormatTimestamp({kMaxTimestampSeconds, 999999999}),
            "9999-12-31T23:59:59.999999999Z");
  EXPECT_EQ(TimestampToString({1234567890, 120000}),
            "2009-02-13T23:31:30.00012Z");
  EXPECT_EQ(TimestampToString(kFriday), "2009-02-13T23:31:30Z");
}

TEST(ParseDurationTest, GoSyntax) {
  EXPECT_EQ(D("0"), (Duration{0, 0}));
  EXPECT_EQ(D("-0"), (Duration{0, 0}));
  EXPECT_EQ(D("0s"), (Duration{0, 0}));
  EXPECT_EQ(D("1.5s"), (Duration{1, 500000000}));
  EXPECT_EQ(D("-1.5s"), (Duration{-1, -500000000}));
  EXPECT_EQ(D("+3s"), (Duration{3, 0}));
  EXPECT_EQ(D("1h2m3.5s"), (Duration{3723, 500000000}));
  EXPECT_EQ(D("-1.5h"), (Duration{-5400, 0}));
  EXPECT_EQ(D("2160h"), (Duration{7776000, 0}));
  EXPECT_EQ(D("100ms"), (Duration{0, 100000000}));
  EXPECT_EQ(D("1us"), (Duration{0, 1000}));
  EXPECT_EQ(D("1\xC2\xB5s"), (Duration{0, 1000}));  // micro sign
  EXPECT_EQ(D("1\xCE\xBCs"), (Duration{0, 1000}));  // Greek mu
  EXPECT_EQ(D("1ns"), (Duration{0, 1}));
  EXPECT_EQ(D("-999999999ns"), (Duration{0, -999999999}));
  EXPECT_EQ(D(".5s"), (Duration{0, 500000000}));
  EXPECT_EQ(D("5.s"), (Duration{5, 0}));
  EXPECT_EQ(D("1h1h"), (Duration{7200, 0}));
  EXPECT_EQ(D("1.0000000019s"), (Duration{1, 1}));  // truncated below 1ns
  EXPECT_EQ(D("0.333333333333333333333333h"), (Duration{1199, 999999999}));
}

// CEL's duration range is cel-go's: int64 nanoseconds, inclusive at both
// ends (Go's time.Duration), not protobuf's +-315576000000s.
TEST(ParseDurationTest, RangeBounds) {
  constexpr Duration kMax{9223372036, 854775807};
  constexpr Duration kMin{-9223372036, -854775808};
  EXPECT_EQ(D("9223372036854775807ns"), kMax);
  EXPECT_EQ(D("-9223372036854775808ns"), kMin);
  EXPECT_EQ(D("9223372036.854775807s"), kMax);
  EXPECT_EQ(D("-9223372036.854775808s"), kMin);
  EXPECT_EQ(D("2562047h47m16.854775807s"), kMax);  // Go's max Duration String()
  EXPECT_EQ(D("-2562047h47m16.854775808s"), kMin);
  EXPECT_EQ(D("9223372036s"), (Duration{kMaxDurationSeconds, 0}));
  EXPECT_EQ(D("-9223372036s"), (Duration{-kMaxDurationSeconds, 0}));
  EXPECT_EQ(kMaxDurationSeconds, 9223372036);
  EXPECT_EQ(kMaxDurationNanos, INT64_MAX);
  EXPECT_EQ(kMinDurationNanos, INT64_MIN);
}

TEST(ParseDurationTest, Invalid) {
  for (const char* bad :
       {"", "-", "+", "s", "1", "1.5", ".s", "1d", "1S", "1 s", " 1s", "1s ",
        "1sm", "1..5s", "--1s", "1e3s", "1h-2m", "0x10s"}) {
    absl::StatusOr<Duration> d = ParseDuration(bad);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(d.status().message().find("invalid duration"),
              absl::string_view::npos)
        << d.status();
  }
  for (const char* out :
       {// conformance duration_range/from_string_over, _under
        "320000000000s", "-320000000000s",
        // protobuf's limit is beyond CEL's
        "315576000000s", "-315576000000.999999999s",
        // one past each end of int64 nanoseconds
        "9223372036854775808ns", "-9223372036854775809ns",
        "9223372036.854775808s", "-9223372036.854775809s", "9223372037s",
        "-9223372037s", "2562047h47m16.854775808s", "2562048h",
        "9223372036854775807ns1ns", "-9223372036854775808ns1ns", "153722868m",
        "87660001h", "99999999999999999999999999999999999999999h"}) {
    absl::StatusOr<Duration> d = ParseDuration(out);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kOutOfRange) << out;
    EXPECT_NE(d.status().message().find("duration out of range"),
              absl::string_view::npos)
        << d.status();
  }
}

TEST(FormatDurationTest, Forms) {
  EXPECT_EQ(FormatDuration({0, 0}), "0s");
  EXPECT_EQ(FormatDuration({3600, 0}), "3600s");
  EXPECT_EQ(FormatDuration({1, 500000000}), "1.500s");
  EXPECT_EQ(FormatDuration({0, -1}), "-0.000000001s");
  EXPECT_EQ(FormatDuration({-1, -500000}), "-1.000500s");
  EXPECT_EQ(FormatDuration({-9223372036, -854775808}),
            "-9223372036.854775808s");
  EXPECT_EQ(FormatDuration({9223372036, 854775807}), "9223372036.854775807s");
  EXPECT_EQ(FormatDuration({0, 100000000}), "0.100s");
  EXPECT_EQ(DurationToString({1, 500000000}), "1.5s");
  EXPECT_EQ(DurationToString({1000000, 0}), "1000000s");
  EXPECT_EQ(DurationToString({0, -1}), "-0.000000001s");
  EXPECT_EQ(DurationToString({-1, -500000}), "-1.0005s");
  EXPECT_EQ(DurationToString({0, 100000000}), "0.1s");
  EXPECT_EQ(DurationToString({0, 0}), "0s");
  EXPECT_EQ(DurationToString({-9223372036, -854775808}),
            "-9223372036.854775808s");
}

TEST(TimeArithmeticTest, Values) {
  Value v = AddTimestampDuration(T("2009-02-13T23:00:00Z"), D("240s"));
  ASSERT_TRUE(v.IsTimestamp());
  EXPECT_EQ(v.timestamp_value(), T("2009-02-13T23:04:00Z"));
  v = AddTimestampDuration(T("0001-01-01T00:00:01.000000001Z"),
                           D("-999999999ns"));
  ASSERT_TRUE(v.IsTimestamp());
  EXPECT_EQ(v.timestamp_value(), T("0001-01-01T00:00:00.000000002Z"));
  v = AddTimestampDuration(T("0001-01-01T00:00:01.999999999Z"),
                           D("999999999ns"));
  ASSERT_TRUE(v.IsTimestamp());
  EXPECT_EQ(v.timestamp_value(), T("0001-01-01T00:00:02.999999998Z"));
  v = SubtractTimestampDuration(T("2009-02-13T23:10:00Z"), D("600s"));
  ASSERT_TRUE(v.IsTimestamp());
  EXPECT_EQ(v.timestamp_value(), T("2009-02-13T23:00:00Z"));
  v = SubtractTimestamps(T("2009-02-13T23:31:00Z"), T("2009-02-13T23:29:00Z"));
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), D("120s"));
  v = SubtractTimestamps(T("1970-01-01T00:00:00Z"),
                         T("1970-01-01T00:00:00.5Z"));
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), (Duration{0, -500000000}));
  v = AddDurations(D("600s"), D("50s"));
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), D("650s"));
  v = AddDurations(D("1.5s"), D("-2s"));
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), (Duration{0, -500000000}));
  v = SubtractDurations(D("900s"), D("42s"));
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), D("858s"));
  v = NegateDuration(D("1.5s"));
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), (Duration{-1, -500000000}));
}

TEST(TimeArithmeticTest, RangeErrors) {
  const char* kTs = "timestamp out of range";
  const char* kDur = "duration out of range";
  EXPECT_TRUE(IsErrorWith(
      AddTimestampDuration(T("0001-01-01T00:00:00Z"), D("-1s")), kTs));
  EXPECT_TRUE(IsErrorWith(
      AddTimestampDuration(T("9999-12-31T23:59:59Z"), D("1s")), kTs));
  EXPECT_TRUE(IsErrorWith(
      AddTimestampDuration(T("9999-12-31T23:59:59.999999999Z"), D("1ns")),
      kTs));
  EXPECT_TRUE(IsErrorWith(
      AddTimestampDuration(T("0001-01-01T00:00:00Z"), D("-1ns")), kTs));
  EXPECT_TRUE(IsErrorWith(
      SubtractTimestampDuration(T("0001-01-01T00:00:00Z"), D("1ns")), kTs));
  EXPECT_TRUE(
      IsErrorWith(AddDurations(D("-5000000000s"), D("-5000000000s")), kDur));
  EXPECT_TRUE(
      IsErrorWith(AddDurations(D("5000000000s"), D("5000000000s")), kDur));
  EXPECT_TRUE(IsErrorWith(
      SubtractDurations(D("-5000000000s"), D("5000000000s")), kDur));
  EXPECT_TRUE(IsErrorWith(
      SubtractDurations(D("5000000000s"), D("-5000000000s")), kDur));
  // Hand-built values outside every range still give errors, never UB.
  EXPECT_TRUE(
      IsErrorWith(AddDurations({INT64_MAX, 999999999}, {INT64_MAX, 0}), kDur));
  EXPECT_TRUE(IsErrorWith(NegateDuration({INT64_MIN, 0}), kDur));
  EXPECT_TRUE(IsErrorWith(
      AddTimestampDuration({INT64_MAX, 0}, {INT64_MAX, 999999999}), kTs));
  // A result beyond the range is refused even when computed from a
  // hand-built operand (here protobuf's limit, which is no CEL duration).
  EXPECT_TRUE(IsErrorWith(AddDurations({315576000000, 0}, {}), kDur));
}

// Durations are int64 nanoseconds (cel-go), so a duration result is range
// checked at exactly those bounds.
TEST(TimeArithmeticTest, DurationBounds) {
  const char* kDur = "duration out of range";
  const Duration max = D("9223372036854775807ns");
  const Duration min = D("-9223372036854775808ns");
  EXPECT_TRUE(IsErrorWith(AddDurations(max, D("1ns")), kDur));
  EXPECT_TRUE(IsErrorWith(AddDurations(min, D("-1ns")), kDur));
  EXPECT_TRUE(IsErrorWith(SubtractDurations(max, D("-1ns")), kDur));
  EXPECT_TRUE(IsErrorWith(SubtractDurations(min, D("1ns")), kDur));
  EXPECT_TRUE(IsErrorWith(NegateDuration(min), kDur));  // 2^63 ns
  Value v = NegateDuration(max);
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), (Duration{-9223372036, -854775807}));
  v = SubtractDurations(D("-1ns"), max);
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), min);
  v = AddDurations(max, min);
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), D("-1ns"));
  v = AddDurations(D("4611686018427387904ns"), D("4611686018427387903ns"));
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), max);

  // Timestamp differences: the int64-nanosecond span around the epoch is the
  // widest that fits (Go's time.Unix(0, math.MaxInt64) and MinInt64).
  const Timestamp epoch{0, 0};
  v = SubtractTimestamps(T("2262-04-11T23:47:16.854775807Z"), epoch);
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), max);
  v = SubtractTimestamps(T("1677-09-21T00:12:43.145224192Z"), epoch);
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), min);
  EXPECT_TRUE(IsErrorWith(
      SubtractTimestamps(T("2262-04-11T23:47:16.854775808Z"), epoch), kDur));
  EXPECT_TRUE(IsErrorWith(
      SubtractTimestamps(epoch, T("2262-04-11T23:47:16.854775809Z")), kDur));
  EXPECT_TRUE(IsErrorWith(
      SubtractTimestamps(T("1677-09-21T00:12:43.145224191Z"), epoch), kDur));
  // conformance timestamp_range/sub_time_duration_over and _under: the span
  // of all valid timestamps (about 9999 years) is no duration.
  EXPECT_TRUE(IsErrorWith(
      SubtractTimestamps(T("9999-12-31T23:59:59Z"), T("0001-01-01T00:00:00Z")),
      kDur));
  EXPECT_TRUE(IsErrorWith(
      SubtractTimestamps(T("0001-01-01T00:00:00Z"), T("9999-12-31T23:59:59Z")),
      kDur));
  // Adding an extreme duration to a timestamp is fine while the timestamp
  // stays in range.
  v = AddTimestampDuration(epoch, max);
  ASSERT_TRUE(v.IsTimestamp());
  EXPECT_EQ(v.timestamp_value(), T("2262-04-11T23:47:16.854775807Z"));
  v = SubtractTimestampDuration(T("2009-02-13T23:31:30Z"), min);
  ASSERT_TRUE(v.IsTimestamp());
  EXPECT_EQ(v.timestamp_value(), T("2301-05-26T23:18:46.854775808Z"));
  EXPECT_TRUE(IsErrorWith(AddTimestampDuration(T("9999-01-01T00:00:00Z"), max),
                          "timestamp out of range"));
}

TEST(TimeCompareTest, Order) {
  EXPECT_EQ(
      CompareTimestamps(T("2009-02-13T23:00:00Z"), T("2009-02-13T23:00:00Z")),
      0);
  EXPECT_LT(
      CompareTimestamps(T("2009-02-13T22:59:59Z"), T("2009-02-13T23:00:00Z")),
      0);
  EXPECT_GT(CompareTimestamps(T("1970-01-01T00:00:00.000000001Z"),
                              T("1970-01-01T00:00:00Z")),
            0);
  EXPECT_LT(CompareTimestamps({-1, 999999999}, {0, 0}), 0);
  EXPECT_LT(CompareDurations(D("200s"), D("300s")), 0);
  EXPECT_EQ(CompareDurations(D("60m"), D("1h")), 0);
  EXPECT_LT(CompareDurations(D("-1.5s"), D("-1s")), 0);
  EXPECT_GT(CompareDurations(D("1ns"), D("-1ns")), 0);
}

TEST(TimestampFieldTest, Utc) {
  // conformance timestamp_selectors.
  EXPECT_EQ(IntOf(TimestampField(TimeField::kDate, kFriday, nullptr)), 13);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kDayOfMonth, kFriday, nullptr)),
            12);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kDayOfWeek, kFriday, nullptr)), 5);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kDayOfYear, kFriday, nullptr)), 43);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kFullYear, kFriday, nullptr)),
            2009);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kHours, kFriday, nullptr)), 23);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kMinutes, kFriday, nullptr)), 31);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kMonth, kFriday, nullptr)), 1);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kSeconds, kFriday, nullptr)), 30);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kMilliseconds,
                                 T("2009-02-13T23:31:20.123456789Z"), nullptr)),
            123);
  // Sunday is 0; 1 January is day 0; 31 December of a leap year is day 365.
  EXPECT_EQ(IntOf(TimestampField(TimeField::kDayOfWeek,
                                 T("2009-02-15T12:00:00Z"), nullptr)),
            0);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kDayOfWeek,
                                 T("2009-02-14T12:00:00Z"), nullptr)),
            6);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kDayOfYear,
                                 T("2009-01-01T00:00:00Z"), nullptr)),
            0);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kDayOfYear,
                                 T("2008-12-31T00:00:00Z"), nullptr)),
            365);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kFullYear,
                                 T("0001-01-01T00:00:00Z"), nullptr)),
            1);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kMonth, T("9999-12-31T23:59:59Z"),
                                 nullptr)),
            11);
  EXPECT_EQ(IntOf(TimestampField(TimeField::kMilliseconds,
                                 T("1969-12-31T23:59:59.999Z"), nullptr)),
            999);
}

TEST(TimestampFieldTest, TimeZones) {
  auto field = [](TimeField f, Timestamp t, const char* tz) {
    Value zone = Value::BorrowedString(tz);
    return TimestampField(f, t, &zone);
  };
  const Timestamp early = T("2009-02-13T02:00:00Z");
  // conformance timestamp_selectors_tz.
  EXPECT_EQ(IntOf(field(TimeField::kDate, kFriday, "Australia/Sydney")), 14);
  EXPECT_EQ(IntOf(field(TimeField::kDayOfMonth, kFriday, "US/Central")), 12);
  EXPECT_EQ(IntOf(field(TimeField::kDayOfMonth, kFriday, "+11:00")), 13);
  EXPECT_EQ(IntOf(field(TimeField::kDayOfMonth, early, "-02:30")), 11);
  EXPECT_EQ(IntOf(field(TimeField::kDayOfMonth, early, "America/St_Johns")),
            11);
  EXPECT_EQ(IntOf(field(TimeField::kDayOfWeek, kFriday, "UTC")), 5);
  EXPECT_EQ(IntOf(field(TimeField::kDayOfYear, kFriday, "US/Central")), 43);
  EXPECT_EQ(IntOf(field(TimeField::kFullYear, kFriday, "-09:30")), 2009);
  EXPECT_EQ(IntOf(field(TimeField::kHours, kFriday, "02:00")), 1);
  EXPECT_EQ(IntOf(field(TimeField::kMinutes, kFriday, "Asia/Kathmandu")), 16);
  EXPECT_EQ(IntOf(field(TimeField::kMonth, kFriday, "UTC")), 1);
  EXPECT_EQ(IntOf(field(TimeField::kSeconds, kFriday, "-00:00")), 30);
  // Daylight saving time: Rome is +01:00 in winter, +02:00 in summer.
  EXPECT_EQ(
      IntOf(field(TimeField::kHours, T("2024-01-15T12:00:00Z"), "Europe/Rome")),
      13);
  EXPECT_EQ(
      IntOf(field(TimeField::kHours, T("2024-07-15T12:00:00Z"), "Europe/Rome")),
      14);
  EXPECT_EQ(
      IntOf(field(TimeField::kFullYear, T("2009-12-31T23:30:00Z"), "+01:00")),
      2010);
  EXPECT_EQ(IntOf(field(TimeField::kMilliseconds, T("2009-12-31T23:30:00.250Z"),
                        "Asia/Kathmandu")),
            250);
}

TEST(TimestampFieldTest, BadTimeZones) {
  for (const char* bad :
       {"Mars/Olympus_Mons", "", "localtime", "../../etc/passwd",
        "/etc/localtime", "Europe//Rome", "Europe/Rome ", "Europe/./Rome"}) {
    Value zone = Value::BorrowedString(bad);
    EXPECT_TRUE(IsErrorWith(TimestampField(TimeField::kHours, kFriday, &zone),
                            "unknown time zone"))
        << bad;
  }
  for (const char* bad :
       {"+2:00", "+02:0", "+24:00", "+02:60", "02:00:00", "+0a:00", ":"}) {
    Value zone = Value::BorrowedString(bad);
    EXPECT_TRUE(IsErrorWith(TimestampField(TimeField::kHours, kFriday, &zone),
                            "invalid time zone offset"))
        << bad;
  }
  Value not_string = Value::Int(2);
  EXPECT_TRUE(
      IsErrorWith(TimestampField(TimeField::kHours, kFriday, &not_string),
                  "time zone must be a string"));
}

TEST(DurationFieldTest, WholeUnitsAndMilliseconds) {
  // conformance duration_converters.
  EXPECT_EQ(IntOf(DurationField(TimeField::kHours, D("10000s"))), 2);
  EXPECT_EQ(IntOf(DurationField(TimeField::kMilliseconds, {123, 321456789})),
            321);
  EXPECT_EQ(IntOf(DurationField(TimeField::kMinutes, D("3730s"))), 62);
  EXPECT_EQ(IntOf(DurationField(TimeField::kSeconds, D("3730s"))), 3730);
  // Negative durations truncate toward zero.
  EXPECT_EQ(IntOf(DurationField(TimeField::kHours, D("-5400s"))), -1);
  EXPECT_EQ(IntOf(DurationField(TimeField::kSeconds, D("-1.5s"))), -1);
  EXPECT_EQ(IntOf(DurationField(TimeField::kMilliseconds, D("-1.5s"))), -500);
  EXPECT_TRUE(IsErrorWith(DurationField(TimeField::kFullYear, D("1s")),
                          "no matching overload"));
  EXPECT_TRUE(IsErrorWith(DurationField(TimeField::kDayOfWeek, D("1s")),
                          "no matching overload"));
}

}  // namespace
}  // namespace tappa::cel
