#include "rules/cel/operators.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rules/cel/containers.h"
#include "rules/cel/stdlib.h"

namespace tappa::cel {
namespace {

constexpr char kNoAdd[] = "no matching overload for '_+_'";
constexpr char kNoSubtract[] = "no matching overload for '_-_'";
constexpr char kNoMultiply[] = "no matching overload for '_*_'";
constexpr char kNoDivide[] = "no matching overload for '_/_'";
constexpr char kNoModulo[] = "no matching overload for '_%_'";
constexpr char kNoNegate[] = "no matching overload for '-_'";
constexpr char kNoIndex[] = "no matching overload for '_[_]'";
constexpr char kNoIn[] = "no matching overload for '@in'";
constexpr char kNoSize[] = "no matching overload for 'size'";
constexpr char kUnsupportedIndex[] = "unsupported index value";
constexpr char kUnsupportedKey[] = "unsupported key type";

// 2^63 and 2^64 as doubles (exactly representable).
constexpr double kTwo63 = 9223372036854775808.0;
constexpr double kTwo64 = 18446744073709551616.0;

template <typename T>
Ordering Cmp(T a, T b) {
  if (a < b) return Ordering::kLess;
  if (b < a) return Ordering::kGreater;
  return Ordering::kEqual;
}

Ordering Reverse(Ordering o) {
  if (o == Ordering::kLess) return Ordering::kGreater;
  if (o == Ordering::kGreater) return Ordering::kLess;
  return o;
}

Ordering CompareIntUint(int64_t i, uint64_t u) {
  if (i < 0) return Ordering::kLess;
  return Cmp(static_cast<uint64_t>(i), u);
}

// Exact comparison: convert the double's integral part to the integer type
// (only when it is in range, so the cast is defined), then let the fraction
// break a tie. Converting the integer to double instead would round above 2^53.
Ordering CompareIntDouble(int64_t i, double d) {
  if (std::isnan(d)) return Ordering::kUnordered;
  if (d >= kTwo63) return Ordering::kLess;
  if (d < -kTwo63) return Ordering::kGreater;
  const double t = std::trunc(d);
  const int64_t ti = static_cast<int64_t>(t);
  if (i != ti) return Cmp(i, ti);
  if (d > t) return Ordering::kLess;
  if (d < t) return Ordering::kGreater;
  return Ordering::kEqual;
}

Ordering CompareUintDouble(uint64_t u, double d) {
  if (std::isnan(d)) return Ordering::kUnordered;
  if (d >= kTwo64) return Ordering::kLess;
  if (d < 0) return Ordering::kGreater;
  const double t = std::trunc(d);
  const uint64_t tu = static_cast<uint64_t>(t);
  if (u != tu) return Cmp(u, tu);
  if (d > t) return Ordering::kLess;
  return Ordering::kEqual;  // d >= 0 and d == t
}

Ordering CompareNumbers(const Value& a, const Value& b) {
  switch (a.kind()) {
    case Kind::kInt:
      switch (b.kind()) {
        case Kind::kInt:
          return Cmp(a.int_value(), b.int_value());
        case Kind::kUint:
          return CompareIntUint(a.int_value(), b.uint_value());
        case Kind::kDouble:
          return CompareIntDouble(a.int_value(), b.double_value());
        default:
          break;
      }
      break;
    case Kind::kUint:
      switch (b.kind()) {
        case Kind::kInt:
          return Reverse(CompareIntUint(b.int_value(), a.uint_value()));
        case Kind::kUint:
          return Cmp(a.uint_value(), b.uint_value());
        case Kind::kDouble:
          return CompareUintDouble(a.uint_value(), b.double_value());
        default:
          break;
      }
      break;
    case Kind::kDouble:
      switch (b.kind()) {
        case Kind::kInt:
          return Reverse(CompareIntDouble(b.int_value(), a.double_value()));
        case Kind::kUint:
          return Reverse(CompareUintDouble(b.uint_value(), a.double_value()));
        case Kind::kDouble: {
          const double x = a.double_value(), y = b.double_value();
          if (std::isnan(x) || std::isnan(y)) return Ordering::kUnordered;
          return Cmp(x, y);
        }
        default:
          break;
      }
      break;
    default:
      break;
  }
  return Ordering::kIncomparable;
}

// Nanos carry the sign of seconds, so (seconds, nanos) order lexicographically
// for both timestamps and durations.
template <typename T>
Ordering CompareTime(T a, T b) {
  if (a.seconds != b.seconds) return Cmp(a.seconds, b.seconds);
  return Cmp(a.nanos, b.nanos);
}

bool ListsEqual(const ListValue& a, const ListValue& b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  for (size_t i = 0; i < n; ++i) {
    if (!Equal(a.Get(i), b.Get(i))) return false;
  }
  return true;
}

bool MapsEqual(const MapValue& a, const MapValue& b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  Value other;
  for (size_t i = 0; i < n; ++i) {
    if (!b.Find(a.KeyAt(i), &other)) return false;
    if (!Equal(a.ValueAt(i), other)) return false;
  }
  return true;
}

bool IsMapKeyKind(Kind k) {
  return k == Kind::kString || k == Kind::kInt || k == Kind::kUint ||
         k == Kind::kBool || k == Kind::kDouble;
}

Value ConcatStrings(const Value& a, const Value& b, bool bytes,
                    CostBudget& budget) {
  const absl::string_view x = a.string_value(), y = b.string_value();
  const size_t size = x.size() + y.size();
  if (size > kMaxConcatBytes) return Value::StaticError(kResultTooLarge);
  if (!budget.Charge(static_cast<int64_t>(size))) {
    return Value::StaticError(kCostLimitExceeded);
  }
  // Concatenating with an empty operand yields the other operand unchanged
  // (it may be borrowed; no copy needed).
  if (y.empty()) return a;
  if (x.empty()) return b;
  std::string s;
  s.reserve(size);
  s.append(x.data(), x.size());
  s.append(y.data(), y.size());
  return bytes ? Value::Bytes(std::move(s)) : Value::String(std::move(s));
}

Value ConcatLists(const Value& a, const Value& b, CostBudget& budget) {
  const ListValue& x = a.list_value();
  const ListValue& y = b.list_value();
  const size_t size = x.size() + y.size();
  if (size > kMaxConcatElements) return Value::StaticError(kResultTooLarge);
  if (!budget.Charge(static_cast<int64_t>(size))) {
    return Value::StaticError(kCostLimitExceeded);
  }
  if (y.size() == 0) return a;
  if (x.size() == 0) return b;
  std::vector<Value> elements;
  elements.reserve(size);
  for (size_t i = 0; i < x.size(); ++i) elements.push_back(x.Get(i));
  for (size_t i = 0; i < y.size(); ++i) elements.push_back(y.Get(i));
  return Value::OwnedList(new VectorList(std::move(elements)));
}

std::string KeyText(const Value& key) {
  if (key.IsString()) return std::string(key.string_value());
  return key.DebugString();
}

// A list index as a position, or an error value in *error.
bool ListPosition(const Value& index, size_t size, size_t* pos, Value* error) {
  switch (index.kind()) {
    case Kind::kInt:
      if (index.int_value() < 0 ||
          static_cast<uint64_t>(index.int_value()) >= size) {
        *error = Value::StaticError(kIndexOutOfRange);
        return false;
      }
      *pos = static_cast<size_t>(index.int_value());
      return true;
    case Kind::kUint:
      if (index.uint_value() >= size) {
        *error = Value::StaticError(kIndexOutOfRange);
        return false;
      }
      *pos = static_cast<size_t>(index.uint_value());
      return true;
    case Kind::kDouble: {
      const double d = index.double_value();
      if (!std::isfinite(d) || d != std::trunc(d)) {
        *error = Value::StaticError(kUnsupportedIndex);
        return false;
      }
      if (d < 0 || d >= static_cast<double>(size)) {
        *error = Value::StaticError(kIndexOutOfRange);
        return false;
      }
      *pos = static_cast<size_t>(d);
      return true;
    }
    default:
      *error = Value::StaticError(kNoIndex);
      return false;
  }
}

}  // namespace

bool Equal(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) {
    if (a.IsNumber() && b.IsNumber()) {
      return CompareNumbers(a, b) == Ordering::kEqual;
    }
    return false;
  }
  switch (a.kind()) {
    case Kind::kNull:
      return true;
    case Kind::kBool:
      return a.bool_value() == b.bool_value();
    case Kind::kInt:
      return a.int_value() == b.int_value();
    case Kind::kUint:
      return a.uint_value() == b.uint_value();
    case Kind::kDouble:
      return a.double_value() == b.double_value();  // NaN != NaN
    case Kind::kString:
    case Kind::kBytes:
    case Kind::kType:
      return a.string_value() == b.string_value();
    case Kind::kTimestamp:
      return a.timestamp_value() == b.timestamp_value();
    case Kind::kDuration:
      return a.duration_value() == b.duration_value();
    case Kind::kList:
      return &a.list_value() == &b.list_value() ||
             ListsEqual(a.list_value(), b.list_value());
    case Kind::kMap:
      return &a.map_value() == &b.map_value() ||
             MapsEqual(a.map_value(), b.map_value());
    case Kind::kError:
      return false;
  }
  return false;
}

Ordering Compare(const Value& a, const Value& b) {
  if (a.IsNumber()) return CompareNumbers(a, b);
  if (a.kind() != b.kind()) return Ordering::kIncomparable;
  switch (a.kind()) {
    case Kind::kString:
    case Kind::kBytes: {
      // Byte order of UTF-8 is code point order; compare as unsigned bytes.
      const int c = a.string_value().compare(b.string_value());
      return c < 0 ? Ordering::kLess
                   : (c > 0 ? Ordering::kGreater : Ordering::kEqual);
    }
    case Kind::kBool:
      return Cmp(a.bool_value(), b.bool_value());
    case Kind::kTimestamp:
      return CompareTime(a.timestamp_value(), b.timestamp_value());
    case Kind::kDuration:
      return CompareTime(a.duration_value(), b.duration_value());
    default:
      return Ordering::kIncomparable;
  }
}

Value Add(const Value& a, const Value& b, CostBudget& budget) {
  if (a.kind() == b.kind()) {
    switch (a.kind()) {
      case Kind::kInt: {
        int64_t r;
        if (__builtin_add_overflow(a.int_value(), b.int_value(), &r)) {
          return Value::StaticError(kOverflowError);
        }
        return Value::Int(r);
      }
      case Kind::kUint: {
        uint64_t r;
        if (__builtin_add_overflow(a.uint_value(), b.uint_value(), &r)) {
          return Value::StaticError(kOverflowError);
        }
        return Value::Uint(r);
      }
      case Kind::kDouble:
        return Value::Double(a.double_value() + b.double_value());
      case Kind::kString:
        return ConcatStrings(a, b, /*bytes=*/false, budget);
      case Kind::kBytes:
        return ConcatStrings(a, b, /*bytes=*/true, budget);
      case Kind::kList:
        return ConcatLists(a, b, budget);
      case Kind::kDuration:
        return AddDurations(a.duration_value(), b.duration_value());
      default:
        break;
    }
  } else if (a.IsTimestamp() && b.IsDuration()) {
    return AddTimestampDuration(a.timestamp_value(), b.duration_value());
  } else if (a.IsDuration() && b.IsTimestamp()) {
    return AddTimestampDuration(b.timestamp_value(), a.duration_value());
  }
  return Value::StaticError(kNoAdd);
}

Value Subtract(const Value& a, const Value& b) {
  if (a.kind() == b.kind()) {
    switch (a.kind()) {
      case Kind::kInt: {
        int64_t r;
        if (__builtin_sub_overflow(a.int_value(), b.int_value(), &r)) {
          return Value::StaticError(kOverflowError);
        }
        return Value::Int(r);
      }
      case Kind::kUint: {
        uint64_t r;
        if (__builtin_sub_overflow(a.uint_value(), b.uint_value(), &r)) {
          return Value::StaticError(kOverflowError);
        }
        return Value::Uint(r);
      }
      case Kind::kDouble:
        return Value::Double(a.double_value() - b.double_value());
      case Kind::kTimestamp:
        return SubtractTimestamps(a.timestamp_value(), b.timestamp_value());
      case Kind::kDuration:
        return SubtractDurations(a.duration_value(), b.duration_value());
      default:
        break;
    }
  } else if (a.IsTimestamp() && b.IsDuration()) {
    return SubtractTimestampDuration(a.timestamp_value(), b.duration_value());
  }
  return Value::StaticError(kNoSubtract);
}

Value Multiply(const Value& a, const Value& b) {
  if (a.kind() == b.kind()) {
    switch (a.kind()) {
      case Kind::kInt: {
        int64_t r;
        if (__builtin_mul_overflow(a.int_value(), b.int_value(), &r)) {
          return Value::StaticError(kOverflowError);
        }
        return Value::Int(r);
      }
      case Kind::kUint: {
        uint64_t r;
        if (__builtin_mul_overflow(a.uint_value(), b.uint_value(), &r)) {
          return Value::StaticError(kOverflowError);
        }
        return Value::Uint(r);
      }
      case Kind::kDouble:
        return Value::Double(a.double_value() * b.double_value());
      default:
        break;
    }
  }
  return Value::StaticError(kNoMultiply);
}

Value Divide(const Value& a, const Value& b) {
  if (a.kind() == b.kind()) {
    switch (a.kind()) {
      case Kind::kInt: {
        const int64_t x = a.int_value(), y = b.int_value();
        if (y == 0) return Value::StaticError(kDivisionByZero);
        // The one quotient that does not fit: -2^63 / -1.
        if (x == std::numeric_limits<int64_t>::min() && y == -1) {
          return Value::StaticError(kOverflowError);
        }
        return Value::Int(x / y);
      }
      case Kind::kUint:
        if (b.uint_value() == 0) return Value::StaticError(kDivisionByZero);
        return Value::Uint(a.uint_value() / b.uint_value());
      case Kind::kDouble:
        return Value::Double(a.double_value() / b.double_value());
      default:
        break;
    }
  }
  return Value::StaticError(kNoDivide);
}

Value Modulo(const Value& a, const Value& b) {
  if (a.kind() == b.kind()) {
    switch (a.kind()) {
      case Kind::kInt: {
        const int64_t x = a.int_value(), y = b.int_value();
        if (y == 0) return Value::StaticError(kModulusByZero);
        // -2^63 % -1 is mathematically 0 but traps on x86 (the division
        // overflows); CEL reports it as overflow, like the quotient.
        if (x == std::numeric_limits<int64_t>::min() && y == -1) {
          return Value::StaticError(kOverflowError);
        }
        return Value::Int(x % y);
      }
      case Kind::kUint:
        if (b.uint_value() == 0) return Value::StaticError(kModulusByZero);
        return Value::Uint(a.uint_value() % b.uint_value());
      default:
        break;
    }
  }
  return Value::StaticError(kNoModulo);
}

Value Negate(const Value& a) {
  switch (a.kind()) {
    case Kind::kInt:
      if (a.int_value() == std::numeric_limits<int64_t>::min()) {
        return Value::StaticError(kOverflowError);
      }
      return Value::Int(-a.int_value());
    case Kind::kDouble:
      return Value::Double(-a.double_value());
    default:
      return Value::StaticError(kNoNegate);
  }
}

Value Index(const Value& container, const Value& index) {
  if (container.IsList()) {
    const ListValue& list = container.list_value();
    size_t pos;
    Value error;
    if (!ListPosition(index, list.size(), &pos, &error)) return error;
    return list.Get(pos);
  }
  if (container.IsMap()) {
    if (!IsMapKeyKind(index.kind())) return Value::StaticError(kUnsupportedKey);
    Value result;
    const bool found =
        index.IsString()
            ? container.map_value().FindString(index.string_value(), &result)
            : container.map_value().Find(index, &result);
    if (!found)
      return Value::Error(absl::StrCat("no such key: ", KeyText(index)));
    return result;
  }
  return Value::StaticError(kNoIndex);
}

Value In(const Value& element, const Value& container) {
  if (container.IsList()) {
    const ListValue& list = container.list_value();
    const size_t n = list.size();
    for (size_t i = 0; i < n; ++i) {
      if (Equal(element, list.Get(i))) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (container.IsMap()) {
    // A key of a kind no map can hold is simply absent (heterogeneous
    // equality makes `[1] in m` false, not an error).
    if (!IsMapKeyKind(element.kind())) return Value::Bool(false);
    Value ignored;
    if (element.IsString()) {
      return Value::Bool(container.map_value().FindStringRef(
                             element.string_value(), &ignored) != nullptr);
    }
    return Value::Bool(container.map_value().Find(element, &ignored));
  }
  return Value::StaticError(kNoIn);
}

Value Size(const Value& v) {
  switch (v.kind()) {
    case Kind::kString: {
      // Code points: count every byte that does not continue a sequence.
      int64_t n = 0;
      for (unsigned char c : v.string_value()) n += (c & 0xC0) != 0x80;
      return Value::Int(n);
    }
    case Kind::kBytes:
      return Value::Int(static_cast<int64_t>(v.bytes_value().size()));
    case Kind::kList:
      return Value::Int(static_cast<int64_t>(v.list_value().size()));
    case Kind::kMap:
      return Value::Int(static_cast<int64_t>(v.map_value().size()));
    default:
      return Value::StaticError(kNoSize);
  }
}

}  // namespace tappa::cel
