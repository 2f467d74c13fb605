// Conversions, with expected values from the CEL specification and its
// conformance suite (tests/simple/testdata/conversions.textproto), and from
// Go's strconv where CEL defers to it (cel-go).
#include <cmath>
#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "rules/cel/stdlib.h"
#include "rules/cel/value.h"

namespace tappa::cel {
namespace {

Value S(const char* s) { return Value::BorrowedString(s); }

::testing::AssertionResult IsInt(const Value& v, int64_t want) {
  if (!v.IsInt()) return ::testing::AssertionFailure() << v.DebugString();
  if (v.int_value() != want) {
    return ::testing::AssertionFailure() << v.int_value() << " != " << want;
  }
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult IsUint(const Value& v, uint64_t want) {
  if (!v.IsUint()) return ::testing::AssertionFailure() << v.DebugString();
  if (v.uint_value() != want) {
    return ::testing::AssertionFailure() << v.uint_value() << " != " << want;
  }
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult IsDouble(const Value& v, double want) {
  if (!v.IsDouble()) return ::testing::AssertionFailure() << v.DebugString();
  if (!(v.double_value() == want) ||
      std::signbit(v.double_value()) != std::signbit(want)) {
    return ::testing::AssertionFailure() << v.double_value() << " != " << want;
  }
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult IsString(const Value& v, const std::string& want) {
  if (!v.IsString()) return ::testing::AssertionFailure() << v.DebugString();
  if (v.string_value() != want) {
    return ::testing::AssertionFailure()
           << "\"" << v.string_value() << "\" != \"" << want << "\"";
  }
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult IsBool(const Value& v, bool want) {
  if (!v.IsBool() || v.bool_value() != want) {
    return ::testing::AssertionFailure() << v.DebugString();
  }
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult IsError(const Value& v, const std::string& part) {
  if (!v.IsError()) return ::testing::AssertionFailure() << v.DebugString();
  if (v.error_message().find(part) == absl::string_view::npos) {
    return ::testing::AssertionFailure()
           << "\"" << v.error_message() << "\" lacks \"" << part << "\"";
  }
  return ::testing::AssertionSuccess();
}

TEST(ToIntTest, FromIntUintDouble) {
  EXPECT_TRUE(IsInt(ToInt(Value::Int(-5)), -5));
  EXPECT_TRUE(IsInt(ToInt(Value::Uint(42)), 42));
  EXPECT_TRUE(IsInt(ToInt(Value::Uint(0)), 0));
  EXPECT_TRUE(
      IsInt(ToInt(Value::Uint(9223372036854775807u)), 9223372036854775807));
  EXPECT_TRUE(IsError(ToInt(Value::Uint(9223372036854775808u)), "range"));
  EXPECT_TRUE(
      IsError(ToInt(Value::Uint(18446744073709551615u)), "range error"));
  // Truncation toward zero (conformance double_truncate & co).
  EXPECT_TRUE(IsInt(ToInt(Value::Double(1.9)), 1));
  EXPECT_TRUE(IsInt(ToInt(Value::Double(-7.9)), -7));
  EXPECT_TRUE(IsInt(ToInt(Value::Double(11.5)), 11));
  EXPECT_TRUE(IsInt(ToInt(Value::Double(-3.5)), -3));
  EXPECT_TRUE(IsInt(ToInt(Value::Double(-123.456)), -123));
  EXPECT_TRUE(IsInt(ToInt(Value::Double(-0.0)), 0));
}

TEST(ToIntTest, DoubleRangeIsExact) {
  // -2^63 is an int64; 2^63 is not. The largest double below 2^63 is
  // 2^63 - 1024.
  EXPECT_TRUE(IsInt(ToInt(Value::Double(-9223372036854775808.0)),
                    std::numeric_limits<int64_t>::min()));
  EXPECT_TRUE(
      IsInt(ToInt(Value::Double(9223372036854774784.0)), 9223372036854774784));
  EXPECT_TRUE(IsError(ToInt(Value::Double(9223372036854775808.0)), "range"));
  EXPECT_TRUE(IsError(ToInt(Value::Double(-9223372036854777856.0)), "range"));
  EXPECT_TRUE(IsError(ToInt(Value::Double(1e99)), "range"));
  EXPECT_TRUE(IsError(ToInt(Value::Double(std::nan(""))), "range"));
  EXPECT_TRUE(IsError(ToInt(Value::Double(HUGE_VAL)), "range"));
  EXPECT_TRUE(IsError(ToInt(Value::Double(-HUGE_VAL)), "range"));
}

TEST(ToIntTest, FromString) {
  EXPECT_TRUE(IsInt(ToInt(S("987")), 987));
  EXPECT_TRUE(IsInt(ToInt(S("-987")), -987));
  EXPECT_TRUE(IsInt(ToInt(S("+5")), 5));
  EXPECT_TRUE(IsInt(ToInt(S("007")), 7));
  EXPECT_TRUE(IsInt(ToInt(S("9223372036854775807")), 9223372036854775807));
  EXPECT_TRUE(IsInt(ToInt(S("-9223372036854775808")),
                    std::numeric_limits<int64_t>::min()));
  EXPECT_TRUE(IsError(ToInt(S("9223372036854775808")), "range"));
  EXPECT_TRUE(IsError(ToInt(S("-9223372036854775809")), "range"));
  EXPECT_TRUE(IsError(ToInt(S("99999999999999999999999")), "range"));
  // Base 10 only, no blanks, no separators, no fraction (Go's ParseInt).
  for (const char* bad : {"", "-", "+", "0x10", " 5", "5 ", "1_000", "1.0",
                          "1e3", "--1", "abc", "١"}) {
    EXPECT_TRUE(IsError(ToInt(S(bad)), "cannot convert")) << bad;
  }
}

TEST(ToIntTest, FromTimestampAndOthers) {
  // conversions.textproto "timestamp": 2004-09-16T23:59:59Z.
  EXPECT_TRUE(IsInt(ToInt(Value::FromTimestamp({1095379199, 0})), 1095379199));
  EXPECT_TRUE(IsInt(ToInt(Value::FromTimestamp({-1, 999999999})), -1));
  EXPECT_TRUE(
      IsError(ToInt(Value::Bool(true)), "no matching overload for 'int'"));
  EXPECT_TRUE(
      IsError(ToInt(Value::FromDuration({1, 0})), "no matching overload"));
  EXPECT_TRUE(IsError(ToInt(Value::Null()), "no matching overload"));
  EXPECT_TRUE(IsError(ToInt(Value::StaticError("boom")), "boom"));
}

TEST(ToUintTest, All) {
  EXPECT_TRUE(IsUint(ToUint(Value::Int(1729)), 1729));
  EXPECT_TRUE(IsUint(ToUint(Value::Int(0)), 0));
  EXPECT_TRUE(IsError(ToUint(Value::Int(-1)), "range"));
  EXPECT_TRUE(IsUint(ToUint(Value::Uint(7)), 7));
  EXPECT_TRUE(IsUint(ToUint(Value::Double(3.14159265)), 3));
  EXPECT_TRUE(IsUint(ToUint(Value::Double(1.9)), 1));
  EXPECT_TRUE(IsUint(ToUint(Value::Double(25.5)), 25));
  EXPECT_TRUE(IsUint(ToUint(Value::Double(1e19)), 10000000000000000000u));
  EXPECT_TRUE(IsUint(ToUint(Value::Double(-0.5)), 0));  // truncates to 0
  EXPECT_TRUE(IsUint(ToUint(Value::Double(18446744073709549568.0)),
                     18446744073709549568u));  // largest double < 2^64
  EXPECT_TRUE(IsError(ToUint(Value::Double(18446744073709551616.0)), "range"));
  EXPECT_TRUE(IsError(ToUint(Value::Double(6.022e23)), "range"));
  EXPECT_TRUE(IsError(ToUint(Value::Double(-1.0)), "range"));
  EXPECT_TRUE(IsError(ToUint(Value::Double(std::nan(""))), "range"));
  EXPECT_TRUE(IsUint(ToUint(S("300")), 300));
  EXPECT_TRUE(IsUint(ToUint(S("18446744073709551615")), 18446744073709551615u));
  EXPECT_TRUE(IsError(ToUint(S("18446744073709551616")), "range"));
  for (const char* bad : {"", "-1", "+1", "1u", "0x1", " 1"}) {
    EXPECT_TRUE(IsError(ToUint(S(bad)), "cannot convert")) << bad;
  }
  EXPECT_TRUE(
      IsError(ToUint(Value::Bool(false)), "no matching overload for 'uint'"));
}

TEST(ToDoubleTest, FromNumbers) {
  EXPECT_TRUE(IsDouble(ToDouble(Value::Int(0)), 0.0));
  EXPECT_TRUE(IsDouble(ToDouble(Value::Int(1000000000000)), 1e12));
  EXPECT_TRUE(IsDouble(ToDouble(Value::Int(-1000000000000000)), -1e15));
  EXPECT_TRUE(IsDouble(ToDouble(Value::Int(9223372036854775807)),
                       9.223372036854775807e18));
  EXPECT_TRUE(IsDouble(ToDouble(Value::Uint(123)), 123.0));
  EXPECT_TRUE(IsDouble(ToDouble(Value::Uint(18446744073709551615u)),
                       1.8446744073709551615e19));
  EXPECT_TRUE(IsDouble(ToDouble(Value::Double(2.5)), 2.5));
}

TEST(ToDoubleTest, FromString) {
  EXPECT_TRUE(IsDouble(ToDouble(S("0")), 0.0));
  EXPECT_TRUE(IsDouble(ToDouble(S("0.0")), 0.0));
  EXPECT_TRUE(IsDouble(ToDouble(S("-0.0")), -0.0));
  EXPECT_TRUE(IsDouble(ToDouble(S("123")), 123.0));
  EXPECT_TRUE(IsDouble(ToDouble(S("123.456")), 123.456));
  EXPECT_TRUE(IsDouble(ToDouble(S("-987.654")), -987.654));
  EXPECT_TRUE(IsDouble(ToDouble(S("6.02214e23")), 6.02214e23));
  EXPECT_TRUE(IsDouble(ToDouble(S("1.38e-23")), 1.38e-23));
  EXPECT_TRUE(IsDouble(ToDouble(S("-84.32e7")), -8.432e8));
  EXPECT_TRUE(IsDouble(ToDouble(S("-5.43e-21")), -5.43e-21));
  EXPECT_TRUE(IsDouble(ToDouble(S("1e3")), 1000.0));
  EXPECT_TRUE(IsDouble(ToDouble(S("1E+3")), 1000.0));
  EXPECT_TRUE(IsDouble(ToDouble(S(".5")), 0.5));
  EXPECT_TRUE(IsDouble(ToDouble(S("5.")), 5.0));
  EXPECT_TRUE(IsDouble(ToDouble(S("+1.5")), 1.5));
  EXPECT_TRUE(IsDouble(ToDouble(S("0x1.8p1")), 3.0));
  EXPECT_TRUE(IsDouble(ToDouble(S("Infinity")), HUGE_VAL));
  EXPECT_TRUE(IsDouble(ToDouble(S("-Infinity")), -HUGE_VAL));
  EXPECT_TRUE(IsDouble(ToDouble(S("+inf")), HUGE_VAL));
  EXPECT_TRUE(IsDouble(ToDouble(S("1e-400")), 0.0));  // underflow is fine
  Value nan = ToDouble(S("NaN"));
  ASSERT_TRUE(nan.IsDouble());
  EXPECT_TRUE(std::isnan(nan.double_value()));
  EXPECT_TRUE(IsError(ToDouble(S("1e400")), "range"));
  EXPECT_TRUE(IsError(ToDouble(S("-1e400")), "range"));
  for (const char* bad : {"", ".", "e3", "1e", "1e+", " 1", "1 ", "1,5",
                          "0x1.8", "0x", "-nan", "infinit", "1_000", "abc"}) {
    EXPECT_TRUE(IsError(ToDouble(S(bad)), "cannot convert")) << bad;
  }
  EXPECT_TRUE(IsError(ToDouble(Value::Bool(true)),
                      "no matching overload for 'double'"));
}

TEST(FormatDoubleTest, GoShortestG) {
  EXPECT_EQ(FormatDouble(0.0), "0");
  EXPECT_EQ(FormatDouble(-0.0), "-0");
  EXPECT_EQ(FormatDouble(1.0), "1");
  EXPECT_EQ(FormatDouble(1.5), "1.5");
  EXPECT_EQ(FormatDouble(-1.5), "-1.5");
  EXPECT_EQ(FormatDouble(123.456), "123.456");
  EXPECT_EQ(FormatDouble(-4.5e-3), "-0.0045");
  EXPECT_EQ(FormatDouble(0.1), "0.1");
  EXPECT_EQ(FormatDouble(0.0001), "0.0001");
  EXPECT_EQ(FormatDouble(0.00001), "1e-05");
  EXPECT_EQ(FormatDouble(0.000001), "1e-06");
  EXPECT_EQ(FormatDouble(123456.0), "123456");
  EXPECT_EQ(FormatDouble(999999.0), "999999");
  EXPECT_EQ(FormatDouble(1e6), "1e+06");
  EXPECT_EQ(FormatDouble(1234567.0), "1.234567e+06");
  EXPECT_EQ(FormatDouble(1e21), "1e+21");
  EXPECT_EQ(FormatDouble(1e100), "1e+100");
  EXPECT_EQ(FormatDouble(1.5e-300), "1.5e-300");
  EXPECT_EQ(FormatDouble(5e-324), "5e-324");
  EXPECT_EQ(FormatDouble(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(FormatDouble(0.30000000000000004), "0.30000000000000004");
  EXPECT_EQ(FormatDouble(std::nan("")), "NaN");
  EXPECT_EQ(FormatDouble(HUGE_VAL), "+Inf");
  EXPECT_EQ(FormatDouble(-HUGE_VAL), "-Inf");
}

TEST(ToStringTest, All) {
  EXPECT_TRUE(IsString(ToString(Value::Int(123)), "123"));
  EXPECT_TRUE(IsString(ToString(Value::Int(-456)), "-456"));
  EXPECT_TRUE(
      IsString(ToString(Value::Int(std::numeric_limits<int64_t>::min())),
               "-9223372036854775808"));
  EXPECT_TRUE(IsString(ToString(Value::Uint(9876)), "9876"));
  EXPECT_TRUE(IsString(ToString(Value::Double(123.456)), "123.456"));
  EXPECT_TRUE(IsString(ToString(Value::Double(-4.5e-3)), "-0.0045"));
  EXPECT_TRUE(IsString(ToString(Value::Double(1e100)), "1e+100"));
  EXPECT_TRUE(IsString(ToString(Value::Bool(true)), "true"));
  EXPECT_TRUE(IsString(ToString(Value::Bool(false)), "false"));
  EXPECT_TRUE(IsString(ToString(S("s")), "s"));
  EXPECT_TRUE(IsString(ToString(Value::BorrowedBytes("abc")), "abc"));
  EXPECT_TRUE(IsString(ToString(Value::Bytes("\xc3\xbf")), "\xc3\xbf"));
  EXPECT_TRUE(
      IsError(ToString(Value::BorrowedBytes(absl::string_view("\0\xff", 2))),
              "invalid UTF-8"));
  EXPECT_TRUE(IsString(ToString(Value::FromTimestamp({1234567890, 0})),
                       "2009-02-13T23:31:30Z"));
  EXPECT_TRUE(
      IsString(ToString(Value::FromTimestamp({253402300799, 999999999})),
               "9999-12-31T23:59:59.999999999Z"));
  EXPECT_TRUE(IsString(ToString(Value::FromTimestamp({1234567890, 500000000})),
                       "2009-02-13T23:31:30.5Z"));
  EXPECT_TRUE(
      IsString(ToString(Value::FromDuration({1000000, 0})), "1000000s"));
  EXPECT_TRUE(IsString(ToString(Value::FromDuration({1, 500000000})), "1.5s"));
  EXPECT_TRUE(
      IsString(ToString(Value::FromDuration({0, -1})), "-0.000000001s"));
  EXPECT_TRUE(IsString(ToString(Value::FromDuration({-9223372036, -854775808})),
                       "-9223372036.854775808s"));
  EXPECT_TRUE(
      IsError(ToString(Value::Null()), "no matching overload for 'string'"));
  EXPECT_TRUE(
      IsError(ToString(Value::TypeOf(Kind::kInt)), "no matching overload"));
}

TEST(ToBytesTest, All) {
  Value b = ToBytes(S("abc"));
  ASSERT_TRUE(b.IsBytes());
  EXPECT_EQ(b.bytes_value(), "abc");
  b = ToBytes(Value::String("\xc3\xbf"));  // 'ÿ' is two bytes in UTF-8
  ASSERT_TRUE(b.IsBytes());
  EXPECT_EQ(b.bytes_value(), "\xc3\xbf");
  b = ToBytes(S(""));
  ASSERT_TRUE(b.IsBytes());
  EXPECT_EQ(b.bytes_value(), "");
  EXPECT_TRUE(ToBytes(Value::BorrowedBytes("x")).IsBytes());
  EXPECT_TRUE(
      IsError(ToBytes(Value::Int(1)), "no matching overload for 'bytes'"));
}

TEST(ToBoolTest, All) {
  for (const char* t : {"true", "True", "TRUE", "t", "T", "1"}) {
    EXPECT_TRUE(IsBool(ToBool(S(t)), true)) << t;
  }
  for (const char* f : {"false", "False", "FALSE", "f", "F", "0"}) {
    EXPECT_TRUE(IsBool(ToBool(S(f)), false)) << f;
  }
  for (const char* bad : {"", "yes", "tRUE", "TrUe", " true", "2", "no"}) {
    EXPECT_TRUE(IsError(ToBool(S(bad)), "cannot convert")) << bad;
  }
  EXPECT_TRUE(IsBool(ToBool(Value::Bool(true)), true));
  EXPECT_TRUE(
      IsError(ToBool(Value::Int(1)), "no matching overload for 'bool'"));
}

TEST(ToTimestampTest, All) {
  Value t = ToTimestamp(S("2009-02-13T23:31:30Z"));
  ASSERT_TRUE(t.IsTimestamp());
  EXPECT_EQ(t.timestamp_value(), (Timestamp{1234567890, 0}));
  t = ToTimestamp(Value::Int(1234567890));
  ASSERT_TRUE(t.IsTimestamp());
  EXPECT_EQ(t.timestamp_value(), (Timestamp{1234567890, 0}));
  EXPECT_TRUE(ToTimestamp(Value::Int(kMinTimestampSeconds)).IsTimestamp());
  EXPECT_TRUE(ToTimestamp(Value::Int(kMaxTimestampSeconds)).IsTimestamp());
  EXPECT_TRUE(
      IsError(ToTimestamp(Value::Int(kMinTimestampSeconds - 1)), "range"));
  EXPECT_TRUE(
      IsError(ToTimestamp(Value::Int(kMaxTimestampSeconds + 1)), "range"));
  EXPECT_TRUE(IsError(ToTimestamp(S("0000-01-01T00:00:00Z")), "range"));
  EXPECT_TRUE(
      IsError(ToTimestamp(S("10000-01-01T00:00:00Z")), "invalid timestamp"));
  EXPECT_TRUE(IsError(ToTimestamp(S("yesterday")), "invalid timestamp"));
  EXPECT_TRUE(IsError(ToTimestamp(Value::Double(1.0)),
                      "no matching overload for 'timestamp'"));
}

TEST(ToDurationTest, All) {
  Value d = ToDuration(S("1000000s"));
  ASSERT_TRUE(d.IsDuration());
  EXPECT_EQ(d.duration_value(), (Duration{1000000, 0}));
  d = ToDuration(S("1h30m"));
  ASSERT_TRUE(d.IsDuration());
  EXPECT_EQ(d.duration_value(), (Duration{5400, 0}));
  // conformance duration_range/from_string_over and _under.
  EXPECT_TRUE(IsError(ToDuration(S("320000000000s")), "duration out of range"));
  EXPECT_TRUE(
      IsError(ToDuration(S("-320000000000s")), "duration out of range"));
  // CEL's range is int64 nanoseconds (cel-go), inclusive at both ends.
  d = ToDuration(S("9223372036854775807ns"));
  ASSERT_TRUE(d.IsDuration());
  EXPECT_EQ(d.duration_value(), (Duration{9223372036, 854775807}));
  d = ToDuration(S("-9223372036.854775808s"));
  ASSERT_TRUE(d.IsDuration());
  EXPECT_EQ(d.duration_value(), (Duration{-9223372036, -854775808}));
  EXPECT_TRUE(
      IsError(ToDuration(S("9223372036854775808ns")), "duration out of range"));
  EXPECT_TRUE(IsError(ToDuration(S("-9223372036.854775809s")),
                      "duration out of range"));
  EXPECT_TRUE(IsError(ToDuration(S("315576000000s")), "duration out of range"));
  EXPECT_TRUE(IsError(ToDuration(S("1d")), "unknown unit"));
  EXPECT_TRUE(IsError(ToDuration(Value::Int(1)),
                      "no matching overload for 'duration'"));
}

}  // namespace
}  // namespace tappa::cel
