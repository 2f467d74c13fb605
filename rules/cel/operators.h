// CEL's operators on runtime values: equality, ordering, arithmetic,
// membership, indexing and size (cel-spec langdef.md, "Standard Definitions"
// and "Equality", "Ordering").
//
// Contracts shared by every function here:
//   * Operands are never error values: the evaluator propagates errors before
//     calling (operators are strict). Results may be error values.
//   * No undefined behaviour for any input: integer overflow, division and
//     modulus by zero, out-of-range indexes are error values with CEL's
//     wording ("return error for overflow", "division by zero", "modulus by
//     zero", "index out of range", "no such key: k").
//   * Unsupported operand kinds give "no matching overload for '<op>'" (a
//     static message: no allocation).
//   * Nothing allocates unless the result is a new string, bytes or list, or
//     an error whose message names a value ("no such key: k").
//   * Thread-safe (pure functions).
#ifndef TAPPA_RULES_CEL_OPERATORS_H_
#define TAPPA_RULES_CEL_OPERATORS_H_

#include "rules/cel/cost.h"
#include "rules/cel/value.h"

namespace tappa::cel {

inline constexpr char kOverflowError[] = "return error for overflow";
inline constexpr char kDivisionByZero[] = "division by zero";
inline constexpr char kModulusByZero[] = "modulus by zero";
inline constexpr char kIndexOutOfRange[] = "index out of range";
inline constexpr char kInvalidSelect[] = "invalid type for field selection";

// Heterogeneous equality (CEL's `==`): values of different kinds are unequal
// (not an error), except that int, uint and double compare by numeric value
// (1 == 1u, 1 == 1.0; NaN equals nothing, itself included). Lists are equal
// when their sizes are equal and their elements pairwise equal; maps when
// they have the same size and every key of one maps to an equal value in the
// other (keys themselves compare heterogeneously). Types compare by name.
bool Equal(const Value& a, const Value& b);

// The outcome of an ordering comparison.
enum class Ordering : uint8_t {
  kLess,
  kEqual,
  kGreater,
  kUnordered,     // a NaN operand: every relation is false
  kIncomparable,  // no `<` overload for these kinds: an error
};

// Ordering across int, uint and double by exact numeric value (no rounding:
// 9007199254740993 > 9007199254740992.0), and within strings (code point
// order, which for UTF-8 is byte order), bytes, bool (false < true),
// timestamps and durations. Other pairs are kIncomparable.
Ordering Compare(const Value& a, const Value& b);

// `_+_`: int, uint, double (IEEE, no implicit mixing: 1 + 1.0 has no
// overload), string and bytes concatenation, list concatenation, timestamp +
// duration, duration + timestamp, duration + duration. Concatenations charge
// the result's size to `budget` (bytes or elements) before building it.
Value Add(const Value& a, const Value& b, CostBudget& budget);
// `_-_`: int, uint (negative results overflow), double, timestamp -
// timestamp (a duration), timestamp - duration, duration - duration.
Value Subtract(const Value& a, const Value& b);
Value Multiply(const Value& a, const Value& b);
// `_/_` on int, uint, double (x / 0.0 is an IEEE infinity or NaN).
Value Divide(const Value& a, const Value& b);
// `_%_` on int and uint only (sign follows the dividend, as in C++ and Go).
Value Modulo(const Value& a, const Value& b);
// `-_` on int and double.
Value Negate(const Value& a);

// `_[_]`: lists by int, uint or an integral double; maps by key (missing:
// "no such key: <key>").
Value Index(const Value& container, const Value& index);
// `@in`: list membership under Equal(), map key presence (heterogeneous
// numeric keys: 1.0 in {1: x}).
Value In(const Value& element, const Value& container);
// size() of strings (code points), bytes, lists and maps.
Value Size(const Value& v);

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_OPERATORS_H_
