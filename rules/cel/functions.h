// The table of CEL's standard functions and operators the checker resolves
// calls against, and the dispatch the evaluator calls them through.
//
// A call is resolved at compile time, by name, arity and call style (global
// `f(x)` or receiver `x.f()`), to a Builtin; the checker then asks
// CheckBuiltin for the static result type given the argument types it knows
// (dyn where unknown), which rejects calls that can never succeed
// (`"a" + 1`). At run time CallBuiltin dispatches on the argument kinds.
//
// The logical operators (`&&`, `||`, `!`, `?:`, @not_strictly_false) are not
// here: they are not strict in errors, so the evaluator implements them.
//
// Thread safety: everything here is stateless.
#ifndef TAPPA_RULES_CEL_FUNCTIONS_H_
#define TAPPA_RULES_CEL_FUNCTIONS_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "rules/cel/cost.h"
#include "rules/cel/types.h"
#include "rules/cel/value.h"

namespace tappa::cel {

enum class Builtin : uint8_t {
  kEqual,
  kNotEqual,
  kLess,
  kLessEqual,
  kGreater,
  kGreaterEqual,
  kAdd,
  kSubtract,
  kMultiply,
  kDivide,
  kModulo,
  kNegate,
  kIndex,
  kIn,
  kSize,
  kContains,
  kStartsWith,
  kEndsWith,
  kMatches,
  kInt,
  kUint,
  kDouble,
  kString,
  kBytes,
  kBool,
  kTimestamp,
  kDuration,
  kDyn,
  kType,
  kGetFullYear,
  kGetMonth,
  kGetDate,
  kGetDayOfMonth,
  kGetDayOfWeek,
  kGetDayOfYear,
  kGetHours,
  kGetMinutes,
  kGetSeconds,
  kGetMilliseconds,
};

// The CEL name of a builtin ("_+_", "size", "getFullYear").
absl::string_view BuiltinName(Builtin id);
// "no matching overload for '<name>'" (static storage).
absl::string_view NoOverloadMessage(Builtin id);

enum class Resolution : uint8_t {
  kResolved,
  kUndeclared,  // no function of that name: "undeclared reference to 'f'"
  kNoOverload,  // the name exists, but not with this style and arity
};

// Resolves a call of `name` with `arg_count` arguments (for a receiver call,
// the receiver counts as the first argument).
Resolution ResolveFunction(absl::string_view name, bool receiver_style,
                           int arg_count, Builtin* id);

// The static result type of `id` applied to arguments of the given types
// (dyn matches anything; object types behave as maps). Returns false when no
// overload accepts the known argument types.
bool CheckBuiltin(Builtin id, absl::Span<const Type> args, Type* result);

// CEL's rendering of a failed static call: "found no matching overload for
// '_+_' applied to '(string, int)'", or for a receiver call
// "... applied to 'string.(int)'".
std::string NoOverloadIssue(absl::string_view name, bool receiver_style,
                            absl::Span<const Type> args);

// True when a value of type `a` can ever equal one of type `b` (same kind,
// numeric kinds mixed, dyn, null with maps and objects); used for `==`,
// `!=` and `in`.
bool Comparable(const Type& a, const Type& b);

// Calls a strict builtin. Requires: no argument is an error value, and
// args.size() is an arity ResolveFunction accepted for `id`. Never called for
// kMatches with a pre-compiled pattern (the evaluator handles that).
Value CallBuiltin(Builtin id, absl::Span<const Value> args, CostBudget& budget);

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_FUNCTIONS_H_
