// The type conversions int(), uint(), double(), string(), bytes(), bool(),
// timestamp() and duration(), and string(double)'s number formatting.
//
// Text forms follow cel-go, which follows Go's strconv: int("+5") is 5,
// int("0x10") and int(" 5") are errors, double("1e3") is 1000.

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "rules/cel/stdlib.h"
#include "rules/cel/value.h"

namespace tappa::cel {
namespace {

// CEL's wording for conversions out of the target's range (the conformance
// suite expects "range").
constexpr absl::string_view kRangeError = "range error";

// 2^63 and 2^64 are exact doubles; every double in [-2^63, 2^63) truncates to
// an int64 and every double in (-1, 2^64) to a uint64.
constexpr double kTwoTo63 = 9223372036854775808.0;
constexpr double kTwoTo64 = 18446744073709551616.0;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

Value BadText(absl::string_view type, absl::string_view text) {
  return Value::Error(absl::StrCat("cannot convert \"", absl::CHexEscape(text),
                                   "\" to ", type));
}

// Go's strconv.ParseUint(text, 10, 64): decimal digits only, no sign.
// Returns false on bad syntax; sets *overflow when the digits exceed uint64.
bool ParseDecimalUint(absl::string_view text, uint64_t* out, bool* overflow) {
  *overflow = false;
  if (text.empty()) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (!IsDigit(c)) return false;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      *overflow = true;  // keep scanning: bad syntax still wins
      continue;
    }
    if (!*overflow) v = v * 10 + digit;
  }
  *out = v;
  return true;
}

// Go's strconv.ParseFloat syntax for the forms CEL users write: decimal
// ("1", "-1.5", ".5", "5.", "1e3", "1E-3"), hexadecimal with a binary
// exponent ("0x1.8p1"), and case-insensitive "inf", "infinity" (with an
// optional sign) and "nan". Validated here, converted by strtod, whose
// locale sensitivity cannot matter for text already validated as ASCII
// digits and '.' (the program never calls setlocale).
bool IsGoFloatSyntax(absl::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  absl::string_view rest = s.substr(i);
  if (absl::EqualsIgnoreCase(rest, "inf") ||
      absl::EqualsIgnoreCase(rest, "infinity")) {
    return true;
  }
  if (absl::EqualsIgnoreCase(s, "nan")) return true;  // no sign, as Go
  bool hex =
      rest.size() >= 2 && rest[0] == '0' && (rest[1] == 'x' || rest[1] == 'X');
  if (hex) i += 2;
  auto is_mantissa_digit = [hex](char c) {
    return hex ? absl::ascii_isxdigit(static_cast<unsigned char>(c))
               : IsDigit(c);
  };
  bool digits = false;
  while (i < s.size() && is_mantissa_digit(s[i])) {
    ++i;
    digits = true;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_mantissa_digit(s[i])) {
      ++i;
      digits = true;
    }
  }
  if (!digits) return false;
  char exp_lower = hex ? 'p' : 'e';
  if (i < s.size() &&
      absl::ascii_tolower(static_cast<unsigned char>(s[i])) == exp_lower) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    bool exp_digits = false;
    while (i < s.size() && IsDigit(s[i])) {
      ++i;
      exp_digits = true;
    }
    if (!exp_digits) return false;
  } else if (hex) {
    return false;  // Go requires the 'p' exponent in a hexadecimal float
  }
  return i == s.size();
}

Value ParseDoubleText(absl::string_view text) {
  if (!IsGoFloatSyntax(text)) return BadText("double", text);
  std::string buf(text);  // strtod needs a terminator
  errno = 0;
  char* end = nullptr;
  double d = std::strtod(buf.c_str(), &end);
  if (end != buf.c_str() + buf.size()) return BadText("double", text);
  // Overflow is an error as in Go (ErrRange with +-Inf); underflow to zero
  // or a subnormal is not (Go returns the nearest value).
  if (errno == ERANGE && std::isinf(d)) return Value::StaticError(kRangeError);
  return Value::Double(d);
}

}  // namespace

Value ToInt(const Value& v) {
  switch (v.kind()) {
    case Kind::kInt:
      return v;
    case Kind::kUint:
      if (v.uint_value() >
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Value::StaticError(kRangeError);
      }
      return Value::Int(static_cast<int64_t>(v.uint_value()));
    case Kind::kDouble: {
      double d = v.double_value();
      // Written so that NaN fails the test.
      if (!(d >= -kTwoTo63 && d < kTwoTo63)) {
        return Value::StaticError(kRangeError);
      }
      return Value::Int(static_cast<int64_t>(d));  // truncates toward zero
    }
    case Kind::kString: {
      absl::string_view text = v.string_value();
      bool negative = false;
      absl::string_view digits = text;
      if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
        negative = digits[0] == '-';
        digits.remove_prefix(1);
      }
      uint64_t magnitude;
      bool overflow;
      if (!ParseDecimalUint(digits, &magnitude, &overflow)) {
        return BadText("int", text);
      }
      uint64_t limit =
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) +
          (negative ? 1 : 0);
      if (overflow || magnitude > limit) return Value::StaticError(kRangeError);
      if (negative) {
        // -magnitude computed in unsigned arithmetic, valid down to -2^63.
        return Value::Int(static_cast<int64_t>(0 - magnitude));
      }
      return Value::Int(static_cast<int64_t>(magnitude));
    }
    case Kind::kTimestamp:
      return Value::Int(v.timestamp_value().seconds);
    case Kind::kError:
      return v;
    default:
      return Value::StaticError("no matching overload for 'int'");
  }
}

Value ToUint(const Value& v) {
  switch (v.kind()) {
    case Kind::kUint:
      return v;
    case Kind::kInt:
      if (v.int_value() < 0) return Value::StaticError(kRangeError);
      return Value::Uint(static_cast<uint64_t>(v.int_value()));
    case Kind::kDouble: {
      double d = v.double_value();
      // (-1, 2^64) truncates into range; NaN fails the test.
      if (!(d > -1.0 && d < kTwoTo64)) return Value::StaticError(kRangeError);
      return Value::Uint(static_cast<uint64_t>(d));
    }
    case Kind::kString: {
      uint64_t u;
      bool overflow;
      if (!ParseDecimalUint(v.string_value(), &u, &overflow)) {
        return BadText("uint", v.string_value());
      }
      if (overflow) return Value::StaticError(kRangeError);
      return Value::Uint(u);
    }
    case Kind::kError:
      return v;
    default:
      return Value::StaticError("no matching overload for 'uint'");
  }
}

Value ToDouble(const Value& v) {
  switch (v.kind()) {
    case Kind::kDouble:
      return v;
    case Kind::kInt:
      return Value::Double(static_cast<double>(v.int_value()));
    case Kind::kUint:
      return Value::Double(static_cast<double>(v.uint_value()));
    case Kind::kString:
      return ParseDoubleText(v.string_value());
    case Kind::kError:
      return v;
    default:
      return Value::StaticError("no matching overload for 'double'");
  }
}

Value ToString(const Value& v) {
  switch (v.kind()) {
    case Kind::kString:
      return v;
    case Kind::kInt:
      return Value::String(absl::StrCat(v.int_value()));
    case Kind::kUint:
      return Value::String(absl::StrCat(v.uint_value()));
    case Kind::kDouble:
      return Value::String(FormatDouble(v.double_value()));
    case Kind::kBool:
      return Value::BorrowedString(v.bool_value() ? "true" : "false");
    case Kind::kBytes:
      if (!IsValidUtf8(v.bytes_value())) {
        return Value::StaticError("invalid UTF-8 in bytes converted to string");
      }
      // Owned or borrowed alike, the same storage serves as a string.
      return v.IsOwned() ? Value::String(v.bytes_value())
                         : Value::BorrowedString(v.bytes_value());
    case Kind::kTimestamp:
      return Value::String(TimestampToString(v.timestamp_value()));
    case Kind::kDuration:
      return Value::String(DurationToString(v.duration_value()));
    case Kind::kError:
      return v;
    default:
      return Value::StaticError("no matching overload for 'string'");
  }
}

Value ToBytes(const Value& v) {
  switch (v.kind()) {
    case Kind::kBytes:
      return v;
    case Kind::kString:
      return v.IsOwned() ? Value::Bytes(v.string_value())
                         : Value::BorrowedBytes(v.string_value());
    case Kind::kError:
      return v;
    default:
      return Value::StaticError("no matching overload for 'bytes'");
  }
}

Value ToBool(const Value& v) {
  switch (v.kind()) {
    case Kind::kBool:
      return v;
    case Kind::kString: {
      absl::string_view s = v.string_value();
      if (s == "true" || s == "True" || s == "TRUE" || s == "t" || s == "T" ||
          s == "1") {
        return Value::Bool(true);
      }
      if (s == "false" || s == "False" || s == "FALSE" || s == "f" ||
          s == "F" || s == "0") {
        return Value::Bool(false);
      }
      return BadText("bool", s);
    }
    case Kind::kError:
      return v;
    default:
      return Value::StaticError("no matching overload for 'bool'");
  }
}

Value ToTimestamp(const Value& v) {
  switch (v.kind()) {
    case Kind::kTimestamp:
      return v;
    case Kind::kInt:
      if (v.int_value() < kMinTimestampSeconds ||
          v.int_value() > kMaxTimestampSeconds) {
        return Value::StaticError("timestamp out of range");
      }
      return Value::FromTimestamp({v.int_value(), 0});
    case Kind::kString: {
      absl::StatusOr<Timestamp> t = ParseTimestamp(v.string_value());
      if (!t.ok()) return Value::Error(t.status().message());
      return Value::FromTimestamp(*t);
    }
    case Kind::kError:
      return v;
    default:
      return Value::StaticError("no matching overload for 'timestamp'");
  }
}

Value ToDuration(const Value& v) {
  switch (v.kind()) {
    case Kind::kDuration:
      return v;
    case Kind::kString: {
      absl::StatusOr<Duration> d = ParseDuration(v.string_value());
      if (!d.ok()) return Value::Error(d.status().message());
      return Value::FromDuration(*d);
    }
    case Kind::kError:
      return v;
    default:
      return Value::StaticError("no matching overload for 'duration'");
  }
}

std::string FormatDouble(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
  // std::to_chars in scientific form yields the shortest digits that
  // round-trip, "d.ddde[+-]XX"; re-lay them out as Go's %g does.
  char buf[64];
  std::to_chars_result r =
      std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  absl::string_view sci(buf, r.ptr - buf);
  std::string out;
  if (!sci.empty() && sci[0] == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exp = 0;
  std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+' ? 1 : 0),
                  sci.data() + sci.size(), exp);
  if (exp < -4 || exp >= 6) {
    out.push_back(digits[0]);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1, std::string::npos);
    }
    out.push_back('e');
    out.push_back(exp < 0 ? '-' : '+');
    int magnitude = exp < 0 ? -exp : exp;
    if (magnitude < 10) out.push_back('0');
    absl::StrAppend(&out, magnitude);
    return out;
  }
  if (exp < 0) {
    out.append("0.");
    out.append(static_cast<size_t>(-exp - 1), '0');
    out.append(digits);
    return out;
  }
  // 0 <= exp < 6: the point falls inside the digits or after them.
  size_t int_len = static_cast<size_t>(exp) + 1;
  if (digits.size() <= int_len) {
    out.append(digits);
    out.append(int_len - digits.size(), '0');
  } else {
    out.append(digits, 0, int_len);
    out.push_back('.');
    out.append(digits, int_len, std::string::npos);
  }
  return out;
}

}  // namespace tappa::cel
