// Runs an evaluation plan (plan.h) with CEL semantics.
//
// Errors are values: they propagate through strict operators and functions
// (the leftmost error wins) and are absorbed by `&&`, `||`, `?:` and the
// comprehension macros where the other operand decides the result, exactly as
// the macro expansions of ast.h prescribe. map() and filter() append to one
// list in place instead of building `accu + [x]` at each step.
//
// Allocation: none for constants, bindings, field selection on maps,
// comparisons, `in` a constant list, logical operators and integer
// arithmetic; errors on those paths use static messages (precomputed ones
// for "no such key: <field>"). Comprehension variables live in a fixed-size
// frame on the caller's stack.
//
// Borrowing: a result may borrow from the plan and from the bindings, never
// from a temporary: lists and maps built during evaluation hold their
// elements as Values (references), so selecting from a temporary yields a
// value that outlives it.
//
// Thread safety: a plan is read-only here; each evaluation has its own
// context, so one plan may be evaluated from many threads at once.
#ifndef TAPPA_RULES_CEL_EVALUATOR_H_
#define TAPPA_RULES_CEL_EVALUATOR_H_

#include <cstdint>

#include "absl/types/span.h"
#include "rules/cel/cost.h"
#include "rules/cel/plan.h"
#include "rules/cel/value.h"

namespace tappa::cel {

// Evaluates `root` with the given bindings and budget. `frame_slots` (at most
// kMaxFrameSlots) is the number of comprehension slots the plan uses. When the
// budget runs out the result is the error kCostLimitExceeded (and
// *exhausted, if given, is set to true).
Value EvaluatePlan(const Node& root, int frame_slots,
                   absl::Span<const Value> bindings, int64_t cost_limit,
                   bool* exhausted = nullptr);

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_EVALUATOR_H_
